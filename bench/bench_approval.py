"""What the approval record costs, and what people read in CI: measured beside a named baseline in one run.

    .venv/bin/python bench/bench_approval.py [--revisions 500] [--baseline 3f535a4] [--runs 5]

* Lines of ``db-migrate review --all`` (text) on the fixture project: the baseline commit's
  source (``git archive BASELINE src``, run with a private fork server) beside this tree's.
* Reading the record: on a generated history of N revisions with every escalating revision
  approved, the warm ``review_migration(all_revisions=True)`` (its outcomes cached, as in a
  session) beside ``book_for`` + ``evaluate`` alone (what the record adds to each call),
  medians of ``--runs`` (records parsed once per process and kept while unchanged), and once
  with no record parsed yet (a CLI call).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


def report_lines(src: Path | None, project: Path) -> int:
    """Lines of ``review --all`` on ``project``, run from ``src`` (a db_migrate source tree) or this tree."""
    env = {**os.environ, "NO_COLOR": "1", "DB_MIGRATE_SHARED_WORKER": "0"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    p = subprocess.run([sys.executable, "-m", "db_migrate.cli", "review", "--all"], cwd=project, env=env,
                       capture_output=True, text=True, timeout=600)
    if p.returncode not in (0, 1, 3):
        raise SystemExit(f"review --all failed ({p.returncode}): {p.stderr}")
    return len(p.stdout.splitlines())


def lines_beside_baseline(baseline: str, tmp: Path) -> None:
    old = tmp / "baseline"
    old.mkdir()
    archive = subprocess.run(["git", "archive", baseline, "src"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    project = tmp / "residency"
    shutil.copytree(ROOT / "fixtures" / "residency", project, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    before, after = report_lines(old / "src", project), report_lines(None, project)
    print(f"| review --all text lines, fixture (16 revisions) | {baseline}: {before} | this tree: {after} | {after / before:.2f}x |")


def record_cost(n: int, runs: int, tmp: Path) -> None:
    from make_history import make_history

    from db_migrate.approval import book_for, evaluate, record_approval
    from db_migrate.project import load_project
    from db_migrate.review import review_migration

    make_history(tmp / "big", n)
    project = load_project(cwd=tmp / "big")
    result = review_migration(project, all_revisions=True)
    escalating = {p.revision for p in (result.approval.pending if result.approval else [])}
    for rev in sorted(escalating):
        record_approval(project, result, rev, by="bench", note="", via="cli")
    reviews, books = [], []
    for _ in range(runs):
        t = time.perf_counter()
        result = review_migration(project, all_revisions=True)
        reviews.append(time.perf_counter() - t)
        t = time.perf_counter()
        evaluate(result.escalation.triggers if result.escalation else [], book_for(project, result.reviews))
        books.append(time.perf_counter() - t)
    from db_migrate.approval import record

    record._parsed.clear()  # a CLI call: every record parsed once
    t = time.perf_counter()
    evaluate(result.escalation.triggers if result.escalation else [], book_for(project, result.reviews))
    cold = (time.perf_counter() - t) * 1000
    approved = len(result.approval.approved) if result.approval else 0
    r, b = statistics.median(reviews) * 1000, statistics.median(books) * 1000
    print(f"| warm review --all, {n} revisions ({approved} approved) | {r:.1f} ms | record read + match | {b:.1f} ms ({b / r:.0%}); records not yet parsed: {cold:.1f} ms |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--revisions", type=int, default=500)
    ap.add_argument("--baseline", default="3f535a4", help="the commit before the approval record (default: 3f535a4)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from common import compile_package

    compile_package()
    with tempfile.TemporaryDirectory() as d:
        lines_beside_baseline(args.baseline, Path(d))
        record_cost(args.revisions, args.runs, Path(d))


if __name__ == "__main__":
    main()
