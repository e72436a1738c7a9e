"""Parse the SQL a migration hands to ``op.execute``.

On PostgreSQL the statements are parsed with pglast (the real PostgreSQL
parser); on MySQL/MariaDB, SQLite and the others with sqlglot (a SQL parser
with those dialects).  Either gives the statement kind, the tables, whether an
UPDATE or DELETE has a WHERE clause, and the tree that
:mod:`db_migrate.capture.rawsql` turns into alembic operations.  A keyword scan
only names the kind of a statement that does not parse.
"""

from __future__ import annotations

import re
from typing import Any

from db_migrate.capture.statement import SqlStatement, keyword_statement

_PG_KIND = {
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "InsertStmt": "INSERT",
    "SelectStmt": "SELECT",
    "TruncateStmt": "TRUNCATE",
    "DropStmt": "DROP",
    "AlterTableStmt": "ALTER TABLE",
    "IndexStmt": "CREATE INDEX",
    "CreateStmt": "CREATE TABLE",
    "AlterEnumStmt": "ALTER TYPE",
    "VariableSetStmt": "SET",
    "RenameStmt": "RENAME",
    "DoStmt": "DO",
    "LockStmt": "LOCK",
    "CreateExtensionStmt": "CREATE EXTENSION",
}


VALIDATE = "VALIDATE CONSTRAINT"
"""Kind of ``ALTER TABLE t VALIDATE CONSTRAINT c``: checks existing rows against a NOT VALID constraint."""

_ADD_VALUE = re.compile(r"\bADD\s+VALUE\b", re.IGNORECASE)
# SQLite's settings of the connection or the file (secure_delete, auto_vacuum, foreign_keys): no schema, no rows
_PRAGMA = re.compile(r"^\s*PRAGMA\b", re.IGNORECASE)
_IF_NOT_EXISTS = re.compile(r"\bIF\s+NOT\s+EXISTS\b", re.IGNORECASE)


#: Statement kinds that change no schema and no row a downgrade could restore: statistics, vacuum, index
#: rebuilds, materialized view refreshes, sequence positions (``SELECT setval(...)``), reads.
MAINTENANCE_KINDS = ("VACUUM", "ANALYZE", "REINDEX", "REFRESHMATVIEW", "CLUSTER", "CHECKPOINT", "SELECT", "OPTIMIZE")


def needs_no_inverse(stmt: SqlStatement) -> bool:
    """A statement a downgrade rightly leaves in place (:data:`MAINTENANCE_KINDS` among them).

    Transaction control; ``VALIDATE CONSTRAINT`` (it only checks rows); ``CREATE EXTENSION IF NOT EXISTS`` (without it a
    re-upgrade fails on the extension the downgrade left); ``ALTER TYPE ... ADD
    VALUE`` (PostgreSQL cannot drop an enum value); a SQLite ``PRAGMA``; an UPDATE that only gives NULLs a value (:func:`filled_nulls`:
    it overwrites nothing, and the downgrade could not tell the filled rows apart; :func:`overwrites_only_nulls`).
    """
    kind = stmt.kind.upper()
    if filled_nulls(stmt) is not None or _PRAGMA.match(stmt.text) or overwrites_only_nulls(stmt):
        return True
    if kind in ("TRANSACTION", "COMMIT", "BEGIN", VALIDATE) or kind in MAINTENANCE_KINDS:
        return True
    if kind == "CREATE EXTENSION":
        return bool(_IF_NOT_EXISTS.search(stmt.text))
    return kind == "ALTER TYPE" and bool(_ADD_VALUE.search(stmt.text))


