"""Write throwaway Alembic projects for tests.

    from projectfactory import make_project

    root = make_project(tmp_path, [
        'def upgrade():\\n    op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))\\n'
        'def downgrade():\\n    op.drop_table("t")\\n',
        "import sys\\nsys.exit(3)\\n",                      # hostile body
        {"id": "cafe", "down": "000000000001", "body": "..."},  # a branch
    ])

Each item of ``revisions`` is either

* a string: the body of a revision file (functions, imports, anything -- it is
  pasted verbatim after the header).  It gets the id ``f"{index + 1:012d}"``
  (``000000000001``, ``000000000002``, ...) and ``down_revision`` set to the
  previous item's id, so a list of strings is one linear chain; or
* a dict ``{"id": ..., "down": ..., "body": ..., "name": ..., "depends_on":
  ..., "branch_labels": ...}`` to build branches, merges (``down`` a tuple),
  cycles or dangling parents.  ``id`` defaults to the generated one, ``down``
  to the previous item's id (``None`` for a root), ``body`` to a no-op pair,
  ``name`` (the file name) to ``<id>_rev.py``.

The header declares ``revision``, ``down_revision``, ``branch_labels`` and
``depends_on`` and imports ``op`` and ``sa``; the body may redefine any of
them (a body that sets ``revision = ...`` itself wins, since it comes later).

``url`` goes into alembic.ini (a literal ``%`` is escaped).  ``env_py``
replaces the default env.py, which is the standard template plus the
cookbook's ``config.attributes["connection"]`` hand-over and
``render_as_batch`` on SQLite; it uses ``models`` -- source text written to
``<root>/models.py`` exposing ``target_metadata`` -- when given.  Returns the
project root (``root`` itself: the files are written directly into it).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["make_project", "enum_project", "one_table_project", "DEFAULT_ENV_PY", "NOOP_BODY"]

NOOP_BODY = "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n"

_HEADER = '''"""{message}

Revision ID: {rev}
Revises: {down_doc}
Create Date: 2025-01-01 00:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}
branch_labels = {branch_labels!r}
depends_on = {depends_on!r}


'''

DEFAULT_ENV_PY = '''import importlib.util
from pathlib import Path

from sqlalchemy import engine_from_config, pool

from alembic import context

config = context.config


def _target_metadata():
    path = Path(__file__).resolve().parents[1] / "models.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("_factory_models_%x" % (hash(str(path)) & 0xFFFFFFFF), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.target_metadata


target_metadata = _target_metadata()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        _run(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

_SCRIPT_MAKO = '''"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
'''

_INI = """[alembic]
script_location = %(here)s/migrations
sqlalchemy.url = {url}
"""

#: models.py text of a target_metadata with the usual naming convention (needs ``import sqlalchemy as sa`` above it)
CONVENTION_METADATA = '''\
target_metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})
'''


def make_project(
    root: Path,
    revisions: list[str | dict],
    *,
    url: str = "postgresql://u@localhost/app",
    env_py: str | None = None,
    models: str | None = None,
) -> Path:
    """Write alembic.ini, migrations/{env.py,script.py.mako,versions/} under ``root``."""
    root = Path(root)
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (root / "alembic.ini").write_text(_INI.format(url=url.replace("%", "%%")))
    (root / "migrations" / "env.py").write_text(env_py if env_py is not None else DEFAULT_ENV_PY)
    (root / "migrations" / "script.py.mako").write_text(_SCRIPT_MAKO)
    if models is not None:
        (root / "models.py").write_text(models)

    previous: str | None = None
    for index, item in enumerate(revisions):
        spec = {"body": item} if isinstance(item, str) else dict(item)
        rev = spec.get("id", f"{index + 1:012d}")
        down = spec.get("down", previous)
        header = _HEADER.format(
            message=spec.get("message", f"revision {index + 1}"),
            rev=rev,
            down=down,
            down_doc=", ".join(down) if isinstance(down, (tuple, list)) else (down or ""),
            branch_labels=spec.get("branch_labels"),
            depends_on=spec.get("depends_on"),
        )
        name = spec.get("name", f"{rev}_rev.py")
        (versions / name).write_text(header + spec.get("body", NOOP_BODY))
        previous = rev
    return root



def one_table_project(root: Path, created: str, modelled: str, *, table: str = "t", model_table: str | None = None,
                      downgrade_extra: str = "") -> Path:
    """A project whose one revision creates ``table`` (an integer ``id`` and the columns ``created``, Python source)
    and whose models declare ``model_table`` (default: the same) with the columns ``modelled``."""
    body = (
        f"def upgrade():\n    op.create_table({table!r}, sa.Column('id', sa.Integer, primary_key=True), {created})\n"
        f"def downgrade():\n    op.drop_table({table!r})\n{downgrade_extra}"
    )
    models = (
        "import sqlalchemy as sa\ntarget_metadata = sa.MetaData()\n"
        f"sa.Table({model_table or table!r}, target_metadata, sa.Column('id', sa.Integer, primary_key=True), {modelled})\n"
    )
    return make_project(root, [body], models=models)


def enum_project(root: Path, values: tuple[str, ...], *, server_default: str | None = None) -> Path:
    """A PostgreSQL project whose one revision creates table ``t`` with enum ``mood`` ('happy', 'sad'),
    and whose models give ``mood`` the labels ``values`` (autogenerate does not compare enum labels)."""
    default = f", server_default={server_default!r}" if server_default else ""
    return one_table_project(
        root, f"sa.Column('mood', sa.Enum('happy', 'sad', name='mood'){default})",
        f"sa.Column('mood', sa.Enum(*{tuple(values)!r}, name='mood'){default})",
        downgrade_extra="    op.execute('DROP TYPE mood')\n",
    )
