"""Locate an Alembic project and read its configuration.

A project is found from a working directory (searching it and its parents up to
the repository root) or from an explicit ``--config`` path naming an
``alembic.ini``, a ``pyproject.toml`` with ``[tool.alembic]`` (alembic >= 1.16)
or a directory holding either.  Nothing here imports user code.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from db_migrate.errors import ConfigInvalid, ConfigNotFound, PathOutsideProject
from db_migrate.urls import dialect_of, normalize_url, redact_url  # noqa: F401  (re-exported: where callers found them)

DEFAULT_DIALECT = "postgresql"


@dataclass(frozen=True)
class Project:
    """An Alembic project on disk."""

    root: Path
    """Directory holding the config file; relative paths in results are relative to it."""
    config_file: Path
    kind: str
    """``ini`` or ``toml``."""
    section: str
    script_location: Path
    version_locations: tuple[Path, ...]
    url: str | None
    """``sqlalchemy.url`` as configured. May hold a password: print :func:`redact_url`."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The ``[tool.db-migrate]`` table of the root's pyproject.toml."""
    recursive_versions: bool = False

    @cached_property
    def dialect(self) -> str:
        """Dialect name from the URL (``postgresql``, ``sqlite``, ``mysql``...), PostgreSQL when unknown."""
        return dialect_of(self.url) or DEFAULT_DIALECT

    def alembic_config(self, **attributes: Any):
        """A fresh :class:`alembic.config.Config` for this project, with ``attributes`` set."""
        from alembic.config import Config

        if self.kind == "ini":
            toml = self.root / "pyproject.toml"
            cfg = Config(str(self.config_file), ini_section=self.section, toml_file=str(toml) if toml.is_file() else None)
        else:
            cfg = Config(toml_file=str(self.config_file))
        cfg.attributes.update(attributes)
        return cfg

    def relpath(self, path: Path | str) -> str:
        """``path`` relative to the project root when inside it, else absolute."""
        p = Path(path).resolve()
        try:
            return str(p.relative_to(self.root.resolve()))
        except ValueError:
            return str(p)

    def contains(self, path: Path | str) -> bool:
        p = Path(path).resolve()
        return p == self.root.resolve() or self.root.resolve() in p.parents

    def require_inside(self, path: Path | str) -> Path:
        """Return ``path`` resolved, or refuse a path outside the project root."""
        p = Path(path)
        if not p.is_absolute():
            p = self.root / p
        if not self.contains(p):
            raise PathOutsideProject(
                f"{path} is outside the project root {self.root}.",
                hint="Name a revision by id or a path inside the project.",
            )
        return p.resolve()




def _find_config(start: Path) -> Path:
    here = start.resolve()
    for d in (here, *here.parents):
        ini = d / "alembic.ini"
        if ini.is_file():
            return ini
        toml = d / "pyproject.toml"
        if toml.is_file() and _toml_has_alembic(toml):
            return toml
        if (d / ".git").exists():
            break
    raise ConfigNotFound(
        f"No Alembic project found in {start} or its parents (looked for alembic.ini, "
        "or pyproject.toml with [tool.alembic]).",
        hint="Run from the project directory, or point {config} at its alembic.ini.",
    )


def _toml_has_alembic(path: Path) -> bool:
    try:
        return "alembic" in _read_toml(path).get("tool", {})
    except ConfigInvalid:
        return False


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigInvalid(f"Cannot read {path}: {e}") from None


# Options alembic reads where db-migrate's plain reading would not be alembic's: compiled-only revisions.
_ALEMBIC_ONLY_OPTIONS = ("sourceless",)

# alembic.config.Config._get_file_separator_char: the values ``path_separator`` may take
_PATH_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}


@dataclass(frozen=True)
class _PlainIni:
    """What a plain alembic.ini says about where revisions live, read as alembic reads it."""

    script_dir: Path
    url: str | None
    version_locations: tuple[Path, ...]
    recursive: bool


def _split_locations(raw: str, separator: str | None) -> list[str]:
    """``version_locations`` split as alembic's ``Config.get_version_locations_list`` splits it."""
    if separator is None:
        return [x for x in re.split(r", *|(?: +)", raw) if x]  # alembic's legacy split (spaces, commas)
    return [x.strip() for x in raw.split(separator) if x.strip()]


