"""``db-migrate init``: wire the MCP server into a project for Claude Code.

Four idempotent steps, each reported as created / updated / unchanged / kept:

- ``.mcp.json``: add ``mcpServers["db-migrate"]``, merging with other servers;
  an existing, different ``db-migrate`` entry is kept and reported, never replaced
  (except the machine-specific path an older ``init`` wrote, see :func:`_mcp_json`);
- ``.claude/skills/<name>/SKILL.md``: the skill, in the folder Claude Code looks in
  (named as its front matter's ``name``; kept if present with other content);
- ``.claude/commands/db-migrate.md``: the ``/db-migrate`` slash command (kept if present);
- ``pyproject.toml``: a ``[tool.db-migrate]`` section with every key commented
  out at its default, appended when the table is absent.

A second run changes nothing and says so.  :func:`init_plugin` (``db-migrate init
--plugin DIR``) writes the same server, skill and command as a Claude Code plugin
instead: ``DIR/.claude-plugin/plugin.json`` (with the server), ``DIR/skills/<name>/SKILL.md``
and ``DIR/commands/db-migrate.md``.  Files are written through a
temporary file and a rename, so a crash never leaves half a file.

The files are shared (committed, published), so the server command in them is
portable: never an absolute path of this machine (:func:`server_entry`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from db_migrate.errors import ConfigInvalid, Refused

SERVER_NAME = "db-migrate"


class InitChange(BaseModel):
    path: str = Field(description="File, relative to the project root.")
    action: Literal["created", "updated", "unchanged", "kept"] = Field(
        description="kept: a different existing entry or file was left alone (see note)."
    )
    note: str = ""


class InitReport(BaseModel):
    """What ``db-migrate init`` did."""

    root: str
    changes: list[InitChange]
    plugin: bool = Field(default=False, description="True when a plugin directory was written (init --plugin).")
    warnings: list[str] = Field(default_factory=list, description="What the user should know, e.g. that the command is not on PATH.")

    @property
    def changed(self) -> bool:
        return any(c.action in ("created", "updated") for c in self.changes)

    def text(self) -> str:
        lines = [f"{c.action:9} {c.path}" + (f"  ({c.note})" if c.note else "") for c in self.changes]
        lines.append("" if self.changed else "Nothing to change: already set up.")
        if self.changed and self.plugin:
            lines.append(f"Load it with: claude --plugin-dir {self.root}  (or publish it in a plugin marketplace).")
        elif self.changed:
            lines.append("Restart Claude Code (or run /mcp) to load the db-migrate server; then try /db-migrate.")
        return "\n".join(lines).rstrip()


#: The distribution on PyPI; it installs a command of the same name, so ``uvx db-migrate-mcp serve`` works anywhere uv does.
PACKAGE = "db-migrate-mcp"
COMMAND = "db-migrate"


def server_entry() -> tuple[dict[str, Any], str | None]:
    """The entry that starts the server over stdio, portable to every machine a shared file reaches.

    ``.mcp.json`` is committed and ``plugin.json`` published, so neither may name
    this machine's paths: ``db-migrate serve`` when the command is on PATH, else
    ``uvx db-migrate-mcp serve`` (uv fetches and runs the package).  The second
    value is the warning to show in that case (None when the command is on PATH):
    the entry then needs uv, and this installation is not what it starts.
    """
    if shutil.which(COMMAND):
        return {"command": COMMAND, "args": ["serve"]}, None
    return {"command": "uvx", "args": [PACKAGE, "serve"]}, (
        f"`{COMMAND}` is not on PATH (this one runs from {Path(sys.executable).parent}), so the server entry is "
        f"`uvx {PACKAGE} serve`: it needs uv (https://docs.astral.sh/uv/) wherever the file is used. To start "
        f"an installed {COMMAND} instead, put it on PATH (e.g. `uv tool install {PACKAGE}` or `pipx install {PACKAGE}`)."
    )


def _is_ours(entry: Any) -> bool:
    """Whether an existing server entry starts db-migrate's server (by command or through uvx/pipx)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("args", []), list):
        return False
    words = [str(entry.get("command", "")), *map(str, entry.get("args", []))]
    return "serve" in words and any(COMMAND in w for w in words)


def init_project(root: Path) -> InitReport:
    """Set up ``root`` for Claude Code; see the module docstring."""
    root = root.resolve()
    if not root.is_dir():
        raise Refused(f"{root} is not a directory.", hint="Run db-migrate init from the project root, or pass --project DIR.")
    from db_migrate.tools.workflow import claude_command

    skill, name = _skill()
    entry, warning = server_entry()
    changes = [
        _mcp_json(root / ".mcp.json", entry),
        _write_new(root / ".claude" / "skills" / name / "SKILL.md", skill),
        _write_new(root / ".claude" / "commands" / "db-migrate.md", claude_command()),
        _pyproject(root / "pyproject.toml"),
    ]
    for c in changes:
        c.path = os.path.relpath(c.path, root)
    return InitReport(root=str(root), changes=changes, warnings=[warning] if warning and changes[0].action != "kept" else [])


