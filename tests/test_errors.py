"""Errors an agent can follow (issue 8 §6, issue 9 §8's misspelt argument).

Every failure, over the CLI and over MCP, is ``{"error": {code, message, hint}}``:
an unreachable scratch server is a ``database-error`` naming host and port
(and the MCP server prints no traceback), an unknown dialect lists the valid
ones, ``postgres://`` is PostgreSQL, argument mistakes are usage errors, and
hints speak the caller's interface.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from db_migrate.cli.main import main as cli_main
from db_migrate.errors import ConfigNotFound, render_hint
from db_migrate.project.config import normalize_url
from db_migrate.server.app import build_server


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = cli_main([*args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def _error(result: Any) -> dict[str, Any]:
    assert result.is_error, result
    return json.loads(result.content[0].text)["error"]


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
def test_unreachable_scratch_server_is_a_database_error_with_host_and_port(
    residency: Path, scheme: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    url = f"{scheme}://someone:s3cret@127.0.0.1:{port}/postgres"
    for args in (["roundtrip", "--database-url", url], ["generate", "-m", "x", "--scratch-url", url]):
        code, out = _cli([*args, "--config", str(residency)], capsys)
        err = out["error"]
        assert code == 2 and err["code"] == "database-error", err
        assert err["details"]["host"] == "127.0.0.1" and err["details"]["port"] == str(port)
        assert f"127.0.0.1:{port}" in err["message"] and err["hint"]
        assert "s3cret" not in json.dumps(out)
    # check_heads keeps its graph verdict; the drift check it could not run names the server, in words
    code, out = _cli(["heads", "--scratch-url", url, "--config", str(residency)], capsys)
    (drift,) = [u for u in out["unchecked"] if u["what"] == "model drift"]
    assert f"127.0.0.1:{port}" in drift["reason"] and "{arg:" not in drift["reason"] and "s3cret" not in json.dumps(out)


def test_unreachable_scratch_server_over_mcp_stdio_prints_no_traceback(residency: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/postgres"
    params = StdioServerParameters(command=sys.executable, args=["-m", "db_migrate.cli", "serve", "--project", str(residency)])

    with tempfile.TemporaryFile("w+") as errlog:
        async def go() -> Any:
            async with Client(stdio_client(params, errlog=errlog)) as c:
                return await c.call_tool("test_roundtrip", {"database_url": url})

        result = anyio.run(go)
        errlog.seek(0)
        stderr = errlog.read()
    err = _error(result)
    assert err["code"] == "database-error" and err["details"]["port"] == url.split(":")[-1].split("/")[0]
    assert "Traceback" not in stderr and "internal" not in stderr.lower(), stderr


def test_unknown_dialect_is_a_usage_error_listing_the_valid_ones(residency: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = anyio.run(_call_tool, build_server(residency), "review_migration", {"dialect": "oracel"})
    err = _error(result)
    assert err["code"] == "usage" and "'oracel'" in err["message"]
    for valid in ("postgresql", "mysql", "sqlite"):
        assert valid in err["message"]


async def _call_tool(server: Any, tool: str, args: dict[str, Any]) -> Any:
    async with Client(server) as c:
        return await c.call_tool(tool, args)


def test_postgres_scheme_is_postgresql(residency: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert normalize_url("postgres://u@h/db") == "postgresql://u@h/db"
    assert normalize_url("postgres+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql://u@h/db") == "postgresql://u@h/db"
    heroku = "postgres://" + pg_url.split("://", 1)[1]
    code, out = _cli(["roundtrip", "9692142c98f0", "--database-url", heroku, "--config", str(residency)], capsys)
    assert "error" not in out, out
    assert out["dialect"] == "postgresql" and out["database"].startswith("postgresql")


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("classify_escalation", {"database_ulr": "sqlite:///x.db"}, "did you mean 'database_url'"),
        ("test_roundtrip", {"rows": "many"}, "argument rows"),
        ("review_migration", {"all_revisions": {"yes": 1}}, "argument all_revisions"),
        ("generate_migration", {}, "argument message: Field required"),
    ],
)
def test_mcp_argument_mistakes_are_usage_errors_in_the_error_shape(residency: Path, tool: str, args: dict, expected: str) -> None:
    err = _error(anyio.run(_call_tool, build_server(residency), tool, args))
    assert err["code"] == "usage" and expected in err["message"], err
    assert err["hint"] and tool in err["hint"]


def test_hints_speak_the_callers_interface(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    # MCP: a server started on a folder without a project is told about `serve --project`
    err = _error(anyio.run(_call_tool, build_server(empty), "check_heads", {}))
    assert err["code"] == "config-not-found" and "serve --project" in err["hint"] and "{config}" not in err["hint"]
    # CLI: the same error names the flag
    code, out = _cli(["heads", "--config", str(empty)], capsys)
    assert code == 2 and "--config" in out["error"]["hint"] and "serve --project" not in out["error"]["hint"]

    hint = "Merge with {tool:check_heads} and {arg:create_merge}, or omit {arg:database_url}."
    assert render_hint(hint, "mcp") == "Merge with the check_heads tool and create_merge=true, or omit the database_url argument."
    assert render_hint(hint, "cli") == "Merge with db-migrate heads and --create-merge, or omit --database-url."
    assert "{" not in ConfigNotFound("x", hint="see {config}").info().hint  # no interface: both forms


def test_a_dependency_not_installed_here_is_unchecked_with_what_to_do_not_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # running a revision (roundtrip) needs what it imports; review stands in for it, roundtrip cannot
    from projectfactory import make_project

    body = ("import dbm_surely_not_installed_pkg\n"
            "def upgrade():\n    op.create_table('t', sa.Column('id', sa.Integer, primary_key=True))\n"
            "def downgrade():\n    op.drop_table('t')\n")
    root = make_project(tmp_path, [body], url="sqlite:///app.db")
    code = cli_main(["roundtrip", "--config", str(root / "alembic.ini"), "--format", "json"])
    verdict = json.loads(capsys.readouterr().out)
    # not the migration's fault: no false revise; nothing was tested, so no proceed either
    assert verdict["decision"] == "escalate" and verdict["status"] == "untested" and verdict["findings"] == [], verdict
    assert "1 could not be tested" in verdict["summary"]
    (note,) = [u for u in verdict["unchecked"] if u["revision"] == "000000000001"]
    assert "dbm_surely_not_installed_pkg" in note["reason"] and "dependencies" in note["reason"]


def test_a_missing_module_of_the_project_itself_stays_the_revisions_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from projectfactory import make_project

    body = ("def upgrade():\n    from appcode.renamed_module import helper\n"
            "    op.create_table('t', sa.Column('id', sa.Integer, primary_key=True))\n"
            "def downgrade():\n    op.drop_table('t')\n")
    root = make_project(tmp_path, [body], url="sqlite:///app.db")
    (root / "appcode").mkdir()
    (root / "appcode" / "__init__.py").write_text("")
    code = cli_main(["roundtrip", "--config", str(root / "alembic.ini"), "--format", "json"])
    verdict = json.loads(capsys.readouterr().out)
    assert code == 1 and verdict["decision"] == "revise", verdict
    assert [f["rule"] for f in verdict["findings"]] == ["upgrade-failed"]