def _read_plain_ini(path: Path, section: str) -> _PlainIni | None:
    """Where a plain alembic.ini keeps its revisions, read without importing alembic.

    Importing alembic (and SQLAlchemy) is most of a CLI call's start-up, and an
    alembic.ini only needs ConfigParser with ``here`` as a default, read exactly
    as alembic's Config does: ``script_location``, ``version_locations`` split on
    ``path_separator`` (or the deprecated ``version_path_separator``, or alembic's
    legacy spaces-and-commas split), ``recursive_version_locations``.  Package
    resource locations (``pkg:folder``), ``sourceless`` and a missing directory
    return None and alembic reads the file.
    """
    import configparser

    parser = configparser.ConfigParser(defaults={"here": path.parent.as_posix()})
    try:
        parser.read(path, encoding="utf-8")
        if not parser.has_section(section) or any(parser.has_option(section, o) for o in _ALEMBIC_ONLY_OPTIONS):
            return None
        location = parser.get(section, "script_location", fallback=None)
        url = parser.get(section, "sqlalchemy.url", fallback=None)
        raw_locations = parser.get(section, "version_locations", fallback=None)
        sep_name = next((v for v in (parser.get(section, o, fallback=None) for o in ("path_separator", "version_path_separator"))
                         if v is not None), None)
        recursive = parser.getboolean(section, "recursive_version_locations", fallback=False)
    except (configparser.Error, UnicodeDecodeError, ValueError):
        return None
    if sep_name is not None and sep_name not in _PATH_SEPARATORS:
        return None  # alembic raises its own error for it: let it say so
    names = [location or ""]
    locations = _split_locations(raw_locations, _PATH_SEPARATORS.get(sep_name or "")) if raw_locations else []
    names += locations
    if not location or any(":" in n and not Path(n).is_absolute() for n in names):
        return None  # "package:folder" resource locations need alembic
    script_dir = Path(path.parent, location).resolve()
    if not (script_dir / "env.py").is_file() and not (script_dir / "versions").is_dir():
        return None
    versions = tuple(Path(path.parent, v).resolve() for v in locations) or ((script_dir / "versions").resolve(),)
    return _PlainIni(script_dir, url or None, versions, recursive)


def _section_hint(path: Path, kind: str, section: str) -> str:
    """Name the sections that do set script_location (a multi-database alembic.ini), or say where it goes."""
    import configparser

    others: list[str] = []
    if kind == "ini":
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
            others = [name for name in parser.sections() if name != section and parser.has_option(name, "script_location")]
        except (configparser.Error, UnicodeDecodeError):
            pass
    if others:
        return (f"Its sections {', '.join(others)} set one: name it as alembic's -n does "
                f"(CLI --name {others[0]}; the MCP server: db-migrate serve --name {others[0]}).")
    return f"Add script_location to the [{section}] section."


def load_project(config: str | os.PathLike[str] | None = None, *, cwd: Path | None = None, section: str = "alembic") -> Project:
    """Find and read the Alembic project named by ``config`` or found from ``cwd``."""
    cwd = Path(cwd or os.getcwd())
    if config:
        path = Path(config)
        if not path.is_absolute():
            path = cwd / path
        if path.is_dir():
            path = _find_config(path)
        elif not path.is_file():
            raise ConfigNotFound(f"Config file {config} does not exist.", hint="Pass the path of alembic.ini or pyproject.toml.")
    else:
        path = _find_config(cwd)
    path = path.resolve()
    root = path.parent
    kind = "toml" if path.suffix == ".toml" else "ini"
    if kind == "toml" and not _toml_has_alembic(path):
        raise ConfigNotFound(f"{path} has no [tool.alembic] section.", hint="Point {config} at alembic.ini instead.")

    pyproject = root / "pyproject.toml"
    tool = _read_toml(pyproject).get("tool", {}) if pyproject.is_file() else {}
    settings: dict[str, Any] = dict(tool.get("db-migrate", {}))

    # alembic falls back to pyproject's [tool.alembic] for options the ini leaves out: then alembic reads both
    fast = _read_plain_ini(path, section) if kind == "ini" and "alembic" not in tool else None
    if fast is not None:
        return Project(
            root=root, config_file=path, kind=kind, section=section, script_location=fast.script_dir,
            version_locations=fast.version_locations, url=fast.url, settings=settings,
            recursive_versions=fast.recursive,
        )

    from alembic.util.exc import CommandError

    proto = Project(
        root=root, config_file=path, kind=kind, section=section,
        script_location=root, version_locations=(), url=None, settings=settings,
    )
    try:
        cfg = proto.alembic_config()
        script_location = cfg.get_alembic_option("script_location")
        if not script_location:
            raise ConfigInvalid(f"{path} sets no script_location in [{section}].", hint=_section_hint(path, kind, section))
        url = cfg.get_main_option("sqlalchemy.url") if kind == "ini" else None
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(cfg)
    except CommandError as e:
        raise ConfigInvalid(f"Alembic cannot read the project at {path}: {e}") from None
    except (ValueError, KeyError, UnicodeDecodeError, OSError) as e:
        # configparser interpolation errors and the like
        raise ConfigInvalid(f"Cannot read {path}: {e}") from None
    except Exception as e:
        import configparser

        if not isinstance(e, configparser.Error):
            raise
        # not an ini file at all (--config /etc/passwd): say so, in one line
        raise ConfigInvalid(
            f"{path} is not an Alembic config file: {str(e).splitlines()[0]}",
            hint="Pass alembic.ini (with an [alembic] section) or a pyproject.toml with [tool.alembic].",
        ) from None

    locations = script.version_locations or [str(Path(script.dir) / "versions")]
    versions = tuple(Path(root, v).resolve() for v in locations)
    return Project(
        root=root,
        config_file=path,
        kind=kind,
        section=section,
        script_location=Path(script.dir).resolve(),
        version_locations=versions,
        url=url or None,
        settings=settings,
        recursive_versions=bool(script.recursive_version_locations),
    )
