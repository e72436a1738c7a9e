"""PostgreSQL statements (pglast's tree) turned into alembic operations.

Each ``to_*`` function takes one pglast statement node and returns the alembic
operations it amounts to plus the part that has no alembic equivalent (as a
pglast node, or None).  ``ALTER TABLE`` with several sub-commands yields one
operation per sub-command it knows; the others stay together as a smaller
``ALTER TABLE`` statement, deparsed by pglast.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.operations import ops
from pglast import ast as pgast
from pglast.enums import AlterTableType as AT
from pglast.enums import ConstrType as CT
from pglast.enums import ObjectType as OT
from pglast.stream import RawStream

from db_migrate.capture.rawsql.types import SERIAL_NAMES, sql_type

Result = tuple[list[ops.MigrateOperation], Any]
"""(operations, the rest as a pglast node or None)."""

_FK_ACTIONS = {"r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}  # 'a' (NO ACTION) is the default


def deparse(node: Any) -> str:
    """SQL text of a pglast node (an expression or a statement)."""
    return RawStream()(node)


def _names(items: Any) -> list[str]:
    return [n.sval for n in items or () if isinstance(n, pgast.String)]


def _type(type_name: pgast.TypeName) -> tuple[Any, str]:
    """(SQLAlchemy type, its SQL name) of a pglast TypeName."""
    name = _names(type_name.names)[-1]
    args = [m.val.ival for m in type_name.typmods or () if isinstance(m, pgast.A_Const) and isinstance(m.val, pgast.Integer)]
    return sql_type(name, args, array=bool(type_name.arrayBounds)), name


def _column(table: str, cdef: pgast.ColumnDef) -> sa.Column:
    """A SQLAlchemy Column for a column definition, with what alembic's rules read: NOT NULL, default, key, identity."""
    type_, type_name = _type(cdef.typeName)
    kw: dict[str, Any] = {}
    args: list[Any] = []
    if type_name.lower() in SERIAL_NAMES:  # a sequence fills it: NOT NULL with a nextval() default
        kw.update(nullable=False, server_default=sa.text(f"nextval('{table}_{cdef.colname}_seq'::regclass)"))
    if cdef.is_not_null:
        kw["nullable"] = False
    for c in cdef.constraints or ():
        t = c.contype
        if t == CT.CONSTR_NOTNULL:
            kw["nullable"] = False
        elif t == CT.CONSTR_NULL:
            kw["nullable"] = True
        elif t == CT.CONSTR_DEFAULT and c.raw_expr is not None:
            kw["server_default"] = sa.text(deparse(c.raw_expr))
        elif t == CT.CONSTR_PRIMARY:
            kw["primary_key"] = True
        elif t == CT.CONSTR_UNIQUE:
            kw["unique"] = True
        elif t == CT.CONSTR_FOREIGN and c.pktable is not None:
            remote = (_names(c.pk_attrs) or ["id"])[0]
            args.append(sa.ForeignKey(f"{c.pktable.relname}.{remote}", ondelete=_FK_ACTIONS.get(c.fk_del_action)))
        elif t == CT.CONSTR_IDENTITY:
            args.append(sa.Identity(always=c.generated_when == "a"))
        elif t == CT.CONSTR_GENERATED and c.raw_expr is not None:
            args.append(sa.Computed(sa.text(deparse(c.raw_expr)), persisted=True))
    return sa.Column(cdef.colname, type_, *args, **kw)


