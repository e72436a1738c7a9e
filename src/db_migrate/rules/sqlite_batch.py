"""SQLite cannot ALTER columns or constraints: those need batch mode."""

from __future__ import annotations

from collections.abc import Iterator

from alembic.operations import ops

from db_migrate.rules import _fixes as fx
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding


class SqliteAlterNeedsBatch(Rule):
    id = "sqlite-alter-needs-batch"
    title = "ALTER of a column or constraint on SQLite outside batch mode"
    severity = "error"
    phases = ("upgrade", "downgrade")
    dialects = ("sqlite",)
    why = (
        "SQLite's ALTER TABLE can only add, drop and rename columns and rename tables. Changing a column's type, "
        "nullability or default, or adding/dropping a constraint, fails at runtime ('near \"ALTER\": syntax "
        "error' or alembic's NotImplementedError). Alembic's batch mode recreates the table instead."
    )
    fix = (
        "with op.batch_alter_table('users') as batch_op:\n"
        "    batch_op.alter_column('email', existing_type=sa.String(200), nullable=False)\n"
        "    batch_op.create_unique_constraint('uq_users_email', ['email'])"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.alter_column('users', 'email', existing_type=sa.String(200), nullable=False)\n\n"
            "def downgrade():\n    with op.batch_alter_table('users') as b:\n"
            "        b.alter_column('email', existing_type=sa.String(200), nullable=True)\n",
            good="def upgrade():\n    with op.batch_alter_table('users') as b:\n"
            "        b.alter_column('email', existing_type=sa.String(200), nullable=False)\n\n"
            "def downgrade():\n    with op.batch_alter_table('users') as b:\n"
            "        b.alter_column('email', existing_type=sa.String(200), nullable=True)\n",
            dialect="sqlite",
        ),
        Example(
            bad="def upgrade():\n    op.create_unique_constraint('uq_users_email', 'users', ['email'])\n\n"
            "def downgrade():\n    op.drop_constraint('uq_users_email', 'users', type_='unique')\n",
            good="def upgrade():\n    op.add_column('users', sa.Column('email2', sa.String(200), nullable=True))\n\n"
            "def downgrade():\n    op.drop_column('users', 'email2')\n",
            dialect="sqlite",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            op = rec.op
            if rec.batch_table:
                continue
            if isinstance(op, ops.AlterColumnOp):
                if op.modify_name and not (op.modify_type is not None or op.modify_nullable is not None or op.modify_server_default is not False):
                    continue  # RENAME COLUMN: native since SQLite 3.25
                what = f"alter_column on {rec.table}.{op.column_name}"
            elif isinstance(op, (ops.AddConstraintOp, ops.DropConstraintOp)):
                what = f"{rec.kind} on {rec.table}"
            else:
                continue
            yield self.finding(
                cap,
                f"{what} outside batch mode: SQLite cannot ALTER columns or constraints, so this fails when it runs. "
                f"Use op.batch_alter_table({rec.table!r}).",
                rec=rec,
                fix=_batch(rec.op),
            )


@fx.tailored
def _batch(op) -> str:
    """The same operation as alembic renders it in batch mode."""
    return fx.op_code(op, batch=True)


RULES = (SqliteAlterNeedsBatch,)
