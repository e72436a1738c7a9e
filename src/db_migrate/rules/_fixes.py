"""Tailored fixes: a rule's safe alternative written with the finding's own tables, columns, names and types.

A rule's ``fix`` class attribute is the catalogue entry, written for an example
table.  An agent told to "apply the fix at file:line" needs the snippet for its
own migration, ready to paste.  The builders here return that snippet, or None
when a needed name or type is unknown: the rule then falls back to the
catalogue entry (``Rule.finding(..., fix=None)``).

Alembic operations are rendered by alembic's own autogenerate renderer
(:func:`alembic.autogenerate.render_python_code`), so types, keyword arguments
and batch mode come out exactly as ``alembic revision --autogenerate`` would
write them.  Raw SQL uses the dialect's identifier quoting.  Every snippet is
checked with :func:`ast.parse` before it is returned: a builder that fails, or
produces something that is not Python, yields None (the catalogue entry)
rather than a broken snippet or a crashed rule.
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
import re
import textwrap
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from alembic.autogenerate import render_python_code
from alembic.operations import ops
from sqlalchemy import text as sqltext
from sqlalchemy import types as sqltypes

from db_migrate.capture.dialects import dialect_for
from db_migrate.rules._helpers import is_known_type, updated_columns

F = TypeVar("F", bound=Callable[..., "str | None"])

_MAX_NAME = 63  # PostgreSQL truncates identifiers longer than this (MySQL allows 64)


def parses(code: str) -> bool:
    """``code`` is Python (a snippet that is not would break the file an edit puts it in)."""
    try:
        ast.parse(textwrap.dedent(code))
    except SyntaxError:
        return False
    return True


def tailored(build: F) -> F:
    """Decorator: the builder's snippet if it succeeds and parses as Python, else None (catalogue fallback)."""

    @functools.wraps(build)
    def wrapper(*args: Any, **kwargs: Any) -> str | None:
        try:
            text = build(*args, **kwargs)
            if text:
                ast.parse(textwrap.dedent(text))
        except Exception:  # a stand-in type, an op alembic cannot render...: say the generic thing instead
            return None
        return text or None

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def op_code(op: ops.MigrateOperation, *, batch: bool = False) -> str:
    """Python for one alembic operation, as autogenerate writes it (``batch``: inside ``op.batch_alter_table``)."""
    if isinstance(op, ops.RenameTableOp):  # alembic has no renderer for it
        schema = f", schema={op.schema!r}" if op.schema else ""
        return f"op.rename_table({op.table_name!r}, {op.new_table_name!r}{schema})"
    if isinstance(op, ops.AlterColumnOp):
        op = _text_defaults(op)
    if batch and isinstance(op, (ops.AlterColumnOp, ops.AddConstraintOp, ops.DropConstraintOp)):
        table = getattr(op, "table_name", None) or op.source_table  # type: ignore[attr-defined]
        op = ops.ModifyTableOps(table, [op], schema=getattr(op, "schema", None))
    # With a dialect's context alembic renders dialect types fully qualified (JSONB(astext_type=sa.Text()));
    # without one it writes bare names (Text()) that the revision does not define.
    text = render_python_code(ops.UpgradeOps(ops=[op]), render_as_batch=batch, migration_context=_render_context())
    body = [line for line in text.splitlines() if not line.strip().startswith("# ###")]
    return textwrap.dedent("\n".join(body)).strip()


@functools.lru_cache(maxsize=1)
def _render_context() -> Any:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(dialect_name="postgresql")


def _text_defaults(op: ops.AlterColumnOp) -> ops.AlterColumnOp:
    """alter_column server defaults wrapped as alembic renders them into Python: ``sa.text('false')``.

    alembic writes a bare ``sa.text(...)`` or an expression such as ``sa.false()`` in alter_column as its SQL
    (``server_default=false``), a NameError in the pasted snippet; inside a DefaultClause it renders ``sa.text``.
    """
    from sqlalchemy.schema import DefaultClause
    from sqlalchemy.sql.elements import ClauseElement, TextClause

    changes = {}
    for attr in ("modify_server_default", "existing_server_default"):
        value = getattr(op, attr)
        if isinstance(value, TextClause):
            changes[attr] = DefaultClause(value)
        elif isinstance(value, ClauseElement):
            sql = str(value.compile(dialect=dialect_for("postgresql"), compile_kwargs={"literal_binds": True}))
            changes[attr] = DefaultClause(sqltext(sql))
    return with_(op, **changes) if changes else op


def render(*lines: Any, batch: bool = False) -> str:
    """Join snippet lines: strings as they are, operations rendered by alembic, None skipped."""
    out = []
    for item in lines:
        if item is None:
            continue
        out.append(item if isinstance(item, str) else op_code(item, batch=batch))
    return "\n".join(out)


