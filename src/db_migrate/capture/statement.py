"""A SQL statement as the rules see it, and what a keyword scan alone tells of one.

The bottom of the capture package: :mod:`.sql` (pglast) and :mod:`.rawsql.sqlglot_parse` (sqlglot) both
build :class:`SqlStatement` values and fall back on :func:`keyword_statement` for a statement their
parser cannot read, so neither needs the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SqlStatement:
    """A statement passed to ``op.execute`` (or rendered), parsed when possible."""

    text: str
    kind: str
    """Leading keyword(s): UPDATE, DELETE, INSERT, SELECT, TRUNCATE, DROP TABLE, ALTER TABLE, CREATE INDEX..."""
    tables: list[str] = field(default_factory=list)
    has_where: bool | None = None
    parse_error: str | None = None
    parsed: Any = None
    """pglast's statement node (PostgreSQL only), for rules that need the tree."""


_KEYWORDS = re.compile(
    r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*"
    r"(WITH|UPDATE|DELETE|INSERT|SELECT|TRUNCATE|DROP\s+\w+|ALTER\s+\w+|CREATE\s+(?:UNIQUE\s+)?\w+|GRANT|REVOKE|SET|COMMENT|LOCK|VACUUM|ANALYZE|REINDEX|COPY|DO|CALL|BEGIN|COMMIT)",
    re.IGNORECASE | re.DOTALL,
)


def keyword_statement(text: str, parse_error: str | None = None) -> SqlStatement:
    """What a keyword scan tells of a statement: its kind, the table, whether it has a WHERE."""
    kind = _keyword_kind(text)
    has_where = bool(re.search(r"\bWHERE\b", text, re.IGNORECASE)) if kind in ("UPDATE", "DELETE") else None
    return SqlStatement(text=text, kind=kind, has_where=has_where, tables=_tables_by_regex(text, kind), parse_error=parse_error)


def _tables_by_regex(text: str, kind: str) -> list[str]:
    pat = {
        "UPDATE": r"^\s*UPDATE\s+([\w.\"`]+)",
        "DELETE": r"\bFROM\s+([\w.\"`]+)",
        "INSERT": r"\bINTO\s+([\w.\"`]+)",
        "TRUNCATE": r"^\s*TRUNCATE\s+(?:TABLE\s+)?([\w.\"`]+)",
        "DROP TABLE": r"\bTABLE\s+(?:IF\s+EXISTS\s+)?([\w.\"`]+)",
        "ALTER TABLE": r"\bTABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([\w.\"`]+)",
    }.get(kind)
    if not pat:
        return []
    m = re.search(pat, text, re.IGNORECASE)
    return [m.group(1).strip('"`')] if m else []


def _keyword_kind(text: str) -> str:
    m = _KEYWORDS.match(text)
    return re.sub(r"\s+", " ", m.group(1).upper()) if m else "OTHER"
