"""What the project's own alembic environment (env.py) decides for every revision.

Two facts change what a revision's operations mean, and both live in env.py:

- the **naming convention** of ``target_metadata``: alembic names an unnamed
  ``op.create_foreign_key(None, ...)`` from ``target_metadata.naming_convention``
  when env.py hands it to ``context.configure``, so such a constraint is named
  after all and ``unnamed-constraint`` must not fire on it;
- a **lock_timeout** set for every migration (``SET lock_timeout`` in
  ``run_migrations_online``, ``connect_args={"options": "-c lock_timeout=5s"}``):
  ``missing-lock-timeout`` must not fire on every revision.

How each is read, and why:

- ``target_metadata`` can only be known by running env.py: it is usually
  imported from the application's models, whose MetaData is built at import
  time.  :func:`read_project_context` runs env.py (inside the sandbox worker,
  like the revisions) under an offline ``EnvironmentContext`` whose
  ``configure`` records ``target_metadata`` and then stops env.py, so no
  migration runs and nothing after ``configure`` executes.  Engines cannot
  connect meanwhile (an online-only env.py is stopped at ``connect()``; its
  module-level ``target_metadata`` is still read from the namespace).
- lock_timeout is read statically from env.py's string literals: the online
  path that sets it is exactly the one that must not run here (it connects to
  the user's database), and the setting is always spelt in a literal.

Results are cached per worker process by env.py's content and the files of
the project modules env.py imported, so an edited model is read again.
Everything here runs project code: call it only inside a sandbox worker.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_SECONDS = 5.0  # importing the models should be quick; a hanging env.py is reported, not waited out

#: Naming-convention keys alembic/SQLAlchemy use for each kind of constraint.
CONVENTION_KEYS = {"fk": "foreign key", "uq": "unique constraint", "ck": "check constraint", "ix": "index", "pk": "primary key"}


@dataclass
class ProjectContext:
    """env.py facts that apply to every revision of a project (worker side; holds the project's MetaData)."""

    env_py: str | None = None
    """env.py relative to the project root (None when there is none)."""
    metadata: Any = None
    """The ``target_metadata`` env.py passes to ``context.configure`` (a MetaData, or the first of a list)."""
    naming_convention: dict[str, str] = field(default_factory=dict)
    """String templates by key (``fk``, ``uq``, ``ck``, ``ix``, ``pk``) beyond SQLAlchemy's default ``ix`` one."""
    lock_timeout: str | None = None
    """Where env.py sets lock_timeout for every migration (``env.py:42``), or None."""
    notes: list[str] = field(default_factory=list)
    """Why a fact could not be read (env.py failed before ``configure``...)."""
    files: list[str] = field(default_factory=list, repr=False)
    """env.py and the project files it imported (the models): the cache is valid while they are unchanged."""
    metadata_read: bool = False
    """env.py has been run for target_metadata (done on demand: see :func:`ensure_metadata`)."""
    ini_section: str = "alembic"
    """The config's main section (alembic's ``config_ini_section``): what ``-n``/``--name`` chose."""
    ini_options: dict[str, str] = field(default_factory=dict)
    """The main section's options as alembic reads them (interpolated), every database URL among them replaced
    by a stand-in naming no server (:func:`db_migrate.capture.offline.stand_in_url`): what a revision reading
    ``context.config`` / ``op.get_context().config`` finds while it is recorded."""
    template_imports: frozenset[str] = frozenset()
    """Modules the project's ``script.py.mako`` imports into every new revision (its convention, not a revision's
    choice): ``import mindsdb.interfaces.storage.db  # noqa``."""
    not_null_before: dict[str, frozenset] = field(default_factory=dict)
    """{revision: (table, column) pairs its ancestors left NOT NULL} (:func:`db_migrate.capture.chain.column_history`)."""
    types_before: dict[str, dict] = field(default_factory=dict)
    """{revision: {(table, column): the source of the type its ancestors left it} for the columns its upgrade
    alters (:func:`db_migrate.capture.chain.column_history`)."""
    built_on: frozenset[str] = frozenset()
    """Revisions that other revisions of the history name as their parent."""
    auto_increment_before: dict[str, frozenset] = field(default_factory=dict)
    """{revision: the columns it alters that its ancestors left auto-increment}."""
    indexes: dict[str, tuple] = field(default_factory=dict)
    """{index name: (table, columns, unique)} of the history's literal ``op.create_index`` calls."""
    added_by_parent: dict[str, frozenset] = field(default_factory=dict)
    """{revision: the (table, column) pairs its parents' upgrades add}."""
    set_by_migrations: dict[str, frozenset] = field(default_factory=dict)
    """{revision: the (table, column) pairs an ancestor's upgrade set to a literal in every row}."""
    primary_keys: dict[str, tuple] = field(default_factory=dict)
    """{table: its primary key's columns, as the history's upgrades create it}."""
    table_creators: dict[str, frozenset] | None = None
    """{table: the revisions whose upgrades create it}; None when the history was not read."""
    tables_created: frozenset[str] | None = None
    """Tables some upgrade of the history creates; None when the history was not read."""
    guards: dict[str, bool] = field(default_factory=dict)
    """What each guard expression of the history (``if not settings.pg_uri: return``) is where the project runs,
    by majority of its revisions (:func:`db_migrate.capture.guards.guard_values`): a stand-in tested there answers it."""
    _project: Any = field(default=None, repr=False)
    _key: tuple[str, str] | None = field(default=None, repr=False)

    def names(self, key: str) -> bool:
        """True when the convention names an unnamed constraint of this kind (``fk``, ``uq``, ``ck``, ``ix``).

        A template using ``%(constraint_name)s`` needs an explicit name, so it does not name an unnamed one.
        """
        template = self.naming_convention.get(key)
        return bool(template) and "%(constraint_name)s" not in template


# --------------------------------------------------------------------------- lock_timeout, statically


def lock_timeout_setting(source: str, relpath: str) -> str | None:
    """``relpath:line`` of the first string literal in env.py that sets lock_timeout, or None.

    Comments are not literals, so a commented-out ``SET lock_timeout`` does not count.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "lock_timeout" in node.value.lower():
            return f"{relpath}:{node.lineno}"
    return None


# --------------------------------------------------------------------------- target_metadata, by running env.py


class _Configured(BaseException):
    """Raised from our ``configure``: env.py has handed over target_metadata; nothing after that needs to run."""


class _NoConnection(Exception):
    """Raised when env.py tries to connect while only its metadata is wanted."""


_cache: dict[tuple[str, str], tuple[tuple, ProjectContext]] = {}


def read_project_context(config_file: str | None, section: str | None = None) -> ProjectContext:
    """The :class:`ProjectContext` of the project whose alembic config is ``config_file`` (cached).

    Only the static facts are read here (lock_timeout); env.py runs for ``target_metadata`` when a revision
    needs the naming convention (:func:`ensure_metadata`), so histories that name everything never import the
    models. A cached context is reused while the config, env.py and the project files env.py imported are
    unchanged (size and modification time): checking costs a few ``stat`` calls, not a config parse.
    """
    if not config_file:
        return ProjectContext()
    key = (str(config_file), section or "alembic")
    hit = _cache.get(key)
    if hit is not None and hit[0] == _fingerprint(hit[1], config_file):
        return hit[1]
    try:
        from db_migrate.project import load_project

        project = load_project(config_file, section=section or "alembic")
    except Exception as e:  # the parent loaded the same config; this is defensive
        return ProjectContext(notes=[f"the alembic config could not be read: {e}"])
    env_path = project.script_location / "env.py"
    if not env_path.is_file():
        ctx = ProjectContext(metadata_read=True)
    else:
        source = env_path.read_text(encoding="utf-8", errors="replace")
        relpath = project.relpath(env_path)
        ctx = ProjectContext(env_py=relpath, lock_timeout=lock_timeout_setting(source, relpath), files=[str(env_path)])
        ctx._project = project
    ctx.ini_section, ctx.ini_options = project.section, ini_options(project)
    ctx.guards, history, folders = _history_facts(project)
    ctx.not_null_before, ctx.types_before, ctx.built_on = history.not_null_before, history.types_before, history.built_on
    ctx.tables_created, ctx.auto_increment_before = history.tables_created, history.auto_increment_before
    ctx.indexes, ctx.added_by_parent, ctx.set_by_migrations = history.indexes, history.added_by_parent, history.set_by_migrations
    ctx.primary_keys, ctx.table_creators = history.primary_keys, history.table_creators
    ctx.template_imports = template_imports(project.script_location / "script.py.mako")
    ctx.files += folders  # a revision added or removed changes a folder's modification time
    ctx._key = key
    _cache[key] = (_fingerprint(ctx, config_file), ctx)
    return ctx


_IMPORT_LINE = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import\b|import\s+([\w.]+))", re.MULTILINE)


def template_imports(path: Path) -> frozenset[str]:
    """The modules ``script.py.mako`` imports (its import lines, read as text: the template is Mako, not Python)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    return frozenset(m.group(1) or m.group(2) for m in _IMPORT_LINE.finditer(text)) - {"alembic", "sqlalchemy"}


def revision_files(project: Any) -> tuple[list[Path], list[Path]]:
    """The folders revisions live in, and the Python files in them (what the history's facts are read from)."""
    folders = [p for p in (project.version_locations or (project.script_location / "versions",)) if p.is_dir()]
    return folders, [f for d in folders for f in (d.rglob("*.py") if project.recursive_versions else d.glob("*.py"))]


def _history_facts(project: Any) -> tuple[dict[str, bool], Any, list[str]]:
    """What the project's revisions say together (read as text, never run): the guard values, the columns NOT NULL
    before each revision and the types of those it alters, and the folders they are in."""
    from db_migrate.capture.chain import column_history
    from db_migrate.capture.guards import guard_values

    folders, files = revision_files(project)
    parsed = []  # each file parsed once, for both readers
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        try:
            parsed.append((f, text, ast.parse(text)))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # not Python: it tells nothing (the review reports it)
    return guard_values(tree for _, _, tree in parsed), column_history(parsed), [str(d) for d in folders]


def ini_options(project: Any) -> dict[str, str]:
    """The main section of ``project``'s alembic config, as a revision reading it would see it while recorded.

    Every value that is a database URL (``sqlalchemy.url`` and any other) becomes a stand-in of the same
    driver naming no server: the real one may carry a password, and recording connects to no database.
    """
    from db_migrate.capture.offline import is_database_url, stand_in_url
    from db_migrate.urls import redact_url

    try:
        cfg = project.alembic_config()
        section = cfg.get_section(cfg.config_ini_section) or {}
    except Exception:  # an unreadable config is reported by the parent, which read it first
        return {}
    out = {}
    for name, value in section.items():
        if name == "here":
            continue  # alembic sets it itself
        if name == "sqlalchemy.url" or is_database_url(value):
            value = stand_in_url(value)
        elif "://" in value:
            value = redact_url(value) or ""  # another address: its credentials stay out of what the revision sees
        out[name] = value
    return out


def prepend_sys_path(config_file: str | None, section: str | None = None) -> list[str]:
    """Put the config's ``prepend_sys_path`` entries first on ``sys.path``, as alembic does; returns them.

    alembic's ``ScriptDirectory.from_config`` does this before env.py or any revision is imported, so a
    project whose migrations import its own package (``prepend_sys_path = src``) finds it; without it the
    review would record those revisions on stand-ins.  Relative entries are relative to the working
    directory, which is the project root in a job, as it is for ``alembic`` run there.
    """
    if not config_file:
        return []
    try:
        from db_migrate.project import load_project

        paths = load_project(config_file, section=section or "alembic").alembic_config().get_prepend_sys_paths_list() or []
    except Exception:  # an unreadable config is reported by the parent, which read it first
        return []
    sys.path[:0] = [p for p in paths if p not in sys.path]
    return paths


def ensure_metadata(ctx: ProjectContext) -> ProjectContext:
    """Run env.py for ``target_metadata`` once (the naming convention); ``ctx`` is updated in place."""
    if ctx.metadata_read or ctx._project is None:
        return ctx
    ctx.metadata_read = True
    env_path = Path(ctx.files[0])
    source = env_path.read_text(encoding="utf-8", errors="replace")
    ctx.files = [str(env_path), *_read_metadata(ctx, ctx._project, env_path, source)]
    if ctx._key is not None:
        _cache[ctx._key] = (_fingerprint(ctx, ctx._key[0]), ctx)
    return ctx


def _fingerprint(ctx: ProjectContext, config_file: str) -> tuple:
    stats = []
    for f in (config_file, *ctx.files):
        try:
            st = os.stat(f)
            stats.append((f, st.st_mtime_ns, st.st_size))
        except OSError:
            stats.append((f, None, None))
    return tuple(stats)


def _read_metadata(ctx: ProjectContext, project: Any, env_path: Path, source: str) -> list[str]:
    """Run env.py up to ``context.configure`` and keep ``target_metadata``; returns the project files it imported."""
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    captured: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__file__": str(env_path), "__name__": "_dbm_env_py"}
    before = set(sys.modules)
    try:
        cfg = project.alembic_config()
        script = ScriptDirectory.from_config(cfg)  # applies prepend_sys_path, as alembic does
        with EnvironmentContext(cfg, script, as_sql=True, fn=lambda rev, context: []) as env:

            def configure(*args: Any, **kw: Any) -> None:
                captured["target_metadata"] = kw.get("target_metadata")
                raise _Configured()

            env.configure = configure  # type: ignore[method-assign]
            with _no_connections(), _time_limit(ENV_SECONDS):
                try:
                    exec(compile(source, str(env_path), "exec"), namespace)
                except _Configured:
                    pass
    except _NoConnection:
        ctx.notes.append("env.py connects to a database before configure(); its module-level target_metadata was used")
    except BaseException as e:  # project code may raise anything (missing package, sys.exit, timeout)
        ctx.notes.append(f"env.py could not be run to read target_metadata: {type(e).__name__}: {e}")
    md = captured.get("target_metadata", namespace.get("target_metadata"))
    if isinstance(md, (list, tuple)):
        md = next((m for m in md if hasattr(m, "naming_convention")), None)
    if md is not None and hasattr(md, "naming_convention"):
        ctx.metadata = md
        ctx.naming_convention = {
            str(k): v for k, v in dict(md.naming_convention).items() if isinstance(k, str) and isinstance(v, str)
        }
    return sorted(
        f for name in set(sys.modules) - before
        if (f := getattr(sys.modules.get(name), "__file__", None)) and project.contains(f)
    )


def no_connections():
    """While a revision is recorded, an engine it builds itself (``engine_from_config(config.get_section(...))``)
    cannot connect: recording reaches no database, and the error says so (an offline artefact, not a bug)."""
    from db_migrate.capture.offline import NO_CONNECTION

    return _no_connections(NO_CONNECTION)


@contextlib.contextmanager
def _no_connections(why: str = "db-migrate reads env.py's target_metadata without connecting"):
    """While env.py runs for its metadata (or a revision is recorded), any engine connect() raises ``why``
    instead of reaching a server."""
    from sqlalchemy.engine.base import Engine

    def refuse(self: Any, *a: Any, **k: Any) -> Any:
        raise _NoConnection(why)

    saved = {name: getattr(Engine, name) for name in ("connect", "begin", "raw_connection")}
    for name in saved:
        setattr(Engine, name, refuse)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(Engine, name, fn)


class _EnvTimeout(BaseException):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    def alarm(signum: int, frame: Any) -> None:
        raise _EnvTimeout(f"env.py did not reach configure() within {seconds:g} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
