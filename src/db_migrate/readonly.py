"""Opening the user's database so that nothing can write to it.

classify (row counts), check_heads (the version table) and generate (comparing
with a named database) read the user's database; none may change it.  The
guarantee is made twice:

- :func:`read_only_url` rewrites the URL itself: PostgreSQL sessions start with
  ``default_transaction_read_only=on`` (enforced by the server, so it also holds
  for connections a project's env.py opens from that URL), SQLite files are
  opened through a ``mode=ro`` URI (a missing file is an error, never created),
  async drivers are swapped for the sync driver of the same backend;
- :func:`begin_read_only` starts a read-only transaction on a connection, which
  the caller rolls back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from db_migrate.errors import DatabaseError, DatabaseMissing, DbMigrateError, UsageError, brief
from db_migrate.urls import redact_url

#: Async drivers cannot serve a synchronous engine: read through the sync driver of the same backend.
_SYNC_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql", "sqlite": "sqlite"}
_ASYNC_DRIVERS = {"asyncpg", "aiosqlite", "aiomysql", "asyncmy", "psycopg_async"}


def read_only_url(url: str, *, timeout: float | None = None) -> str:
    """``url`` made read-only (and, with ``timeout``, with connect and statement time limits)."""
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception:
        raise UsageError(f"database_url is not a SQLAlchemy URL: {redact_url(url)}") from None
    backend, driver = u.get_backend_name(), u.get_driver_name()
    if driver in _ASYNC_DRIVERS and backend in _SYNC_DRIVERS:
        u = u.set(drivername=_SYNC_DRIVERS[backend])
    query = dict(u.query)
    secs = str(max(1, int(timeout + 0.999))) if timeout else None
    if backend == "sqlite":
        db = u.database or ""
        if db.startswith("file:"):
            return u.render_as_string(hide_password=False)
        if db in ("", ":memory:") or not Path(db).is_file():
            raise DatabaseMissing(
                f"The SQLite database {db or ':memory:'} does not exist; there is nothing to read.",
                hint="Pass the path of the existing database file (sqlite:///path/to/app.db).",
            )
        u = u.set(database=f"file:{Path(db).resolve()}?mode=ro")
        query["uri"] = "true"
    elif backend == "postgresql":
        options = ["-c default_transaction_read_only=on"]
        if timeout:
            ms = int(timeout * 1000)
            options += [f"-c statement_timeout={ms}", f"-c lock_timeout={ms}"]
            query["connect_timeout"] = secs
        query["options"] = " ".join(filter(None, [str(query.get("options") or ""), *options]))
        query.setdefault("application_name", "db-migrate (read-only)")
    elif backend in ("mysql", "mariadb") and secs:
        query.update(connect_timeout=secs, read_timeout=secs, write_timeout=secs)
    return u.set(query=query).render_as_string(hide_password=False)


def begin_read_only(conn, *, timeout: float | None = None) -> None:
    """Start a read-only transaction on ``conn`` where the dialect has one; the caller rolls it back."""
    if conn.in_transaction():
        conn.rollback()
    name = conn.dialect.name
    if name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif name in ("mysql", "mariadb"):
        if timeout:
            # MariaDB knows the first, MySQL the second; read_timeout backs up both
            _try(conn, f"SET SESSION max_statement_time = {timeout:g}")
            _try(conn, f"SET SESSION MAX_EXECUTION_TIME = {int(timeout * 1000)}")
        conn.exec_driver_sql("START TRANSACTION READ ONLY")
    elif name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
    else:
        conn.begin()


def _try(conn, stmt: str) -> None:
    try:
        conn.exec_driver_sql(stmt)
    except Exception:
        conn.rollback()


@contextmanager
def read_only_connection(url: str, *, timeout: float | None = None) -> Iterator:
    """A connection to ``url`` inside a read-only transaction that is always rolled back."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    try:
        engine = create_engine(read_only_url(url, timeout=timeout), poolclass=NullPool)
    except DbMigrateError:
        raise
    except Exception as e:  # a missing driver, a bad option
        raise DatabaseError(f"Cannot use the database {redact_url(url)}: {brief(e)}") from None
    try:
        with engine.connect() as conn:
            begin_read_only(conn, timeout=timeout)
            try:
                yield conn
            finally:
                conn.rollback()
    finally:
        engine.dispose()
