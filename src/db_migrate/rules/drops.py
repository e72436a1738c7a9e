"""Dropping columns and tables in an upgrade: the data is gone and running code breaks."""

from __future__ import annotations

from collections.abc import Iterator

from alembic.operations import ops

from db_migrate.capture.sql import copies_column, replaced_tables
from db_migrate.rules import _fixes as fx
from db_migrate.rules._helpers import (
    copied_out, foreign_key_name, is_new_column, is_new_table, is_transient_table, old_key_column, only_nulls_left,
    unknown_to_history,
)
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding


class DropColumn(Rule):
    id = "drop-column"
    title = "Column dropped"
    severity = "warning"
    why = (
        "The column's data is deleted and no downgrade can bring it back. Application code (and ORM models, "
        "which select every mapped column) still reading or writing it fails the moment the migration commits, "
        "so the code must stop using it in an earlier deploy. A human must approve dropping data."
    )
    fix = (
        "# 1. deploy code that no longer reads or writes the column (SQLAlchemy: remove it from the model)\n"
        "# 2. optionally keep a copy: op.execute('CREATE TABLE users_email_backup AS SELECT id, email FROM users')\n"
        "# 3. then, in its own revision:\n"
        "op.drop_column('users', 'email')"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.drop_column('users', 'email')\n\n"
            "def downgrade():\n    op.add_column('users', sa.Column('email', sa.String(200), nullable=True))\n",
            good="def upgrade():\n    op.add_column('users', sa.Column('email2', sa.String(200), nullable=True))\n\n"
            "def downgrade():\n    op.drop_column('users', 'email2')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            if isinstance(rec.op, ops.DropColumnOp) and not is_new_column(cap, rec) and not is_transient_table(cap, rec) \
                    and not _carried(cap, rec) and not old_key_column(cap, rec) and not only_nulls_left(cap, rec):
                yield self.finding(
                    cap,
                    f"Drops column {rec.table}.{rec.column}: its data is deleted for good, and code still using it "
                    f"breaks as soon as this commits.",
                    rec=rec,
                    fix=self._fix(cap, rec),
                )

    @staticmethod
    @fx.tailored
    def _fix(cap, rec) -> str:
        op = rec.op
        # a copy is keyed by the table's key: of the key itself there is nothing to key a copy by
        key = fx.key_of(cap, op.table_name)
        copy = () if op.column_name in key else (
            f"# 2. optionally keep a copy ({', '.join(key)}: the table's key):",
            fx.backup(op.table_name, op.schema, cap.dialect, [op.column_name], key=key)[1])
        return fx.render(
            f"# 1. deploy code that no longer reads or writes {op.table_name}.{op.column_name} (remove it from the model)",
            *copy,
            f"# {3 if copy else 2}. then, in its own revision:",
            op,
            batch=cap.dialect == "sqlite" and bool(rec.batch_table),
        )


def _checked_empty(cap, rec) -> int | None:
    """The line of the guard that stops ``rec``'s phase before it when ``rec``'s table has rows."""
    from db_migrate.capture.source import emptiness_checked, parsed

    tree = parsed(cap.source)
    line = emptiness_checked(tree, rec.phase).get(rec.table) if tree is not None else None
    return line if line and rec.line and rec.line > line else None


class DropTable(Rule):
    id = "drop-table"
    title = "Table dropped"
    severity = "warning"
    why = (
        "Every row of the table is deleted and no downgrade can bring them back; code and foreign keys "
        "referencing it break. On PostgreSQL DROP TABLE also waits for an ACCESS EXCLUSIVE lock behind any running "
        "query on the table. A human must approve dropping data."
    )
    fix = (
        "# deploy code that no longer uses the table first; keep it (or rename it to <name>_deprecated) for a release\n"
        "op.rename_table('legacy_events', 'legacy_events_deprecated')\n"
        "# and drop it in a later revision once nothing uses it"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.drop_table('legacy_events')\n\n"
            "def downgrade():\n    op.create_table('legacy_events', sa.Column('id', sa.Integer(), primary_key=True))\n",
            good="def upgrade():\n    op.create_table('scratch', sa.Column('id', sa.Integer(), primary_key=True))\n"
            "    op.drop_table('scratch')\n\n"
            "def downgrade():\n    pass\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        replaced = {phase: _replaced(cap, phase) for phase in self.phases}
        for rec in self.ops(cap):
            if isinstance(rec.op, ops.DropTableOp) and not is_new_table(cap, rec) and rec.table not in replaced[rec.phase]:
                guard = _checked_empty(cap, rec)
                if guard:
                    yield self.finding(cap, f"Drops table {rec.table} after line {guard} stops the revision when it has "
                                       "rows: it only ever drops an empty table.", rec=rec, severity="info")
                    continue
                if unknown_to_history(cap, rec):
                    yield self.finding(cap, f"Drops table {rec.table} if it exists; no other revision of the history "
                                       "creates it, so it is none of the migrations' (a leftover, or made outside them).",
                                       rec=rec, severity="info")
                    continue
                moved = copied_out(cap, rec)
                if moved:
                    yield self.finding(cap, f"Drops table {rec.table} after line {moved[0]} wrote its rows into {moved[1]}: "
                                       "they live on there; check every column the code needs went too.", rec=rec, severity="info")
                    continue
                yield self.finding(
                    cap,
                    f"Drops table {rec.table}: all its rows are deleted for good, and code or foreign keys still "
                    f"referencing it break.",
                    rec=rec,
                    fix=self._fix(rec),
                )

    @staticmethod
    @fx.tailored
    def _fix(rec) -> str:
        op = rec.op
        old = ops.RenameTableOp(op.table_name, f"{op.table_name}_deprecated", schema=op.schema)
        return fx.render(
            f"# deploy code that no longer uses {op.table_name} first; keep it under another name for a release",
            old,
            f"# and drop {op.table_name}_deprecated in a later revision once nothing uses it",
        )


def _carried(cap, rec) -> bool:
    """An earlier UPDATE of the phase wrote the dropped column's values into another column of its table."""
    return any(r.index < rec.index and copies_column(stmt, rec.table, rec.op.column_name) for r, stmt in cap.statements(rec.phase))


def _replaced(cap, phase: str) -> set[str]:
    """Tables ``phase`` re-creates by hand (copied into a new table, dropped, the copy renamed to the old name)."""
    steps: list[tuple[str, str | None, str | None, list[str]]] = []
    inserts = {rec.index: stmt for rec, stmt in cap.statements(phase) if stmt.kind == "INSERT"}
    for rec in cap.ops(phase):
        if isinstance(rec.op, ops.RenameTableOp):
            steps.append(("rename_table", rec.op.table_name, rec.op.new_table_name, []))
        elif isinstance(rec.op, ops.DropTableOp):
            steps.append(("drop_table", rec.op.table_name, None, []))
        elif rec.index in inserts:
            steps.append(("insert", None, None, list(inserts[rec.index].tables)))
    return replaced_tables(steps)


class DropColumnInForeignKey(Rule):
    id = "drop-column-in-foreign-key"
    title = "Column dropped while a foreign key still uses it (MySQL/MariaDB)"
    severity = "error"
    dialects = ("mysql", "mariadb")
    phases = ("upgrade", "downgrade")
    why = (
        "MySQL and MariaDB refuse to drop a column that a foreign key still uses (MySQL 'Cannot drop column needed in a "
        "foreign key constraint', MariaDB error 1553), where PostgreSQL drops the constraint with it: a downgrade "
        "written on PostgreSQL fails there, on every server."
    )
    fix = (
        "op.drop_constraint('fk_orders_user_id', 'orders', type_='foreignkey')\n"
        "op.drop_column('orders', 'user_id')"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.add_column('orders', sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', "
            "name='fk_orders_user_id'), nullable=True))\n\ndef downgrade():\n    op.drop_column('orders', 'user_id')\n",
            good="def upgrade():\n    op.add_column('orders', sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', "
            "name='fk_orders_user_id'), nullable=True))\n\ndef downgrade():\n"
            "    op.drop_constraint('fk_orders_user_id', 'orders', type_='foreignkey')\n    op.drop_column('orders', 'user_id')\n",
            dialect="mysql",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        keys = _revision_foreign_keys(cap)
        for rec in self.ops(cap):
            if not isinstance(rec.op, ops.DropColumnOp) or (rec.table, rec.op.column_name) not in keys:
                continue
            name = keys[(rec.table, rec.op.column_name)]
            dropped = any(isinstance(r.op, (ops.DropConstraintOp, ops.DropTableOp)) and r.table == rec.table
                          and (not isinstance(r.op, ops.DropConstraintOp) or r.op.constraint_name in (name, None))
                          for r in cap.ops(rec.phase) if r.index < rec.index)
            if dropped or is_new_table(cap, rec):
                continue
            drop = fx.render(ops.DropConstraintOp(name, rec.table, type_="foreignkey"), rec.op) if name else None
            yield self.finding(
                cap, f"Drops {rec.table}.{rec.op.column_name}, which foreign key {name or '(unnamed)'} still uses: MySQL and "
                "MariaDB refuse (the constraint must be dropped first).", rec=rec, fix=drop,
            )


class DropTableStillReferenced(Rule):
    id = "drop-table-still-referenced"
    title = "Table dropped while another table's foreign key still references it"
    severity = "error"
    dialects = ("postgresql", "mysql", "mariadb")
    phases = ("upgrade", "downgrade")
    why = (
        "PostgreSQL refuses to drop a table another table's foreign key references ('other objects depend on it') "
        "unless CASCADE drops the key too, and MySQL/MariaDB refuse as well: a downgrade that drops the tables its "
        "upgrade created in creation order, parents first, fails on every server. Drop the referencing table first."
    )
    fix = "op.drop_table('order_items')  # references orders\nop.drop_table('orders')"
    examples = (
        Example(
            bad="def upgrade():\n    op.create_table('orders', sa.Column('id', sa.Integer(), primary_key=True))\n"
            "    op.create_table('order_items', sa.Column('id', sa.Integer(), primary_key=True),\n"
            "                    sa.Column('order_id', sa.Integer(), sa.ForeignKey('orders.id')))\n\n"
            "def downgrade():\n    op.drop_table('orders')\n    op.drop_table('order_items')\n",
            good="def upgrade():\n    op.create_table('orders', sa.Column('id', sa.Integer(), primary_key=True))\n"
            "    op.create_table('order_items', sa.Column('id', sa.Integer(), primary_key=True),\n"
            "                    sa.Column('order_id', sa.Integer(), sa.ForeignKey('orders.id')))\n\n"
            "def downgrade():\n    op.drop_table('order_items')\n    op.drop_table('orders')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        refs = _references(cap)
        for rec in self.ops(cap):
            if not isinstance(rec.op, ops.DropTableOp):
                continue
            before = cap.ops(rec.phase)[: rec.index]
            gone = {r.table for r in before if isinstance(r.op, ops.DropTableOp)}
            keys_dropped = {r.op.constraint_name for r in before if isinstance(r.op, ops.DropConstraintOp)}
            # dropping a column drops the foreign keys built on it (PostgreSQL, MySQL and SQLite alike)
            cols_dropped = {(r.table, r.op.column_name) for r in before if isinstance(r.op, ops.DropColumnOp)}
            children = sorted({
                child for child, parent, key, cols, index in refs
                if parent == rec.table and child != rec.table and child not in gone
                and (key is None or key not in keys_dropped) and not (cols and all((child, c) in cols_dropped for c in cols))
                # in the upgrade, a key created after the drop does not exist yet; the downgrade finds all in place
                and (rec.phase == "downgrade" or index < rec.index)
            })
            if children and not (getattr(rec.op, "table_kw", None) or {}).get("postgresql_cascade"):
                yield self.finding(
                    cap, f"Drops table {rec.table} while {', '.join(children)} still reference(s) it by foreign key: the "
                    f"drop fails on every server. Drop {', '.join(children)} first.", rec=rec, table=rec.table,
                    fix=fx.render(*(ops.DropTableOp(c) for c in children), rec.op),
                )


def _references(cap) -> list[tuple[str, str, str | None, tuple[str, ...], int]]:
    """(child table, parent table, key name, child columns, index of the creating operation) of each foreign key the
    revision's upgrade creates (with a table, or alone): the tables its downgrade finds in place."""
    import sqlalchemy as sa

    out: list[tuple[str, str, str | None, tuple[str, ...], int]] = []
    for r in cap.upgrade:
        op = r.op
        if isinstance(op, ops.CreateTableOp):
            for c in op.columns:
                if isinstance(c, sa.Column):
                    out += [(op.table_name, fk.target_fullname.rsplit(".", 1)[0].rpartition(".")[2], foreign_key_name(fk),
                             (c.name,), r.index) for fk in c.foreign_keys]
                elif isinstance(c, sa.ForeignKeyConstraint) and c.elements:
                    out.append((op.table_name, c.elements[0].target_fullname.rsplit(".", 1)[0].rpartition(".")[2], c.name,
                                tuple(str(k) for k in c.column_keys), r.index))
        elif isinstance(op, ops.CreateForeignKeyOp):
            out.append((r.table, op.referent_table, op.constraint_name, tuple(map(str, op.local_cols)), r.index))
    return out


def _revision_foreign_keys(cap) -> dict[tuple[str, str], str | None]:
    """(table, column) -> constraint name of each single-column foreign key this revision creates (create_foreign_key,
    or a column added with an inline ForeignKey), in either phase."""
    out: dict[tuple[str, str], str | None] = {}
    for r in cap.upgrade + cap.downgrade:
        op = r.op
        if isinstance(op, ops.CreateForeignKeyOp) and len(op.local_cols) == 1:
            out[(r.table, str(op.local_cols[0]))] = op.constraint_name
        elif isinstance(op, ops.AddColumnOp):
            for fk in op.column.foreign_keys:
                out[(op.table_name, op.column.name)] = foreign_key_name(fk)
    return out


RULES = (DropColumn, DropTable, DropColumnInForeignKey, DropTableStillReferenced)

