"""Scratch databases: the only databases db-migrate ever migrates.

Public API::

    with scratch_database(server_url=None, purpose="roundtrip", template=None) as db:
        db.url        # full SQLAlchemy URL (with driver) of the scratch database
        db.dialect    # "sqlite", "postgresql", "mysql" (MariaDB reports "mysql")
        db.server_url # the server URL given, or None for SQLite

- ``server_url=None``: a temporary SQLite file in a private temp directory,
  removed afterwards.  ``template`` may name an SQLite file to start from (copied).
- a ``postgresql``/``mysql``/``mariadb`` URL names a *server*: a database
  ``dbm_<purpose>_<random>_<owner>`` is created there, yielded, and dropped whatever
  happens (exception, timeout, cancellation: the drop is in a ``finally`` of the
  parent process; workers only ever receive the URL).  On PostgreSQL
  ``template`` names a template database (``CREATE DATABASE ... TEMPLATE``).
  No other database of the server is touched.  On the embedded server the URL
  connects as a role of the database's name that owns it and nothing else
  (:func:`db_migrate.scratch.embedded.create_job_role`), dropped with it.

A server URL that the escalation policy says is production
(:func:`db_migrate.policy.production_signal`, with the project's
``[tool.db-migrate]`` patterns passed as ``settings``) is refused here, so no
caller can create a scratch database on a production server; URLs it cannot
create a scratch database on are refused too.

Owners: the name ends with its owner, ``<boot>p<pid>s<start>`` (a digest of
this machine's boot id, the creating process's pid and its start time in clock
ticks).  A ``kill -9`` skips every ``finally``; so the first scratch database a
process creates on a server also drops the ``dbm_*`` databases whose owner
tag names this boot of this machine and a process that no longer runs
(:func:`drop_stale`).  Databases of other machines or earlier boots, and
templates (no owner), are left alone.

A process that outlives its caller can do better than that sweep: with a
supervisor set (:func:`set_supervisor`; the CLI sets the warm parent CLI calls
share, :func:`db_migrate.sandbox.shared.supervise`), each server database is
registered with it before it is created and withdrawn once dropped, and the
supervisor drops it at once if this process dies in between.

Templates (:mod:`db_migrate.scratch.templates`) cache the schema of a revision
so a roundtrip of the newest revision of a long history does not replay it all.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db_migrate.errors import DatabaseError, Refused, UsageError, brief, database_error
from db_migrate.scratch import embedded
from db_migrate.scratch.admin import admin_engine
from db_migrate.urls import hold_scratch, is_scratch_url, redact_url, release_scratch  # noqa: F401  (is_scratch_url: where callers found it)
from db_migrate.urls import with_database as database_url

__all__ = [
    "PREFIX",
    "ScratchDatabase",
    "admin_engine",
    "scratch_database",
    "server_dialect",
]

PREFIX = "dbm_"
"""Every database this package creates on a server starts with this prefix."""

_SERVER_DIALECTS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
_swept: set[str] = set()
"""Servers whose stale databases this process already dropped."""
_supervisor: tuple[Callable[..., bool], Callable[..., None]] | None = None
"""``(register, release)``: who drops this process's scratch databases should it die (:func:`set_supervisor`)."""
_OWNER_RE = re.compile(r"_(?P<boot>[0-9a-f]{6})p(?P<pid>\d+)s(?P<start>\d+)$")


@dataclass(frozen=True)
class ScratchDatabase:
    """A database that exists only for the duration of one ``scratch_database`` block."""

    url: str
    """Full SQLAlchemy URL (with driver). May hold the server's password: print :attr:`redacted`."""
    dialect: str
    server_url: str | None
    name: str
    """Database name on the server, or the SQLite file path."""
    role: str | None = None
    """The login role the URL connects as when db-migrate created it for this database (the embedded server)."""

    @property
    def redacted(self) -> str:
        return redact_url(self.url) or ""

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None on a server."""
        return Path(self.name) if self.dialect == "sqlite" else None


def server_dialect(server_url: str) -> str:
    """``postgresql`` or ``mysql`` for a server URL; raise UsageError for anything else."""
    from db_migrate.urls import backend_of

    try:
        backend = backend_of(server_url)
    except Exception:
        raise UsageError(
            f"Cannot parse the database URL {redact_url(server_url)}.",
            hint="Give a SQLAlchemy URL, e.g. postgresql+psycopg://user@host:5432/postgres.",
        ) from None
    if backend not in _SERVER_DIALECTS:
        raise UsageError(
            f"Scratch databases can be created on PostgreSQL or MySQL/MariaDB servers, not {backend!r}.",
            hint="Omit {arg:database_url} to use a temporary SQLite file.",
        )
    return _SERVER_DIALECTS[backend]


def quote(dialect: str, name: str) -> str:
    """Quote a database name we generated ourselves (``dbm_[a-z0-9_]+``)."""
    if not name.replace("_", "").isalnum():
        raise UsageError(f"Refusing an unexpected database name {name!r}.")
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


def _boot_tag() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return hashlib.sha256(f.read().strip().encode()).hexdigest()[:6]
    except OSError:
        return None  # not Linux: no way to tell a dead owner later, so no tag


def _start_ticks(pid: int) -> int | None:
    """A process's start time (clock ticks since boot), or None when it does not run."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: count fields after the last ')'
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_tag() -> str:
    """``<boot>p<pid>s<start>`` for this process ("" where it cannot be told later whether it runs)."""
    boot, start = _boot_tag(), _start_ticks(os.getpid())
    return f"{boot}p{os.getpid()}s{start}" if boot and start is not None else ""


