"""Enum changes: ALTER TYPE ... ADD VALUE in a transaction, removed or renamed values."""

from __future__ import annotations

import re
from collections.abc import Iterator

import sqlalchemy as sa
from alembic.operations import ops

from pglast.enums import ObjectType

from db_migrate.rules import _fixes as fx
from db_migrate.rules._helpers import function_line, is_new_column, is_new_table, pg_node
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding, SourceEdit

_RENAME_VALUE = re.compile(r"\bRENAME\s+VALUE\b", re.IGNORECASE)
_ADD_VALUE = re.compile(r"\bADD\s+VALUE\b", re.IGNORECASE)


class EnumValueChange(Rule):
    id = "enum-value-change"
    title = "Enum values added, removed or renamed unsafely"
    severity = "warning"
    phases = ("upgrade", "downgrade")
    why = (
        "PostgreSQL: ALTER TYPE ... ADD VALUE fails inside a transaction block before version 12, and from 12 on "
        "the new value cannot be used until the transaction commits. Renaming a value breaks running code that "
        "still writes the old one. Removing values is impossible in place: the column must be rewritten to a new "
        "type (ACCESS EXCLUSIVE lock) and rows holding the removed value make it fail. Alembic's alter_column "
        "does not add enum values for you, and autogenerate does not see enum changes."
    )
    fix = (
        "with op.get_context().autocommit_block():\n"
        "    op.execute(\"ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'refunded'\")\n"
        "# removing a value: migrate rows off it first, then swap to a new type in a reviewed revision"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.execute(\"ALTER TYPE order_status ADD VALUE 'refunded'\")\n\ndef downgrade():\n    pass\n",
            good="def upgrade():\n    with op.get_context().autocommit_block():\n"
            "        op.execute(\"ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'refunded'\")\n\n"
            "def downgrade():\n    pass\n",
        ),
        Example(
            bad="def upgrade():\n    op.alter_column('orders', 'status',\n"
            "        existing_type=sa.Enum('new', 'paid', 'shipped', name='order_status'),\n"
            "        type_=sa.Enum('new', 'paid', name='order_status'))\n\n"
            "def downgrade():\n    pass\n",
            dialect="mysql",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            op = rec.op
            if not isinstance(op, ops.AlterColumnOp) or is_new_table(cap, rec) or is_new_column(cap, rec):
                continue
            old, new = op.existing_type, op.modify_type
            # Enum(native_enum=False) is a VARCHAR (and at most a CHECK): no type of its own to add values to
            if not (isinstance(old, sa.Enum) and isinstance(new, sa.Enum)) or not (old.native_enum and new.native_enum):
                continue
            removed = [v for v in old.enums if v not in new.enums]
            added = [v for v in new.enums if v not in old.enums]
            col = f"{rec.table}.{op.column_name}"
            if removed:
                yield self.finding(
                    cap,
                    f"Removes enum value(s) {', '.join(map(repr, removed))} from {col}: rows holding them make the "
                    f"change fail (or lose the value), and the column is rewritten under a table lock.",
                    rec=rec,
                    severity="error",
                )
            elif added and cap.dialect == "postgresql":
                yield self.finding(
                    cap,
                    f"Adds enum value(s) {', '.join(map(repr, added))} to {col} through alter_column: alembic does not "
                    f"emit ALTER TYPE ... ADD VALUE. Use op.execute in an autocommit_block().",
                    rec=rec,
                )
        if cap.dialect != "postgresql":
            return
        yield from self._recreated(cap)
        for phase in self.phases:
            for rec, stmt in cap.statements(phase):
                if stmt.kind != "ALTER TYPE":
                    continue
                if _RENAME_VALUE.search(stmt.text):
                    yield self.finding(cap, f"{stmt.text[:120]}: running code that still writes the old value fails once this commits.", rec=rec)
                elif _ADD_VALUE.search(stmt.text) and not rec.in_autocommit_block:
                    used = _used_later(cap, phase, stmt)
                    if used is not None:
                        # fails on every server: the value is unusable until the transaction commits
                        yield self.finding(
                            cap,
                            f"{stmt.text[:120]} adds a value that line {used} then uses in the same transaction: "
                            f"PostgreSQL refuses (unsafe use of new value), on every server. Add the value in "
                            f"op.get_context().autocommit_block() (or a revision of its own) before using it.",
                            rec=rec, severity="error",
                        )
                        continue
                    if _committed_next(cap, phase, stmt) and (cap.target_version or (12,)) >= (12,):
                        continue  # committed right away, on a server that allows ADD VALUE in a transaction block
                    yield self.finding(
                        cap,
                        f"{stmt.text[:120]} runs inside the migration transaction: PostgreSQL < 12 refuses it, and 12+ "
                        f"cannot use the new value until commit. Put it in op.get_context().autocommit_block().",
                        rec=rec,
                    )


    def _recreated(self, cap) -> Iterator[Finding]:
        """Raw SQL that swaps an enum type for a new one of the same name: values left out are removed."""
        old_values = {name: values for _, name, values in _enum_recreations(cap, "downgrade")}
        for rec, name, values in _enum_recreations(cap, "upgrade"):
            before = old_values.get(name)
            removed = [v for v in before or () if v not in values]
            if removed:
                yield self.finding(
                    cap,
                    f"Re-creates enum type {name} without {', '.join(map(repr, removed))} (the downgrade's list has "
                    f"them): rows holding them make the column conversion fail, and the column is rewritten under "
                    f"a table lock.",
                    rec=rec,
                    severity="error",
                )
            elif before is None:
                yield self.finding(
                    cap,
                    f"Re-creates enum type {name} as ({', '.join(map(repr, values))}): any old value not in this "
                    f"list is removed, and rows holding one make the column conversion fail.",
                    rec=rec,
                )


_VALUE = re.compile(r"\bADD\s+VALUE\s+(?:IF\s+NOT\s+EXISTS\s+)?'((?:[^']|'')*)'", re.IGNORECASE)


def _used_later(cap, phase: str, added) -> int | None:
    """The line of a later statement of the same transaction (outside an autocommit block) that uses the
    value the statement ``added`` adds, or None."""
    m = _VALUE.search(added.text)
    if not m:
        return None
    literal = "'" + m.group(1) + "'"
    after = False
    for rec, stmt in cap.statements(phase):
        if stmt is added:
            after = True
            continue
        if after and _ends_transaction(stmt):
            return None  # committed first: from here on the value may be used
        if after and not rec.in_autocommit_block and stmt.kind != "ALTER TYPE" and literal in stmt.text:
            return rec.line
    return None


def _ends_transaction(stmt) -> bool:
    return stmt.kind in ("COMMIT", "TRANSACTION") and stmt.text.strip().rstrip(";").upper() in ("COMMIT", "END", "COMMIT WORK")


def _committed_next(cap, phase: str, added) -> bool:
    """The next statement after ``added`` (other ADD VALUEs aside) is a COMMIT sent through the connection: the value
    is committed at once (commit-in-migration reports the COMMIT itself)."""
    after = False
    for _, stmt in cap.statements(phase):
        if stmt is added:
            after = True
        elif after and not (stmt.kind == "ALTER TYPE" and _ADD_VALUE.search(stmt.text)):
            return _ends_transaction(stmt)
    return False


def _enum_recreations(cap, phase: str) -> Iterator[tuple[object, str, list[str]]]:
    """(rec, type, values) for each raw ``CREATE TYPE t AS ENUM`` after a rename or drop of ``t`` in ``phase``."""
    replaced: set[str] = set()
    for rec, stmt in cap.statements(phase):
        node = pg_node(stmt)
        kind = type(node).__name__
        if kind == "RenameStmt" and node.renameType == ObjectType.OBJECT_TYPE and node.object:
            replaced.add(_last_name(node.object))
        elif kind == "DropStmt" and node.removeType == ObjectType.OBJECT_TYPE:
            replaced.update(_last_name(getattr(o, "names", o)) for o in node.objects or ())
        elif kind == "CreateEnumStmt" and _last_name(node.typeName) in replaced:
            yield rec, _last_name(node.typeName), [v.sval for v in node.vals or ()]


def _last_name(names) -> str:
    names = names if isinstance(names, tuple) else (names,)
    return getattr(names[-1], "sval", "") if names else ""


def drop_type(name: str, schema: str | None) -> str:
    """``op.execute("DROP TYPE IF EXISTS ...")`` for a PostgreSQL enum type."""
    return f'op.execute("DROP TYPE IF EXISTS {fx.table_sql(name, schema, "postgresql")}")'


def implied_drop_types(cap, rec) -> list[str]:
    """The DROP TYPE statements that undo the enum types ``rec`` (a create_table / add_column) created by itself."""
    out = []
    for r, name, schema in _implied_enum_types(cap):
        owner = next((o for o in reversed(cap.upgrade[: r.index]) if not o.implied), None)
        if owner is rec:
            out.append(drop_type(name, schema))
    return out


def _implied_enum_types(cap) -> Iterator[tuple[object, str, str | None]]:
    """(rec, type name, schema) for each enum type an upgrade operation created by itself: the ``CREATE TYPE``
    PostgreSQL needs before ``create_table`` / ``add_column`` with an ``sa.Enum`` column."""
    for rec in cap.upgrade:
        element = getattr(getattr(rec.op, "sqltext", None), "element", None)
        if rec.implied and type(rec.op.sqltext).__name__ == "CreateEnumType" and getattr(element, "name", None):
            yield rec, str(element.name), getattr(element, "schema", None)


class EnumTypeLeftBehind(Rule):
    id = "enum-type-left-behind"
    title = "The downgrade drops the table but leaves its enum type behind"
    severity = "error"
    phases = ("downgrade",)
    dialects = ("postgresql",)
    why = (
        "On PostgreSQL, create_table with an sa.Enum column also creates the enum type, but op.drop_table does not "
        "drop it (alembic does not know the dropped table's columns). After a downgrade the type stays, and the next "
        "upgrade fails with 'type ... already exists'. Autogenerate writes exactly this for every new table with an enum."
    )
    fix = (
        "def downgrade():\n"
        "    op.drop_table('orders')\n"
        "    op.execute('DROP TYPE IF EXISTS order_status')"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.create_table('orders', sa.Column('id', sa.Integer(), primary_key=True),\n"
            "        sa.Column('status', sa.Enum('new', 'paid', name='order_status')))\n\n"
            "def downgrade():\n    op.drop_table('orders')\n",
            good="def upgrade():\n    op.create_table('orders', sa.Column('id', sa.Integer(), primary_key=True),\n"
            "        sa.Column('status', sa.Enum('new', 'paid', name='order_status')))\n\n"
            "def downgrade():\n    op.drop_table('orders')\n    op.execute('DROP TYPE IF EXISTS order_status')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        if not cap.captured("downgrade") or cap.downgrade_outcome.body in ("missing", "pass", "not-implemented"):
            return  # missing-downgrade writes the whole downgrade
        dropped = {r.op.table_name for r in cap.downgrade if isinstance(r.op, ops.DropTableOp)}
        dropped |= {r.op.table_name for r in cap.downgrade if isinstance(r.op, ops.DropColumnOp)}
        down_sql = " ".join(sql for r in cap.downgrade for sql in r.sql).lower()
        for rec, name, schema in _implied_enum_types(cap):
            owner = next((o for o in reversed(cap.upgrade[: rec.index]) if not o.implied), None)
            table = getattr(owner, "table", None)
            if table not in dropped or re.search(r"drop\s+type\b[^;]*\b" + re.escape(name.lower()) + r"\b", down_sql):
                continue
            qualified = f"{schema}.{name}" if schema else name
            drop = drop_type(name, schema)
            yield self.finding(
                cap,
                f"The upgrade creates enum type {qualified} with {table} (line {rec.line}); the downgrade drops {table} "
                f"but not the type, so upgrading again fails with 'type \"{name}\" already exists'.",
                phase="downgrade", line=function_line(cap, "downgrade"), table=table,
                fix=f"# last in downgrade(), after dropping {table}:\n{drop}",
                edit=SourceEdit(mode="append", function="downgrade", code=drop),
            )


RULES = (EnumValueChange, EnumTypeLeftBehind)
