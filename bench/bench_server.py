"""Benchmark the MCP server over stdio, as an agent's client sees it.

    .venv/bin/python bench/bench_server.py [--calls 1000] [--project fixtures/residency]

Measures, against the installed ``db-migrate serve`` on a copy of the fixture:

- cold start: spawn the server, initialize, ``tools/list`` (target <= 1.5 s);
- warm ``review_migration`` round trips (target p50 <= 50 ms);
- the server's resident memory after 10 and after N calls (target: within 20 %).

Prints one JSON object; exits 1 when a target is missed.
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
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent
SERVER = Path(sys.executable).parent / "db-migrate"


def _children() -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()}
    except OSError:
        return set()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def bench(project: Path, calls: int) -> dict[str, float]:
    params = StdioServerParameters(command=str(SERVER), args=["serve"], cwd=str(project))
    before = _children()
    t0 = time.perf_counter()
    async with Client(params) as c:
        await c.list_tools()
        cold = time.perf_counter() - t0
        server_pids = sorted(_children() - before)
        pid = server_pids[0] if server_pids else None

        times: list[float] = []
        rss_10 = 0
        for i in range(calls):
            t = time.perf_counter()
            r = await c.call_tool("review_migration", {"revision": "head"})
            times.append(time.perf_counter() - t)
            assert not r.is_error, r.content[0].text
            if i == 9 and pid:
                rss_10 = _rss_kb(pid)
        rss_n = _rss_kb(pid) if pid else 0
    return {
        "cold_start_to_tools_list_s": round(cold, 3),
        "review_p50_ms": round(statistics.median(times) * 1000, 2),
        "review_p95_ms": round(sorted(times)[int(len(times) * 0.95) - 1] * 1000, 2),
        "rss_after_10_kb": rss_10,
        f"rss_after_{calls}_kb": rss_n,
        "rss_growth": round(rss_n / rss_10 - 1, 3) if rss_10 else float("nan"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--project", type=Path, default=ROOT / "fixtures" / "residency")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(args.project, project, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
        result = anyio.run(bench, project, max(args.calls, 10))
    ok = result["cold_start_to_tools_list_s"] <= 1.5 and result["review_p50_ms"] <= 50 and result["rss_growth"] <= 0.2
    result["targets_met"] = ok
    print(json.dumps(result, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
