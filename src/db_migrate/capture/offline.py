"""Errors that offline recording causes by itself, told apart from a revision's own bugs.

Offline, ``op.get_bind()`` returns a mock connection whose ``execute()`` returns None, modules that are
not installed here are stand-ins, and operations a plugin registers through env.py do not exist: a phase
that stops on one of those is "not checked", never the revision's fault.  The review reports them in
``unchecked``; the ``migration-raises`` rule leaves them alone.
"""

from __future__ import annotations

# row reads through the mock connection fail here but not for real
_OFFLINE_ARTIFACTS = ("'NoneType' object", "MockConnection", "mock", "get_bind", "is not subscriptable")

PLUGIN_OPERATION = "module 'alembic.op' has no attribute"
"""op.create_entity/op.replace_sp...: operations a plugin (alembic_utils...) registers when env.py imports it."""


# APIs SQLAlchemy 2.x (and alembic 1.x) removed, which a project pinning an older version still has: a
# revision using them fails only under the library versions db-migrate runs with, never in the project's own
# runs (`sa.MetaData(bind=conn)`, `Table(..., autoload=True)`, `select([...])`, `conn.execute("SQL string")`).
_LIBRARY_VERSION_ERRORS = (
    "unexpected keyword argument 'bind'",
    "unexpected keyword argument 'autoload'",
    "unexpected keyword argument 'whereclause'",
    "Not an executable object",
    "should be explicitly declared as text(",
    "Did you mean to say select(",
    "has no attribute 'bind'",
    "object has no attribute 'engine'",
    "'Engine' object has no attribute 'execute'",
    "RemovedIn20Warning",
)


def is_library_version_artifact(error: str) -> bool:
    """The phase stopped on an API the installed SQLAlchemy/alembic no longer has (a 1.x-only call)."""
    return any(s in error for s in _LIBRARY_VERSION_ERRORS)


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
    from db_migrate.capture.recorder import NOT_INSTALLED

    return "_StandIn" in error or "<argument " in error or NOT_INSTALLED in error