_FILL_NULLS = re.compile(
    r"^\s*UPDATE\s+([\w\"`.]+)\s+SET\s+([\w\"`]+)\s*=\s*(.+?)\s+WHERE\s+([\w\"`.]+)\s+IS\s+NULL\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def sqlglot_tree(text: str, read: str | None = None) -> Any:
    """sqlglot's tree of one statement or expression, or None where sqlglot cannot read it (the caller then knows
    nothing, and concludes nothing)."""
    import sqlglot

    try:
        return sqlglot.parse_one(text, read=read)
    except Exception:  # sqlglot raises its own ParseError and, on odd input, others
        return None


def overwrites_only_nulls(stmt: SqlStatement) -> bool:
    """An UPDATE whose WHERE requires every column it sets to be NULL (``SET region = c.region FROM customers c
    WHERE orders.customer_id = c.id AND orders.region IS NULL``): it gives rows a value they lacked and changes no
    value that existed. Unlike :func:`filled_nulls` it need not fill every NULL row."""
    if stmt.kind.upper() != "UPDATE":
        return False
    from sqlglot import exp

    tree = sqlglot_tree(stmt.text)
    where = tree.args.get("where") if isinstance(tree, exp.Update) else None
    if where is None or not isinstance(tree.this, exp.Table):
        return False
    own = {tree.this.name.lower(), (tree.this.alias or tree.this.name).lower(), ""}
    sets = [e.this for e in tree.expressions if isinstance(e, exp.EQ) and isinstance(e.this, exp.Column)]
    if not sets or len(sets) != len(tree.expressions):
        return False
    terms = where.this.flatten() if isinstance(where.this, exp.And) else [where.this]
    null = {t.this.name.lower() for t in terms if isinstance(t, exp.Is) and isinstance(t.expression, exp.Null)
            and isinstance(t.this, exp.Column) and t.this.table.lower() in own}
    return all(c.name.lower() in null for c in sets)


_MERGES = re.compile(
    r"^\s*UPDATE\s+([\w\"`.]+)\s+SET\s+([\w\"`]+)\s*=\s*('[^']*'|-?\d+(?:\.\d+)?)\s+WHERE\s+([\w\"`.]+)\s*(?:=\s*('[^']*'|-?\d+)|IN\s*\(([^)]*)\))\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


_CONSTANT = r"(?:NULL|TRUE|FALSE|'(?:[^']|'')*'|-?\d+(?:\.\d+)?)"
_SETS_CONSTANTS = re.compile(rf"^\s*UPDATE\s+[\w\"`.]+\s+SET\s+[\w\"`]+\s*=\s*{_CONSTANT}(?:\s*,\s*[\w\"`]+\s*=\s*{_CONSTANT})*\s*;?\s*$",
                            re.IGNORECASE)


def blanks_every_row(stmt: SqlStatement) -> bool:
    """``UPDATE t SET c = NULL`` (or a literal) with no WHERE: every row's old value is gone, and no UPDATE that does
    not read a copy of them can put them back."""
    return stmt.kind.upper() == "UPDATE" and bool(_SETS_CONSTANTS.match(stmt.text))


def merged_values(stmt: SqlStatement) -> tuple[str, str, str] | None:
    """(table, column, the value the others become) of ``UPDATE t SET c = 'sha256' WHERE c = 'sha1'`` (or ``IN
    (...)``): rows that held another value now hold one that rows already had, so which rows held the other is
    lost. None for any other statement (a value given to rows by another column's test is no merge)."""
    if stmt.kind.upper() != "UPDATE":
        return None
    m = _MERGES.match(stmt.text)
    if not m or m.group(4).strip('"`').rpartition(".")[2].strip('"`').lower() != m.group(2).strip('"`').lower():
        return None
    others = [m.group(5)] if m.group(5) else [v.strip() for v in (m.group(6) or "").split(",")]
    if m.group(3) in others:
        return None
    return m.group(1).rpartition(".")[2].strip('"`'), m.group(2).strip('"`'), m.group(3)


def filled_nulls(stmt: SqlStatement) -> tuple[str, str, str] | None:
    """(table, column, value) of ``UPDATE t SET c = <value> WHERE c IS NULL``: a backfill that gives the rows
    without a value one, and touches no value that existed. None for any other statement."""
    if stmt.kind.upper() != "UPDATE":
        return None
    m = _FILL_NULLS.match(stmt.text)
    if not m:
        return None
    column = m.group(2).strip('"`')
    if m.group(4).strip('"`').rpartition(".")[2].strip('"`') != column:
        return None
    table = m.group(1).rpartition(".")[2].strip('"`')
    return table, column, m.group(3).strip()


_SET_CLAUSE = re.compile(r"^\s*UPDATE\s+[\w\"`.]+\s+SET\s+(.*?)(?:\bWHERE\b|\bFROM\b|$)", re.IGNORECASE | re.DOTALL)


_SELECT_LIST = re.compile(r"\bSELECT\s+(?:DISTINCT\s+)?(.+?)\s+FROM\b", re.IGNORECASE | re.DOTALL)


def copies_column(stmt: SqlStatement, table: str, column: str) -> bool:
    """``stmt`` writes ``column``'s values of ``table`` elsewhere: an UPDATE of ``table`` into another column (``SET
    unit = tmp_unit``, ``SET creator = created_by_user_id || ':' || created_by_project_id``), or an INSERT into another
    table selecting it from ``table``: the values live on there."""
    word = re.compile(rf"(?<![\w.]){re.escape(column)}(?!\w)|\.{re.escape(column)}(?!\w)", re.IGNORECASE)
    if stmt.kind.upper() == "INSERT" and table in stmt.tables[1:]:
        # INSERT INTO links (report_id, workspace_id) SELECT id, workspace_id FROM reports: moved to another table
        m = _SELECT_LIST.search(stmt.text)
        return bool(m) and bool(word.search(m.group(1)))
    if stmt.kind.upper() != "UPDATE" or table not in stmt.tables:
        return False
    m = _SET_CLAUSE.match(stmt.text)
    if not m:
        return False
    for target, value in re.findall(r"([\w\"`]+)\s*=\s*(.+?)(?=,\s*[\w\"`]+\s*=|$)", m.group(1), re.DOTALL):
        if target.strip('"`').lower() != column.lower() and word.search(value):
            return True
    return False


def replaced_tables(steps: list[tuple[str, str | None, str | None, list[str]]]) -> set[str]:
    """Tables a phase re-creates by hand rather than drops: their rows copied into a new table (``INSERT INTO new
    ... SELECT ... FROM old``), the old one dropped, the new one renamed to the old name (what batch mode does).

    ``steps``: the phase's operations in order as (kind, table, new table name, tables an INSERT names), kind
    ``insert``, ``drop_table`` or ``rename_table``.  Whether every column was copied is table-copy-leaves-column's
    question; the table itself keeps its rows.
    """
    out = set()
    for i, (kind, src, dst, _) in enumerate(steps):
        if kind != "rename_table" or not src or not dst:
            continue
        # copy the old table into a new one, drop the old, rename the copy (src) to the old name (dst)
        copied = [j for j, (k, _, _, names) in enumerate(steps[:i]) if k == "insert" and {src, dst} <= set(names)]
        if copied and any(k == "drop_table" and t == dst for k, t, _, _ in steps[copied[0] + 1:i]):
            out.add(dst)
        # or move the old table aside (src renamed to dst), copy it into a new table of its name, drop the moved one
        copied = [j for j, (k, _, _, names) in enumerate(steps) if j > i and k == "insert" and {src, dst} <= set(names)]
        if copied and any(k == "drop_table" and t == dst for k, t, _, _ in steps[copied[0] + 1:]):
            out.add(dst)
    return out


def parse_sql(text: str, dialect: str) -> list[SqlStatement]:
    """Split and classify ``text``; never raises (a statement that does not parse has ``parse_error``)."""
    if dialect == "postgresql":
        try:
            return _parse_pg(text)
        except Exception as e:  # pglast raises ParseError; anything else is still "unparsed"
            return _parse_pg_each(text, str(e).splitlines()[0] if str(e) else type(e).__name__)
    from db_migrate.capture.rawsql.sqlglot_parse import parse_other

    return parse_other(text, dialect)


def _parse_pg_each(text: str, error: str) -> list[SqlStatement]:
    """One statement does not parse: split with PostgreSQL's scanner, so the others are still parsed."""
    from pglast.parser import scan

    try:
        ends = [t.start for t in scan(text) if t.name == "ASCII_59"]  # ';' outside literals and comments
    except Exception:  # even the scanner fails (an unterminated literal)
        return [keyword_statement(text.strip(), parse_error=error)]
    bounds = zip([0] + [e + 1 for e in ends], ends + [len(text)])
    pieces = [p for a, b in bounds if (p := text[a:b]).strip()]
    out: list[SqlStatement] = []
    for piece in pieces:
        try:
            out.extend(_parse_pg(piece))
        except Exception as e:
            out.append(keyword_statement(piece.strip(), parse_error=str(e).splitlines()[0] if str(e) else type(e).__name__))
    return out


def _parse_pg(text: str) -> list[SqlStatement]:
    import pglast
    from pglast import ast as pgast
    from pglast.enums import AlterTableType, ObjectType
    from pglast.visitors import Visitor

    out: list[SqlStatement] = []
    for raw in pglast.parse_sql(text):
        stmt = raw.stmt
        name = type(stmt).__name__
        kind = _PG_KIND.get(name, name.removesuffix("Stmt").upper())
        if isinstance(stmt, pgast.DropStmt):
            kind = "DROP " + ObjectType(stmt.removeType).name.removeprefix("OBJECT_").replace("_", " ")
        elif isinstance(stmt, pgast.AlterTableStmt) and stmt.cmds and all(c.subtype == AlterTableType.AT_ValidateConstraint for c in stmt.cmds):
            kind = VALIDATE  # takes SHARE UPDATE EXCLUSIVE (reads and writes go on) and has nothing to undo
        tables: list[str] = []
        ctes: set[str] = set()

        class _Tables(Visitor):
            def visit_RangeVar(self, ancestors, node):  # noqa: N802 (pglast's visitor naming)
                tables.append(node.relname if not node.schemaname else f"{node.schemaname}.{node.relname}")

            def visit_CommonTableExpr(self, ancestors, node):  # noqa: N802
                ctes.add(node.ctename)  # WITH x AS (...): a name the statement gives its own query, not a table

        if isinstance(stmt, pgast.CreateTableAsStmt) and stmt.into is not None:
            tables.append(stmt.into.rel.relname)  # the table it creates first, then those its query reads
        _Tables()(stmt)
        tables = [t.rpartition(".")[2] for t in tables if t not in ctes]
        has_where = None
        if isinstance(stmt, (pgast.UpdateStmt, pgast.DeleteStmt)):
            has_where = stmt.whereClause is not None
        if isinstance(stmt, pgast.RenameStmt) and stmt.relation is not None and not stmt.subname and stmt.newname:
            tables.append(stmt.newname)  # ALTER TABLE/INDEX a RENAME TO b names both (a column rename has subname)
        if isinstance(stmt, pgast.DropStmt) and stmt.objects:
            on_table = kind in ("DROP TRIGGER", "DROP RULE", "DROP POLICY")  # (table, name): the table is the one before
            for obj in stmt.objects:
                names = [getattr(n, "sval", None) for n in (obj if isinstance(obj, tuple) else ())]
                name = names[-2] if on_table and len(names) > 1 else (names[-1] if names and not on_table else None)
                if name:
                    tables.append(name)
        start = raw.stmt_location or 0
        length = raw.stmt_len or len(text) - start
        out.append(SqlStatement(text=text[start : start + length].strip(), kind=kind, tables=list(dict.fromkeys(tables)), has_where=has_where, parsed=stmt))
    return out
