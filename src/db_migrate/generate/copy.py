"""A scratch copy of the schema of the user's database, made by our code alone.

``generate --database-url`` compares the models with a database as it is.
Project code (env.py, the models) must never get a connection to that
database: an env.py can undo a read-only session (``SET SESSION
CHARACTERISTICS AS TRANSACTION READ WRITE``) and write.  So our own code, in
db-migrate's process (:func:`copy_schema`: no job, whose box has no network
but the scratch server), reads the schema through :mod:`db_migrate.readonly`
and builds it on a scratch database, with the version table's rows;
autogenerate then runs on that copy.

- SQLite: every ``CREATE`` statement of ``sqlite_master`` is replayed (tables,
  indexes, views, triggers): an exact copy of the schema, no rows.
- PostgreSQL, MySQL/MariaDB: the schema is reflected (SQLAlchemy ``MetaData.reflect``
  of the default schema) and created on a scratch database of the same dialect;
  sequence defaults (``nextval(...)``) are left to the column's own SERIAL or
  IDENTITY.  What reflection does not carry (triggers, functions, grants,
  comments on some backends) is not copied: autogenerate does not compare it either.
"""

from __future__ import annotations

from typing import Any

from db_migrate.errors import DatabaseError, UsageError, brief


def copy_schema(source_url: str, target_url: str, version_table: str = "alembic_version",
                version_table_schema: str | None = None, read_timeout: float | None = None) -> dict[str, Any]:
    """Copy the schema (and version rows) of ``source_url`` (read only) to ``target_url``, in our own process.

    ``read_timeout`` bounds every wait on the source (:mod:`db_migrate.readonly`).
    """
    from sqlalchemy import MetaData, Table, create_engine, inspect
    from sqlalchemy.pool import NullPool

    from db_migrate.readonly import read_only_connection
    from db_migrate.urls import backend_of, redact_url

    source_dialect = backend_of(source_url)
    target_dialect = backend_of(target_url)
    if {source_dialect, target_dialect} - {"mysql", "mariadb"} and source_dialect != target_dialect:
        raise UsageError(
            f"The database is {source_dialect} but the scratch server is {target_dialect}: a copy of the schema "
            "would not compare like the original.",
            hint="Give a scratch_url of the same kind of server as database_url.",
        )
    try:
        with read_only_connection(source_url, timeout=read_timeout) as src:
            if source_dialect == "sqlite":
                ddl = [r[0] for r in src.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
                    "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END, rowid"
                )]
                metadata = None
            else:
                ddl = []
                metadata = MetaData()
                metadata.reflect(src)
            versions: list[str] = []
            if inspect(src).has_table(version_table, schema=version_table_schema):
                table = Table(version_table, MetaData(), autoload_with=src, schema=version_table_schema)
                versions = [r[0] for r in src.execute(table.select())]
    except (DatabaseError, UsageError):
        raise
    except Exception as e:
        raise DatabaseError(f"Cannot read the schema of {redact_url(source_url)}: {brief(e)}") from None

    engine = create_engine(target_url, poolclass=NullPool)
    try:
        with engine.begin() as dst:
            for statement in ddl:
                dst.exec_driver_sql(statement)
            if metadata is not None:
                for table in metadata.tables.values():
                    for column in table.columns:
                        default = getattr(column.server_default, "arg", None)
                        if default is not None and "nextval(" in str(default):
                            column.server_default = None  # the copy's SERIAL makes its own sequence
                metadata.create_all(dst)
            if versions:
                table = Table(version_table, MetaData(), autoload_with=dst, schema=version_table_schema)
                dst.execute(table.delete())
                dst.execute(table.insert(), [{table.c[0].name: v} for v in versions])
    except Exception as e:
        raise DatabaseError(f"Cannot build the scratch copy of the schema: {brief(e)}") from None
    finally:
        engine.dispose()
    return {"statements": len(ddl), "tables": len(metadata.tables) if metadata is not None else None, "versions": versions}
