"""Renaming columns and tables: instant in the database, breaking for the code that is running."""

from __future__ import annotations

from collections.abc import Iterator

from alembic.operations import ops

import sqlalchemy as sa

from db_migrate.rules import _fixes as fx
from db_migrate.rules._helpers import is_new_column, is_new_table, name_taken_again
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding


class RenameColumn(Rule):
    id = "rename-column"
    title = "Column renamed"
    severity = "warning"
    why = (
        "The rename itself is a catalogue change, but the application version that is running still uses the "
        "old name: every query touching the column fails from the commit until the new code is deployed "
        "(and rolling back the code breaks again). Autogenerate also cannot tell a rename from drop + add."
    )
    fix = (
        "# expand/contract: add the new column, write both, backfill, switch reads, drop the old one later\n"
        "op.add_column('users', sa.Column('full_name', sa.String(200), nullable=True))\n"
        "op.execute('UPDATE users SET full_name = name')  # in batches on a large table\n"
        "# or, on PostgreSQL, rename and keep the old name readable for one release via a view"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.alter_column('users', 'name', new_column_name='full_name')\n\n"
            "def downgrade():\n    op.alter_column('users', 'full_name', new_column_name='name')\n",
            good="def upgrade():\n    op.add_column('users', sa.Column('full_name', sa.String(200), nullable=True))\n\n"
            "def downgrade():\n    op.drop_column('users', 'full_name')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            if isinstance(rec.op, ops.AlterColumnOp) and rec.op.modify_name and not is_new_column(cap, rec) \
                    and not _column_back(cap, rec):
                yield self.finding(
                    cap,
                    f"Renames {rec.table}.{rec.op.column_name} to {rec.op.modify_name}: the running application "
                    f"still queries {rec.op.column_name} and fails until new code is deployed.",
                    rec=rec,
                    fix=self._fix(cap, rec),
                )

    @staticmethod
    @fx.tailored
    def _fix(cap, rec) -> str:
        op, d = rec.op, cap.dialect
        old, new = op.column_name, op.modify_name
        tsql = fx.table_sql(op.table_name, op.schema, d)
        typ = fx.known(op.existing_type)
        add = (
            ops.AddColumnOp(op.table_name, sa.Column(new, typ, nullable=True), schema=op.schema)
            if typ is not None
            else f"# op.add_column({op.table_name!r}, sa.Column({new!r}, <the type of {old}>, nullable=True))"
        )
        return fx.render(
            f"# expand/contract: add {new}, have the code write both, backfill, switch reads, drop {old} later",
            add,
            fx.execute(f"UPDATE {tsql} SET {fx.ident(new, d)} = {fx.ident(old, d)} WHERE {fx.ident(new, d)} IS NULL")
            + "  # in batches on a large table",
            f"# later revision, once no code uses {old}:",
            ops.DropColumnOp(op.table_name, old, schema=op.schema),
        )


class RenameTable(Rule):
    id = "rename-table"
    title = "Table renamed"
    severity = "warning"
    why = (
        "The running application (and other services, reports, grants on views) still use the old name: every "
        "query fails from the commit until new code is deployed. On PostgreSQL the rename also waits for an "
        "ACCESS EXCLUSIVE lock behind any running query on the table."
    )
    fix = (
        "# rename, then keep the old name working for one release (PostgreSQL: a simple view is updatable)\n"
        "op.rename_table('customers', 'clients')\n"
        "op.execute('CREATE VIEW customers AS SELECT * FROM clients')\n"
        "# drop the view in a later revision, once no code uses the old name"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.rename_table('customers', 'clients')\n\n"
            "def downgrade():\n    op.rename_table('clients', 'customers')\n",
            good="def upgrade():\n    op.create_table('tmp_import', sa.Column('id', sa.Integer(), primary_key=True))\n"
            "    op.rename_table('tmp_import', 'imports')\n\n"
            "def downgrade():\n    op.drop_table('imports')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            if isinstance(rec.op, ops.RenameTableOp) and not is_new_table(cap, rec) and not name_taken_again(cap, rec):
                yield self.finding(
                    cap,
                    f"Renames table {rec.table} to {rec.op.new_table_name}: the running application still queries "
                    f"{rec.table} and fails until new code is deployed.",
                    rec=rec,
                    fix=self._fix(cap, rec),
                )

    @staticmethod
    @fx.tailored
    def _fix(cap, rec) -> str:
        op, d = rec.op, cap.dialect
        view, target = fx.table_sql(op.table_name, op.schema, d), fx.table_sql(op.new_table_name, op.schema, d)
        return fx.render(
            "# rename, then keep the old name working for one release (PostgreSQL: a simple view is updatable)",
            op,
            fx.execute(f"CREATE VIEW {view} AS SELECT * FROM {target}"),
            f"# later revision, once no code uses {op.table_name}:",
            fx.execute(f"DROP VIEW {view}"),
        )


def _column_back(cap, rec) -> bool:
    """A column of the old name is added again later in the phase and the moved one's values are copied into it (the
    old one moved aside to change its type): the name the application queries never goes away, nor its values. Added
    again empty, the values moved away under the application's feet."""
    from db_migrate.capture.sql import copies_column

    added = next((r.index for r in cap.ops(rec.phase) if r.index > rec.index and isinstance(r.op, ops.AddColumnOp)
                  and r.op.table_name == rec.table and r.op.column.name == rec.op.column_name), None)
    return added is not None and any(r.index > added and copies_column(stmt, rec.table, rec.op.modify_name)
                                     for r, stmt in cap.statements(rec.phase))


RULES = (RenameColumn, RenameTable)
