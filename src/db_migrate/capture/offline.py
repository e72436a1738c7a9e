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


def is_offline_artifact(error: str) -> bool:
    """The phase stopped because of offline recording itself (mock connection, stand-ins), not a bug."""
    return any(s in error for s in _OFFLINE_ARTIFACTS) or is_stand_in_artifact(error) or PLUGIN_OPERATION in error


def is_stand_in_artifact(error: str) -> bool:
    """The phase stopped on a stand-in for a module that is not installed here (or a runner argument)."""
    from db_migrate.capture.recorder import NOT_INSTALLED

    return "_StandIn" in error or "<argument " in error or NOT_INSTALLED in error
