"""Wall and CPU time of ``db-migrate review --all`` (or ``classify`` of every revision) on one project, for two
checkouts side by side.

    .venv/bin/python bench/bench_history_review.py PROJECT_DIR --baseline /path/to/old/.venv/bin/db-migrate [--runs 3] [--classify]

For a history that is not ours (its migrations folder only, extracted to a temporary directory): runs this
checkout's CLI and the baseline's alternately, ``--runs`` times each, with a cold cache each time (its own
XDG_CACHE_HOME), and prints the best wall time, the CPU time of the process tree (``RUSAGE_CHILDREN``) and the
size of the JSON each returned. Alternating keeps a shared machine's load from favouring either.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def revision_ids(cli: str, project: Path) -> list[str]:
    """Every revision of the project, from its own review (base to head)."""
    out = subprocess.run([cli, "review", "--all", "--format", "json"], cwd=project, capture_output=True, text=True)
    return [r["revision"] for r in json.loads(out.stdout)["reviews"] if r.get("revision")]


def once(cli: str, project: Path, command: list[str]) -> tuple[float, float, int, int]:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        p = subprocess.run([cli, *command, "--format", "json"], cwd=project, env=env, capture_output=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, len(p.stdout), p.returncode


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("project", type=Path)
    ap.add_argument("--baseline", required=True, help="the other checkout's db-migrate executable")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--classify", action="store_true", help="time `classify <every revision>` instead of `review --all`")
    args = ap.parse_args()
    mine = str(HERE.parent / ".venv" / "bin" / "db-migrate")
    command = ["classify", *revision_ids(mine, args.project)] if args.classify else ["review", "--all"]
    results: dict[str, list[tuple[float, float, int, int]]] = {"baseline": [], "this": []}
    for _ in range(args.runs):
        results["baseline"].append(once(args.baseline, args.project, command))
        results["this"].append(once(mine, args.project, command))
    print(f"{'':10} {'best wall s':>12} {'best cpu s':>11} {'json bytes':>11} {'exit':>5}")
    for name, rows in results.items():
        wall, cpu = min(r[0] for r in rows), min(r[1] for r in rows)
        print(f"{name:10} {wall:12.2f} {cpu:11.2f} {rows[-1][2]:11,} {rows[-1][3]:5}")


if __name__ == "__main__":
    sys.exit(main())
