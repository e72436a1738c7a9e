"""migration-raises: the revision fails (or exits the interpreter) when it runs."""

from __future__ import annotations

from collections.abc import Iterator

from alembic.operations import ops

from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding


class MigrationRaises(Rule):
    id = "migration-raises"
    title = "The revision raises or exits while it runs"
    severity = "error"
    phases = ("upgrade", "downgrade")
    why = (
        "A migration that raises stops `alembic upgrade` part-way: on databases without transactional DDL "
        "(MySQL, MariaDB) the schema is left half-changed. `sys.exit()` in a migration kills the process "
        "that runs it, with no error to act on."
    )
    fix = "# raise a clear exception only for a real precondition failure; never call sys.exit() in a migration"
    examples = (
        Example(
            bad="def upgrade():\n    import sys\n    sys.exit(1)\n\ndef downgrade():\n    pass\n",
            good="def upgrade():\n    op.add_column('t', sa.Column('c', sa.Integer(), nullable=True))\n\n"
            "def downgrade():\n    op.drop_column('t', 'c')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        from db_migrate.capture.offline import is_offline_artifact

        for phase in self.phases:
            o = cap.outcome(phase)
            if not o.error or is_offline_artifact(o.error) or "NotImplementedError" in o.error:
                continue  # offline artifacts are 'unchecked'; NotImplementedError is missing-downgrade's
            if phase == "downgrade" and cap.downgrade_raises and cap.irreversible:
                continue  # a downgrade that only raises, with a message, is a declaration: irreversible-by-design
            if "Can't emit DROP CONSTRAINT" in o.error and any(
                    isinstance(r.op, ops.DropConstraintOp) and not r.op.constraint_name for r in cap.ops(phase)):
                continue  # the unnamed drops it fails on are drop-constraint-without-name's findings, line by line
            if phase == "upgrade" and cap.upgrade_refusal:
                yield self.finding(cap, f"upgrade() refuses to run, by design: \"{cap.upgrade_refusal}\"; nothing after "
                                   "that raise runs", phase=phase, line=o.error_line, severity="info")
                continue
            where = f" (line {o.error_line})" if o.error_line else ""
            yield self.finding(
                cap,
                f"{o.error}{where}. Fix this first: what {phase}() does after that point was not recorded, so "
                f"whether the downgrade undoes the upgrade was not checked.",
                phase=phase,
                line=o.error_line,
                fix=f"# {phase}(){where}: make it run to the end (or raise only on a real precondition failure)",
            )


RULES = (MigrationRaises,)