def autocommit(*lines: Any) -> str:
    """``lines`` inside ``with op.get_context().autocommit_block():`` (outside the migration transaction)."""
    return "with op.get_context().autocommit_block():\n" + textwrap.indent(render(*lines), "    ")


def execute(sql: str) -> str:
    """``op.execute('<sql>')`` with the SQL as a Python literal."""
    return f"op.execute({sql!r})"


def with_(op: Any, kw: dict[str, Any] | None = None, **attrs: Any) -> Any:
    """A copy of an alembic operation with some attributes (and dialect keywords) replaced."""
    new = copy.copy(op)
    for k, v in attrs.items():
        setattr(new, k, v)
    if kw is not None:
        new.kw = {**getattr(op, "kw", {}), **kw}
    return new


# ---------------------------------------------------------------------------
# Names and SQL spelling
# ---------------------------------------------------------------------------


def conv_name(prefix: str, table: str, *parts: Any) -> str:
    """A name following the usual convention (``ix_orders_user_id``), shortened with a hash past 63 characters."""
    name = "_".join([prefix, table, *(str(p) for p in parts if p)])
    name = re.sub(r"[^\w]+", "_", name).strip("_").lower()
    if len(name) > _MAX_NAME:
        name = name[: _MAX_NAME - 9] + "_" + hashlib.md5(name.encode()).hexdigest()[:8]
    return name


@functools.lru_cache(maxsize=8)
def _preparer(dialect: str) -> Any:
    return dialect_for(dialect).identifier_preparer


def ident(name: str, dialect: str) -> str:
    """An identifier as the dialect writes it in SQL (quoted only when needed)."""
    return _preparer(dialect).quote(str(name))


def table_sql(table: str, schema: str | None, dialect: str) -> str:
    return f"{ident(schema, dialect)}.{ident(table, dialect)}" if schema else ident(table, dialect)


def column_names(cols: Iterable[Any]) -> list[str]:
    return [str(getattr(c, "name", c)) for c in cols]


def value_sql(t: Any) -> str | None:
    """A plain constant of type ``t`` for a backfill or server default (None when there is no obvious one)."""
    if not is_known_type(t):
        return None
    t = sqltypes.to_instance(t)
    if isinstance(t, sqltypes.Enum) and t.enums:
        return "'" + t.enums[0].replace("'", "''") + "'"
    for cls, value in (
        (sqltypes.Boolean, "false"),
        (sqltypes.Numeric, "0"),
        (sqltypes.Integer, "0"),
        (sqltypes.DateTime, "CURRENT_TIMESTAMP"),
        (sqltypes.Date, "CURRENT_DATE"),
        (sqltypes.Time, "CURRENT_TIME"),
        (sqltypes.JSON, "'{}'"),
        (sqltypes.String, "''"),
    ):
        if isinstance(t, cls):
            return value
    return None


def default_sql(default: Any) -> str | None:
    """The SQL of a server default as a revision states it (``sa.text("'EUR'")``, ``'EUR'``), or None (none given)."""
    if default is None or default is False:
        return None
    arg = getattr(default, "arg", default)
    if isinstance(arg, str):
        return "'" + arg.replace("'", "''") + "'"
    text = getattr(arg, "text", None)
    return str(text) if text else None


def known(t: Any) -> Any:
    """``t`` when it can be rendered, else None."""
    return t if t is not None and is_known_type(t) and not isinstance(sqltypes.to_instance(t), sqltypes.NullType) else None


# ---------------------------------------------------------------------------
# Shared snippets
# ---------------------------------------------------------------------------


def backfill(table: str, schema: str | None, column: str, t: Any, dialect: str, value: str | None = None) -> str:
    """``UPDATE <table> SET <column> = <value> WHERE <column> IS NULL``: a constant of the column's type unless given."""
    tsql, csql = table_sql(table, schema, dialect), ident(column, dialect)
    line = execute(f"UPDATE {tsql} SET {csql} = {value or value_sql(t) or '...'} WHERE {csql} IS NULL")
    return line if value else line + "  # the value existing rows should get; in batches on a large table"


def key_of(cap: Any, table: str) -> tuple[str, ...]:
    """The primary key's columns of ``table`` as the history creates it, else ``id`` (the usual key)."""
    return tuple(cap.context.primary_keys.get(table) or ("id",))


