"""Constraints and indexes created without a name."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from alembic.operations import ops

from db_migrate.rules import _fixes as fx
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding

_OP_WHAT = {
    ops.CreateForeignKeyOp: "foreign key",
    ops.CreateUniqueConstraintOp: "unique constraint",
    ops.CreateCheckConstraintOp: "check constraint",
}


def _unnamed_in_column(col: sa.Column) -> list[str]:
    """What ``Column(...)`` declares inline without a name (unique=True, ForeignKey(...), CheckConstraint)."""
    out = []
    if col.unique:
        out.append(f"unique=True on {col.name}")
    out += [f"ForeignKey({fk.target_fullname!r}) on {col.name}" for fk in col.foreign_keys if not fk.name]
    out += [f"CHECK on {col.name}" for c in col.constraints if isinstance(c, sa.CheckConstraint) and not c.name]
    return out


def _unnamed_in_table(op: ops.CreateTableOp) -> list[str]:
    out: list[str] = []
    for item in op.columns:
        if isinstance(item, sa.Column):
            out += _unnamed_in_column(item)
        elif isinstance(item, (sa.UniqueConstraint, sa.ForeignKeyConstraint, sa.CheckConstraint)) and not item.name:
            out.append(f"a {type(item).__name__} on {op.table_name}")
    return out


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
                unnamed = [f"{_OP_WHAT[type(op)]} on {rec.table}"]
            elif isinstance(op, ops.CreateIndexOp) and not op.index_name:
                unnamed = [f"index on {rec.table}"]
            elif isinstance(op, ops.CreateTableOp):
                unnamed = _unnamed_in_table(op)
            elif isinstance(op, ops.AddColumnOp):
                unnamed = _unnamed_in_column(op.column)
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


RULES = (UnnamedConstraint,)