def owner_is_gone(name: str) -> bool:
    """True when ``name`` carries an owner tag of this boot whose process no longer runs."""
    m = _OWNER_RE.search(name)
    if not m or m.group("boot") != _boot_tag():
        return False
    return _start_ticks(int(m.group("pid"))) != int(m.group("start"))


def _new_name(purpose: str) -> str:
    purpose = "".join(ch for ch in purpose.lower() if ch.isalnum() or ch == "_")[:12] or "scratch"
    tag = owner_tag()  # at most 63 characters in all: PostgreSQL's limit for a name
    return f"{PREFIX}{purpose}_{run_tag()}{secrets.token_hex(4)}" + (f"_{tag}" if tag else "")


def list_databases(server_url: str) -> list[str]:
    """Names of the ``dbm_*`` databases on a server."""
    from sqlalchemy import text

    dialect = server_dialect(server_url)
    sql = ("SELECT datname FROM pg_database WHERE datname LIKE :p" if dialect == "postgresql"
           else "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p")
    with admin_engine(server_url).connect() as c:
        return list(c.execute(text(sql), {"p": PREFIX.replace("_", "\\_") + "%"}).scalars())


def drop_stale(server_url: str) -> list[str]:
    """Drop the scratch databases on a server whose owner process died without cleaning up; their names.

    On the embedded server, their job roles too (a role is named after its database).
    """
    dropped = []
    for name in list_databases(server_url):
        if owner_is_gone(name):
            try:
                drop_database(server_url, name)
                dropped.append(name)
            except Exception:
                pass  # another process dropped it first, or it is still busy: the next sweep retries
    if embedded.is_embedded(server_url):
        embedded.drop_job_roles(server_url, [r for r in embedded.job_roles(server_url) if owner_is_gone(r)])
    return dropped


def run_tag() -> str:
    """``DB_MIGRATE_SCRATCH_TAG`` (letters and digits, at most 12), put into every scratch name.

    Lets a test run (or a CI job sharing a server) find exactly the databases *it*
    created, while other processes create and drop theirs on the same server.
    """
    raw = os.environ.get("DB_MIGRATE_SCRATCH_TAG", "")
    return "".join(ch for ch in raw.lower() if ch.isascii() and ch.isalnum())[:12]


def create_database(server_url: str, name: str, *, template: str | None = None, owner: str | None = None) -> None:
    """CREATE DATABASE ``name`` (from ``template``, owned by ``owner``, on PostgreSQL). Retries while the template is busy."""
    from sqlalchemy import text

    dialect = server_dialect(server_url)
    sql = f"CREATE DATABASE {quote(dialect, name)}"
    if dialect == "mysql":
        if template or owner:
            raise UsageError("Database templates and owners are used only on PostgreSQL.")
        sql += " CHARACTER SET utf8mb4"
    if template:
        sql += f" TEMPLATE {quote(dialect, template)}"
    if owner:
        sql += f" OWNER {quote(dialect, owner)}"
    deadline = time.monotonic() + 10
    while True:
        try:
            with admin_engine(server_url).connect() as c:
                c.execute(text(sql))
            return
        except Exception as e:
            # "source database "x" is being accessed by other users": another call copies it right now
            if template and "being accessed" in str(e) and time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            raise database_error(
                e, server_url, f"creating the scratch database {name}",
                hint="The user of {arg:database_url} needs the right to create databases (CREATEDB).",
            ) from None


def drop_database(server_url: str, name: str) -> None:
    """DROP DATABASE ``name`` if it exists, disconnecting whoever still uses it (a killed worker)."""
    from sqlalchemy import text

    dialect = server_dialect(server_url)
    if not name.startswith(PREFIX):
        raise UsageError(f"Refusing to drop {name!r}: db-migrate only drops databases it created ({PREFIX}*).")
    with admin_engine(server_url).connect() as c:
        if dialect == "postgresql":
            c.execute(text(f"DROP DATABASE IF EXISTS {quote(dialect, name)} WITH (FORCE)"))
            return
        # MySQL/MariaDB: a session of a killed worker may still hold a metadata lock
        ids = c.execute(
            text("SELECT id FROM information_schema.processlist WHERE db = :db AND id <> CONNECTION_ID()"),
            {"db": name},
        ).scalars().all()
        for pid in ids:
            try:
                c.execute(text(f"KILL {int(pid)}"))
            except Exception:
                pass  # it ended on its own meanwhile
        c.execute(text(f"DROP DATABASE IF EXISTS {quote(dialect, name)}"))