def backup(table: str, schema: str | None, dialect: str, columns: list[str] | None = None, where: str | None = None,
           with_: str | None = None, joined: tuple[str, str] | None = None, key: tuple[str, ...] = ("id",)) -> tuple[str, str, str]:
    """(backup table name, upgrade line that copies rows, downgrade line that puts them back).

    ``columns``: copy only these (plus the table's ``key``, :func:`key_of`) and restore them with an UPDATE;
    otherwise copy whole rows and restore them with an INSERT. ``with_``: the statement's own ``WITH ...`` its
    WHERE refers to. ``joined``: (the name the statement calls the table by, its FROM with the joined tables) of a
    DELETE that joins others (``DELETE c FROM c LEFT JOIN p ...``, ``DELETE FROM c USING p``), which its WHERE reads.
    """
    name = conv_name(table, *(columns or []), "backup")
    src, dst = table_sql(table, schema, dialect), table_sql(name, schema, dialect)
    if columns:
        cols = [ident(c, dialect) for c in columns if c not in key]
        keys = [ident(k, dialect) for k in key]
        select = ", ".join([*keys, *cols])
        up = f"CREATE TABLE {dst} AS SELECT {select} FROM {src}" + (f" WHERE {where}" if where else "")
        if dialect in ("mysql", "mariadb"):
            sets = ", ".join(f"t.{c} = b.{c}" for c in cols)
            on = " AND ".join(f"b.{k} = t.{k}" for k in keys)
            down = f"UPDATE {src} t JOIN {dst} b ON {on} SET {sets}"
        else:
            sets = ", ".join(f"{c} = b.{c}" for c in cols)
            on = " AND ".join(f"b.{k} = {src}.{k}" for k in keys)
            down = f"UPDATE {src} SET {sets} FROM {dst} b WHERE {on}"
    else:
        select = f"SELECT {joined[0]}.* FROM {joined[1]}" if joined else f"SELECT * FROM {src}"
        up = f"CREATE TABLE {dst} AS {with_ + ' ' if with_ else ''}{select}" + (f" WHERE {where}" if where else "")
        down = f"INSERT INTO {src} SELECT * FROM {dst}"
    return name, execute(up), execute(down)


def _delete_parts(stmt: Any, dialect: str) -> tuple[str | None, str | None, tuple[str, str] | None]:
    """(its WHERE condition, its WITH clause, (its target's name, its FROM) when it joins other tables) of a
    DELETE, read from pglast's or sqlglot's tree (a CTE's own WHERE is not the DELETE's), or (None, None, None)."""
    from sqlglot import exp

    from db_migrate.capture.rawsql.sqlglot_parse import SQLGLOT_DIALECTS
    from db_migrate.capture.sql import sqlglot_tree

    node = getattr(stmt.parsed, "stmt", stmt.parsed)
    if dialect == "postgresql" and type(node).__name__ == "DeleteStmt":  # pglast: the author's own spelling (now())
        from pglast.stream import RawStream

        with_, rel = node.withClause, node.relation
        target = rel.alias.aliasname if rel.alias is not None else rel.relname
        joined = (target, ", ".join(RawStream()(n) for n in (rel, *node.usingClause))) if node.usingClause else None
        return (RawStream()(node.whereClause) if node.whereClause is not None else None,
                f"WITH {'RECURSIVE ' if with_.recursive else ''}{RawStream()(with_)}" if with_ is not None else None, joined)
    read = SQLGLOT_DIALECTS.get(dialect, dialect)
    tree = sqlglot_tree(stmt.text.strip().rstrip(";"), read)
    if not isinstance(tree, exp.Delete):
        return None, None, None
    where, with_ = tree.args.get("where"), tree.args.get("with_", tree.args.get("with"))
    this, using, tables = tree.this, tree.args.get("using") or [], tree.args.get("tables") or []
    joined = None
    if this is not None and (using or this.args.get("joins")):
        target = tables[0].sql(read) if tables else (this.alias_or_name if isinstance(this, exp.Table) else None)
        joined = (target, ", ".join(t.sql(read) for t in (this, *using))) if target else None
    return (where.this.sql(read) if where is not None else None), (with_.sql(read) if with_ is not None else None), joined


@tailored
def keep_and_restore_rows(cap: Any, rec: Any, stmt: Any, table: str) -> str:
    """Copy what a raw DELETE/TRUNCATE/UPDATE destroys before it runs; put it back in the downgrade."""
    where, with_, joined = _delete_parts(stmt, cap.dialect) if stmt.kind == "DELETE" else (None, None, None)
    columns = sorted(updated_columns(stmt) or []) if stmt.kind == "UPDATE" else None
    name, keep, restore = backup(table, None, cap.dialect, columns or None, where, with_, joined, key_of(cap, table))
    # whole rows go back by position: a revision that adds or drops columns of the table moves them
    reshaped = not columns and any(isinstance(r.op, (ops.AddColumnOp, ops.DropColumnOp)) and r.table == table
                                   for r in (*cap.upgrade, *cap.downgrade))
    return render(
        f"# upgrade(), line {rec.line}: keep a copy first",
        keep,
        execute(stmt.text.strip().rstrip(";")),
        "# downgrade(): put it back"
        + (f" (this revision adds or drops columns of {table}: name them, in the order of both tables)" if reshaped else ""),
        restore,
        ops.DropTableOp(name),
    )