def _constraint(table: str, schema: str | None, c: pgast.Constraint) -> ops.MigrateOperation | None:
    """The alembic operation adding table constraint ``c`` (None: no equivalent, e.g. USING INDEX, EXCLUDE)."""
    name = c.conname
    if c.indexname:  # ADD CONSTRAINT ... USING INDEX: attaches an existing index, builds nothing
        return None
    if c.contype == CT.CONSTR_PRIMARY:
        return ops.CreatePrimaryKeyOp(name, table, _names(c.keys), schema=schema)
    if c.contype == CT.CONSTR_UNIQUE:
        return ops.CreateUniqueConstraintOp(name, table, _names(c.keys), schema=schema)
    if c.contype == CT.CONSTR_FOREIGN and c.pktable is not None:
        kw: dict[str, Any] = {}
        if c.skip_validation:
            kw["postgresql_not_valid"] = True
        return ops.CreateForeignKeyOp(
            name, table, c.pktable.relname, _names(c.fk_attrs), _names(c.pk_attrs),
            source_schema=schema, referent_schema=c.pktable.schemaname,
            ondelete=_FK_ACTIONS.get(c.fk_del_action), onupdate=_FK_ACTIONS.get(c.fk_upd_action), **kw,
        )
    if c.contype == CT.CONSTR_CHECK and c.raw_expr is not None:
        kw = {"postgresql_not_valid": True} if c.skip_validation else {}
        return ops.CreateCheckConstraintOp(name, table, sa.text(deparse(c.raw_expr)), schema=schema, **kw)
    return None


def _primary_key_name(name: str | None, stmt: pgast.AlterTableStmt) -> bool:
    """A dropped constraint is the primary key: PostgreSQL's own name for it, or the statement adds a new one."""
    if name and name.endswith("_pkey"):
        return True
    return any(
        cmd.subtype == AT.AT_AddConstraint and isinstance(cmd.def_, pgast.Constraint) and cmd.def_.contype == CT.CONSTR_PRIMARY
        for cmd in stmt.cmds or ()
    )


def _alter_cmd(stmt: pgast.AlterTableStmt, cmd: pgast.AlterTableCmd) -> list[ops.MigrateOperation] | None:
    table, schema = stmt.relation.relname, stmt.relation.schemaname
    st, name = cmd.subtype, cmd.name
    if st == AT.AT_AddColumn and isinstance(cmd.def_, pgast.ColumnDef):
        return [ops.AddColumnOp(table, _column(table, cmd.def_), schema=schema, if_not_exists=cmd.missing_ok or None)]
    if st == AT.AT_DropColumn:
        return [ops.DropColumnOp(table, name, schema=schema, if_exists=cmd.missing_ok or None)]
    if st == AT.AT_AlterColumnType and isinstance(cmd.def_, pgast.ColumnDef):
        kw = {"postgresql_using": deparse(cmd.def_.raw_default)} if cmd.def_.raw_default is not None else {}
        return [ops.AlterColumnOp(table, name, schema=schema, modify_type=_type(cmd.def_.typeName)[0], **kw)]
    if st in (AT.AT_SetNotNull, AT.AT_DropNotNull):
        return [ops.AlterColumnOp(table, name, schema=schema, modify_nullable=st == AT.AT_DropNotNull)]
    if st == AT.AT_ColumnDefault:
        default = sa.text(deparse(cmd.def_)) if cmd.def_ is not None else None
        return [ops.AlterColumnOp(table, name, schema=schema, modify_server_default=default)]
    if st == AT.AT_AddConstraint and isinstance(cmd.def_, pgast.Constraint):
        op = _constraint(table, schema, cmd.def_)
        return [op] if op is not None else None
    if st == AT.AT_DropConstraint:
        type_ = "primary" if _primary_key_name(name, stmt) else None
        return [ops.DropConstraintOp(name, table, type_=type_, schema=schema, if_exists=cmd.missing_ok or None)]
    return None  # VALIDATE CONSTRAINT, SET STATISTICS, OWNER TO, triggers...: no alembic operation


def to_alter_table(stmt: pgast.AlterTableStmt) -> Result:
    if stmt.objtype != OT.OBJECT_TABLE or stmt.relation is None:
        return [], stmt
    out: list[ops.MigrateOperation] = []
    rest: list[pgast.AlterTableCmd] = []
    for cmd in stmt.cmds or ():
        translated = _alter_cmd(stmt, cmd)
        if translated is None:
            rest.append(cmd)
        else:
            out.extend(translated)
    if not rest:
        return out, None
    if not out:
        return [], stmt
    return out, pgast.AlterTableStmt(relation=stmt.relation, cmds=tuple(rest), objtype=stmt.objtype, missing_ok=stmt.missing_ok)


