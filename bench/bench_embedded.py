"""Benchmark the embedded PostgreSQL scratch server: first start, warm reuse, and its cost against SQLite.

    .venv/bin/python bench/bench_embedded.py [--repeat 3]

In a private cache directory (never the user's), one run, side by side:

- ``first start``: ``ensure_running()`` in a fresh interpreter with an empty cache (initdb + start);
- ``restart``:     the same after ``scratch stop`` (data directory kept: start only);
- ``warm reuse``:  ``ensure_running()`` while the server runs, in a fresh interpreter (best of --repeat);
- ``scratch db``:  one scratch database on the embedded server, created and dropped (with its job role and,
                   since issue 17, the role's creation, ``REVOKE`` and drop), best of --repeat;
- ``roundtrip``:   ``test_roundtrip`` of the residency fixture's head (10 seeded rows) on the embedded
                   server vs on a temporary SQLite file (``database_url="sqlite://"``), best of --repeat,
                   in one interpreter after a warm-up call of each;
- ``heads+drift``: ``check_heads`` with the drift check (template at head + autogenerate), same way, with the
                   drift answer not kept (``DB_MIGRATE_DRIFT_CACHE=0``): what a call after a model edit pays.

Imports are excluded from the in-process figures (the CLI pays them once per process either way).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ENSURE = """
import json, time
from db_migrate.scratch.embedded import ensure_running
t = time.perf_counter(); ensure_running(); print(json.dumps({"seconds": time.perf_counter() - t}))
"""

COMPARE = """
import json, os, sys, time
os.environ["DB_MIGRATE_DRIFT_CACHE"] = "0"  # the engines' cost, not the kept answer's (bench_heads.py has that)
from db_migrate.heads import check_heads
from db_migrate.project import load_project
from db_migrate.roundtrip import test_roundtrip
project = load_project(sys.argv[1]); repeat = int(sys.argv[2])

def best(fn):
    fn()  # warm-up: the worker, templates
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times)

from db_migrate.scratch import scratch_database
from db_migrate.scratch.embedded import ensure_running

def one_database():
    with scratch_database(ensure_running(), purpose="bench"):
        pass

out = {"scratch db (create + drop)": best(one_database)}
for label, url in (("embedded", None), ("sqlite", "sqlite://")):
    out[f"roundtrip {label}"] = best(lambda: test_roundtrip(project, database_url=url, rows=10))
    out[f"heads+drift {label}"] = best(lambda: check_heads(project, scratch_url=url))
print(json.dumps(out))
"""


def _run(code: str, env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cache = tempfile.mkdtemp(prefix="bench_embedded_")
    os.chmod(cache, 0o755)  # the server's system user must reach it when we run as root
    env = {**os.environ, "XDG_CACHE_HOME": cache, "DB_MIGRATE_PG_IDLE_MINUTES": "5"}
    stop = [sys.executable, "-m", "db_migrate.cli", "scratch", "stop", "--format", "json"]
    rows: dict[str, float] = {}
    try:
        rows["first start (initdb + start)"] = _run(ENSURE, env)["seconds"]
        subprocess.run(stop, env=env, check=True, capture_output=True)
        rows["restart (data kept)"] = _run(ENSURE, env)["seconds"]
        rows["warm reuse"] = min(_run(ENSURE, env)["seconds"] for _ in range(args.repeat))
        work = Path(cache) / "residency"
        shutil.copytree(ROOT / "fixtures" / "residency", work, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
        rows.update(_run(COMPARE, env, str(work), str(args.repeat)))
    finally:
        subprocess.run(stop, env=env, capture_output=True)
        shutil.rmtree(cache, ignore_errors=True)
    for name, seconds in rows.items():
        print(f"{name:<30} {seconds * 1e3:>10.1f} ms")
    for step in ("roundtrip", "heads+drift"):
        e, s = rows.get(f"{step} embedded"), rows.get(f"{step} sqlite")
        if e and s:
            print(f"{step + ' embedded/sqlite':<30} {e / s:>9.2f} x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
