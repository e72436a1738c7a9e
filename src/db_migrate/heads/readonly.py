"""Opening the user's database without being able to change it.

Used by check_heads (reading the version table) and by generate_migration when
the user names a database to compare with.  SQLite files are opened through a
``mode=ro`` URI (and a missing file is an error, never created); PostgreSQL and
MySQL/MariaDB get a read-only transaction, which the callers roll back.
"""

from __future__ import annotations

from pathlib import Path

from db_migrate.errors import UsageError


def read_only_url(url: str) -> str:
    """``url`` itself, or for SQLite a read-only URI of the existing file (UsageError when it is missing)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return url
    db = u.database or ""
    if db in ("", ":memory:") or not Path(db).is_file():
        raise UsageError(
            f"The SQLite database {db or ':memory:'} does not exist; there is nothing to read.",
            hint="Pass the path of the existing database file (sqlite:///path/to/app.db).",
        )
    return u.set(database=f"file:{Path(db).resolve()}?mode=ro", query={**u.query, "uri": "true"}).render_as_string(hide_password=False)


def begin_read_only(conn) -> None:
    """Start a transaction on ``conn`` that cannot write where the dialect has one (roll it back afterwards)."""
    if conn.in_transaction():
        conn.rollback()
    name = conn.dialect.name
    if name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif name in ("mysql", "mariadb"):
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        conn.exec_driver_sql("START TRANSACTION")
    else:
        conn.begin()