def to_rename(stmt: pgast.RenameStmt) -> Result:
    rel = stmt.relation
    if rel is None:
        return [], stmt
    if stmt.renameType == OT.OBJECT_COLUMN and stmt.relationType == OT.OBJECT_TABLE:
        return [ops.AlterColumnOp(rel.relname, stmt.subname, schema=rel.schemaname, modify_name=stmt.newname)], None
    if stmt.renameType == OT.OBJECT_TABLE:
        return [ops.RenameTableOp(rel.relname, stmt.newname, schema=rel.schemaname)], None
    return [], stmt


def to_index(stmt: pgast.IndexStmt) -> Result:
    if stmt.relation is None or stmt.idxname is None:
        return [], stmt
    columns: list[Any] = [e.name if e.name else sa.text(deparse(e.expr)) for e in stmt.indexParams or ()]
    kw: dict[str, Any] = {}
    if stmt.concurrent:
        kw["postgresql_concurrently"] = True
    if stmt.accessMethod and stmt.accessMethod != "btree":
        kw["postgresql_using"] = stmt.accessMethod
    if stmt.whereClause is not None:
        kw["postgresql_where"] = sa.text(deparse(stmt.whereClause))
    op = ops.CreateIndexOp(
        stmt.idxname, stmt.relation.relname, columns, schema=stmt.relation.schemaname,
        unique=bool(stmt.unique), if_not_exists=stmt.if_not_exists or None, **kw,
    )
    return [op], None


def to_drop(stmt: pgast.DropStmt) -> Result:
    objects = [_names(o) for o in stmt.objects or () if isinstance(o, tuple)]
    if not objects or any(not o for o in objects):
        return [], stmt
    exists = stmt.missing_ok or None
    if stmt.removeType == OT.OBJECT_TABLE:
        return [ops.DropTableOp(o[-1], schema=o[-2] if len(o) > 1 else None, if_exists=exists) for o in objects], None
    if stmt.removeType == OT.OBJECT_INDEX:
        kw = {"postgresql_concurrently": True} if stmt.concurrent else {}
        return [ops.DropIndexOp(o[-1], schema=o[-2] if len(o) > 1 else None, if_exists=exists, **kw) for o in objects], None
    return [], stmt


def to_create_table(stmt: pgast.CreateStmt) -> Result:
    rel = stmt.relation
    if rel is None or rel.relpersistence == "t" or stmt.inhRelations or stmt.partbound is not None or stmt.ofTypename is not None:
        return [], stmt  # temporary, inherited, partition or typed tables: no alembic equivalent
    items: list[Any] = []
    for elt in stmt.tableElts or ():
        if isinstance(elt, pgast.ColumnDef):
            items.append(_column(rel.relname, elt))
        elif isinstance(elt, pgast.Constraint):
            item = _table_constraint(elt)
            if item is None:
                return [], stmt
            items.append(item)
        else:  # LIKE other_table
            return [], stmt
    return [ops.CreateTableOp(rel.relname, items, schema=rel.schemaname, if_not_exists=stmt.if_not_exists or None)], None


def _table_constraint(c: pgast.Constraint) -> Any:
    """A constraint inside CREATE TABLE as a SQLAlchemy constraint object."""
    name = c.conname
    if c.contype == CT.CONSTR_PRIMARY:
        return sa.PrimaryKeyConstraint(*_names(c.keys), name=name)
    if c.contype == CT.CONSTR_UNIQUE:
        return sa.UniqueConstraint(*_names(c.keys), name=name)
    if c.contype == CT.CONSTR_CHECK and c.raw_expr is not None:
        return sa.CheckConstraint(sa.text(deparse(c.raw_expr)), name=name)
    if c.contype == CT.CONSTR_FOREIGN and c.pktable is not None:
        local, remote = _names(c.fk_attrs), _names(c.pk_attrs) or ["id"]
        return sa.ForeignKeyConstraint(local, [f"{c.pktable.relname}.{r}" for r in remote], name=name, ondelete=_FK_ACTIONS.get(c.fk_del_action))
    return None


TRANSLATORS = {
    pgast.AlterTableStmt: to_alter_table,
    pgast.RenameStmt: to_rename,
    pgast.IndexStmt: to_index,
    pgast.DropStmt: to_drop,
    pgast.CreateStmt: to_create_table,
}