@contextmanager
def scratch_database(
    server_url: str | None = None,
    *,
    purpose: str = "scratch",
    template: str | os.PathLike[str] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Iterator[ScratchDatabase]:
    """Create a throwaway database, yield it, and always remove it.

    ``template``: an SQLite file to copy (SQLite) or a template database name (PostgreSQL).
    ``settings``: the project's ``[tool.db-migrate]`` table (its production URL patterns).
    """
    if server_url is not None:
        refuse_production(server_url, settings)
    if server_url is None or server_dialect_or_sqlite(server_url) == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{purpose}_"))
        try:
            path = tmp / "scratch.db"
            if template is not None:
                shutil.copyfile(template, path)
            url = f"sqlite:///{path}"
            hold_scratch(url)
            yield ScratchDatabase(url=url, dialect="sqlite", server_url=None, name=str(path))
        finally:
            release_scratch(f"sqlite:///{tmp / 'scratch.db'}")
            shutil.rmtree(tmp, ignore_errors=True)
        return
    dialect = server_dialect(server_url)
    if server_url not in _swept:
        _swept.add(server_url)
        try:
            drop_stale(server_url)
        except Exception:
            pass  # a sweep is housekeeping; creating the database below reports a real problem
    from db_migrate.sandbox.report import call_cancelled

    if call_cancelled():  # an abandoned thread of a cancelled call creates no database it would only drop again
        from db_migrate.errors import MigrationCrashed

        raise MigrationCrashed("The call was cancelled.")
    name = _new_name(purpose)
    # on the embedded server, project code connects as a role that owns only this database (.embedded)
    job_role = dialect == "postgresql" and embedded.is_embedded(server_url)
    target = _DROP_JOB if job_role else _DROP
    supervisor = _supervisor
    # registered before it exists, so a kill between the two is covered too; withdrawn only once dropped,
    # so a drop that fails (or a call that fails) is done again, IF EXISTS, by the supervisor when this process ends
    registered = supervisor is not None and supervisor[0](target, server_url, name)
    database = _job_database if job_role else _server_database
    with database(server_url, name, str(template) if template else None) as url:
        yield ScratchDatabase(url=url, dialect=dialect, server_url=server_url, name=name, role=name if job_role else None)
    if registered:
        supervisor[1](target, server_url, name)  # type: ignore[index]


def set_supervisor(register: Callable[..., bool] | None, release: Callable[..., None] | None = None) -> None:
    """Have ``register(target, *args)`` called before each server database is created, ``release`` once dropped.

    ``target`` is ``"db_migrate.scratch:drop_database"`` and ``args`` the server URL and name: what a
    supervisor that outlives this process runs should the process die in between.  ``None``: none.
    """
    global _supervisor
    _supervisor = (register, release) if register is not None and release is not None else None


_DROP = "db_migrate.scratch:drop_database"
_DROP_JOB = "db_migrate.scratch:drop_job_database"


def drop_job_database(server_url: str, name: str) -> None:
    """Drop an embedded-server scratch database and the role that owned it (what a supervisor runs)."""
    try:
        drop_database(server_url, name)
    finally:
        embedded.drop_job_roles(server_url, [name])


@contextmanager
def _server_database(server_url: str, name: str, template: str | None) -> Iterator[str]:
    """A server's database ``name``, created (from ``template``), yielded as its URL, and always dropped."""
    create_database(server_url, name, template=template)
    url = database_url(server_url, name)
    hold_scratch(url)
    try:
        yield url
    finally:
        release_scratch(url)
        drop_database(server_url, name)


@contextmanager
def _job_database(server_url: str, name: str, template: str | None) -> Iterator[str]:
    """On the embedded server: the database ``name`` owned by a role of that name; yields its URL (as that role).

    The role is created first and dropped last, whatever happens (see :mod:`.embedded`).
    """
    from db_migrate.urls import with_login

    with admin_engine(server_url).connect() as c:
        password = embedded.create_job_role(c, name)
    url = None
    try:
        create_database(server_url, name, template=template, owner=name)
        with admin_engine(server_url).connect() as c:
            embedded.hand_over(c, server_url, name, from_template=template is not None)
        url = with_login(database_url(server_url, name), name, password)
        hold_scratch(url)
        yield url
    finally:
        if url is not None:
            release_scratch(url)
        drop_job_database(server_url, name)


def refuse_production(server_url: str | None, settings: Mapping[str, Any] | None = None, environment: str | None = None) -> None:
    """Raise Refused when the policy says ``server_url`` (or ``environment``, or ``DB_MIGRATE_ENV``) is production."""
    from db_migrate.policy.signals import production_signal

    why = production_signal(server_url, settings or {}, environment)
    if why:
        raise Refused(
            f"db-migrate creates and drops scratch databases on the server it is given; it will not do that on a "
            f"production server ({why}).",
            hint="Name a development or CI database server, or omit it to use a temporary SQLite file.",
            database=redact_url(server_url),
        )


def server_dialect_or_sqlite(url: str) -> str:
    """``sqlite`` for an SQLite URL (its file is the user's: we still use a temp file), else the server dialect."""
    if url.startswith("sqlite"):
        return "sqlite"
    return server_dialect(url)
