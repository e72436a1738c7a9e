"""Application models and ORM sessions inside a migration."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding


# Module paths that hold models, sessions or the database handle (app.models, app.db, core.database...).
_ORM_MODULE = re.compile(
    r"(^|[._])(models?|orm|db|database|sessions?|entities|entity|tables|base|extensions|services?|crud|"
    r"repository|repositories|dao)($|[._])",
    re.IGNORECASE,
)
# Names that are a session, an engine, the declarative base or the models module, whatever module they come from.
_ORM_NAMES = {
    "db", "session", "Session", "SessionLocal", "Base", "Model", "metadata", "engine", "get_session", "get_db",
    "orm", "models", "model", "service", "services", "crud", "repository",
}
# Modules of settings and constants: classes there (Config, Secret) are not models.
_CONFIG_MODULE = re.compile(r"(^|[._])(config|configs|settings|conf|constants|consts)$", re.IGNORECASE)
_TYPE_KEYWORDS = {"type_", "existing_type"}


# Package parts that hold a project's migrations and their helpers (schema checks, constants, batch helpers).
_MIGRATION_PARTS = {"migration", "migrations", "alembic", "alembic_migrations", "migrate", "migrate_repo", "versions"}


def is_migration_helper(module: str, names: tuple[str, ...]) -> bool:
    """The migrations' own helper code: ``from neutron.db import migration``, ``from app.migrations.utils import
    skip_on_sqlite``, ``from . import helpers``; not a models module that happens to live beside them."""
    parts = [p for p in module.split(".") if p]
    if names and all(n in _MIGRATION_PARTS for n in names):
        return True
    inside = module.startswith(".") or any(p in _MIGRATION_PARTS for p in parts)
    ormish = bool(parts) and _ORM_MODULE.search(parts[-1]) is not None and parts[-1] not in _MIGRATION_PARTS
    return inside and not ormish and not any(n in _ORM_NAMES or (n[:1].isupper() and not n.isupper()) for n in names)


def is_orm_import(module: str, names: tuple[str, ...]) -> bool:
    """A model, session or database handle is imported; a helper function or constant is not.

    ``from app.models import User``, ``from app import db`` and ``import app.models`` are; ``from
    app.migrations.utils import skip_if_sqlite`` or ``from app.constants import MAX_LEN`` are not: a frozen
    migration calling a helper only breaks if the helper changes, which is the project's ordinary code review.
    A CamelCase name from any module but a settings module is taken as a model class. The migrations' own
    helper modules (:func:`is_migration_helper`) are not application code.
    """
    if is_migration_helper(module, names):
        return False
    if _ORM_MODULE.search(module.lstrip(".")):
        return True
    if _CONFIG_MODULE.search(module):
        return any(n in _ORM_NAMES for n in names)
    return any(n in _ORM_NAMES or (n[:1].isupper() and not n.isupper()) for n in names)


def used_only_as_column_types(source: str, names: tuple[str, ...]) -> bool:
    """Every use of the imported names is a column type: ``sa.Column('x', JSONDict())``, ``type_=JSONDict``.

    A project's own column type (a TypeDecorator) is what autogenerate itself writes into revisions; it carries
    no model or session, so importing it is not this rule's concern.
    """
    if not names or "*" in names:
        return False
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    type_nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):  # column specs kept in a list: {'name': 'info', 'type': JSONDict()}
            candidates = [v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant) and k.value in ("type", "type_")]
        elif isinstance(node, ast.Call):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            candidates = [kw.value for kw in node.keywords if kw.arg in _TYPE_KEYWORDS]
            if func == "Column":
                candidates += node.args[:2]
        else:
            continue
        for c in candidates:
            target = c.func if isinstance(c, ast.Call) else c
            while isinstance(target, ast.Attribute):  # types.Uuid(): the module of column types is what is imported
                target = target.value
            type_nodes.add(id(target))
    # the names as the module binds them: `from app.db import types as st` is used as st.Uuid()
    bound = set(names) | {a.asname for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                          for a in node.names if a.asname and a.name.rpartition(".")[2] in names}
    uses = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in bound and isinstance(n.ctx, ast.Load)]
    return bool(uses) and all(id(n) in type_nodes for n in uses)


def _used(source: str, line: int) -> bool:
    """Whether a name the import on ``line`` binds is used anywhere else in the revision."""
    import ast

    from db_migrate.capture.source import parsed

    tree = parsed(source)
    if tree is None:
        return True
    node = next((n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and n.lineno == line), None)
    if node is None:
        return True
    bound = {(a.asname or a.name).split(".")[0] for a in node.names}
    return any(isinstance(n, ast.Name) and n.id in bound for n in ast.walk(tree))


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
            bad="from sqlalchemy.orm import Session\nfrom shop.models import User\n\n"
            "def upgrade():\n    session = Session(bind=op.get_bind())\n"
            "    for user in session.query(User).filter(User.plan.is_(None)):\n        user.plan = 'free'\n\n"
            "def downgrade():\n    pass\n",
            good="def upgrade():\n    users = sa.table('users', sa.column('plan', sa.String))\n"
            "    op.execute(users.update().where(users.c.plan.is_(None)).values(plan='free'))\n\n"
            "def downgrade():\n    pass\n",
            files=(("shop/__init__.py", ""), ("shop/models.py", "class User:\n    plan = None\n")),
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        # here, not at the top: review's conventions import is_migration_helper in the calling process, and
        # _helpers imports alembic and sqlalchemy (a third of a static CLI call's start-up)
        from db_migrate.rules._helpers import phase_at

        for fact in cap.facts_of("app-import"):
            if not is_orm_import(fact.detail, fact.names) or used_only_as_column_types(cap.source, fact.names):
                continue
            if fact.detail in cap.context.template_imports and not _used(cap.source, fact.line):
                continue  # the project's script.py.mako puts it in every revision, and this one never uses it
            yield self.finding(
                cap,
                f"Imports application module {fact.detail}: when its models change later, this migration runs "
                f"against the new models and breaks on fresh databases. Use sa.table()/sa.column() instead.",
                phase=phase_at(cap, fact.line),
                line=fact.line,
                fix=f"# line {fact.line}: instead of importing from {fact.detail}, describe the columns this migration uses\n"
                "# as they are at this revision, e.g. t = sa.table('<table>', sa.column('id', sa.Integer))",
            )
        models = any(is_orm_import(f.detail, f.names) and not used_only_as_column_types(cap.source, f.names)
                     for f in cap.facts_of("app-import"))
        # A Session over the revision's own sa.Table/sa.table objects is a connection, not today's models; bound to
        # alembic's connection it joins its transaction (commit() ends no outer one, SQLAlchemy 1.4 and 2.x, checked):
        # only a session over the application's models is worth a word, and once (Session, sessionmaker and
        # scoped_session of one construct are one session)
        for fact in cap.facts_of("orm-session")[:1] if models else ():
            yield self.finding(
                cap,
                f"Creates an ORM {fact.detail} in a migration that imports the application's models: ORM queries "
                f"follow today's models, not the schema at this revision.",
                phase=phase_at(cap, fact.line),
                line=fact.line,
                fix=f"# line {fact.line}: run the statements on alembic's connection instead of a {fact.detail}:\n"
                "# op.execute(sa.text('...')) or op.get_bind().execute(sa.text('...'))",
            )


RULES = (OrmImportInMigration,)
