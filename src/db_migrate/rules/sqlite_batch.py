"""SQLite cannot ALTER columns or constraints: those need batch mode, or a copy of the table written by hand."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from alembic.operations import ops

from db_migrate.rules import _fixes as fx
from db_migrate.rules.naming import drop_name
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
                fix=_batch(cap, rec),
            )


@fx.tailored
def _batch(cap, rec) -> str:
    """The same operation as alembic renders it in batch mode; a drop without a name gets the name it means
    (drop-constraint-without-name's), so the two fixes of one line make one that works."""
    op = rec.op
    if isinstance(op, ops.DropConstraintOp) and not op.constraint_name:
        name = drop_name(cap, rec)
        op = fx.with_(op, constraint_name=name) if name else op
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


def _copy_of(stmt) -> tuple[str, str, set[str] | None] | None:
    """``INSERT INTO new [(cols)] SELECT ... FROM old``: (new, old, the old columns its SELECT reads; None: all, ``*``).

    None when the statement is not such a copy from one table (a join, a VALUES list, an unparsed statement).
    """
    from sqlglot import exp

    tree = stmt.parsed
    if not isinstance(tree, exp.Insert) or not isinstance(tree.expression, exp.Select):
        return None
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    select = tree.expression
    source = select.args.get("from_") or select.args.get("from")  # (the key sqlglot versions give it)
    if not isinstance(target, exp.Table) or source is None or not isinstance(source.this, exp.Table) or select.args.get("joins"):
        return None
    if any(isinstance(p, exp.Star) or p.find(exp.Star) is not None for p in select.expressions):
        return target.name, source.this.name, None
    return target.name, source.this.name, {c.name for p in select.expressions for c in p.find_all(exp.Column)}


def _shape(rec_ops, table: str, before: int | None = None) -> list[str] | None:
    """The columns ``table`` has after ``rec_ops`` (up to index ``before``) when they create it (directly, or as a
    copy renamed to it), with the columns added and dropped since; None when they do not create it."""
    cols: list[str] | None = None
    made: dict[str, list[str]] = {}
    for r in rec_ops:
        if before is not None and r.index >= before:
            break
        op = r.op
        if isinstance(op, ops.CreateTableOp):
            made[op.table_name] = [c.name for c in op.columns if isinstance(c, sa.Column)]
        elif isinstance(op, ops.RenameTableOp) and op.table_name in made:
            made[op.new_table_name] = made.pop(op.table_name)
        elif isinstance(op, ops.AddColumnOp) and op.table_name in made:
            made[op.table_name].append(op.column.name)
        elif isinstance(op, ops.DropColumnOp) and op.table_name in made:
            made[op.table_name] = [c for c in made[op.table_name] if c != op.column_name]
        elif isinstance(op, ops.DropTableOp):
            made.pop(op.table_name, None)
        cols = made.get(table)
    return cols


class TableCopyLeavesColumn(Rule):
    id = "table-copy-leaves-column"
    title = "A table re-created by hand without copying one of its columns"
    severity = "error"
    phases = ("upgrade", "downgrade")
    dialects = ("sqlite", "mysql", "mariadb")
    why = (
        "Re-creating a table by hand (CREATE TABLE new, INSERT INTO new SELECT ... FROM old, DROP TABLE old, RENAME "
        "new TO old: what batch mode does for SQLite) copies only the columns the SELECT names. A column of the old "
        "table it leaves out is dropped with DROP TABLE, values and all; a downgrade can re-add it only empty. The "
        "old table's columns are known when the revision creates it or its other phase re-creates it (the downgrade "
        "that restores the table names them); otherwise nothing is said."
    )
    fix = (
        "op.execute('INSERT INTO _accounts_new (id, email, nickname) SELECT id, email, nickname FROM accounts')\n"
        "# or, if the column is meant to go: op.drop_column in its own revision, once no code reads it"
    )
    examples = (
        Example(
            bad="def upgrade():\n"
            "    op.execute('CREATE TABLE _accounts_new (id INTEGER PRIMARY KEY, email VARCHAR(200) NOT NULL)')\n"
            "    op.execute('INSERT INTO _accounts_new (id, email) SELECT id, email FROM accounts')\n"
            "    op.execute('DROP TABLE accounts')\n"
            "    op.execute('ALTER TABLE _accounts_new RENAME TO accounts')\n\n"
            "def downgrade():\n"
            "    op.execute('CREATE TABLE _accounts_old (id INTEGER PRIMARY KEY, email VARCHAR(200), nickname VARCHAR(50))')\n"
            "    op.execute('INSERT INTO _accounts_old (id, email) SELECT id, email FROM accounts')\n"
            "    op.execute('DROP TABLE accounts')\n"
            "    op.execute('ALTER TABLE _accounts_old RENAME TO accounts')\n",
            good="def upgrade():\n"
            "    op.execute('CREATE TABLE _accounts_new (id INTEGER PRIMARY KEY, email VARCHAR(200) NOT NULL, nickname VARCHAR(50))')\n"
            "    op.execute('INSERT INTO _accounts_new (id, email, nickname) SELECT id, email, nickname FROM accounts')\n"
            "    op.execute('DROP TABLE accounts')\n"
            "    op.execute('ALTER TABLE _accounts_new RENAME TO accounts')\n\n"
            "def downgrade():\n"
            "    op.execute('CREATE TABLE _accounts_old (id INTEGER PRIMARY KEY, email VARCHAR(200), nickname VARCHAR(50))')\n"
            "    op.execute('INSERT INTO _accounts_old (id, email, nickname) SELECT id, email, nickname FROM accounts')\n"
            "    op.execute('DROP TABLE accounts')\n"
            "    op.execute('ALTER TABLE _accounts_old RENAME TO accounts')\n",
            dialect="sqlite",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for phase in self.phases:
            later = cap.ops(phase)
            for rec, stmt in cap.statements(phase):
                copy = _copy_of(stmt)
                if copy is None or copy[2] is None:
                    continue
                new, old, read = copy
                after = [r.op for r in later if r.index > rec.index]
                dropped = any(isinstance(o, ops.DropTableOp) and o.table_name == old for o in after)
                if not dropped or not any(isinstance(o, ops.RenameTableOp) and (o.table_name, o.new_table_name) == (new, old) for o in after):
                    continue  # not a re-creation: the old table stays, with its columns
                other = cap.ops("downgrade" if phase == "upgrade" else "upgrade")
                # the columns old has here: made earlier in this phase, else as the other phase leaves it
                columns = _shape(later, old, before=rec.index) or _shape(other, old)
                lost = [c for c in columns or () if c not in read]
                if lost:
                    names = ", ".join(lost)
                    yield self.finding(
                        cap,
                        f"Re-creates {old} by copying it into {new}, but the copy does not read {names}: DROP TABLE {old} "
                        f"then deletes {'that column' if len(lost) == 1 else 'those columns'} with every value (data "
                        f"loss). Copy {names} too, or drop {'it' if len(lost) == 1 else 'them'} on purpose with op.drop_column.",
                        rec=rec, table=old, column=lost[0] if len(lost) == 1 else None,
                    )


RULES = (SqliteAlterNeedsBatch, SqliteBatchCascade, TableCopyLeavesColumn)
