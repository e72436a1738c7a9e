"""Raw SQL in ``op.execute`` as the alembic operations it amounts to.

A migration that writes ``op.execute("ALTER TABLE persons ADD COLUMN badge int
NOT NULL")`` does what ``op.add_column(...)`` does; the rules, the
reversibility check and the escalation policy only know alembic operations.
So the recorder hands each raw statement to :func:`translate_execute`: every
DDL statement that alembic has an operation for becomes that operation object
(``AddColumnOp``, ``AlterColumnOp``, ``DropTableOp``, ``CreateIndexOp``,
``CreateForeignKeyOp``...), recorded at the ``op.execute`` line with the
statement as its SQL and in ``RecordedOp.sql_text``.  What has no alembic
equivalent (triggers, functions, ``ALTER TYPE``, ``VALIDATE CONSTRAINT``,
``UPDATE``...) stays an ``ExecuteSQLOp`` with its parsed statement, for the
raw-SQL rules.

Parsers: pglast on PostgreSQL (:mod:`.postgresql`), sqlglot elsewhere
(:mod:`.sqlglot_tree`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from alembic.operations import ops

from db_migrate.capture.model import RecordedOp, SqlStatement


def translate(stmt: SqlStatement, dialect: str) -> tuple[list[ops.MigrateOperation], SqlStatement | None]:
    """The alembic operations ``stmt`` amounts to, and what is left of it (None: nothing).

    Never raises: a statement the translation does not understand is left whole.
    """
    if stmt.parsed is None or stmt.parse_error:
        return [], stmt
    try:
        if dialect == "postgresql":
            from db_migrate.capture.rawsql import postgresql as tr
        else:
            from db_migrate.capture.rawsql import sqlglot_tree as tr
        fn = tr.TRANSLATORS.get(type(stmt.parsed))
        if fn is None:
            return [], stmt
        result, rest = fn(stmt.parsed) if dialect == "postgresql" else fn(stmt.parsed, dialect)
    except Exception:  # a shape of statement the translators did not foresee: keep it as raw SQL
        return [], stmt
    if not result:
        return [], stmt
    return result, (None if rest is None else _rest_statement(rest, dialect))


def _rest_statement(rest: Any, dialect: str) -> SqlStatement:
    """The part of a statement with no alembic operation, as a statement of its own."""
    from db_migrate.capture.sql import parse_sql

    if dialect == "postgresql":
        from db_migrate.capture.rawsql.postgresql import deparse

        text = deparse(rest)
    else:
        from db_migrate.capture.rawsql.sqlglot_parse import SQLGLOT_DIALECTS

        text = rest.sql(dialect=SQLGLOT_DIALECTS.get(dialect, dialect))
    parsed = parse_sql(text, dialect)
    return parsed[0] if len(parsed) == 1 else SqlStatement(text=text, kind="ALTER TABLE", parsed=rest)


def execute_text(entry: RecordedOp) -> str | None:
    """The SQL an ``op.execute`` entry runs, when it is written out (a string, or ``sa.text`` rendered)."""
    sqltext = entry.op.sqltext  # type: ignore[attr-defined]
    if isinstance(sqltext, str):
        return sqltext
    if type(sqltext).__name__ in ("TextClause", "DDL") and entry.sql:
        # rendered with literal binds: bind parameters become values; sa.DDL's %(name)s become its context's values
        return ";\n".join(entry.sql)
    return None


def temporary_table(stmt: SqlStatement) -> str | None:
    """The table ``CREATE TEMP TABLE`` (``... AS SELECT``) creates, or None."""
    node = stmt.parsed
    kind = type(node).__name__
    if kind == "CreateStmt" and node.relation is not None and node.relation.relpersistence == "t":
        return node.relation.relname
    if kind == "CreateTableAsStmt" and node.into is not None and node.into.rel.relpersistence == "t":
        return node.into.rel.relname
    if kind == "Create" and stmt.tables:
        props = node.args.get("properties")
        if props is not None and any(type(p).__name__ == "TemporaryProperty" for p in props.expressions):
            return stmt.tables[0]
    return None


def translate_execute(entry: RecordedOp, dialect: str, temporary: set[str] | None = None) -> list[RecordedOp]:
    """Replace one recorded ``op.execute`` by its statements: alembic operations where they exist.

    Returns ``[entry]`` (with its parsed statement attached) for one statement with
    no alembic equivalent, so the common data step costs one parse.  Several
    statements become one entry each, in order, so that "created earlier in this
    phase" holds between statements of one ``op.execute`` too.
    ``temporary``: temporary tables created so far in this phase (updated here).
    Statements on them stay raw SQL: a session's scratch table for a data step
    (index it, drop it) is not a change to the schema.
    """
    from db_migrate.capture.sql import parse_sql

    text = execute_text(entry)
    if text is None:
        return [entry]
    temporary = set() if temporary is None else temporary
    statements = parse_sql(text, dialect)
    translated = []
    for stmt in statements:
        temp = temporary_table(stmt)
        if temp:
            temporary.add(temp)
        if temp or temporary.intersection(stmt.tables):
            translated.append((stmt, [], stmt))
        else:
            translated.append((stmt, *translate(stmt, dialect)))
    if len(statements) == 1 and not translated[0][1]:
        entry.statements = statements
        return [entry]
    out: list[RecordedOp] = []
    for stmt, result, rest in translated:
        for op in result:
            out.append(replace(entry, op=op, sql=[stmt.text], sql_text=stmt.text, statements=None))
        if rest is not None:
            raw = ops.ExecuteSQLOp(rest.text)
            out.append(replace(entry, op=raw, sql=[rest.text], sql_text=None, statements=[rest]))
    return out
