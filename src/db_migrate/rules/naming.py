"""Constraints and indexes created without a name."""

from __future__ import annotations

import re
from collections.abc import Iterator

import sqlalchemy as sa
from alembic.operations import ops

from db_migrate.rules import _fixes as fx
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding

_OP_WHAT = {
    ops.CreateForeignKeyOp: ("foreign key", "fk"),
    ops.CreateUniqueConstraintOp: ("unique constraint", "uq"),
    ops.CreateCheckConstraintOp: ("check constraint", "ck"),
}
_CONSTRAINT_KEY = {sa.UniqueConstraint: "uq", sa.ForeignKeyConstraint: "fk", sa.CheckConstraint: "ck"}

# In rendered DDL: a constraint or index that carries a name (alembic applied the project's naming convention).
_NAMED_SQL = re.compile(
    r"\bADD\s+CONSTRAINT\s|\bCREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(IF\s+NOT\s+EXISTS\s+)?(?!ON\b)[\w\"`.]+\s+ON\b",
    re.IGNORECASE,
)
# In rendered DDL: a constraint without one (ADD UNIQUE (x), FOREIGN KEY(x) without CONSTRAINT <name> before it).
_CONSTRAINT_SQL = re.compile(r"\b(UNIQUE|FOREIGN\s+KEY|CHECK)\s*\(", re.IGNORECASE)
_NAMED_CONSTRAINT_SQL = re.compile(r"\bCONSTRAINT\s+[\w\"`.]+\s+(UNIQUE|FOREIGN\s+KEY|CHECK)\s*\(", re.IGNORECASE)


def _unnamed_in_column(col: sa.Column) -> list[tuple[str, str]]:
    """(what, convention key) for what ``Column(...)`` declares inline without a name (unique=True, ForeignKey, CHECK)."""
    out = []
    if col.unique:
        out.append((f"unique=True on {col.name}", "uq"))
    out += [(f"ForeignKey({fk.target_fullname!r}) on {col.name}", "fk") for fk in col.foreign_keys if not fk.name]
    out += [(f"CHECK on {col.name}", "ck") for c in col.constraints if isinstance(c, sa.CheckConstraint) and not c.name]
    return out


def _unnamed_in_table(op: ops.CreateTableOp) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in op.columns:
        if isinstance(item, sa.Column):
            out += _unnamed_in_column(item)
        elif type(item) in _CONSTRAINT_KEY and not item.name:
            out.append((f"a {type(item).__name__} on {op.table_name}", _CONSTRAINT_KEY[type(item)]))
    return out


def _still_unnamed(cap, rec, items: list[tuple[str, str]]) -> list[str]:
    """The items alembic leaves unnamed: the rendered DDL says so when there is one, else the naming convention.

    alembic names constraints from ``target_metadata``'s naming convention (read from env.py) and indexes from
    SQLAlchemy's default ``ix_%(column_0_label)s`` one, so an unnamed op in the source is often named in the DDL.
    """
    sql = "\n".join(rec.sql)
    if sql and len(_CONSTRAINT_SQL.findall(sql)) <= len(_NAMED_CONSTRAINT_SQL.findall(sql)):
        return []  # every constraint in the DDL has a name
    return [what for what, key in items if not cap.context.names(key)]


def needs_naming_convention(cap) -> bool:
    """The revision creates a constraint or index without a name: what alembic names it depends on the convention."""
    for rec in cap.upgrade + cap.downgrade:
        op = rec.op
        if type(op) in _OP_WHAT and not op.constraint_name or isinstance(op, ops.CreateIndexOp) and not op.index_name:
            return True
        if isinstance(op, ops.CreateTableOp) and _unnamed_in_table(op) or isinstance(op, ops.AddColumnOp) and _unnamed_in_column(op.column):
            return True
    return False


