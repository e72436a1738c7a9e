"""Opening the user's database so that nothing can write to it.

classify (row counts), check_heads (the version table) and generate (comparing
with a named database) read the user's database; none may change it.  The
guarantee is made twice:

- :func:`read_only_url` rewrites the URL itself (:mod:`db_migrate.urls` builds the form): PostgreSQL sessions start with
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

from db_migrate.errors import DatabaseError, DatabaseMissing, DbMigrateError, UsageError, brief
from db_migrate import urls
from db_migrate.urls import redact_url

def read_only_url(url: str, *, timeout: float | None = None) -> str:
    """``url`` made read-only (:func:`db_migrate.urls.read_only_url`), or the error that says why it cannot be."""
    try:
        return urls.read_only_url(url, timeout=timeout)
    except urls.NotAUrl as e:
        raise UsageError(f"database_url is not a SQLAlchemy URL: {e}",
                         hint="Give a SQLAlchemy URL, e.g. postgresql+psycopg://user@host:5432/app or sqlite:///app.db.") from None
    except urls.NoSqliteFile as e:
        raise DatabaseMissing(
            f"The SQLite database {e} does not exist; there is nothing to read.",
            hint="Pass the path of the existing database file (sqlite:///path/to/app.db).",
        ) from None


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
