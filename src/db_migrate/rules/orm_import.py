"""Application models and ORM sessions inside a migration."""

from __future__ import annotations

from collections.abc import Iterator

from db_migrate.rules._helpers import phase_at
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding


class OrmImportInMigration(Rule):
    id = "orm-import-in-migration"
    title = "Application models or an ORM session used in a migration"
    severity = "warning"
    phases = ("upgrade", "downgrade")
    why = (
        "A migration is frozen in time; application models are not. When a model later gains a column, the old "
        "migration's ORM query selects that column before it exists and fails on every fresh database (new "
        "developer, CI, disaster recovery). Importing the app also runs its import-time side effects."
    )
    fix = (
        "# describe just the columns this migration needs, as they are at this revision\n"
        "users = sa.table('users', sa.column('id', sa.Integer), sa.column('plan', sa.String))\n"
        "op.execute(users.update().where(users.c.plan.is_(None)).values(plan='free'))"
    )
    examples = (
        Example(
            bad="from sqlalchemy.orm import Session\n\n"
            "def upgrade():\n    session = Session(bind=op.get_bind())\n"
            "    session.execute(sa.text(\"UPDATE users SET plan = 'free'\"))\n    session.commit()\n\n"
            "def downgrade():\n    pass\n",
            good="def upgrade():\n    users = sa.table('users', sa.column('plan', sa.String))\n"
            "    op.execute(users.update().where(users.c.plan.is_(None)).values(plan='free'))\n\n"
            "def downgrade():\n    pass\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for fact in cap.facts_of("app-import"):
            yield self.finding(
                cap,
                f"Imports application module {fact.detail}: when its models change later, this migration runs "
                f"against the new models and breaks on fresh databases. Use sa.table()/sa.column() instead.",
                phase=phase_at(cap, fact.line),
                line=fact.line,
            )
        for fact in cap.facts_of("orm-session"):
            yield self.finding(
                cap,
                f"Creates an ORM {fact.detail} in a migration: ORM queries follow today's models, not the schema at "
                f"this revision, and a session.commit() ends Alembic's transaction early.",
                phase=phase_at(cap, fact.line),
                line=fact.line,
            )


RULES = (OrmImportInMigration,)