@fx.tailored
def _named(cap, rec) -> str | None:
    """The same operation with conventional names (``fk_<table>_<column>_<referred table>``...).

    A column's inline unique=True / ForeignKey becomes a named create_unique_constraint / create_foreign_key
    after the add_column. create_table is left to the catalogue entry (a naming_convention fixes it wholesale).
    """
    op = rec.op
    if isinstance(op, ops.CreateForeignKeyOp):
        return fx.op_code(fx.with_(op, constraint_name=fx.conv_name("fk", op.source_table, *op.local_cols, op.referent_table)))
    if isinstance(op, ops.CreateUniqueConstraintOp):
        return fx.op_code(fx.with_(op, constraint_name=fx.conv_name("uq", op.table_name, *fx.column_names(op.columns))))
    if isinstance(op, ops.CreateCheckConstraintOp):
        return fx.op_code(fx.with_(op, constraint_name=fx.conv_name("ck", op.table_name, "check")))
    if isinstance(op, ops.CreateIndexOp):
        return fx.op_code(fx.with_(op, index_name=fx.conv_name("ix", op.table_name, *fx.column_names(op.columns))))
    if not isinstance(op, ops.AddColumnOp) or any(isinstance(c, sa.CheckConstraint) for c in op.column.constraints):
        return None
    col, table = op.column, op.table_name
    plain = col._copy()
    plain.unique = False
    lines: list = [ops.AddColumnOp(table, plain, schema=op.schema)]
    if col.unique:
        lines.append(ops.CreateUniqueConstraintOp(fx.conv_name("uq", table, col.name), table, [col.name], schema=op.schema))
    for fk in col.foreign_keys:
        lines.append(ops.CreateForeignKeyOp(
            fk.name or fx.conv_name("fk", table, col.name, fk.column.table.name), table, fk.column.table.name,
            [col.name], [fk.column.name], source_schema=op.schema, ondelete=fk.ondelete, onupdate=fk.onupdate,
        ))
    return fx.render(*lines, batch=cap.dialect == "sqlite")


