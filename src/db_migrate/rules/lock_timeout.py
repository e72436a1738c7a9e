"""PostgreSQL DDL on existing tables without a lock_timeout."""

from __future__ import annotations

import re
from collections.abc import Iterator

from db_migrate.rules._helpers import execute_text, locks_existing_table
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding

_LOCK_TIMEOUT = re.compile(r"\block_timeout\b", re.IGNORECASE)


class MissingLockTimeout(Rule):
    id = "missing-lock-timeout"
    title = "DDL on existing tables without a lock_timeout"
    severity = "info"
    dialects = ("postgresql",)
    why = (
        "Even a fast ALTER TABLE needs an ACCESS EXCLUSIVE lock. If a long query or an idle transaction holds the "
        "table, the ALTER waits, and every read and write that arrives after it queues behind the ALTER: the "
        "table is down until the blocker ends. SET LOCAL lock_timeout makes the migration fail fast and retry "
        "instead. (Reported once per revision; a lock_timeout set in env.py counts for every revision.)"
    )
    fix = (
        "def upgrade():\n"
        "    op.execute(\"SET LOCAL lock_timeout = '5s'\")\n"
        "    op.add_column('users', sa.Column('email', sa.String(200), nullable=True))"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.add_column('users', sa.Column('email', sa.String(200), nullable=True))\n\n"
            "def downgrade():\n    op.drop_column('users', 'email')\n",
            good="def upgrade():\n    op.execute(\"SET LOCAL lock_timeout = '5s'\")\n"
            "    op.add_column('users', sa.Column('email', sa.String(200), nullable=True))\n\n"
            "def downgrade():\n    op.drop_column('users', 'email')\n",
        ),
        Example(
            bad="def upgrade():\n    op.drop_column('users', 'legacy')\n\ndef downgrade():\n    pass\n",
            good="def upgrade():\n    op.create_table('events', sa.Column('id', sa.Integer(), primary_key=True))\n"
            "    op.create_index('ix_events_id', 'events', ['id'])\n\n"
            "def downgrade():\n    op.drop_table('events')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        if cap.context.lock_timeout or _LOCK_TIMEOUT.search(execute_text(cap, "upgrade")):
            return  # set by env.py for every migration, or by this revision
        for rec in cap.upgrade:
            table = locks_existing_table(cap, rec)
            if table:
                yield self.finding(
                    cap,
                    f"Locks existing table {table} with no lock_timeout set: if a long-running query holds {table}, "
                    f"this waits and every query after it queues behind it. Add SET LOCAL lock_timeout first.",
                    rec=rec,
                    table=table,
                    fix=(
                        f"# first statement of upgrade(), before the {rec.kind} on {table} (line {rec.line}):\n"
                        "op.execute(\"SET LOCAL lock_timeout = '5s'\")\n"
                        "# or once for every migration, in env.py's run_migrations_online():\n"
                        "# connection.execute(sa.text(\"SET lock_timeout = '5s'\"))"
                    ),
                )
                return  # once per revision


RULES = (MissingLockTimeout,)
