"""The escalation policy: which changes need a human, which an agent may make alone.

The defaults encode the skill's seven always-escalate rules and five auto
classes.  A project tunes them in ``pyproject.toml``::

    [tool.db-migrate]
    protected_tables = ["acgme*"]
    audit_tables = ["audit_log", "*_history"]
    large_table_rows = 100000
    production_url_patterns = ["*prod*", "*.rds.amazonaws.com*"]

Every key is documented in :class:`Policy`'s field descriptions (the MCP server
publishes the policy in effect, with its JSON schema, as a resource).  Other
tools keep their own keys in the same table, so unknown keys are ignored, but
one that looks like a misspelt policy key is refused.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from db_migrate.errors import ConfigInvalid

TriggerId = Literal[
    "drop-with-data",
    "primary-key-change",
    "large-data-migration",
    "production-database",
    "protected-table",
    "audit-trail",
    "unclear-rollback",
    "data-loss",
]
AutoClass = Literal[
    "add-nullable-column",
    "add-index",
    "create-table",
    "add-foreign-key-empty-column",
    "rename-column",
]

TRIGGERS: tuple[str, ...] = TriggerId.__args__  # type: ignore[attr-defined]
AUTO_CLASSES: tuple[str, ...] = AutoClass.__args__  # type: ignore[attr-defined]

#: Host or database names that say "production".  Glob patterns, matched
#: case-insensitively; the separators keep ``products`` or ``reproduce`` out.
DEFAULT_PRODUCTION_PATTERNS = [
    "*production*",
    "prod",
    "prod[-_.]*",
    "*[-_.]prod",
    "*[-_.]prod[-_.]*",
    "prd",
    "prd[-_.]*",
    "*[-_.]prd",
    "*[-_.]prd[-_.]*",
]

#: Column names whose values are never shown in preflight samples.
DEFAULT_SENSITIVE_COLUMNS = [
    "*password*", "*passwd*", "*pwd*", "*token*", "*secret*", "*ssn*", "*social_security*", "*api_key*", "*apikey*",
    "*private_key*", "*credit_card*", "*card_number*", "*cvv*", "*iban*", "*salt*", "*otp*", "*2fa*", "*mfa*",
]


class Policy(BaseModel):
    """The escalation policy in effect (``[tool.db-migrate]`` of pyproject.toml, over the defaults)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    protected_tables: list[str] = Field(
        default_factory=lambda: ["acgme*"],
        description="Glob patterns (case-insensitive) of tables whose every change needs a human "
        "(trigger 'protected-table'): creating, altering, dropping, renaming to or from, indexing, data changes.",
    )
    audit_tables: list[str] = Field(
        default_factory=lambda: ["*audit*", "*_history"],
        description="Glob patterns (case-insensitive) of audit-trail tables; any operation touching one "
        "needs a human (trigger 'audit-trail').",
    )
    large_table_rows: int = Field(
        default=100_000,
        ge=1,
        description="A data migration (UPDATE/DELETE/INSERT...SELECT, bulk update), table rewrite (type change) "
        "or backfill on a table with at least this many rows needs a human (trigger 'large-data-migration').",
    )
    exact_count_below: int = Field(
        default=10_000,
        ge=0,
        description="PostgreSQL: when the catalog estimate (pg_class.reltuples) is below this, count the rows "
        "exactly with COUNT(*); above it, report the estimate. Other databases always count exactly.",
    )
    production_url_patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PRODUCTION_PATTERNS),
        description="Glob patterns (case-insensitive) that mark a database URL as production. Each is matched "
        "against the URL with its password hidden, the host name and the database name. Setting this key replaces "
        "the defaults, which match host or database names like 'prod', 'db.prod.example.com', 'app_prod' or "
        "'*production*' (trigger 'production-database'; scratch tools refuse such URLs).",
    )
    production_environments: list[str] = Field(
        default_factory=lambda: ["production", "prod"],
        description="Values of the 'environment' argument or the DB_MIGRATE_ENV environment variable that mean "
        "production (case-insensitive).",
    )
    auto_classes: list[AutoClass] = Field(
        default_factory=lambda: list(AUTO_CLASSES),
        description="Change classes an agent may apply without a human: add-nullable-column, add-index, "
        "create-table, add-foreign-key-empty-column, rename-column (with verification). Remove a class to make "
        "such changes need a human too: an operation outside these classes is reported as not automatic.",
    )
    database_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Connect and statement timeout for the read-only queries (row counts, column data) that "
        "classify_escalation makes against database_url.",
    )

    sensitive_columns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SENSITIVE_COLUMNS),
        description="Glob patterns (case-insensitive) of column names whose values preflight never shows in samples "
        "(it still counts their rows). Matched against 'column' and 'table.column'. Setting this key replaces the "
        "defaults (password, token, secret, ssn, api keys, card numbers, ...).",
    )
    preflight_samples: int = Field(
        default=5, ge=0, le=100, description="Preflight: sample rows (primary keys and offending values) kept per check."
    )
    preflight_max_rows: int = Field(
        default=1_000_000,
        ge=1,
        description="Preflight: rows one query may scan. A larger table is scanned only this far: violations found "
        "there are reported as 'at least N', and a scan that found none is reported as unchecked.",
    )
    preflight_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Preflight: seconds one query may run (statement timeout); a query that runs out is reported "
        "as unchecked, never as 'no violations'.",
    )

    @field_validator("protected_tables", "audit_tables", "production_url_patterns", "production_environments", "sensitive_columns")
    @classmethod
    def _non_empty_patterns(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("patterns must be non-empty strings")
        return value


POLICY_KEYS: frozenset[str] = frozenset(Policy.model_fields)


def policy_from_settings(settings: dict[str, Any] | None, *, source: str = "[tool.db-migrate]") -> Policy:
    """Validate ``settings`` (the ``[tool.db-migrate]`` table) into a :class:`Policy`.

    Raises :class:`~db_migrate.errors.ConfigInvalid` naming every bad key, and
    for unknown keys that look like a misspelt policy key.
    """
    settings = dict(settings or {})
    problems: list[str] = []
    for key in settings:
        if key in POLICY_KEYS:
            continue
        close = difflib.get_close_matches(key.replace("-", "_"), POLICY_KEYS, n=1, cutoff=0.8)
        if close:
            problems.append(f"{key}: unknown key; did you mean {close[0]!r}?")
    try:
        policy = Policy.model_validate(settings)
    except ValidationError as e:
        for err in e.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(table)"
            problems.append(f"{where}: {err['msg']} (got {err.get('input')!r})")
        policy = None
    if problems:
        raise ConfigInvalid(
            f"Invalid escalation policy in {source}: " + "; ".join(problems) + ".",
            hint="Fix these keys; every key is documented in the policy resource / README "
            "(protected_tables, audit_tables, large_table_rows, exact_count_below, production_url_patterns, "
            "production_environments, auto_classes, database_timeout_seconds, sensitive_columns, preflight_samples, "
            "preflight_max_rows, preflight_timeout_seconds).",
        )
    assert policy is not None
    return policy
