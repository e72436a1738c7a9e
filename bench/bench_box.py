"""What the stronger job box costs per job (issue 17), beside the box of a baseline checkout, in one run.

    .venv/bin/python bench/bench_box.py [--baseline /work/main] [--rounds 5] [--calls 10] [--pg URL]

Two measuring processes, one importing this checkout's ``src`` and one the
baseline's (``--baseline``: a second checkout, e.g. ``/work/main`` or ``git
archive <commit> src | tar -x -C DIR``; it is only read), take turns round by
round so both see the same machine load.  Each measures, on its own copy of
``fixtures/residency`` (in a 0755 folder):

- ``job_static``: ``run_job("os:getpid", isolation="static")``, the box alone (fork,
  namespaces, mounts, identity, answer);
- ``job_database``: the same with the PostgreSQL scratch server named as ``scratch``
  (the new box adds the relay's socket, the baseline had no network restriction over TCP);
- ``review``: ``review_migration`` of head with the review cache cleared (one static job);
- ``roundtrip_embedded``: ``test_roundtrip`` of head on the default scratch (the embedded PostgreSQL
  server, on a Unix socket: the new box binds that socket alone into the job's folder);
- ``roundtrip_postgresql``: ``test_roundtrip`` of head on the TCP server of tests/conftest.py (the
  new box's jobs talk to it through the relay; every query crosses one more process).

Prints one JSON object: per measure, the median milliseconds of both and the difference
(the target of issue 17: at most 30 ms more per job).  No targets are asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("DB_MIGRATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MEASURES = ("job_static", "job_database", "review", "roundtrip_embedded", "roundtrip_postgresql")


def child(project: Path, pg: str) -> None:
    """Measuring process: answer each line naming a measure and a count with the call times (JSON)."""
    import db_migrate.review as review_mod
    from db_migrate.project import load_project
    from db_migrate.review import review_migration
    from db_migrate.roundtrip import test_roundtrip
    from db_migrate.sandbox import run_job
    from db_migrate.scratch import scratch_database

    p = load_project(None, cwd=project)

    def job_database() -> None:
        with scratch_database(pg, purpose="bench") as db:
            t = time.perf_counter()
            run_job("os:getpid", isolation="database", scratch=db.url)
            times.append(time.perf_counter() - t)

    def review() -> None:
        review_mod._cache.clear()
        t = time.perf_counter()
        review_migration(p)
        times.append(time.perf_counter() - t)

    def timed(fn) -> None:
        from db_migrate.errors import DatabaseError

        t = time.perf_counter()
        try:
            fn()
        except DatabaseError as e:
            # both measuring processes keep templates on the same server under the same names, each
            # with its own index: one may evict what the other's index names. Measure the call again.
            if "template" not in e.message:
                raise
            t = time.perf_counter()
            fn()
        times.append(time.perf_counter() - t)

    calls = {
        "job_static": lambda: timed(lambda: run_job("os:getpid", isolation="static")),
        "job_database": job_database,
        "review": review,
        "roundtrip_embedded": lambda: timed(lambda: test_roundtrip(p, database_url=None)),
        "roundtrip_postgresql": lambda: timed(lambda: test_roundtrip(p, database_url=pg)),
    }
    for name in calls:  # warm-up: the fork server, the templates, the review's imports
        times: list[float] = []
        calls[name]()
    print(json.dumps({"code": str(Path(review_mod.__file__).parent.parent)}), flush=True)
    for line in sys.stdin:
        name, count = line.split()
        times = []
        for _ in range(int(count)):
            calls[name]()
        print(json.dumps(times), flush=True)


def _start(src: Path, project: Path, pg: str, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(src), "XDG_CACHE_HOME": str(cache), "DB_MIGRATE_SHARED_WORKER": "0"}
    return subprocess.Popen([sys.executable, __file__, "--child", str(project), "--pg", pg], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(project))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, default=Path("/work/main"), help="the checkout to compare with (its src/ is imported)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=10, help="calls per measure per round (roundtrips: a third)")
    ap.add_argument("--pg", default=PG)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.pg)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        procs = {}
        for label, src in (("new", ROOT / "src"), ("baseline", args.baseline / "src")):
            project = Path(tmp) / label / "project"
            shutil.copytree(ROOT / "fixtures" / "residency", project, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
            os.chmod(project.parent, 0o755)
            (Path(tmp) / label / "cache").mkdir()
            procs[label] = _start(src, project, args.pg, Path(tmp) / label / "cache")
        codes = {label: json.loads(proc.stdout.readline())["code"] for label, proc in procs.items()}
        times: dict[str, dict[str, list[float]]] = {label: {m: [] for m in MEASURES} for label in procs}
        for _round in range(args.rounds):
            for measure in MEASURES:
                count = args.calls if not measure.startswith("roundtrip") else max(1, args.calls // 3)
                for label, proc in procs.items():
                    proc.stdin.write(f"{measure} {count}\n")
                    proc.stdin.flush()
                    times[label][measure].extend(json.loads(proc.stdout.readline()))
        for proc in procs.values():
            proc.stdin.close()
            proc.wait()
    out: dict[str, object] = {"new": codes["new"], "baseline": codes["baseline"], "rounds": args.rounds}
    for measure in MEASURES:
        new, old = (statistics.median(times[label][measure]) * 1000 for label in ("new", "baseline"))
        out[measure] = {"new_p50_ms": round(new, 1), "baseline_p50_ms": round(old, 1), "added_ms": round(new - old, 1),
                        "calls_each": len(times["new"][measure])}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
