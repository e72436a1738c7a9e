"""Application models and ORM sessions inside a migration."""

from __future__ import annotations

import re
from collections.abc import Iterator

from db_migrate.rules._helpers import phase_at
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding


# Module paths that hold models, sessions or the database handle (app.models, app.db, core.database...).
_ORM_MODULE = re.compile(
    r"(^|[._])(models?|orm|db|database|sessions?|entities|entity|tables|base|extensions)($|[._])", re.IGNORECASE
)
# Names that are a session, an engine or the declarative base whatever module they come from.
_ORM_NAMES = {"db", "session", "Session", "SessionLocal", "Base", "Model", "metadata", "engine", "get_session", "get_db"}


def is_orm_import(module: str, names: tuple[str, ...]) -> bool:
    """A model, session or database handle is imported; a helper function or constant is not.

    ``from app.models import User``, ``from app import db`` and ``import app.models`` are; ``from
    app.migrations.utils import skip_if_sqlite`` or ``from app.constants import MAX_LEN`` are not: a frozen
    migration calling a helper only breaks if the helper changes, which is the project's ordinary code review.
    A CamelCase name from any module is taken as a model class.
    """
    if _ORM_MODULE.search(module.lstrip(".")):
        return True
    return any(n in _ORM_NAMES or (n[:1].isupper() and not n.isupper()) for n in names)


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
            if not is_orm_import(fact.detail, fact.names):
                continue
            yield self.finding(
                cap,
                f"Imports application module {fact.detail}: when its models change later, this migration runs "
                f"against the new models and breaks on fresh databases. Use sa.table()/sa.column() instead.",
                phase=phase_at(cap, fact.line),
                line=fact.line,
                fix=f"# line {fact.line}: instead of importing from {fact.detail}, describe the columns this migration uses\n"
                "# as they are at this revision, e.g. t = sa.table('<table>', sa.column('id', sa.Integer))",
            )
        for fact in cap.facts_of("orm-session"):
            yield self.finding(
                cap,
                f"Creates an ORM {fact.detail} in a migration: ORM queries follow today's models, not the schema at "
                f"this revision, and a session.commit() ends Alembic's transaction early.",
                phase=phase_at(cap, fact.line),
                line=fact.line,
                fix=f"# line {fact.line}: run the statements on alembic's connection instead of a {fact.detail}:\n"
                "# op.execute(sa.text('...')) or op.get_bind().execute(sa.text('...'))",
            )


RULES = (OrmImportInMigration,)
