"""How much of an agent's context the MCP server costs: tools/list and every tool result.

    .venv/bin/python bench/bench_context.py [--baseline /work/main/src] [--changes N]

Runs the same scripted session twice, in one run, side by side: against a
baseline source tree (default ``/work/main/src``, read only: it is only put
first on ``PYTHONPATH`` of a child process) and against this checkout.  Each
session serves a fresh copy of ``fixtures/residency`` through the SDK's
in-memory client and makes ordinary model changes, one after the other, the way
the ``db-migrate`` prompt says: ``check_heads``, edit the models,
``generate_migration``, then ``review_migration``, ``test_roundtrip`` and
``classify_escalation`` on the new revision.  Nothing is fixed between changes:
the scripted agent only reads.

Measured: characters of ``tools/list`` (JSON as a client would keep it, and of
its outputSchemas alone), and per change the structuredContent characters
(``json.dumps`` of the structured result) and text characters (the text blocks)
of its calls.  Prints a table and, with ``--json``, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "residency"
PERSON = "app/models/person.py"
ROTATION = "app/models/rotation.py"
ROLE = "    role: Mapped[str] = mapped_column(String(50))\n"

#: (name, file, old text, new text): each applied on top of the previous ones.
CHANGES: list[tuple[str, str, str, str]] = [
    ("add a nullable column", PERSON, ROLE, ROLE + "    nickname: Mapped[str | None] = mapped_column(String(40))\n"),
    ("widen a column", PERSON, "mapped_column(String(40))", "mapped_column(String(80))"),
    ("add an index", ROTATION, "    category: Mapped[str | None] = mapped_column(String(50))",
     "    category: Mapped[str | None] = mapped_column(String(50), index=True)"),
    ("add NOT NULL with a server default", PERSON, ROLE,
     ROLE + "    timezone: Mapped[str] = mapped_column(String(40), server_default=\"UTC\")\n"),
    ("drop a column", PERSON, "    middle_name: Mapped[str | None] = mapped_column(String(100))\n", ""),
    ("add a table", ROTATION, "    assignments: Mapped[list[Assignment]] = relationship(back_populates=\"rotation\")\n",
     "    assignments: Mapped[list[Assignment]] = relationship(back_populates=\"rotation\")\n\n\n"
     "class RotationNote(Base):\n    __tablename__ = \"rotation_notes\"\n\n"
     "    id: Mapped[int] = mapped_column(primary_key=True)\n    body: Mapped[str | None] = mapped_column(Text)\n"),
]


def _size(result: Any) -> tuple[int, int, str]:
    """(structured characters, text characters, decision) of one CallToolResult."""
    structured = result.structured_content
    text = sum(len(getattr(c, "text", "") or "") for c in result.content)
    decision = (structured or {}).get("decision", "error" if result.is_error else "?")
    return (len(json.dumps(structured)) if structured is not None else 0), text, decision


async def _session(project: Path, n: int) -> dict[str, Any]:
    """The scripted session against whichever db_migrate is importable (run in a child process)."""
    from mcp import Client

    from db_migrate.server import build_server

    out: dict[str, Any] = {"source": str(Path(__import__("db_migrate").__file__).parent), "changes": []}
    async with Client(build_server(project)) as c:
        listed = await c.list_tools()
        wire = listed.model_dump(mode="json", by_alias=True, exclude_none=True)
        out["tools_list"] = len(json.dumps(wire))
        out["output_schemas"] = sum(len(json.dumps(t.get("outputSchema"))) for t in wire["tools"])
        for name, file, old, new in CHANGES[:n]:
            calls: list[tuple[str, int, int, str]] = []

            async def call(tool: str, args: dict[str, Any]) -> dict[str, Any] | None:
                r = await c.call_tool(tool, args)
                calls.append((tool, *_size(r)))
                return r.structured_content

            await call("check_heads", {})
            path = project / file
            text = path.read_text()
            assert old in text, (name, old)
            path.write_text(text.replace(old, new, 1))
            g = await call("generate_migration", {"message": name})
            rev = (g or {}).get("revision")
            if rev:
                await call("review_migration", {"revision": rev})
                await call("test_roundtrip", {"revision": rev, "rows": 5})
                await call("classify_escalation", {"revision": rev})
            out["changes"].append({"change": name, "calls": calls})
    return out


def _child(project: str, n: int) -> None:
    import anyio

    print(json.dumps(anyio.run(_session, Path(project), n)))


def _run(src: Path, n: int, tmp: Path, label: str) -> dict[str, Any]:
    project = tmp / label / "residency"
    shutil.copytree(FIXTURE, project, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    p = subprocess.run(
        [sys.executable, __file__, "--child", str(project), "--changes", str(n)],
        env=env, capture_output=True, text=True, timeout=3600,
    )
    if p.returncode != 0:
        sys.exit(f"{label} session failed:\n{p.stderr[-4000:]}")
    data = json.loads(p.stdout.strip().splitlines()[-1])
    if Path(data["source"]).resolve() != (src / "db_migrate").resolve():
        sys.exit(f"{label}: imported {data['source']}, not {src}")
    return data


def _totals(change: dict[str, Any]) -> tuple[int, int, int]:
    calls = change["calls"]
    return len(calls), sum(c[1] for c in calls), sum(c[2] for c in calls)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, default=Path("/work/main/src"), help="source tree to compare with (read only)")
    ap.add_argument("--changes", type=int, default=len(CHANGES))
    ap.add_argument("--json", action="store_true", help="also print the raw figures as one JSON object")
    ap.add_argument("--child", metavar="PROJECT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.changes)
        return 0

    with tempfile.TemporaryDirectory(prefix="bench_context_") as tmp:
        before = _run(args.baseline.resolve(), args.changes, Path(tmp), "before")
        after = _run((ROOT / "src").resolve(), args.changes, Path(tmp), "after")

    print(f"before: {before['source']}\nafter:  {after['source']}\n")
    print(f"{'':<36} {'before':>9} {'after':>9}")
    print(f"{'tools/list characters':<36} {before['tools_list']:>9,} {after['tools_list']:>9,}")
    print(f"{'  of which outputSchemas':<36} {before['output_schemas']:>9,} {after['output_schemas']:>9,}\n")
    head = f"{'change':<36} {'calls':>5} {'structured':>21} {'text':>21}  decisions (after)"
    print(head + "\n" + f"{'':<36} {'':>5} {'before':>10} {'after':>10} {'before':>10} {'after':>10}")
    total = [0, 0, 0, 0, 0]
    for b, a in zip(before["changes"], after["changes"]):
        nb, sb, tb = _totals(b)
        na, sa, ta = _totals(a)
        decisions = " ".join(f"{c[0].split('_')[0]}:{c[3]}" for c in a["calls"])
        calls = f"{nb}" if nb == na else f"{nb}/{na}"
        print(f"{a['change']:<36} {calls:>5} {sb:>10,} {sa:>10,} {tb:>10,} {ta:>10,}  {decisions}")
        for i, v in enumerate((na, sb, sa, tb, ta)):
            total[i] += v
    print(f"{'total':<36} {total[0]:>5} {total[1]:>10,} {total[2]:>10,} {total[3]:>10,} {total[4]:>10,}")
    per_tool: dict[str, list[int]] = {}
    for side, data in ((0, before), (1, after)):
        for ch in data["changes"]:
            for tool, s, t, _ in ch["calls"]:
                row = per_tool.setdefault(tool, [0, 0, 0, 0, 0])
                row[side] += s
                row[2 + side] += t
                row[4] += side
    print(f"\n{'per tool (all changes)':<36} {'calls':>5} {'before':>10} {'after':>10} {'before':>10} {'after':>10}")
    for tool, (sb, sa, tb, ta, n) in per_tool.items():
        print(f"{tool:<36} {n:>5} {sb:>10,} {sa:>10,} {tb:>10,} {ta:>10,}")
    if args.json:
        print(json.dumps({"before": before, "after": after}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
