"""Benchmark generate_migration on a copy of the residency fixture.

    .venv/bin/python bench/bench_generate.py [--repeat 5] [--pg URL]

Each run copies the fixture, adds a column to a model and calls
generate_migration (the first run also pays for starting a worker).  The
table splits the wall time into building the scratch database (create +
upgrade to head through env.py), autogenerate, the review of the new file and
the rest (worker round trips, file writing).  Also measured: the no-change
call (no file written) and check_heads with drift (the same scratch build).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "residency"


def _copy(tmp: Path, i: int, *, edit: bool) -> Path:
    dest = tmp / f"r{i}"
    shutil.copytree(FIXTURE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    if edit:
        person = dest / "app" / "models" / "person.py"
        person.write_text(person.read_text().replace(
            "    role: Mapped[str]", "    nickname: Mapped[str | None] = mapped_column(String(40))\n    role: Mapped[str]"))
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pg", metavar="URL", help="also measure with a scratch database on this PostgreSQL server")
    args = ap.parse_args()

    from db_migrate.generate import generate_migration
    from db_migrate.heads import check_heads
    from db_migrate.project import load_project

    rows: list[tuple[str, list[dict[str, float]]]] = []
    with tempfile.TemporaryDirectory(prefix="bench_generate_") as tmp:
        for label, kw, edit in [
            ("generate (sqlite scratch)", {}, True),
            ("no change (sqlite scratch)", {}, False),
            *([("generate (postgres scratch)", {"scratch_url": args.pg}, True)] if args.pg else []),
        ]:
            runs = []
            for i in range(args.repeat):
                project = load_project(_copy(Path(tmp), len(rows) * 100 + i, edit=edit))
                t = time.perf_counter()
                r = generate_migration(project, "add nickname", **kw)
                wall = time.perf_counter() - t
                assert r.created == edit, r.summary
                runs.append({"wall": wall, **r.timings})
            rows.append((label, runs))
        runs = []
        for i in range(args.repeat):
            project = load_project(_copy(Path(tmp), 900 + i, edit=False))
            t = time.perf_counter()
            check_heads(project)
            runs.append({"wall": time.perf_counter() - t})
        rows.append(("check_heads with drift", runs))

    print(f"{'case':<28} {'first ms':>9} {'median ms':>10} {'scratch ms':>11} {'autogen ms':>11} {'review ms':>10} {'scratch %':>10}")
    for label, runs in rows:
        warm = runs[1:] or runs
        med = {k: statistics.median(r.get(k, 0.0) for r in warm) for k in ("wall", "scratch", "autogenerate", "review")}
        share = 100 * med["scratch"] / med["wall"] if med["scratch"] else float("nan")
        print(f"{label:<28} {runs[0]['wall'] * 1e3:>9.0f} {med['wall'] * 1e3:>10.0f} {med['scratch'] * 1e3:>11.0f} "
              f"{med['autogenerate'] * 1e3:>11.0f} {med['review'] * 1e3:>10.0f} {share:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
