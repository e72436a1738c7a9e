"""The MCP server, driven in memory by the SDK's own client (both protocol eras)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import Context  # noqa: F401  (import check: the SDK we target)
from mcp.types import ElicitResult

from db_migrate.cli import main as cli_main
from db_migrate.server import INSTRUCTIONS, build_server

from projectfactory import make_project

TOOLS = {"generate_migration", "review_migration", "test_roundtrip", "check_heads", "classify_escalation"}
MODES = ["auto", "legacy"]  # 2026-07-28 (input_required elicitation) and 2025-11-25 (back channel)


def _structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    assert result.structured_content is not None
    return result.structured_content


def _error(result: Any) -> dict[str, Any]:
    assert result.is_error
    return json.loads(result.content[0].text)["error"]


async def _call(server: Any, tool: str, args: dict[str, Any], **client_kw: Any) -> Any:
    async with Client(server, **client_kw) as c:
        return await c.call_tool(tool, args)


def _cli_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = cli_main([*args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


# --- the published surface ------------------------------------------------------------------------


def test_tools_publish_schemas_annotations_and_short_descriptions(residency: Path) -> None:
    async def go() -> list[Any]:
        async with Client(build_server(residency)) as c:
            return (await c.list_tools()).tools

    tools = {t.name: t for t in anyio.run(go)}
    assert set(tools) == TOOLS
    for t in tools.values():
        assert t.description and len(t.description.encode()) <= 2048
        assert "decision" in t.description or "proceed" in t.description  # tells the agent how to act
        assert t.output_schema is not None and "decision" in t.output_schema["properties"]
        for name, prop in t.input_schema["properties"].items():
            assert prop.get("description"), f"{t.name}.{name} has no description"
    for name in ("review_migration", "check_heads", "classify_escalation"):
        a = tools[name].annotations
        assert a.read_only_hint is True and a.idempotent_hint is True, name
    rt = tools["test_roundtrip"].annotations
    assert (rt.read_only_hint, rt.destructive_hint, rt.open_world_hint) == (False, False, False)
    gen = tools["generate_migration"].annotations
    assert (gen.read_only_hint, gen.destructive_hint) == (False, False)
    assert "revision" in tools["review_migration"].input_schema["properties"]
    assert tools["review_migration"].input_schema["properties"]["revision"]["default"] == "head"
    # resolver-filled parameters are not part of what the agent sends
    assert set(tools["classify_escalation"].input_schema["properties"]) == {"revision", "database_url", "environment"}
    assert len(INSTRUCTIONS.encode()) <= 2048


def test_prompts_and_resources(residency: Path) -> None:
    async def go() -> dict[str, Any]:
        async with Client(build_server(residency)) as c:
            prompts = {p.name for p in (await c.list_prompts()).prompts}
            wf = await c.get_prompt("db-migrate", {"change": "add an optional middle_name to Person"})
            uris = {str(r.uri) for r in (await c.list_resources()).resources}
            read = {u: (await c.read_resource(u)).contents[0].text for u in sorted(uris)}
            return {"prompts": prompts, "wf": wf.messages[0].content.text, "uris": uris, "read": read}

    out = anyio.run(go)
    assert {"db-migrate", "review-pending"} <= out["prompts"]
    text = out["wf"]
    assert "middle_name" in text
    order = [text.index(t) for t in ("check_heads", "generate_migration", "review_migration", "test_roundtrip", "classify_escalation")]
    assert order == sorted(order)
    assert out["uris"] == {"db-migrate://skill", "db-migrate://rules", "db-migrate://policy", "db-migrate://history", "db-migrate://schema"}
    schemas = json.loads(out["read"]["db-migrate://schema"])
    assert set(schemas["tools"]) == TOOLS and "description" in schemas["$defs"]["Finding"]["properties"]["fix"]
    assert out["read"]["db-migrate://skill"].startswith("---\nname:")
    assert isinstance(json.loads(out["read"]["db-migrate://rules"]), list)
    assert json.loads(out["read"]["db-migrate://policy"])["protected_tables"] == ["acgme*"]
    history = json.loads(out["read"]["db-migrate://history"])
    assert history["heads"] == ["f956808bc5df"] and len(history["revisions"]) == 16


def test_tools_list_fits_an_agent_context_and_every_result_matches_its_schema(residency: Path) -> None:
    """tools/list at most 20,000 characters; every tool's structuredContent is valid against what it advertises.

    The compact outputSchemas are hand-shaped (db_migrate.tools.schema), so each tool is called for real
    over the SDK's client, which validates too, and checked again here with jsonschema.
    """
    import jsonschema

    person = residency / "app" / "models" / "person.py"
    role = "    role: Mapped[str]"
    assert role in person.read_text()
    person.write_text(person.read_text().replace(role, "    nickname: Mapped[str | None] = mapped_column(String(40))\n" + role))
    calls = [
        ("check_heads", {}),
        ("generate_migration", {"message": "add nickname"}),
        ("review_migration", {"all_revisions": True}),
        ("review_migration", {"revision": ESCALATING_REV}),
        ("test_roundtrip", {"rows": 3}),
        ("classify_escalation", {"revision": ESCALATING_REV}),
        ("classify_escalation", {}),
    ]

    async def go() -> tuple[Any, list[tuple[str, Any]]]:
        async with Client(build_server(residency)) as c:
            listed = await c.list_tools()
            return listed, [(tool, await c.call_tool(tool, args)) for tool, args in calls]

    listed, results = anyio.run(go)
    wire = listed.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert len(json.dumps(wire)) <= 20_000, len(json.dumps(wire))
    schemas = {t.name: t.output_schema for t in listed.tools}
    for t in listed.tools:  # no prose in the schemas: the documented ones are a resource
        assert "description" not in json.dumps(t.output_schema) and "title" not in json.dumps(t.input_schema)
    decisions = set()
    for tool, result in results:
        data = _structured(result)
        jsonschema.validate(data, schemas[tool])
        decisions.add(data["decision"])
        if tool == "generate_migration":
            assert data["created"] and "review" not in data  # the review is merged into findings, not repeated
        if tool == "classify_escalation":
            assert data["policy"] == "db-migrate://policy" and "protected_tables" not in data["policy_settings"]
    assert decisions >= {"proceed", "escalate"}


# --- tools: same JSON as the CLI, errors as error JSON ---------------------------------------------


def test_review_structured_content_is_the_cli_json(residency: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(residency)
    result = anyio.run(_call, build_server(residency), "review_migration", {"revision": "ba2e5b21f0bc"})
    structured = _structured(result)
    code, cli = _cli_json(["review", "ba2e5b21f0bc"], capsys)
    assert structured == cli
    assert structured["tool"] == "review_migration" and structured["revisions"] == ["ba2e5b21f0bc"]
    assert code == {"proceed": 0, "revise": 1, "escalate": 3}[cli["decision"]]
    assert structured["summary"] in result.content[0].text  # the short human text beside it


def test_errors_are_error_json_and_the_server_keeps_answering(residency: Path, tmp_path: Path) -> None:
    outside = tmp_path / "evil.py"
    outside.write_text("revision = 'x'\n")
    versions = residency / "alembic" / "versions"
    (versions / "big.py").write_text("# filler\n" * (10 * 1024 * 1024 // 9))
    (versions / "binary.py").write_bytes(bytes(range(256)) * 4096)

    async def go() -> list[Any]:
        async with Client(build_server(residency)) as c:
            return [
                await c.call_tool("review_migration", {"revision": str(outside)}),
                await c.call_tool("review_migration", {"revision": "../../etc/passwd.py"}),
                await c.call_tool("review_migration", {"revision": "nope"}),
                await c.call_tool("review_migration", {"revision": "alembic/versions/binary.py"}),
                await c.call_tool("review_migration", {"revision": "alembic/versions/big.py"}),
                await c.call_tool("review_migration", {"revision": ["9692"]}),  # wrong type: input validation
                await c.call_tool("review_migration", {"revision": "9692142c98f0"}),
            ]

    *errors, big, bad_type, ok = anyio.run(go)
    codes = [_error(r)["code"] for r in errors]
    assert codes == ["path-outside-project", "path-outside-project", "revision-not-found", "migration-load-failed"]
    # 10 MB of comments is valid Python but not a revision
    assert _error(big)["code"] == "migration-load-failed" and "not an Alembic revision" in _error(big)["message"]
    assert bad_type.is_error
    assert _structured(ok)["revisions"] == ["9692142c98f0"]


def test_missing_project_is_a_tool_error_not_a_crash(tmp_path: Path) -> None:
    result = anyio.run(_call, build_server(tmp_path), "check_heads", {})
    assert _error(result)["code"] == "config-not-found"


def test_concurrent_calls(residency: Path) -> None:
    revs = ["929364751fdc", "9343485feba9", "46f760feb10b", "ad9cb2d4b40f", "c8335fa6c848", "37001f9082a5"]

    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with Client(build_server(residency)) as c:

            async def one(rev: str) -> None:
                out[rev] = await c.call_tool("review_migration", {"revision": rev})

            async with anyio.create_task_group() as tg:
                for rev in revs:
                    tg.start_soon(one, rev)
        return out

    out = anyio.run(go)
    assert {rev: _structured(r)["revisions"] for rev, r in out.items()} == {rev: [rev] for rev in revs}


def test_progress_is_forwarded(residency: Path) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def go() -> Any:
        async with Client(build_server(residency)) as c:
            return await c.call_tool("classify_escalation", {"revision": "head"}, progress_callback=on_progress)

    _structured(anyio.run(go))
    assert seen and any(m for _, _, m in seen)


@pytest.mark.parametrize("tool", ["test_roundtrip", "review_migration"])
def test_cancelled_call_kills_its_worker_and_the_server_answers(tmp_path: Path, tool: str) -> None:
    """A revision that hangs when run: cancel the call; the worker dies; the next call works."""
    root = make_project(tmp_path / "p", [
        "def upgrade():\n    op.create_table('t', sa.Column('id', sa.Integer, primary_key=True))\n\n\ndef downgrade():\n    op.drop_table('t')\n",
        "import time\n\n\ndef upgrade():\n    time.sleep(120)\n\n\ndef downgrade():\n    pass\n",
    ])

    def children() -> set[int]:
        try:
            text = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text()
        except OSError:
            pytest.skip("needs /proc")
        return {int(p) for p in text.split()}

    async def go() -> Any:
        async with Client(build_server(root)) as c:
            with anyio.move_on_after(3) as scope:
                await c.call_tool(tool, {"revision": "000000000002"})
            assert scope.cancelled_caught
            during = children()
            await anyio.sleep(0.5)
            after = children()
            again = await c.call_tool("review_migration", {"revision": "000000000001"})
            return during, after, again

    before = children()
    during, after, again = anyio.run(go)
    assert _structured(again)["revisions"] == ["000000000001"]
    # no worker is left running the hung job (idle pool workers are fine: at most two)
    assert len(after - before) <= 2


# --- asking the human -------------------------------------------------------------------------------


def _answer(action: str, approve: bool | None = None, note: str = "") -> Any:
    async def callback(context: Any, params: Any) -> ElicitResult:
        callback.asked.append(params.message)  # type: ignore[attr-defined]
        if action != "accept":
            return ElicitResult(action=action)
        return ElicitResult(action="accept", content={"approve": approve, "note": note})

    callback.asked = []  # type: ignore[attr-defined]
    return callback


ESCALATING_REV = "9692142c98f0"  # drop pager_number from persons


@pytest.mark.parametrize("mode", MODES)
def test_classify_asks_and_only_an_explicit_approval_lifts_escalate(residency: Path, mode: str) -> None:
    server = build_server(residency)
    args = {"revision": ESCALATING_REV}

    plain = _structured(anyio.run(lambda: _call(server, "classify_escalation", args, mode=mode)))
    assert plain["decision"] == "escalate"
    # a client without elicitation: fail closed, and say nobody was asked
    assert plain["human_approval"]["asked"] is False and plain["human_approval"]["answer"] == "not-asked"

    # a rejection, a decline or a cancel keep escalate (and write nothing: tests/test_approval.py)
    for cb, expected in ((_answer("accept", False, "no"), "rejected"), (_answer("decline"), "declined"), (_answer("cancel"), "cancelled")):
        res = _structured(anyio.run(lambda: _call(server, "classify_escalation", args, mode=mode, elicitation_callback=cb)))
        assert res["decision"] == "escalate" and res["human_approval"]["answer"] == expected

    approve = _answer("accept", True, "backed up")
    ok = _structured(anyio.run(lambda: _call(server, "classify_escalation", args, mode=mode, elicitation_callback=approve)))
    assert approve.asked and plain["escalation"]["triggers"][0]["trigger"] in approve.asked[0]
    assert ok["human_approval"] == {"asked": True, "answer": "approved", "note": "backed up", "name": ""}
    assert ok["decision"] in ("proceed", "revise") and "approved by an MCP user (no name given)" in ok["summary"]
    # the evidence stays on record; the approval met the requirement, and the summary says the same as decision
    assert ok["escalation"]["triggers"] == plain["escalation"]["triggers"] and ok["escalation"]["required"] is False
    assert ok["summary"].startswith(ok["decision"] + ":") and "escalate" not in ok["summary"]
    assert ok["approval"]["written"]["via"] == "mcp-elicitation"  # and the repository's record has it


def test_classify_does_not_ask_when_nothing_escalates(residency: Path) -> None:
    asked = _answer("accept", True)
    res = _structured(anyio.run(lambda: _call(build_server(residency), "classify_escalation", {"revision": "46f760feb10b"}, elicitation_callback=asked)))
    if res["decision"] == "escalate":
        pytest.skip("the policy escalates this revision; nothing to show here")
    assert not asked.asked and res["human_approval"] is None


def test_streamable_http_transport_on_loopback(residency: Path) -> None:
    """``db-migrate serve --http``: a real server process on 127.0.0.1, reached by URL; logs stay off stdout."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(sys.executable).parent / "db-migrate"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "db_migrate.cli"]
    proc = subprocess.Popen([*cmd, "serve", "--http", "--port", str(port), "--project", str(residency)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)

        async def go() -> Any:
            async with Client(f"http://127.0.0.1:{port}/mcp") as c:
                names = {t.name for t in (await c.list_tools()).tools}
                return names, await c.call_tool("check_heads", {})

        names, heads = anyio.run(go)
        assert names == TOOLS
        assert _structured(heads)["heads"] == ["f956808bc5df"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert out == b""


def test_a_revision_id_sent_as_a_number_is_still_an_id(residency: Path) -> None:
    # Clients (the MCP Inspector CLI among them) send `revision=9692` as a JSON number.
    result = anyio.run(_call, build_server(residency), "classify_escalation", {"revision": 9692})
    out = _structured(result)
    assert out["revisions"] == ["9692142c98f0"] and out["decision"] == "escalate"
    assert not result.content[0].text.startswith("escalate: escalate")


def test_range_bounds_outside_the_project_are_refused(residency: Path, tmp_path: Path) -> None:
    outside = tmp_path / "evil.py"
    outside.write_text("revision = 'x'\ndown_revision = None\n")
    result = anyio.run(_call, build_server(residency), "test_roundtrip", {"from_revision": str(outside), "to_revision": "head"})
    assert _error(result)["code"] == "path-outside-project"
