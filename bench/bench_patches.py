"""What verified patches cost a review call, beside the review without them (issue 18, point 3).

    .venv/bin/python bench/bench_patches.py [--repeat 3] [--engine sqlite|postgresql|both]

On a fresh two-revision project per repetition (the second revision adds a nullable column with
``downgrade(): pass``, so its finding gets a patch; PostgreSQL also has a new table with an enum),
measured in one run:

* baseline: ``review_paths`` on the revision, the review as it decided before patches (no copy, no checks);
* ``review_migration`` first call: the same review plus the patch checked on a copy of the project
  (git apply, review of the patched revision, its roundtrip on the default scratch engine);
* ``review_migration`` again on the unchanged file: the check's answer is kept, so an agent's loop pays once.

Medians of ``--repeat`` runs, in seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from projectfactory import make_project  # noqa: E402

from db_migrate.project import load_history, load_project  # noqa: E402
from db_migrate.review import review_migration, review_paths  # noqa: E402

FIRST = {
    "sqlite": 'def upgrade():\n    op.create_table("orders", sa.Column("id", sa.Integer(), primary_key=True))\n\n\n'
              'def downgrade():\n    op.drop_table("orders")\n',
    "postgresql": 'def upgrade():\n    op.create_table("orders", sa.Column("id", sa.Integer(), primary_key=True),\n'
                  '        sa.Column("status", sa.Enum("new", "paid", name="order_status")))\n\n\n'
                  'def downgrade():\n    op.drop_table("orders")\n    op.execute("DROP TYPE IF EXISTS order_status")\n',
}
SECOND = 'def upgrade():\n    op.add_column("orders", sa.Column("note", sa.String(200), nullable=True))\n\n\ndef downgrade():\n    pass\n'
URL = {"sqlite": "sqlite:///app.db", "postgresql": "postgresql://u@localhost/app"}


def once(engine: str) -> tuple[float, float, float, list[str]]:
    root = make_project(Path(tempfile.mkdtemp(prefix="dbm-bench-patch-")), [FIRST[engine], SECOND], url=URL[engine])
    project = load_project(cwd=root)
    header = load_history(project).resolve("head")
    t = time.perf_counter()
    review_paths(project, [header])
    base = time.perf_counter() - t
    t = time.perf_counter()
    first = review_migration(project, "head")
    cold = time.perf_counter() - t
    t = time.perf_counter()
    review_migration(project, "head")
    warm = time.perf_counter() - t
    (f,) = [f for f in first.findings if f.rule == "missing-downgrade"]
    return base, cold, warm, f.patch_checked


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    args = ap.parse_args()
    engines = ("sqlite", "postgresql") if args.engine == "both" else (args.engine,)
    print(f"{'engine':<11} {'baseline review':>16} {'with patch, 1st':>16} {'with patch, again':>18}  checks")
    for engine in engines:
        runs = [once(engine) for _ in range(args.repeat)]
        med = [statistics.median(r[i] for r in runs) for i in range(3)]
        print(f"{engine:<11} {med[0]:>15.2f}s {med[1]:>15.2f}s {med[2]:>17.2f}s  {', '.join(runs[-1][3])}")


if __name__ == "__main__":
    main()