def not_valid_then_validate(add: Any, name: str, table: str, schema: str | None, dialect: str) -> str:
    """Add a constraint NOT VALID now (no scan), VALIDATE it in the next revision (writes go on)."""
    return render(
        add,
        "# next revision: scans without blocking writes (SHARE UPDATE EXCLUSIVE)",
        execute(f"ALTER TABLE {table_sql(table, schema, dialect)} VALIDATE CONSTRAINT {ident(name, dialect)}"),
    )


def index_concurrently(op: ops.CreateIndexOp | ops.DropIndexOp, phase: str) -> str:
    """The index operation with CONCURRENTLY inside an autocommit block, and its counterpart for the other phase."""
    other = "downgrade" if phase == "upgrade" else "upgrade"
    out = concurrent_statement(op)
    if isinstance(op, ops.CreateIndexOp):
        drop = ops.DropIndexOp(_index_name(op), table_name=op.table_name, schema=op.schema, postgresql_concurrently=True)
        out += f"\n# {other}():\n" + autocommit(drop)
    return out


def concurrent_statement(op: ops.CreateIndexOp | ops.DropIndexOp) -> str:
    """The index operation alone, with CONCURRENTLY inside an autocommit block: what replaces it in place."""
    if isinstance(op, ops.CreateIndexOp):
        return autocommit(with_(op, {"postgresql_concurrently": True}, index_name=_index_name(op)))
    return autocommit(with_(op, {"postgresql_concurrently": True}))


def _index_name(op: ops.CreateIndexOp) -> str:
    return op.index_name or conv_name("ix", op.table_name, *column_names(op.columns))


_CREATE_INDEX = re.compile(r"\bCREATE\s+(UNIQUE\s+)?INDEX\b(?!\s+CONCURRENTLY)", re.IGNORECASE)
_DROP_INDEX = re.compile(r"\bDROP\s+INDEX\b(?!\s+CONCURRENTLY)", re.IGNORECASE)
_INDEX_NAME = re.compile(r"\bINDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?([\w\".]+)\s+ON\b", re.IGNORECASE)


def raw_index_concurrently(sql: str, phase: str) -> str:
    """A raw CREATE/DROP INDEX rewritten with CONCURRENTLY in an autocommit block (plus the drop for a create)."""
    sql = sql.strip().rstrip(";")
    new = _DROP_INDEX.sub("DROP INDEX CONCURRENTLY", _CREATE_INDEX.sub(lambda m: f"CREATE {m.group(1) or ''}INDEX CONCURRENTLY", sql))
    out = autocommit(execute(new))
    m = _INDEX_NAME.search(sql)
    if m and sql.upper().startswith("CREATE"):
        other = "downgrade" if phase == "upgrade" else "upgrade"
        out += f"\n# {other}():\n" + autocommit(execute(f"DROP INDEX CONCURRENTLY IF EXISTS {m.group(1)}"))
    return out


def inverse(op: ops.MigrateOperation) -> ops.MigrateOperation | None:
    """What undoes ``op``, from alembic's own ``reverse()`` (None when alembic cannot tell: dropped objects, raw SQL)."""
    if isinstance(op, ops.RenameTableOp):
        return ops.RenameTableOp(op.new_table_name, op.table_name, schema=op.schema)
    if isinstance(op, ops.DropTableOp) and op._reverse is None:  # would re-create the table without columns
        return None
    if isinstance(op, ops.DropIndexOp) and op._reverse is None:
        return None  # its definition is not here (raw DROP INDEX): reverse() would invent 'no_table' and column 'x'
    if isinstance(op, ops.AlterColumnOp):
        if op.modify_type is not None and known(op.existing_type) is None:
            return None  # the old type is unknown: reverse() would "restore" nothing
        if op.modify_nullable is not None and op.existing_nullable is None:
            op = with_(op, existing_nullable=not op.modify_nullable)
        if op.modify_server_default is not False and op.existing_server_default is False:
            return None  # the old default is unknown
    try:
        rev = op.reverse()
    except Exception:  # drop_column/drop_constraint/execute: the original is not known
        return None
    if isinstance(op, ops.AlterColumnOp) and op.modify_name:
        # alembic's reverse() keeps the new name as a modify_name onto itself: the undo renames it back
        rev.column_name, rev.modify_name = op.modify_name, op.column_name
    if isinstance(rev, (ops.DropConstraintOp, ops.DropIndexOp)) and not (getattr(rev, "constraint_name", None) or getattr(rev, "index_name", None)):
        return None  # unnamed: a drop cannot name it (unnamed-constraint says so)
    return rev
