"""What running each job in a fresh process costs: per-call review and roundtrip, and server memory.

    .venv/bin/python bench/bench_sandbox.py [--calls 30] [--server-calls 1000] [--pg URL]

Measured on a copy of ``fixtures/residency``:

- ``review_migration`` of head, in process, with the review cache cleared before
  each call (so every call runs a sandbox job);
- ``test_roundtrip`` of head on a temporary SQLite file and on the PostgreSQL
  server of tests/conftest.py;
- the MCP server (``db-migrate serve`` over stdio) after 10 and after N
  ``review_migration`` calls: resident memory of the server and of its whole
  process tree (workers or fork server plus any live job).

Run it on two checkouts to compare (e.g. main's pooled workers against
fork-per-job): ``PYTHONPATH=/path/to/checkout/src .venv/bin/python bench/bench_sandbox.py``.
Prints one JSON object; no targets (timings depend on the machine's load).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("DB_MIGRATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _tree(pid: int) -> list[int]:
    out = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for k in kids:
            out.extend(_tree(int(k)))
    return out


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _stats(times: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(times) * 1000, 1), "min_ms": round(min(times) * 1000, 1),
            "max_ms": round(max(times) * 1000, 1)}


def per_call(project: Path, calls: int, pg: str | None) -> dict[str, object]:
    import db_migrate.review as review_mod
    from db_migrate.project import load_project
    from db_migrate.review import review_migration
    from db_migrate.roundtrip import test_roundtrip

    p = load_project(None, cwd=project)
    review_migration(p)  # warm-up: the first call starts the workers / fork server
    times = []
    for _ in range(calls):
        review_mod._cache.clear()
        t = time.perf_counter()
        review_migration(p)
        times.append(time.perf_counter() - t)
    out: dict[str, object] = {"review": _stats(times)}
    for name, url in (("roundtrip_sqlite", None), ("roundtrip_postgresql", pg)):
        if name.endswith("postgresql") and not url:
            continue
        times = []
        for _ in range(max(3, calls // 3)):
            t = time.perf_counter()
            r = test_roundtrip(p, database_url=url)
            times.append(time.perf_counter() - t)
            assert r.decision in ("proceed", "revise"), r.summary
        out[name] = _stats(times)
    return out


async def server_memory(project: Path, calls: int) -> dict[str, int]:
    from mcp import Client, StdioServerParameters

    server = Path(sys.executable).parent / "db-migrate"
    params = StdioServerParameters(command=str(server), args=["serve"], cwd=str(project), env=dict(os.environ))
    mine = set(_tree(os.getpid()))
    out: dict[str, int] = {}
    async with Client(params) as c:
        await c.list_tools()
        pid = min(set(_tree(os.getpid())) - mine)
        for i in range(calls):
            r = await c.call_tool("review_migration", {"revision": "head"})
            assert not r.is_error, r.content[0].text
            if i + 1 in (10, calls):
                tree = _tree(pid)
                out[f"server_rss_after_{i + 1}_kb"] = _rss_kb(pid)
                out[f"tree_rss_after_{i + 1}_kb"] = sum(_rss_kb(x) for x in tree)
                out[f"tree_processes_after_{i + 1}"] = len(tree)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--server-calls", type=int, default=1000)
    ap.add_argument("--pg", default=PG, help="PostgreSQL server URL for the roundtrip ('' to skip)")
    ap.add_argument("--project", type=Path, default=ROOT / "fixtures" / "residency")
    args = ap.parse_args()
    import db_migrate

    result: dict[str, object] = {"code": str(Path(db_migrate.__file__).parent)}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(args.project, project, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
        result.update(per_call(project, args.calls, args.pg or None))
        if args.server_calls:
            result.update(anyio.run(server_memory, project, max(args.server_calls, 10)))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
