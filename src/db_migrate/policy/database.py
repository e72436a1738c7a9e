"""Read row counts and column contents from the user's database, read-only.

The database named by ``database_url`` belongs to the user: nothing here
writes.  Every read runs in a transaction that is rolled back, made read-only
where the dialect allows (PostgreSQL ``default_transaction_read_only``, MySQL
``START TRANSACTION READ ONLY``, SQLite opened with ``mode=ro``), with short
connect and statement timeouts.  Failures per table are recorded in
:class:`DatabaseFacts`, not raised; only a database that cannot be reached at
all raises :class:`~db_migrate.errors.DatabaseError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from db_migrate.errors import DatabaseError, UsageError
from db_migrate.policy.model import DatabaseFacts, RowCount
from db_migrate.project import redact_url

#: Async drivers cannot serve a synchronous engine: read through the sync driver of the same backend.
_SYNC_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql", "sqlite": "sqlite"}
_ASYNC_DRIVERS = {"asyncpg", "aiosqlite", "aiomysql", "asyncmy", "psycopg_async"}


def split_name(name: str) -> tuple[str | None, str]:
    """``"schema.table"`` -> ``("schema", "table")``; ``"table"`` -> ``(None, "table")``."""
    schema, _, table = name.rpartition(".")
    return (schema or None), table


def read_database_facts(
    database_url: str,
    *,
    tables: Iterable[str] = (),
    columns: Iterable[tuple[str, str]] = (),
    exact_count_below: int = 10_000,
    timeout: float = 5.0,
) -> DatabaseFacts:
    """Row counts of ``tables`` and, for each ``(table, column)``, whether it holds data.

    PostgreSQL reports ``pg_class.reltuples`` when that estimate is at least
    ``exact_count_below`` and counts exactly below it (or when the table was
    never analysed); other databases always ``COUNT(*)``.
    """
    from sqlalchemy import column as sa_column
    from sqlalchemy import func, literal, select
    from sqlalchemy import table as sa_table

    shown = redact_url(database_url) or ""
    engine = _engine(database_url, timeout)
    facts = DatabaseFacts(database=shown, dialect=engine.dialect.name)
    try:
        with _read_only(engine, timeout) as conn:
            for name in dict.fromkeys(tables):
                schema, tname = split_name(name)
                if not _has_table(conn, tname, schema):
                    facts.missing.append(name)
                    continue
                try:
                    estimate = _pg_estimate(conn, tname, schema) if engine.dialect.name == "postgresql" else None
                    if estimate is not None and estimate >= exact_count_below:
                        facts.row_counts[name] = RowCount(rows=estimate, estimate=True)
                    else:
                        n = conn.execute(select(func.count()).select_from(sa_table(tname, schema=schema))).scalar_one()
                        facts.row_counts[name] = RowCount(rows=int(n), estimate=False)
                except Exception as e:
                    facts.failed[name] = _brief(e)
                    _recover(conn)
            for name, col in dict.fromkeys(columns):
                key = f"{name}.{col}"
                schema, tname = split_name(name)
                if not _has_column(conn, tname, col, schema):
                    facts.missing.append(key)
                    continue
                try:
                    t = sa_table(tname, sa_column(col), schema=schema)
                    q = select(literal(1)).select_from(t).where(t.c[col].is_not(None)).limit(1)
                    facts.column_has_data[key] = conn.execute(q).first() is not None
                except Exception as e:
                    facts.failed[key] = _brief(e)
                    _recover(conn)
    except DatabaseError:
        raise
    except Exception as e:
        raise DatabaseError(
            f"Cannot read the database {shown}: {_brief(e)}",
            hint="Check database_url (it is only read, never written), that the server is reachable, "
            "and that the user may read the tables' catalog.",
        ) from None
    finally:
        engine.dispose()
    return facts


def _engine(url: str, timeout: float):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    try:
        u = make_url(url)
    except Exception:
        raise UsageError(f"database_url is not a SQLAlchemy URL: {redact_url(url)}") from None
    backend, driver = u.get_backend_name(), u.get_driver_name()
    if driver in _ASYNC_DRIVERS and backend in _SYNC_DRIVERS:
        u = u.set(drivername=_SYNC_DRIVERS[backend])
    secs = max(1, int(timeout + 0.999))
    args: dict = {}
    if backend == "postgresql":
        ms = int(timeout * 1000)
        args = {
            "connect_timeout": secs,
            "application_name": "db-migrate (read-only)",
            # read-only at the server: even a bug here cannot write
            "options": f"-c default_transaction_read_only=on -c statement_timeout={ms} -c lock_timeout={ms}",
        }
    elif backend in ("mysql", "mariadb"):
        args = {"connect_timeout": secs, "read_timeout": secs, "write_timeout": secs}
    elif backend == "sqlite":
        path = u.database
        if path and path != ":memory:" and not path.startswith("file:"):
            # opened read-only by the OS-level SQLite flag, not just by promise
            return create_engine(
                "sqlite://",
                creator=lambda: sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout),
                poolclass=NullPool,
            )
    try:
        return create_engine(u, connect_args=args, poolclass=NullPool)
    except Exception as e:  # a missing driver, a bad option
        raise DatabaseError(f"Cannot use the database {redact_url(url)}: {_brief(e)}") from None


@contextmanager
def _read_only(engine, timeout: float) -> Iterator:
    """A connection inside a read-only transaction that is always rolled back."""
    from sqlalchemy import text

    name = engine.dialect.name
    with engine.connect() as conn:
        if name in ("mysql", "mariadb"):
            # MariaDB knows the first, MySQL the second; read_timeout backs up both
            _try(conn, f"SET SESSION max_statement_time = {timeout:g}")
            _try(conn, f"SET SESSION MAX_EXECUTION_TIME = {int(timeout * 1000)}")
            conn.exec_driver_sql("START TRANSACTION READ ONLY")
        elif name == "sqlite":
            conn.exec_driver_sql("PRAGMA query_only = ON")
        elif name == "postgresql":
            conn.execute(text("SET TRANSACTION READ ONLY"))
        try:
            yield conn
        finally:
            conn.rollback()


def _try(conn, stmt: str) -> None:
    try:
        conn.exec_driver_sql(stmt)
    except Exception:
        _recover(conn)


def _recover(conn) -> None:
    """After a failed statement: roll back (PostgreSQL aborts the transaction) and start read-only again."""
    conn.rollback()
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif conn.dialect.name in ("mysql", "mariadb"):
        conn.exec_driver_sql("START TRANSACTION READ ONLY")


def _has_table(conn, table: str, schema: str | None) -> bool:
    from sqlalchemy import inspect

    return inspect(conn).has_table(table, schema=schema)


def _has_column(conn, table: str, column: str, schema: str | None) -> bool:
    from sqlalchemy import inspect

    if not _has_table(conn, table, schema):
        return False
    return any(c["name"] == column for c in inspect(conn).get_columns(table, schema=schema))


def _pg_estimate(conn, table: str, schema: str | None) -> int | None:
    """pg_class.reltuples, or None when the table was never analysed (-1)."""
    from sqlalchemy import text

    quoted = conn.dialect.identifier_preparer.quote(table)
    if schema:
        quoted = conn.dialect.identifier_preparer.quote_schema(schema) + "." + quoted
    val = conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"), {"name": quoted}).scalar()
    if val is None or val < 0:
        return None
    return int(val)


def _brief(e: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's background link."""
    orig = getattr(e, "orig", None) or e
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
