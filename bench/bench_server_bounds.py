"""What bounding the MCP arguments costs, and what refusing an oversized one takes, before and after.

    .venv/bin/python bench/bench_server_bounds.py [--baseline 3f535a4] [--calls 200] [--cap 120]

Side by side in one run, on a copy of the fixture, through the SDK's in-memory client:

- ``check_arguments`` on a normal call's arguments (microseconds), beside a warm
  ``review_migration`` round trip with this tree (the validation's share of a call);
- the time to answer ``review_migration`` with a 100 KB and a 1 MB ``revision`` and
  ``database_url``, with this tree and with the baseline commit's ``src`` (extracted
  with ``git archive``, run in its own process); a baseline call longer than ``--cap``
  seconds is stopped and shown as ``> cap``.

Prints one JSON object.
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
FIXTURE = ROOT / "fixtures" / "residency"

# Runs in a child process with PYTHONPATH naming the src tree under test.
_PROBE = r"""
import json, sys, time, anyio
from mcp import Client
from db_migrate.server import build_server
project, argument, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
value = ("postgresql://u:pw@h/" if argument == "database_url" else "") + "a" * size
async def go():
    async with Client(build_server(project)) as c:
        await c.call_tool("check_heads", {})  # warm: the first call's imports are not the refusal
        t = time.perf_counter()
        r = await c.call_tool("review_migration", {argument: value})
        took = time.perf_counter() - t
        code = json.loads(r.content[0].text).get("error", {}).get("code") if r.is_error else "no error"
        print(json.dumps({"seconds": round(took, 4), "code": code}))
anyio.run(go)
"""


def _refusal(src: Path, project: Path, argument: str, size: int, cap: float) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    try:
        p = subprocess.run([sys.executable, "-c", _PROBE, str(project), argument, str(size)], env=env,
                           capture_output=True, text=True, timeout=cap + 30)
    except subprocess.TimeoutExpired:
        return {"seconds": f"> {cap:g}", "code": "stopped"}
    if p.returncode != 0:
        return {"seconds": None, "code": "crashed: " + (p.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _normal_call_cost(project: Path, calls: int) -> dict[str, float]:
    import anyio
    from mcp import Client

    from db_migrate.server import build_server
    from db_migrate.tools.limits import check_arguments

    args = {"revision": "head", "database_url": None, "dialect": None, "all_revisions": False}
    n = 100_000
    t = time.perf_counter()
    for _ in range(n):
        check_arguments("review_migration", args)
    check_us = (time.perf_counter() - t) / n * 1e6

    async def go() -> list[float]:
        out = []
        async with Client(build_server(project)) as c:
            await c.call_tool("review_migration", {"revision": "head"})
            for _ in range(calls):
                t = time.perf_counter()
                await c.call_tool("review_migration", {"revision": "head"})
                out.append(time.perf_counter() - t)
        return out

    times = anyio.run(go)
    p50 = statistics.median(times) * 1000
    return {"check_arguments_us": round(check_us, 2), "review_call_p50_ms": round(p50, 2),
            "validation_share_of_call_pct": round(check_us / 1000 / p50 * 100, 4)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="3f535a4", help="commit before the bounds (default: the branch point)")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--cap", type=float, default=120.0, help="stop a baseline refusal after this many seconds")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dbm-bench-bounds-"))
    try:
        project = tmp / "residency"
        shutil.copytree(FIXTURE, project, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
        base = tmp / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", a.baseline, "src"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        out: dict[str, object] = {"baseline": a.baseline, "normal_call": _normal_call_cost(project, a.calls)}
        refusals = {}
        for argument in ("revision", "database_url"):
            for size in (100_000, 1_000_000):
                key = f"{argument} {size // 1000} KB"
                refusals[key] = {"after": _refusal(ROOT / "src", project, argument, size, a.cap),
                                 "before": _refusal(base / "src", project, argument, size, a.cap)}
                print(key, json.dumps(refusals[key]), file=sys.stderr, flush=True)
        out["refusal"] = refusals
        print(json.dumps(out, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
