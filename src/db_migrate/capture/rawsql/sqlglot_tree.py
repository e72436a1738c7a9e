"""MySQL/MariaDB, SQLite (and other non-PostgreSQL) statements, parsed by sqlglot, as alembic operations.

Same contract as :mod:`.postgresql`: one sqlglot expression in, the alembic
operations it amounts to and the rest (an expression, or None) out.  MySQL's
``MODIFY``/``CHANGE COLUMN`` restate the whole column, so they become one
``AlterColumnOp`` with the new type, nullability and (for CHANGE) name.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from alembic.operations import ops
from sqlglot import exp

from db_migrate.capture.rawsql.types import sql_type

Result = tuple[list[ops.MigrateOperation], Any]

_RENAME_PAIR = re.compile(r"[`\"]?([\w.]+)[`\"]?\s+TO\s+[`\"]?([\w.]+)[`\"]?", re.IGNORECASE)
_ON_DELETE = re.compile(r"ON DELETE (CASCADE|RESTRICT|SET NULL|SET DEFAULT|NO ACTION)", re.IGNORECASE)


def _name(node: Any) -> str | None:
    return node.name if node is not None else None


def _type(dtype: exp.DataType) -> Any:
    args = [int(p.this.this if isinstance(p.this, exp.Literal) else p.this) for p in dtype.expressions if _is_int(p)]
    name = dtype.this.name if isinstance(dtype.this, exp.DataType.Type) else str(dtype.this)
    if dtype.this == exp.DataType.Type.USERDEFINED:
        name = dtype.args.get("kind") or dtype.sql()
    return sql_type(name.replace("_", " ").lower(), args)


def _is_int(p: Any) -> bool:
    v = getattr(p, "this", None)
    v = getattr(v, "this", v)
    return isinstance(v, (str, int)) and str(v).isdigit()


def _constraints(cdef: exp.ColumnDef) -> list[Any]:
    return [c.args.get("kind") for c in cdef.args.get("constraints") or ()]


def _column(cdef: exp.ColumnDef) -> sa.Column:
    kw: dict[str, Any] = {}
    args: list[Any] = []
    for k in _constraints(cdef):
        if isinstance(k, exp.NotNullColumnConstraint):
            kw["nullable"] = bool(k.args.get("allow_null"))
        elif isinstance(k, exp.DefaultColumnConstraint):
            kw["server_default"] = sa.text(k.this.sql())
        elif isinstance(k, exp.PrimaryKeyColumnConstraint):
            kw["primary_key"] = True
        elif isinstance(k, exp.UniqueColumnConstraint):
            kw["unique"] = True
        elif isinstance(k, exp.AutoIncrementColumnConstraint):
            kw["autoincrement"] = True
        elif isinstance(k, exp.GeneratedAsIdentityColumnConstraint):
            args.append(sa.Identity())
        elif isinstance(k, exp.Reference):
            table = k.this.this if isinstance(k.this, exp.Schema) else k.this
            remote = [e.name for e in getattr(k.this, "expressions", ())] or ["id"]
            args.append(sa.ForeignKey(f"{_name(table)}.{remote[0]}"))
    kind = cdef.args.get("kind")
    return sa.Column(cdef.name, _type(kind) if kind is not None else sa.types.NullType(), *args, **kw)


def _fk_parts(fk: exp.ForeignKey) -> tuple[list[str], str | None, list[str], str | None]:
    ref = fk.args.get("reference")
    target = ref.this if ref is not None else None
    table = target.this if isinstance(target, exp.Schema) else target
    remote = [e.name for e in getattr(target, "expressions", ())]
    m = _ON_DELETE.search(ref.sql()) if ref is not None else None
    return [e.name for e in fk.expressions], _name(table), remote, m.group(1).upper() if m else None


def _key_columns(node: Any) -> list[str]:
    inner = node.this if isinstance(node.this, exp.Schema) else node
    return [e.name for e in inner.expressions]


def _constraint(table: str, schema: str | None, node: Any) -> ops.MigrateOperation | None:
    name = None
    if isinstance(node, exp.Constraint):
        name, node = node.name, (node.expressions[0] if node.expressions else None)
    if isinstance(node, exp.PrimaryKey):
        return ops.CreatePrimaryKeyOp(name, table, [e.name for e in node.expressions], schema=schema)
    if isinstance(node, exp.UniqueColumnConstraint):
        if name is None and isinstance(node.this, exp.Schema) and node.this.this is not None:
            name = node.this.this.name  # ADD UNIQUE [INDEX|KEY] name (cols)
        return ops.CreateUniqueConstraintOp(name, table, _key_columns(node), schema=schema)
    if isinstance(node, exp.ForeignKey):
        local, referent, remote, ondelete = _fk_parts(node)
        if referent is None:
            return None
        return ops.CreateForeignKeyOp(name, table, referent, local, remote, source_schema=schema, ondelete=ondelete)
    if isinstance(node, exp.CheckColumnConstraint):
        return ops.CreateCheckConstraintOp(name, table, sa.text(node.this.sql()), schema=schema)
    return None


def _modify(table: str, schema: str | None, action: exp.ModifyColumn) -> ops.MigrateOperation:
    cdef = action.this
    col = _column(cdef)
    old = action.args.get("rename_from")
    kw: dict[str, Any] = {}
    if col.server_default is not None:
        kw["modify_server_default"] = col.server_default
    # MODIFY/CHANGE restate NULL/NOT NULL whether or not it changes: the old value is unknown, so
    # nullability is not claimed as a change (set-not-null would fire on every restated NOT NULL).
    return ops.AlterColumnOp(
        table, old.name if old is not None else cdef.name, schema=schema, modify_type=col.type,
        modify_name=cdef.name if old is not None and old.name != cdef.name else None, **kw,
    )


def _alter_action(table: str, schema: str | None, a: Any) -> list[ops.MigrateOperation] | None:
    if isinstance(a, exp.ColumnDef):
        return [ops.AddColumnOp(table, _column(a), schema=schema)]
    if isinstance(a, exp.ModifyColumn):
        return [_modify(table, schema, a)]
    if isinstance(a, exp.RenameColumn):
        return [ops.AlterColumnOp(table, a.this.name, schema=schema, modify_name=a.args["to"].name)]
    if isinstance(a, exp.AlterRename):
        return [ops.RenameTableOp(table, a.this.name, schema=schema)]
    if isinstance(a, exp.DropPrimaryKey):
        return [ops.DropConstraintOp("PRIMARY", table, type_="primary", schema=schema)]
    if isinstance(a, exp.AddConstraint):
        out = [_constraint(table, schema, e) for e in a.expressions]
        return out if out and all(o is not None for o in out) else None  # type: ignore[return-value]
    if isinstance(a, exp.AlterColumn):
        if a.args.get("dtype") is not None:
            return [ops.AlterColumnOp(table, a.name, schema=schema, modify_type=_type(a.args["dtype"]))]
        if a.args.get("drop") and a.args.get("default") is None and a.args.get("allow_null") is None:
            return [ops.AlterColumnOp(table, a.name, schema=schema, modify_server_default=None)]
        if a.args.get("default") is not None:
            return [ops.AlterColumnOp(table, a.name, schema=schema, modify_server_default=sa.text(a.args["default"].sql()))]
        if a.args.get("allow_null") is not None:
            return [ops.AlterColumnOp(table, a.name, schema=schema, modify_nullable=bool(a.args["allow_null"]))]
        return None
    if isinstance(a, exp.Drop):
        kind = (a.args.get("kind") or "").upper()
        names = [t.name for t in a.args.get("tables") or ()]
        exists = a.args.get("exists") or None
        if kind == "COLUMN":
            return [ops.DropColumnOp(table, n, schema=schema, if_exists=exists) for n in names]
        if kind in ("INDEX", "KEY"):
            return [ops.DropIndexOp(n, table_name=table, schema=schema, if_exists=exists) for n in names]
        if kind == "FOREIGN KEY":
            return [ops.DropConstraintOp(n, table, type_="foreignkey", schema=schema) for n in names]
        if kind in ("CONSTRAINT", "CHECK"):
            return [ops.DropConstraintOp(n, table, type_="check" if kind == "CHECK" else None, schema=schema) for n in names]
    return None


def to_alter(e: exp.Alter, dialect: str) -> Result:
    if (e.args.get("kind") or "").upper() != "TABLE" or not isinstance(e.this, exp.Table):
        return [], e
    table, schema = e.this.name, e.this.db or None
    out: list[ops.MigrateOperation] = []
    rest: list[Any] = []
    for a in e.args.get("actions") or ():
        translated = _alter_action(table, schema, a)
        if translated is None:
            rest.append(a)
        else:
            out.extend(translated)
    if not out:
        return [], e
    if not rest:
        return out, None
    remainder = e.copy()
    remainder.set("actions", [a.copy() for a in rest])
    return out, remainder


def to_create(e: exp.Create, dialect: str) -> Result:
    kind = (e.args.get("kind") or "").upper()
    if kind == "INDEX" and isinstance(e.this, exp.Index):
        idx = e.this
        table = idx.args.get("table")
        params = idx.args.get("params")
        cols = [c.this.name if isinstance(c, exp.Ordered) and isinstance(c.this, exp.Column) else sa.text(c.sql(dialect)) for c in (params.args.get("columns") if params else None) or ()]
        if table is None or not cols:
            return [], e
        return [ops.CreateIndexOp(idx.name, table.name, cols, schema=table.db or None, unique=bool(e.args.get("unique")), if_not_exists=e.args.get("exists") or None)], None
    if kind == "TABLE" and isinstance(e.this, exp.Schema) and e.args.get("expression") is None:
        table = e.this.this
        items: list[Any] = []
        for elt in e.this.expressions:
            if isinstance(elt, exp.ColumnDef):
                items.append(_column(elt))
                continue
            item = _table_constraint(elt)
            if item is not None:
                items.append(item)
            elif not isinstance(elt, exp.IndexColumnConstraint):  # KEY ix (col) inside MySQL's CREATE TABLE: an index
                return [], e
        props = e.args.get("properties")
        temporary = props is not None and any(isinstance(p, exp.TemporaryProperty) for p in props.expressions)
        if temporary:
            return [], e
        return [ops.CreateTableOp(table.name, items, schema=table.db or None, if_not_exists=e.args.get("exists") or None)], None
    return [], e


def _table_constraint(elt: Any) -> Any:
    name = None
    if isinstance(elt, exp.Constraint):
        name, elt = elt.name, (elt.expressions[0] if elt.expressions else None)
    if isinstance(elt, exp.PrimaryKey):
        return sa.PrimaryKeyConstraint(*[x.name for x in elt.expressions], name=name)
    if isinstance(elt, exp.UniqueColumnConstraint):
        return sa.UniqueConstraint(*_key_columns(elt), name=name)
    if isinstance(elt, exp.ForeignKey):
        local, referent, remote, ondelete = _fk_parts(elt)
        remote = remote or ["id"] * len(local)
        return sa.ForeignKeyConstraint(local, [f"{referent}.{r}" for r in remote], name=name, ondelete=ondelete) if referent else None
    if isinstance(elt, exp.CheckColumnConstraint):
        return sa.CheckConstraint(sa.text(elt.this.sql()), name=name)
    return None


def to_drop(e: exp.Drop, dialect: str) -> Result:
    kind = (e.args.get("kind") or "").upper()
    tables = e.args.get("tables") or []
    exists = e.args.get("exists") or None
    if kind == "TABLE" and tables and not e.args.get("temporary"):
        return [ops.DropTableOp(t.name, schema=t.db or None, if_exists=exists) for t in tables], None
    if kind == "INDEX" and tables:
        on = e.args.get("cluster")
        table = on.this.name if isinstance(on, exp.OnProperty) and on.this is not None else None
        return [ops.DropIndexOp(t.name, table_name=table, schema=t.db or None, if_exists=exists) for t in tables], None
    return [], e


def to_command(e: exp.Command, dialect: str) -> Result:
    """MySQL's ``RENAME TABLE a TO b[, c TO d]``, which sqlglot keeps as a command."""
    if str(e.this).upper() != "RENAME":
        return [], e
    text = e.expression.name if isinstance(e.expression, exp.Literal) else str(e.expression)
    m = re.match(r"\s*TABLE\s+(.*)$", text, re.IGNORECASE | re.DOTALL)
    pairs = _RENAME_PAIR.findall(m.group(1)) if m else []
    if not pairs:
        return [], e
    return [ops.RenameTableOp(a.split(".")[-1], b.split(".")[-1]) for a, b in pairs], None


TRANSLATORS = {exp.Alter: to_alter, exp.Create: to_create, exp.Drop: to_drop, exp.Command: to_command}
