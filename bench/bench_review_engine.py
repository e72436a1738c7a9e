"""CPU cost of the review engine itself (capture + every rule), without the sandbox.

    .venv/bin/python bench/bench_review_engine.py [--revisions 500] [--other-root DIR]

Runs :func:`db_migrate.review.engine.review_job` in this process (trusted,
generated code only) over a generated 500-revision history and over the fixture
project, three times, and prints the best CPU time per revision
(``time.process_time``: what the engine costs, whatever else the shared machine
does).  ``--other-root`` runs the same measurement on another checkout of this
repository (for example the commit before a change) in a fresh interpreter, so
both figures come from one run.  The per-call figures of ``bench_review.py``
include a sandbox job per call; this one isolates what the parsing and the rules
cost.
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(root: Path, revisions: int) -> None:
    sys.path.insert(0, str(root / "src"))
    sys.path.insert(0, str(HERE))
    from make_history import make_history

    import db_migrate.review.engine as engine
    from db_migrate.project import load_history, load_project

    with tempfile.TemporaryDirectory() as tmp:
        for name in ("generated", "fixtures"):
            d = Path(tmp, name)
            if name == "generated":
                make_history(d, revisions, dialect_url="postgresql://bench@localhost/bench")
            else:
                shutil.copytree(root / "fixtures" / "residency", d)
            os.chdir(d)
            project = load_project(cwd=d)
            files = [(str(h.path), project.relpath(h.path)) for h in load_history(project).headers]
            kw = {}
            if "config_file" in inspect.signature(engine.review_job).parameters:
                kw = dict(config_file=str(project.config_file), section=project.section)
            engine.review_job(files[:5], str(project.root), project.dialect, **kw)  # warm imports
            best = None
            for _ in range(3):
                t = time.process_time()
                engine.review_job(files, str(project.root), project.dialect, **kw)
                cpu = time.process_time() - t
                best = cpu if best is None else min(best, cpu)
            print(f"{str(root):>30} {name:>10} {len(files):>5} revisions  {best * 1000 / len(files):7.2f} ms CPU per revision")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--revisions", type=int, default=500)
    ap.add_argument("--other-root", type=Path, help="another checkout to measure in the same run (e.g. the base commit)")
    ap.add_argument("--root", type=Path, default=HERE.parent, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.other_root:
        env = dict(os.environ, PYTHONPATH=str(args.other_root / "src"))
        subprocess.run([sys.executable, __file__, "--root", str(args.other_root), "--revisions", str(args.revisions)], env=env, check=True)
    measure(args.root.resolve(), args.revisions)


if __name__ == "__main__":
    main()
