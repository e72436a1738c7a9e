"""Which database engine a tool's DDL runs on, and what that leaves unchecked.

:func:`plan_scratch` is the one place where the default scratch server is
chosen, for generate, the roundtrip and the drift check alike:

========================  =====================================================
scratch URL given         that server (an ``sqlite`` URL: a temporary SQLite file)
PostgreSQL project        the embedded PostgreSQL server (:mod:`.embedded`);
                          if it cannot run here: SQLite, and ``unchecked`` says why
SQLite project            a temporary SQLite file
MySQL/MariaDB project     a temporary SQLite file, and ``unchecked`` says so
dialect unknown           a temporary SQLite file, and ``unchecked`` says so
========================  =====================================================

MySQL/MariaDB projects get no embedded server (no such wheel exists): rather
than refuse to work without ``--scratch-url``, they run on SQLite, their
verdict names SQLite as the engine, ``unchecked`` says what that cannot show,
and a failure that only the engine causes (:func:`engine_only`) is reported in
``unchecked``, never as a reason to revise a correct migration.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field

from db_migrate.project import Project
from db_migrate.project.config import dialect_of
from db_migrate.verdict import EngineInfo, Unchecked

__all__ = ["ScratchPlan", "engine_info", "engine_only", "plan_scratch", "superuser_only"]

_FAMILY = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}
_versions: dict[str, EngineInfo] = {}

#: Failures that say the *engine* lacks something (a type, a function, an ALTER form, the SQL dialect).
_ENGINE_ONLY = re.compile(
    r"can't render element of type|UnsupportedCompilationError|no such function|"
    r"No support for ALTER of constraints|near \"ALTER\"|syntax error|"
    r"type \"[^\"]+\" does not exist|not supported by this (database|dialect)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ScratchPlan:
    """Where a tool's scratch databases go, and what that engine choice leaves unchecked."""

    server_url: str | None
    """A server to create ``dbm_*`` databases on, or None for a temporary SQLite file."""
    engine: str
    """``postgresql``, ``mysql`` or ``sqlite``: the dialect family the DDL runs on."""
    embedded: bool
    project_dialect: str | None
    """The project's dialect family from its URL; None when the URL names none."""
    unchecked: list[Unchecked] = field(default_factory=list)

    @property
    def foreign(self) -> bool:
        """True when the DDL does not run on the project's own engine (or that engine is unknown)."""
        return self.engine != self.project_dialect

    def info(self) -> EngineInfo:
        return engine_info(self.server_url, embedded=self.embedded)


def plan_scratch(project: Project, server_url: str | None) -> ScratchPlan:
    """The scratch engine for ``project`` when the user gave ``server_url`` (or None); see the module docstring.

    Raises Refused for a server the policy calls production (with the project's patterns).
    """
    from db_migrate.scratch import refuse_production, server_dialect_or_sqlite

    backend = dialect_of(project.url)
    project_dialect = _FAMILY.get(backend or "", backend)
    if server_url:
        refuse_production(server_url, project.settings)  # before anything connects to it (templates do)
        engine = server_dialect_or_sqlite(server_url)
        plan = ScratchPlan(None if engine == "sqlite" else server_url, engine, False, project_dialect)
    elif project_dialect == "postgresql":
        from db_migrate.scratch.embedded import EmbeddedUnavailable, ensure_running

        try:
            return ScratchPlan(ensure_running(), "postgresql", True, project_dialect)
        except EmbeddedUnavailable as e:
            plan = ScratchPlan(None, "sqlite", False, project_dialect)
            plan.unchecked.append(Unchecked(what="embedded PostgreSQL", reason=e.message + (f" {e.hint}" if e.hint else "")))
    else:
        plan = ScratchPlan(None, "sqlite", False, project_dialect)
    if plan.foreign:
        plan.unchecked.append(Unchecked(what="engine", reason=_foreign_reason(plan)))
    return plan


def _foreign_reason(plan: ScratchPlan) -> str:
    if plan.project_dialect is None:
        return (f"The project's sqlalchemy.url names no dialect (set in env.py?), so the DDL ran on {plan.engine}; "
                "behaviour specific to the real engine is not checked. Pass a scratch server of that engine to check it.")
    flag = "--database-url" if plan.engine == "sqlite" else "--scratch-url/--database-url"
    return (f"The DDL ran on {plan.engine}, not on the project's {plan.project_dialect}: its types, constraints, "
            f"locks and transactional behaviour are not checked, and failures only {plan.engine} causes are listed "
            f"here, not as findings. Pass a {plan.project_dialect} scratch server (scratch_url / database_url; "
            f"CLI {flag}) to check them.")


#: Failures that say only a superuser may do it: on the embedded server project code is an ordinary role.
_SUPERUSER_ONLY = re.compile(
    r"permission denied to create extension|must be superuser|permission denied to create role|"
    r"permission denied for language|only superusers? (can|may)|Must have CREATEROLE",
    re.IGNORECASE,
)
SUPERUSER_ONLY_REASON = (
    "On the embedded PostgreSQL server, project code runs as an ordinary role (the owner of its scratch database, "
    "not a superuser), so what only a superuser may do (an untrusted extension or language, a role) is not checked "
    "here: {error}. Trusted extensions (citext, hstore, pg_trgm, ...) work. Pass a PostgreSQL scratch server where "
    "the revision's role may do this (scratch_url / database_url) to check it."
)


def superuser_only(plan: ScratchPlan, error: str | None) -> bool:
    """True when ``error`` comes from the embedded server's job role not being a superuser, not from the migration."""
    return bool(plan.embedded and error and _SUPERUSER_ONLY.search(error))


def engine_only(plan: ScratchPlan, error: str | None) -> bool:
    """True when ``error`` comes from running on an engine that is not the project's, not from the migration itself."""
    return bool(plan.foreign and error and _ENGINE_ONLY.search(error))


def engine_info(server_url: str | None, *, embedded: bool = False) -> EngineInfo:
    """Name and version of the engine at ``server_url`` (None: this process's SQLite library); cached per URL."""
    if server_url is None:
        return EngineInfo(name="sqlite", version=sqlite3.sqlite_version)
    cached = _versions.get(server_url)
    if cached is not None:
        return cached
    from db_migrate.scratch import server_dialect
    from db_migrate.scratch.admin import admin_engine

    dialect = server_dialect(server_url)
    with admin_engine(server_url).connect() as c:
        raw = str(c.exec_driver_sql("SHOW server_version" if dialect == "postgresql" else "SELECT VERSION()").scalar())
    if dialect == "postgresql":
        info = EngineInfo(name="postgresql", version=raw.split()[0], embedded=embedded)
    else:
        info = EngineInfo(name="mariadb" if "mariadb" in raw.lower() else "mysql", version=raw.split("-")[0])
    _versions[server_url] = info
    return info