class UnnamedConstraint(Rule):
    id = "unnamed-constraint"
    title = "Constraint or index created without a name"
    severity = "warning"
    phases = ("upgrade", "downgrade")
    why = (
        "Without a name the database invents one, and each invents differently (PostgreSQL users_email_key, "
        "MySQL users_ibfk_1, SQLite none at all). A later drop_constraint must name it, so downgrades and "
        "future migrations fail or differ between dev and production. Autogenerate writes None only when "
        "target_metadata has no naming_convention."
    )
    fix = (
        "# name it explicitly...\n"
        "op.create_foreign_key('fk_orders_user_id_users', 'orders', 'users', ['user_id'], ['id'])\n"
        "# ...or give the models' MetaData a naming_convention so autogenerate names everything:\n"
        "# MetaData(naming_convention={'ix': 'ix_%(column_0_label)s', 'uq': 'uq_%(table_name)s_%(column_0_name)s',\n"
        "#   'ck': 'ck_%(table_name)s_%(constraint_name)s', 'fk': 'fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s',\n"
        "#   'pk': 'pk_%(table_name)s'})"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.create_foreign_key(None, 'orders', 'users', ['user_id'], ['id'])\n\n"
            "def downgrade():\n    op.drop_constraint(None, 'orders', type_='foreignkey')\n",
            good="def upgrade():\n    op.create_foreign_key('fk_orders_user_id_users', 'orders', 'users', ['user_id'], ['id'])\n\n"
            "def downgrade():\n    op.drop_constraint('fk_orders_user_id_users', 'orders', type_='foreignkey')\n",
        ),
        Example(
            bad="def upgrade():\n    op.create_table('accounts', sa.Column('id', sa.Integer(), primary_key=True),\n"
            "                    sa.Column('email', sa.String(200), unique=True))\n\n"
            "def downgrade():\n    op.drop_table('accounts')\n",
            good="def upgrade():\n    op.create_table('accounts', sa.Column('id', sa.Integer(), primary_key=True),\n"
            "                    sa.Column('email', sa.String(200)),\n"
            "                    sa.UniqueConstraint('email', name='uq_accounts_email'))\n\n"
            "def downgrade():\n    op.drop_table('accounts')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            op = rec.op
            if type(op) in _OP_WHAT and not op.constraint_name:
                what, key = _OP_WHAT[type(op)]
                named = _NAMED_SQL.search("\n".join(rec.sql)) if rec.sql else cap.context.names(key)
                unnamed = [] if named else [f"{what} on {rec.table}"]
            elif isinstance(op, ops.CreateIndexOp) and not op.index_name:
                named = _NAMED_SQL.search("\n".join(rec.sql)) if rec.sql else cap.context.names("ix")
                unnamed = [] if named else [f"index on {rec.table}"]
            elif isinstance(op, ops.CreateTableOp):
                unnamed = _still_unnamed(cap, rec, _unnamed_in_table(op))
            elif isinstance(op, ops.AddColumnOp):
                unnamed = _still_unnamed(cap, rec, _unnamed_in_column(op.column))
            elif isinstance(op, ops.DropConstraintOp) and not op.constraint_name:
                continue  # drop-constraint-without-name: an error, not a naming style
            else:
                continue
            if unnamed:
                yield self.finding(
                    cap,
                    f"Creates without a name: {'; '.join(unnamed)}. The database picks a dialect-specific name, so "
                    f"dropping it later (downgrade, future migration) cannot name it reliably.",
                    rec=rec,
                    fix=_named(cap, rec),
                )


@fx.tailored
def _name_to_drop(cap, rec) -> str | None:
    """The drop with the name the other phase created the constraint under, when it says."""
    op = rec.op
    other = cap.downgrade if rec.phase == "upgrade" else cap.upgrade
    for r in other:
        o = r.op
        if isinstance(o, ops.AddConstraintOp) and (getattr(o, "table_name", None) or getattr(o, "source_table", None)) == op.table_name:
            name = _named(cap, r)
            if o.constraint_name:
                return fx.op_code(fx.with_(op, constraint_name=o.constraint_name))
            m = re.search(r"'([^']+)'", name or "")
            if m:
                return fx.op_code(fx.with_(op, constraint_name=m.group(1)))
    return None


class DropConstraintWithoutName(Rule):
    id = "drop-constraint-without-name"
    title = "Constraint dropped without its name (drop_constraint(None, ...))"
    severity = "error"
    phases = ("upgrade", "downgrade")
    why = (
        "DROP CONSTRAINT needs the constraint's name, and SQLAlchemy refuses to emit it for a constraint whose name "
        "is None (\"Can't emit DROP CONSTRAINT for constraint ... it has no name\"). A naming convention does not "
        "help: a drop does not know the columns the name is built from. The step fails on every database, so a "
        "rollback through this downgrade never works."
    )
    fix = "op.drop_constraint('fk_orders_user_id_users', 'orders', type_='foreignkey')"
    examples = (
        Example(
            bad="def upgrade():\n    op.create_foreign_key('fk_orders_user_id_users', 'orders', 'users', ['user_id'], ['id'])\n\n"
            "def downgrade():\n    op.drop_constraint(None, 'orders', type_='foreignkey')\n",
            good="def upgrade():\n    op.create_foreign_key('fk_orders_user_id_users', 'orders', 'users', ['user_id'], ['id'])\n\n"
            "def downgrade():\n    op.drop_constraint('fk_orders_user_id_users', 'orders', type_='foreignkey')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            if isinstance(rec.op, ops.DropConstraintOp) and not rec.op.constraint_name:
                kind = {"foreignkey": " foreign key", "unique": " unique", "check": " check", "primary": " primary key"}.get(
                    rec.op.constraint_type or "", "")
                yield self.finding(
                    cap,
                    f"{rec.phase}() drops a{kind} constraint on {rec.table} without naming it (drop_constraint(None, ...)): "
                    f"this fails on every database. Name the constraint the {'upgrade' if rec.phase == 'downgrade' else 'downgrade'} "
                    f"creates (as the database named it).",
                    rec=rec,
                    fix=_name_to_drop(cap, rec),
                )


RULES = (UnnamedConstraint, DropConstraintWithoutName)
