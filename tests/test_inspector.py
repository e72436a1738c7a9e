"""A real MCP client drives the installed server over stdio: the MCP Inspector's CLI (npm).

``bash scripts/test.sh`` installs the Inspector under ``.tools/``.  Outside CI a
missing Inspector skips these tests; with CI=true it fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, IN_CI, ROOT

INSPECTOR = Path(os.environ.get("MCP_INSPECTOR", ROOT / ".tools" / "node_modules" / ".bin" / "mcp-inspector"))
SERVER = Path(sys.executable).parent / "db-migrate"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [str(p) for p in (INSPECTOR, SERVER) if not p.exists()]
    if missing:
        msg = f"needs {', '.join(missing)} (run: bash scripts/test.sh)"
        if IN_CI:
            pytest.fail(msg + " (CI=true: the real-client tests must run)")
        pytest.skip(msg)
    dest = tmp_path_factory.mktemp("inspector") / "residency"
    shutil.copytree(FIXTURES / "residency", dest, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    return dest


def inspect(project: Path, *args: str) -> dict[str, Any]:
    """Run ``mcp-inspector --cli db-migrate serve <args>`` in ``project``; its JSON answer."""
    env = dict(os.environ, MCP_CATALOG_PATH=str(project.parent / "catalog"), NO_COLOR="1")
    # the inspector starts the server with a minimal environment: hand it this session's cache (and so
    # its embedded PostgreSQL server), not the user's
    server_env = [f"{k}={os.environ[k]}" for k in ("XDG_CACHE_HOME", "DB_MIGRATE_PG_IDLE_MINUTES") if k in os.environ]
    proc = subprocess.run(
        [str(INSPECTOR), "--cli", *(a for kv in server_env for a in ("-e", kv)), str(SERVER), "serve", *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )
    try:
        answer, _ = json.JSONDecoder().raw_decode(proc.stdout.lstrip())
    except json.JSONDecodeError:
        raise AssertionError(f"no JSON from the inspector (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None
    return answer


def call(project: Path, tool: str, **args: Any) -> dict[str, Any]:
    return inspect(project, "--method", "tools/call", "--tool-name", tool, "--tool-args-json", json.dumps(args))


def test_lists_tools_prompts_resources(project: Path) -> None:
    tools = inspect(project, "--method", "tools/list")["tools"]
    assert {t["name"] for t in tools} == {"generate_migration", "review_migration", "test_roundtrip", "check_heads", "classify_escalation"}
    assert all("outputSchema" in t for t in tools)
    prompts = inspect(project, "--method", "prompts/list")["prompts"]
    assert {"db-migrate", "review-pending"} <= {p["name"] for p in prompts}
    resources = inspect(project, "--method", "resources/list")["resources"]
    assert {r["uri"] for r in resources} >= {"db-migrate://skill", "db-migrate://history"}
    history = inspect(project, "--method", "resources/read", "--uri", "db-migrate://history")
    assert json.loads(history["contents"][0]["text"])["heads"] == ["f956808bc5df"]
    prompt = inspect(project, "--method", "prompts/get", "--prompt-name", "db-migrate", "--prompt-args", "change=add a pager column")
    assert "add a pager column" in prompt["messages"][0]["content"]["text"]


def test_calls_every_tool(project: Path) -> None:
    heads = call(project, "check_heads")["structuredContent"]
    assert heads["tool"] == "check_heads" and heads["heads"] == ["f956808bc5df"]

    review = call(project, "review_migration", revision="9692142c98f0")["structuredContent"]
    assert review["tool"] == "review_migration" and review["revisions"] == ["9692142c98f0"]

    classify = call(project, "classify_escalation", revision="9692142c98f0")["structuredContent"]
    # the Inspector CLI declares no elicitation: the verdict stays escalate, and says nobody was asked
    assert classify["decision"] == "escalate" and classify["human_approval"]["answer"] == "not-asked"

    roundtrip = call(project, "test_roundtrip", revision="head", rows=5)["structuredContent"]
    head_review = call(project, "review_migration", revision="head")["structuredContent"]
    assert roundtrip["tool"] == "test_roundtrip" and roundtrip["decision"] == head_review["decision"]  # one decision

    person = project / "app" / "models" / "person.py"
    person.write_text(person.read_text().replace(
        "    last_name: Mapped[str]", "    nickname: Mapped[str | None] = mapped_column(String(50))\n    last_name: Mapped[str]", 1
    ))
    generated = call(project, "generate_migration", message="add nickname to persons")["structuredContent"]
    assert generated["tool"] == "generate_migration"
    assert any("nickname" in p.read_text() for p in (project / "alembic" / "versions").glob("*.py"))


def test_tool_error_is_error_json(project: Path) -> None:
    answer = call(project, "review_migration", revision="/etc/passwd.py")
    assert answer["isError"] is True
    assert json.loads(answer["content"][0]["text"])["error"]["code"] == "path-outside-project"
