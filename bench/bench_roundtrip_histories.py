"""Benchmark ``roundtrip --all`` on real histories, beside a plain alembic up/down/up replay, in one run.

    python bench/bench_roundtrip_histories.py PROJECT_DIR [PROJECT_DIR ...] [--server embedded|URL] [--name SECTION]

Each PROJECT_DIR holds an ``alembic.ini`` (and the migrations it names): the
histories are not shipped here; extract a public project's migrations folder
and write a minimal env.py / alembic.ini for it.  For each history, on the
same server:

1. ``db-migrate roundtrip --all`` (default 20 seeded rows per table), as a user runs it (the CLI);
2. ``db-migrate roundtrip --all --rows 0``;
3. the plain replay (:mod:`alembic_replay`: alembic's command API, no db-migrate), the baseline and the oracle.

Prints per history: revisions, seconds, revisions roundtripped, status,
failures, and against the replay: failures missed and false failures
(:func:`alembic_replay.compare`).  ``--server embedded`` (default) runs
db-migrate on its default engine (the embedded PostgreSQL server) and the
replay on that same server; a URL names a PostgreSQL server for both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from alembic_replay import compare, replay  # noqa: E402
from common import compile_package  # noqa: E402


def roundtrip(project: Path, server: str | None, section: str, rows: int) -> tuple[float, dict]:
    cmd = [str(Path(sys.executable).parent / "db-migrate"), "roundtrip", "--all", "--rows", str(rows),
           "--config", str(project / "alembic.ini"), "--name", section, "--format", "json", "--timeout", "3600"]
    if server:
        cmd += ["--database-url", server]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    seconds = time.perf_counter() - t
    try:
        return seconds, json.loads(out.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"roundtrip on {project} gave no verdict (exit {out.returncode}): {out.stderr[-2000:]}") from None


def line(history: str, mode: str, seconds: float, tested: int | str, total: int, status: str,
         failures: int | str, missed: int | str, false: int | str) -> str:
    return (f"{history:<14} {mode:<22} {seconds:>8.1f} {str(tested) + '/' + str(total):>9} {status:<9} "
            f"{failures!s:>8} {missed!s:>7} {false!s:>6}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("projects", nargs="+", type=Path)
    ap.add_argument("--server", default="embedded", help="'embedded' (db-migrate's default engine) or a PostgreSQL server URL")
    ap.add_argument("--name", default="alembic", help="alembic.ini section")
    ap.add_argument("--json", type=Path, help="also write every verdict and replay here")
    args = ap.parse_args(argv)
    compile_package()
    if args.server == "embedded":
        from db_migrate.scratch.embedded import ensure_running

        scratch, oracle_server = None, ensure_running()
    else:
        scratch = oracle_server = args.server
    print(line("history", "run", 0, "tested", 0, "status", "failures", "missed", "false").replace("     0.0", " seconds"))
    kept: dict[str, dict] = {}
    for project in args.projects:
        name = project.name
        t = time.perf_counter()
        oracle = replay(str(project / "alembic.ini"), oracle_server, section=args.name)
        replay_s = time.perf_counter() - t
        total = len(oracle["tested"]) + len(oracle["unreached"])
        print(line(name, "alembic replay", replay_s, len(oracle["tested"]), total, "-", len(oracle["failures"]), "-", "-"))
        kept[name] = {"replay": oracle}
        for rows in (20, 0):
            seconds, verdict = roundtrip(project, scratch, args.name, rows)
            diff = compare(verdict, oracle)
            tested = len({s["revision"] for s in verdict["steps"] if s["step"] == "reupgrade" and s["ok"]})
            failing = len({(f["revision"], f["kind"]) for f in verdict["failures"]})
            mode = f"roundtrip --all{' --rows 0' if rows == 0 else ''}"
            print(line(name, mode, seconds, tested, len(verdict["revisions"]), verdict["status"], failing,
                       len(diff["missed"]), len(diff["false"])))
            kept[name][f"rows{rows}"] = {"verdict": verdict, "compare": diff, "seconds": seconds}
            for what in ("missed", "false"):
                for item in diff[what]:
                    print(f"    {what}: {item}")
            if diff["unverified"]:
                print(f"    {len(diff['unverified'])} revision(s) with a reported failure the replay never reached")
        if oracle.get("stamp_lost"):
            print(f"    replay: {len(oracle['stamp_lost'])} upgrade(s) lost their own stamp under stock alembic "
                  f"(a revision committing the connection): {', '.join(r for r, _ in oracle['stamp_lost'][:5])}")
    if args.json:
        args.json.write_text(json.dumps(kept, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
