"""db-migrate init: merges .mcp.json, writes the slash command and config, idempotently."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from db_migrate.cli import main
from db_migrate.cli.init import config_template, init_project
from db_migrate.errors import ConfigInvalid
from db_migrate.policy.settings import Policy


def test_fresh_project_then_nothing_to_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--project", str(tmp_path)]) == 0
    first = capsys.readouterr().out
    assert "created" in first
    server = json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]["db-migrate"]
    assert server["args"] == ["serve"] and server["command"].endswith("db-migrate")
    command = (tmp_path / ".claude" / "commands" / "db-migrate.md").read_text()
    assert "$ARGUMENTS" in command and "classify_escalation" in command
    assert tomllib.loads((tmp_path / "pyproject.toml").read_text())["tool"]["db-migrate"] == {}

    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(["init", "--project", str(tmp_path)]) == 0
    assert "Nothing to change" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == snapshot


def test_merges_with_other_servers_and_existing_pyproject(tmp_path: Path) -> None:
    other = {"mcpServers": {"github": {"command": "gh-mcp", "args": [], "env": {"T": "${TOKEN}"}}}, "extra": 1}
    (tmp_path / ".mcp.json").write_text(json.dumps(other))
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "app"\n')
    report = init_project(tmp_path)
    data = json.loads((tmp_path / ".mcp.json").read_text())
    assert data["mcpServers"]["github"] == other["mcpServers"]["github"] and data["extra"] == 1
    assert "db-migrate" in data["mcpServers"]
    toml = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert toml["project"]["name"] == "app" and toml["tool"]["db-migrate"] == {}
    assert {c.path: c.action for c in report.changes}[".mcp.json"] == "updated"


def test_never_clobbers_a_different_db_migrate_entry_or_command_file(tmp_path: Path) -> None:
    mine = {"mcpServers": {"db-migrate": {"command": "docker", "args": ["run", "x"]}}}
    (tmp_path / ".mcp.json").write_text(json.dumps(mine))
    cmd = tmp_path / ".claude" / "commands" / "db-migrate.md"
    cmd.parent.mkdir(parents=True)
    cmd.write_text("my own command\n")
    report = {c.path: c for c in init_project(tmp_path).changes}
    assert report[".mcp.json"].action == "kept" and "different" in report[".mcp.json"].note
    assert json.loads((tmp_path / ".mcp.json").read_text()) == mine
    assert report[".claude/commands/db-migrate.md"].action == "kept" and cmd.read_text() == "my own command\n"


def test_invalid_mcp_json_is_an_error_not_an_overwrite(tmp_path: Path) -> None:
    (tmp_path / ".mcp.json").write_text("{not json")
    with pytest.raises(ConfigInvalid):
        init_project(tmp_path)
    assert (tmp_path / ".mcp.json").read_text() == "{not json"


def test_config_template_documents_every_policy_key_at_its_default() -> None:
    text = config_template()
    for name in Policy.model_fields:
        assert f"# {name} = " in text
    uncommented = "\n".join(line[2:] for line in text.splitlines() if line.startswith("# ") and " = " in line)
    assert Policy.model_validate(tomllib.loads(uncommented)) == Policy()


def test_the_skill_goes_where_claude_code_looks_named_like_its_folder(tmp_path: Path) -> None:
    init_project(tmp_path)
    skills = list((tmp_path / ".claude" / "skills").iterdir())
    assert len(skills) == 1
    text = (skills[0] / "SKILL.md").read_text()
    front = text.split("---")[1]
    assert f"name: {skills[0].name}\n" in front and "description:" in front
    assert "review_migration" in text


def test_an_edited_skill_is_kept(tmp_path: Path) -> None:
    init_project(tmp_path)
    skill = next((tmp_path / ".claude" / "skills").iterdir()) / "SKILL.md"
    skill.write_text("---\nname: database-migration\ndescription: ours\n---\nlocal rules\n")
    report = init_project(tmp_path)
    change = next(c for c in report.changes if c.path.endswith("SKILL.md"))
    assert change.action == "kept" and skill.read_text().endswith("local rules\n")


def test_plugin_layout_has_server_skill_and_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "plugin"
    assert main(["init", "--plugin", str(dest)]) == 0
    assert "claude --plugin-dir" in capsys.readouterr().out
    manifest = json.loads((dest / ".claude-plugin" / "plugin.json").read_text())
    assert manifest["name"] == "db-migrate" and manifest["mcpServers"]["db-migrate"]["args"] == ["serve"]
    (skill,) = (dest / "skills").iterdir()
    assert f"name: {skill.name}\n" in (skill / "SKILL.md").read_text()
    assert "$ARGUMENTS" in (dest / "commands" / "db-migrate.md").read_text()
    snapshot = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert main(["init", "--plugin", str(dest)]) == 0
    assert "Nothing to change" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == snapshot
