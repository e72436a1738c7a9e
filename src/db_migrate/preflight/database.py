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

from collections.abc import Iterable

from db_migrate.errors import DbMigrateError, brief, database_error
from db_migrate.policy.model import DatabaseFacts, RowCount
from db_migrate.urls import redact_url
from db_migrate.readonly import begin_read_only, read_only_connection


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
    try:
        with read_only_connection(database_url, timeout=timeout) as conn:
            facts = DatabaseFacts(database=shown, dialect=conn.dialect.name)
            for name in dict.fromkeys(tables):
                schema, tname = split_name(name)
                if not _has_table(conn, tname, schema):
                    facts.missing.append(name)
                    continue
                try:
                    estimate = _pg_estimate(conn, tname, schema) if conn.dialect.name == "postgresql" else None
                    if estimate is not None and estimate >= exact_count_below:
                        facts.row_counts[name] = RowCount(rows=estimate, estimate=True)
                    else:
                        n = conn.execute(select(func.count()).select_from(sa_table(tname, schema=schema))).scalar_one()
                        facts.row_counts[name] = RowCount(rows=int(n), estimate=False)
                except Exception as e:
                    facts.failed[name] = brief(e)
                    begin_read_only(conn, timeout=timeout)  # PostgreSQL aborted the transaction: start afresh
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
                    facts.failed[key] = brief(e)
                    begin_read_only(conn, timeout=timeout)
    except DbMigrateError:  # already clear (a bad URL, a missing file, an unreachable server)
        raise
    except Exception as e:
        raise database_error(
            e, database_url, "reading row counts",
            hint="Check {arg:database_url} (it is only read, never written), that the server is reachable, "
            "and that the user may read the tables' catalog.",
        ) from None
    return facts










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

