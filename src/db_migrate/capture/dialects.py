"""SQLAlchemy dialect objects by name, for compiling types and SQL offline."""

from __future__ import annotations

from functools import cache
from types import ModuleType
from typing import Any


@cache
def dialect_for(name: str) -> Any:
    """A SQLAlchemy dialect instance for ``postgresql``, ``mysql``, ``sqlite``... (default dialect if unknown)."""
    from sqlalchemy.dialects import registry
    from sqlalchemy.engine import default

    try:
        return registry.load(name)()
    except Exception:
        return default.DefaultDialect()


def type_sql(t: Any, dialect: str) -> str | None:
    """How ``dialect`` spells the SQLAlchemy type ``t`` (None for None)."""
    if t is None:
        return None
    if isinstance(t, ModuleType):  # a stand-in for a type from a module not installed here
        return t.__name__
    try:
        return str(t.compile(dialect=dialect_for(dialect)))
    except Exception:
        try:
            return str(t)
        except Exception:
            return type(t).__name__
