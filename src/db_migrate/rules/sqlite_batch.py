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


class SqliteBatchCascade(Rule):
    id = "sqlite-batch-cascade"
    title = "SQLite batch mode re-creates a table other tables reference with ON DELETE CASCADE"
    severity = "error"
    phases = ("upgrade", "downgrade")
    dialects = ("sqlite",)
    why = (
        "Batch mode changes a SQLite table by copying it, dropping the original and renaming the copy. With foreign "
        "keys on, DROP TABLE of a parent deletes every child row referencing it ON DELETE CASCADE (and drops its "
        "triggers): the migration succeeds and the children are gone. The children are found in this revision and "
        "in the rest of the history; whether foreign keys are on is read from env.py and the revision (an error "
        "when they are, a warning naming that fact when not seen)."
    )
    fix = (
        "op.execute('PRAGMA foreign_keys=OFF')  # outside the transaction: in an autocommit_block on a live run\n"
        "with op.batch_alter_table('users') as batch_op:\n"
        "    batch_op.alter_column('name', existing_type=sa.String(20), type_=sa.String(50))\n"
        "op.execute('PRAGMA foreign_keys=ON')"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.execute('PRAGMA foreign_keys=ON')\n"
            "    op.create_table('posts', sa.Column('id', sa.Integer(), primary_key=True),\n"
            "                    sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE')))\n"
            "    with op.batch_alter_table('users') as b:\n"
            "        b.alter_column('name', existing_type=sa.String(20), type_=sa.String(50))\n\n"
            "def downgrade():\n    op.drop_table('posts')\n",
            good="def upgrade():\n    op.execute('PRAGMA foreign_keys=ON')\n"
            "    op.create_table('posts', sa.Column('id', sa.Integer(), primary_key=True),\n"
            "                    sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE')))\n"
            "    with op.batch_alter_table('posts') as b:\n"
            "        b.alter_column('user_id', existing_type=sa.Integer(), nullable=False)\n\n"
            "def downgrade():\n    op.drop_table('posts')\n",
            dialect="sqlite",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        from db_migrate.policy.conventions import (
            RECREATE_KINDS,
            cascade_children,
            cascade_message,
            foreign_keys_off,
            foreign_keys_on,
        )

        children = cascade_children([cap.source])
        if not children or foreign_keys_off(cap.source):
            return  # (a revision that turns foreign keys off around its batches guards them)
        fks = foreign_keys_on(cap.source)
        done = set()
        for rec in self.ops(cap):
            kids = children.get(rec.table or "")
            if not kids or not rec.batch_table or rec.kind not in RECREATE_KINDS or (rec.phase, rec.table) in done:
                continue
            if rec.table in cap.tables_created(rec.phase):
                continue
            done.add((rec.phase, rec.table))
            yield self.finding(cap, cascade_message(rec.table, kids, fks), rec=rec, severity=None if fks else "warning")


RULES = (SqliteAlterNeedsBatch, SqliteBatchCascade)