def init_plugin(dest: Path) -> InitReport:
    """Write a Claude Code plugin (server, skill and slash command) into ``dest``; never overwrites."""
    from db_migrate import __version__
    from db_migrate.tools.workflow import claude_command

    dest = dest.resolve()
    if dest.exists() and not dest.is_dir():
        raise Refused(f"{dest} is not a directory.", hint="Name a new or existing directory for the plugin.")
    skill, name = _skill()
    entry, warning = server_entry()
    manifest = {
        "name": SERVER_NAME,
        "version": __version__,
        "description": "Safe Alembic schema changes: review, roundtrip-test, check heads, generate and classify migrations.",
        "license": "MIT",
        "keywords": ["alembic", "migrations", "database", "sqlalchemy"],
        "mcpServers": {SERVER_NAME: entry},
    }
    changes = [
        _write_new(dest / ".claude-plugin" / "plugin.json", json.dumps(manifest, indent=2) + "\n"),
        _write_new(dest / "skills" / name / "SKILL.md", skill),
        _write_new(dest / "commands" / "db-migrate.md", claude_command()),
    ]
    for c in changes:
        c.path = os.path.relpath(c.path, dest)
    return InitReport(root=str(dest), changes=changes, plugin=True, warnings=[warning] if warning else [])


def _skill() -> tuple[str, str]:
    from db_migrate.tools.workflow import skill_name, skill_text

    try:
        text = skill_text()
    except FileNotFoundError as e:
        raise ConfigInvalid(f"{e} Reinstall db-migrate.") from None
    return text, skill_name(text)


def _mcp_json(path: Path, entry: dict[str, Any]) -> InitChange:
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8") or "{}")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigInvalid(f"{path} is not valid JSON: {e}", hint="Fix or remove it, then run db-migrate init again.") from None
        if not isinstance(data, dict) or not isinstance(data.get("mcpServers", {}), dict):
            raise ConfigInvalid(f"{path} does not hold an object with an 'mcpServers' object.")
    else:
        data = {}
    servers = data.setdefault("mcpServers", {})
    existing = servers.get(SERVER_NAME)
    if existing == entry:
        return InitChange(path=str(path), action="unchanged")
    if _machine_specific(existing):
        servers[SERVER_NAME] = entry
        _atomic_write(path, json.dumps(data, indent=2) + "\n")
        return InitChange(path=str(path), action="updated", note=(
            f"mcpServers.{SERVER_NAME}: replaced this machine's path {existing['command']} with {' '.join([entry['command'], *entry['args']])}"
        ))
    if existing is not None:
        if _is_ours(existing):
            return InitChange(path=str(path), action="unchanged", note="db-migrate server already registered")
        return InitChange(
            path=str(path), action="kept",
            note=f"a different '{SERVER_NAME}' server is registered ({json.dumps(existing)}); remove it to let init add ours",
        )
    servers[SERVER_NAME] = entry
    action = "updated" if path.exists() else "created"
    _atomic_write(path, json.dumps(data, indent=2) + "\n")
    return InitChange(path=str(path), action=action, note=f"added mcpServers.{SERVER_NAME}: {' '.join([entry['command'], *entry['args']])}")


def _machine_specific(entry: Any) -> bool:
    """The entry earlier versions of ``init`` wrote when db-migrate was not on PATH: ``/abs/venv/bin/db-migrate serve``."""
    return (
        isinstance(entry, dict) and set(entry) == {"command", "args"} and entry["args"] == ["serve"]
        and Path(str(entry["command"])).name in (COMMAND, f"{COMMAND}.exe") and os.path.isabs(str(entry["command"]))
    )


def _write_new(path: Path, text: str) -> InitChange:
    if path.exists():
        same = path.read_text(encoding="utf-8", errors="replace") == text
        return InitChange(path=str(path), action="unchanged" if same else "kept", note="" if same else "exists with other content; left alone")
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, text)
    return InitChange(path=str(path), action="created")


def _pyproject(path: Path) -> InitChange:
    current = ""
    if path.exists():
        current = path.read_text(encoding="utf-8")
        try:
            tool = tomllib.loads(current).get("tool", {})
        except tomllib.TOMLDecodeError as e:
            raise ConfigInvalid(f"{path} is not valid TOML: {e}", hint="Fix it, then run db-migrate init again.") from None
        if "db-migrate" in tool:
            return InitChange(path=str(path), action="unchanged", note="[tool.db-migrate] already present")
    sep = "" if not current or current.endswith("\n\n") else ("\n" if current.endswith("\n") else "\n\n")
    _atomic_write(path, current + sep + config_template())
    return InitChange(path=str(path), action="updated" if current else "created", note="added a commented [tool.db-migrate] section")


def config_template() -> str:
    """``[tool.db-migrate]`` with every policy key commented out at its default (from the Policy model)."""
    from db_migrate.policy.settings import Policy

    lines = ["[tool.db-migrate]", "# db-migrate escalation policy; uncomment a key to change it."]
    defaults = Policy()
    for name, field in Policy.model_fields.items():
        value = getattr(defaults, name)
        if value is None:  # TOML has no null: show the field's example (unset means the default)
            value = (field.examples or [""])[0]
        lines.append("")
        for chunk in _wrap(field.description or "", 96):
            lines.append(f"# {chunk}")
        lines.append(f"# {name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if hasattr(value, "model_dump"):  # a nested settings table (conventions): only what differs from its defaults
        value = value.model_dump(exclude_defaults=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, break_on_hyphens=False) or []


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.db-migrate-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
