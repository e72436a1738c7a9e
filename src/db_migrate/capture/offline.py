"""Errors that offline recording causes by itself, told apart from a revision's own bugs.

Offline, ``op.get_bind()`` returns a mock connection whose ``execute()`` returns None, modules that are
not installed here are stand-ins, and operations a plugin registers through env.py do not exist: a phase
that stops on one of those is "not checked", never the revision's fault.  The review reports them in
``unchecked``; the ``migration-raises`` rule leaves them alone.
"""

from __future__ import annotations

import re

NOT_INSTALLED = "a module that is not installed here"  # the phase error of an import inside upgrade()/downgrade()

NO_CONNECTION = "offline recording connects to no database"
"""The message of the error a revision's own engine gets when it connects while recorded (see :func:`no_connections`)."""

STAND_IN_HOST = "offline.db-migrate.invalid"
"""The host of the stand-in URLs a recorded revision reads from its config (``.invalid`` never resolves)."""

NO_ROWS = "in SQLAlchemy, on rows offline recording does not have"
"""Appended to a phase error that SQLAlchemy raised while the revision read data (an ORM session's query, a
connection's rows): offline there are no rows, so the error says nothing about the revision."""

# row reads through the mock connection fail here but not for real; so does the revision's own engine
_OFFLINE_ARTIFACTS = (
    "'NoneType' object", "MockConnection", "mock", "get_bind", "is not subscriptable", NO_CONNECTION, STAND_IN_HOST,
    NO_ROWS,
)


def is_database_url(value: object) -> bool:
    """``postgresql+psycopg://...``, ``sqlite:///app.db``: a value SQLAlchemy would connect with (not a web address)."""
    import re

    m = re.match(r"^([A-Za-z][\w]*)(\+[\w]+)?://", value.strip()) if isinstance(value, str) else None
    return m is not None and m.group(1).lower() not in _NOT_DATABASES


_NOT_DATABASES = ("http", "https", "ftp", "ftps", "file", "s3", "gs", "ws", "wss", "ssh", "git")


def stand_in_url(url: str | None) -> str:
    """A URL of the same driver as ``url`` that names no server, user or password: what a revision reading the
    project's ``sqlalchemy.url`` gets while it is recorded (its engine may be built; connecting fails, as offline
    recording connects to nothing)."""
    import re

    m = re.match(r"^\s*([A-Za-z][\w]*(?:\+[\w]+)?)://", url or "")
    driver = m.group(1) if m else "postgresql"
    if driver.split("+")[0] == "sqlite":
        return f"{driver}://"  # in memory: never the project's file
    if driver in ("postgresql", "postgres") and not _importable("psycopg2") and _importable("psycopg"):
        driver = "postgresql+psycopg"  # the engine is built with a driver installed here, and then cannot connect
    return f"{driver}://{STAND_IN_HOST}/offline"


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False

PLUGIN_OPERATION = "module 'alembic.op' has no attribute"
"""op.create_entity/op.replace_sp...: operations a plugin (alembic_utils...) registers when env.py imports it."""


# APIs SQLAlchemy 2.x (and alembic 1.x) removed, which a project pinning an older version still has: a
# revision using them fails only under the library versions db-migrate runs with, never in the project's own
# runs (`sa.MetaData(bind=conn)`, `Table(..., autoload=True)`, `select([...])`, `conn.execute("SQL string")`).
_LIBRARY_VERSION_ERRORS = (
    "unexpected keyword argument 'bind'",
    "unexpected keyword argument 'autoload'",
    "unexpected keyword argument 'whereclause'",
    "unexpected keyword argument 'values'",  # t.update(values={...}), 1.x
    "Dialect.has_table() should be a",  # engine.dialect.has_table(engine, t), 1.x
    "Not an executable object",
    "should be explicitly declared as text(",
    "Did you mean to say select(",
    "has no attribute 'bind'",
    "object has no attribute 'engine'",
    "'Engine' object has no attribute 'execute'",
    "RemovedIn20Warning",
)


#: ``from sqlalchemy.engine import LegacyCursorResult``: a name the installed SQLAlchemy/alembic does not have, which
#: the version the project pins does (a module of theirs that moved: ``No module named 'sqlalchemy.ext.x'``).
_LIBRARY_NAME_MISSING = re.compile(r"cannot import name '\w+' from '(?:sqlalchemy|alembic)[\w.]*'|"
                                   r"No module named '(?:sqlalchemy|alembic)\.[\w.]+'|"
                                   r"module '(?:sqlalchemy|alembic)[\w.]*' has no attribute '\w+'")


def is_library_version_artifact(error: str) -> bool:
    """The phase stopped on an API the installed SQLAlchemy/alembic no longer has (a 1.x-only call or name)."""
    return any(s in error for s in _LIBRARY_VERSION_ERRORS) or bool(_LIBRARY_NAME_MISSING.search(error))


def library_versions() -> str:
    """``SQLAlchemy 2.1.9, alembic 1.20.1``: what db-migrate runs revisions with."""
    import alembic
    import sqlalchemy

    return f"SQLAlchemy {sqlalchemy.__version__}, alembic {alembic.__version__}"


def is_offline_artifact(error: str) -> bool:
    """The phase stopped because of offline recording itself (mock connection, stand-ins, a library version
    the project does not use), not a bug."""
    return (
        any(s in error for s in _OFFLINE_ARTIFACTS) or is_stand_in_artifact(error) or PLUGIN_OPERATION in error
        or is_library_version_artifact(error)
    )


def is_stand_in_artifact(error: str) -> bool:
    """The phase stopped on a stand-in for a module that is not installed here (or a runner argument)."""
    return "_StandIn" in error or "<argument " in error or NOT_INSTALLED in error
