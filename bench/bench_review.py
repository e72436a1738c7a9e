"""Benchmark review_migration against the pipeline users run today.

    .venv/bin/python bench/bench_review.py [--revisions 500] [--cli-sample 25] [--skip-in-process]

Measures, in one run, on a generated history (PostgreSQL dialect) and on the
fixture project:

* in process: every revision reviewed alone, cold cache (per-revision p50/p95),
  and the whole history in one call;
* through the CLI: ``db-migrate review REV --format json`` for a sample of
  revisions (a new process each, start to verdict; its jobs fork from the warm
  parent CLI calls share, started by the first call: sandbox/shared.py), and
  for a few of them with a private fork server per call (``DB_MIGRATE_SHARED_WORKER=0``);
* the baseline: ``alembic upgrade PARENT:REV --sql | squawk`` for the same sample,
  each run right after the CLI on the same revision (a shared machine's load
  shifts; interleaving keeps the two comparable), and the ratio of the medians.

Targets: in-process p50 <= 20 ms per revision (issue 2); CLI <= 0.8x the
squawk pipeline on the fixtures and at 300 and 2,000 revisions (issue 11), on a generated history whose
alembic.ini names its versions folder in ``version_locations`` (issue 16; ``--plain-ini`` leaves it out).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
BIN = Path(sys.executable).parent


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def row(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"| {name:<52} | {len(ms):>5} | {pct(ms, 50):>9.1f} | {pct(ms, 95):>9.1f} | {max(ms):>9.1f} |"


def in_process(project_dir: Path) -> tuple[list[float], float, int]:
    import db_migrate.review as review
    from db_migrate.project import load_history, load_project

    project = load_project(cwd=project_dir)
    ids = [h.revision for h in load_history(project).headers]
    review.review_migration(project, ids[0])  # start the worker: not part of a per-revision cost
    times = []
    findings = 0
    for rid in ids:
        review._cache.clear()
        t = time.perf_counter()
        r = review.review_migration(project, rid)
        times.append(time.perf_counter() - t)
        findings += len(r.findings)
    review._cache.clear()
    t = time.perf_counter()
    review.review_migration(project, all_revisions=True)
    whole = time.perf_counter() - t
    return times, whole, findings


def sample_pairs(project_dir: Path, k: int) -> list[tuple[str, str]]:
    from db_migrate.project import load_history, load_project

    h = load_history(load_project(cwd=project_dir))
    chain = []
    rid = h.heads[0]
    while rid:
        chain.append(rid)
        downs = h.by_id[rid].down_revisions
        rid = downs[0] if downs else None
    chain.reverse()
    step = max(1, (len(chain) - 1) // k)
    return [(chain[i - 1], chain[i]) for i in range(1, len(chain), step)][:k]


def cli_once(project_dir: Path, rev: str, *, shared: bool = True) -> float:
    env = {**os.environ, "DB_MIGRATE_SHARED_WORKER": "1" if shared else "0"}
    t = time.perf_counter()
    p = subprocess.run([str(BIN / "db-migrate"), "review", rev, "--format", "json"], cwd=project_dir, capture_output=True, env=env)
    took = time.perf_counter() - t
    if p.returncode not in (0, 1, 3):
        raise SystemExit(f"db-migrate review failed: {p.stderr.decode()[-500:]}")
    return took


def squawk_once(project_dir: Path, parent: str, rev: str, squawk: str) -> tuple[float, int]:
    t = time.perf_counter()
    alembic = subprocess.Popen([str(BIN / "alembic"), "upgrade", f"{parent}:{rev}", "--sql"], cwd=project_dir, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    sq = subprocess.run([squawk, "--reporter", "gcc"], stdin=alembic.stdout, capture_output=True)
    alembic.wait()
    return time.perf_counter() - t, sq.stdout.decode().count("\n")


def side_by_side(project_dir: Path, pairs: list[tuple[str, str]]) -> tuple[list[float], list[float], int]:
    """CLI and baseline on each sampled revision, one right after the other."""
    squawk = shutil.which("squawk", path=str(BIN)) or shutil.which("squawk")
    if not squawk:
        raise SystemExit("squawk not found: pip install squawk-cli")
    cli, base, violations = [], [], 0
    for parent, rev in pairs:
        cli.append(cli_once(project_dir, rev))
        took, v = squawk_once(project_dir, parent, rev, squawk)
        base.append(took)
        violations += v
    return cli, base, violations


def ratio_row(name: str, cli: list[float], base: list[float]) -> str:
    return f"| {name:<52} | {len(cli):>5} | {pct(cli, 50) / pct(base, 50):>9.2f} | {min(cli) / min(base):>9.2f} (min) | — |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--revisions", type=int, default=500)
    ap.add_argument("--cli-sample", type=int, default=25)
    ap.add_argument("--skip-in-process", action="store_true", help="only the CLI against the squawk pipeline")
    ap.add_argument("--plain-ini", action="store_true", help="alembic.ini without version_locations (it names them by default)")
    args = ap.parse_args()
    from common import compile_package
    from make_history import make_history

    compile_package()

    with tempfile.TemporaryDirectory() as tmp:
        gen = Path(tmp, "gen")
        make_history(gen, args.revisions, dialect_url="postgresql://bench@localhost/bench", version_locations=not args.plain_ini)
        fixture = Path(tmp, "residency")
        shutil.copytree(ROOT / "fixtures" / "residency", fixture)

        print(f"# review benchmark — {args.revisions}-revision generated history + fixtures ({os.cpu_count()} cores)\n")
        print("| measurement | n | p50 ms | p95 ms | max ms |")
        print("|---|---:|---:|---:|---:|")
        for name, d in (("generated", gen), ("fixtures", fixture)):
            if args.skip_in_process:
                break
            times, whole, findings = in_process(d)
            print(row(f"{name}: in process, one revision per call (cold cache)", times))
            print(f"| {name}: in process, whole history in one call | 1 | {whole * 1000:.1f} total | {whole * 1000 / len(times):.2f} per rev | — |")
        pairs = sample_pairs(gen, args.cli_sample)
        cli, sq, violations = side_by_side(gen, pairs)
        print(row("generated: CLI `db-migrate review REV` (new process)", cli))
        print(row("generated: baseline `alembic upgrade A:B --sql | squawk`", sq))
        print(ratio_row("generated: CLI / baseline (p50 ratio)", cli, sq))
        fpairs = sample_pairs(fixture, 15)
        fcli, fsq, _ = side_by_side(fixture, fpairs)
        print(row("fixtures: CLI `db-migrate review REV` (new process)", fcli))
        print(row("fixtures: baseline `alembic upgrade A:B --sql | squawk`", fsq))
        print(ratio_row("fixtures: CLI / baseline (p50 ratio)", fcli, fsq))
        private = [cli_once(fixture, rev, shared=False) for _parent, rev in fpairs[:5]]
        print(row("fixtures: CLI, private fork server per call", private))
        print(ratio_row("fixtures: private / baseline (p50 ratio)", private, fsq))
        print(f"\nsquawk reported {violations} violation line(s) on the {len(pairs)} sampled generated revisions.")


if __name__ == "__main__":
    main()
