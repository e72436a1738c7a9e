"""Enum changes: ALTER TYPE ... ADD VALUE in a transaction, removed or renamed values."""

from __future__ import annotations

import re
from collections.abc import Iterator

import sqlalchemy as sa
from alembic.operations import ops

from db_migrate.rules._helpers import is_new_column, is_new_table
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding

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
            if not (isinstance(old, sa.Enum) and isinstance(new, sa.Enum)):
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
        for phase in self.phases:
            for rec, stmt in cap.statements(phase):
                if stmt.kind != "ALTER TYPE":
                    continue
                if _RENAME_VALUE.search(stmt.text):
                    yield self.finding(cap, f"{stmt.text[:120]}: running code that still writes the old value fails once this commits.", rec=rec)
                elif _ADD_VALUE.search(stmt.text) and not rec.in_autocommit_block:
                    yield self.finding(
                        cap,
                        f"{stmt.text[:120]} runs inside the migration transaction: PostgreSQL < 12 refuses it, and 12+ "
                        f"cannot use the new value until commit. Put it in op.get_context().autocommit_block().",
                        rec=rec,
                    )


RULES = (EnumValueChange,)
