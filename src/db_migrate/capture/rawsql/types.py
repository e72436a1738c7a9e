"""SQL type names, as a raw statement spells them, turned into SQLAlchemy types.

Both parsers hand over a name and its integer arguments (pglast: ``int4``,
``varchar`` + ``(20,)``; sqlglot: ``INT``, ``VARCHAR`` + ``(20,)``), so one table
serves every dialect.  A name that is not a built-in type (an enum, a domain)
becomes :class:`NamedType`, which compiles back to that name: rules then treat
the change as one whose old and new types they cannot compare.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import UserDefinedType


class NamedType(UserDefinedType):
    """A type known only by its SQL name (a user-defined enum or domain, an extension's type)."""

    cache_ok = True

    def __init__(self, name: str) -> None:
        self.name = name

    def get_col_spec(self, **kw: Any) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"sa.types.NullType()  # {self.name}"


def _sized(cls: Any) -> Any:
    return lambda args: cls(args[0]) if args else cls()


def _numeric(args: list[int]) -> Any:
    return sa.Numeric(*args[:2])


def _timestamp(tz: bool) -> Any:
    return lambda args: sa.DateTime(timezone=tz)


# Lower-case names, as pglast (catalogue names) and sqlglot (upper-case type keywords) give them.
_TYPES: dict[str, Any] = {
    **dict.fromkeys(("int2", "smallint", "tinyint", "smallserial", "serial2"), lambda a: sa.SmallInteger()),
    **dict.fromkeys(("int", "int4", "integer", "mediumint", "serial", "serial4"), lambda a: sa.Integer()),
    **dict.fromkeys(("int8", "bigint", "bigserial", "serial8"), lambda a: sa.BigInteger()),
    **dict.fromkeys(("varchar", "character varying", "nvarchar", "string"), _sized(sa.String)),
    **dict.fromkeys(("bpchar", "char", "character", "nchar"), _sized(sa.CHAR)),
    **dict.fromkeys(("text", "tinytext", "mediumtext", "longtext", "clob"), lambda a: sa.Text()),
    **dict.fromkeys(("numeric", "decimal"), _numeric),
    **dict.fromkeys(("float4", "real", "float"), lambda a: sa.Float()),
    **dict.fromkeys(("float8", "double", "double precision"), lambda a: sa.Double()),
    **dict.fromkeys(("bool", "boolean"), lambda a: sa.Boolean()),
    "date": lambda a: sa.Date(),
    **dict.fromkeys(("timestamp", "datetime"), _timestamp(False)),
    **dict.fromkeys(("timestamptz", "timestamp with time zone"), _timestamp(True)),
    "time": lambda a: sa.Time(),
    "timetz": lambda a: sa.Time(timezone=True),
    "interval": lambda a: sa.Interval(),
    "json": lambda a: sa.JSON(),
    "jsonb": lambda a: postgresql.JSONB(),
    "uuid": lambda a: sa.Uuid(),
    **dict.fromkeys(("bytea", "blob", "longblob", "mediumblob", "tinyblob"), lambda a: sa.LargeBinary()),
    **dict.fromkeys(("varbinary", "binary"), _sized(sa.LargeBinary)),
}

SERIAL_NAMES = frozenset({"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"})
"""Types that are an integer filled from a sequence (PostgreSQL)."""


def sql_type(name: str, args: list[int] | None = None, *, array: bool = False) -> Any:
    """The SQLAlchemy type for ``name(args)``; ``array``: an array of it (PostgreSQL)."""
    make = _TYPES.get(name.lower())
    t = make(list(args or [])) if make else NamedType(name)
    return postgresql.ARRAY(t) if array else t
