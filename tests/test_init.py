"""db-migrate init: merges .mcp.json, writes the slash command and config, idempotently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    assert server in ({"command": "db-migrate", "args": ["serve"]}, {"command": "uvx", "args": ["db-migrate-mcp", "serve"]})
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
    values = tomllib.loads(uncommented)
    # keys without a default (baseline, target_version) show an example value instead
    unset = {name for name, field in Policy.model_fields.items() if field.default is None}
    assert unset and all(isinstance(values[name], str) for name in unset)
    assert Policy.model_validate({k: v for k, v in values.items() if k not in unset}) == Policy()


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
    assert manifest["name"] == "db-migrate" and manifest["mcpServers"]["db-migrate"]["args"][-1] == "serve"
    (skill,) = (dest / "skills").iterdir()
    assert f"name: {skill.name}\n" in (skill / "SKILL.md").read_text()
    assert "$ARGUMENTS" in (dest / "commands" / "db-migrate.md").read_text()
    snapshot = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert main(["init", "--plugin", str(dest)]) == 0
    assert "Nothing to change" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == snapshot


def _init_with_path(path_dirs: list[Path], *args: str) -> subprocess.CompletedProcess[str]:
    """``db-migrate init`` started by absolute path from this venv, with PATH set to ``path_dirs`` only."""
    script = Path(sys.executable).parent / "db-migrate"
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    env["PATH"] = os.pathsep.join(map(str, path_dirs))
    return subprocess.run([str(script), "init", *args], env=env, capture_output=True, text=True, timeout=120)


def _absolute_paths_in(folder: Path, machine: list[Path]) -> list[str]:
    return [f"{p}: {m}" for p in folder.rglob("*") if p.is_file() for m in machine if str(m) in p.read_text()]


def test_init_from_a_venv_not_on_path_writes_a_portable_command_and_warns(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    project, plugin = tmp_path / "app", tmp_path / "plugin"
    project.mkdir()
    machine = [Path(sys.executable).parent, Path(sys.prefix), tmp_path, Path.home()]
    for args, shared in ((["--project", str(project)], project / ".mcp.json"),
                         (["--plugin", str(plugin)], plugin / ".claude-plugin" / "plugin.json")):
        p = _init_with_path([empty], *args)
        assert p.returncode == 0, p.stderr
        assert "warning" in p.stderr and "not on PATH" in p.stderr and "uvx db-migrate-mcp serve" in p.stderr
        assert json.loads(shared.read_text())["mcpServers"]["db-migrate"] == {"command": "uvx", "args": ["db-migrate-mcp", "serve"]}
    assert _absolute_paths_in(project, machine) == [] and _absolute_paths_in(plugin, machine) == []
    # on PATH later: the uvx entry is recognised as ours, not reported as a foreign one
    again = _init_with_path([Path(sys.executable).parent], "--project", str(project))
    assert again.returncode == 0 and "warning" not in again.stderr and "already registered" in again.stdout


def test_init_with_the_command_on_path_writes_its_name_and_replaces_an_old_machine_path(tmp_path: Path) -> None:
    old = {"mcpServers": {"db-migrate": {"command": str(Path(sys.executable).parent / "db-migrate"), "args": ["serve"]}}}
    (tmp_path / ".mcp.json").write_text(json.dumps(old))
    p = _init_with_path([Path(sys.executable).parent], "--project", str(tmp_path))
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    assert json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]["db-migrate"] == {"command": "db-migrate", "args": ["serve"]}
    assert "replaced this machine's path" in p.stdout
