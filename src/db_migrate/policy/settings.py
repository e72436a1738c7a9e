"""The project's policy: which changes need a human, which rules run and how, what is history.

The defaults encode the skill's seven always-escalate rules and five auto
classes.  A project tunes them in ``pyproject.toml``::

    [tool.db-migrate]
    protected_tables = ["acgme*"]
    audit_tables = ["audit_log", "*_history"]
    derived_tables = ["*_cache"]
    large_table_rows = 100000
    production_url_patterns = ["*prod*", "*.rds.amazonaws.com*"]
    disable = ["missing-lock-timeout"]          # rule ids or globs
    severity = {set-not-null = "warning"}
    exclude = ["alembic/versions/legacy_*.py"]  # review --all skips these files
    baseline = "4f2a9c1b7e3d"                   # it and its ancestors are history
    target_version = "postgresql 11"
    conventions = {downgrades = "never"}        # else inferred from the history

Every key is documented in :class:`Policy`'s field descriptions (the MCP server
publishes the policy in effect, with its JSON schema, as a resource; ``db-migrate
init`` writes them as comments).  Other tools keep their own keys in the same
table, so unknown keys are ignored, but one that looks like a misspelt policy
key is refused, and so is a rule name that matches no rule.
"""

from __future__ import annotations

import difflib
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from db_migrate.errors import ConfigInvalid, DbMigrateError
from db_migrate.verdict import Severity

TriggerId = Literal[
    "drop-with-data",
    "primary-key-change",
    "large-data-migration",
    "production-database",
    "protected-table",
    "audit-trail",
    "unclear-rollback",
    "data-loss",
    "value-needed",
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


class ConventionSettings(BaseModel):
    """The project's conventions, stated where inferring them from the history would guess wrong."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    downgrades: Literal["written", "never", "raise"] | None = Field(
        default=None,
        description="written: every revision should carry a working downgrade; never: the project writes none "
        "(rollback is a restore); raise: downgrades raise by design. Default: inferred from the history.",
    )
    naming: Literal["convention", "database"] | None = Field(
        default=None,
        description="Whose names unnamed constraints get: 'convention' (target_metadata's naming_convention) or "
        "'database' (the database's default names). Default: the convention when target_metadata has one.",
    )
    markers: list[str] = Field(
        default_factory=list, description="Revision ids that are empty on purpose (release or branch markers)."
    )
    helper_modules: list[str] = Field(
        default_factory=list,
        description="Modules (and their submodules) that hold the migrations' own helper code, imported by "
        "revisions: not application models, whatever their names (no orm-import-in-migration).",
    )


#: The default audit-trail names: a trail by its own name or suffix, not any table whose name holds "audit".
AUDIT_TABLES = ("audit_log", "audit_logs", "audit_trail", "audit_*", "*_audit", "*_audits", "*_audit_log", "*_audit_logs",
                "*_audit_trail", "*_history")


class Policy(BaseModel):
    """The escalation policy in effect (``[tool.db-migrate]`` of pyproject.toml, over the defaults)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    protected_tables: list[str] = Field(
        default_factory=lambda: ["acgme*"],
        description="Glob patterns (case-insensitive) of tables whose every change needs a human "
        "(trigger 'protected-table'): creating, altering, dropping, renaming to or from, indexing, data changes.",
    )
    audit_tables: list[str] = Field(
        default_factory=lambda: list(AUDIT_TABLES),
        description="Glob patterns (case-insensitive) of audit-trail tables; an operation that can change, remove "
        "or reinterpret their recorded rows (data statements, drops, renames, type or default changes, NOT NULL, "
        "replacing a trigger function they run) needs a human (trigger 'audit-trail'); creating a new trail, an index "
        "or a nullable column added, or NULL allowed, changes no record. The defaults name a trail by its suffix or "
        "prefix (user_audit, audit_log, orders_history), not every name holding 'audit' (itemaudit, auditor_settings).",
    )
    derived_tables: list[str] = Field(
        default_factory=lambda: ["*_cache", "cache_*"],
        description="Glob patterns (case-insensitive) of tables that hold only what is derived from other tables "
        "(caches the application rebuilds): dropping or emptying one is no 'drop-with-data' (the review's own "
        "drop-table finding stays). Set it to [] when a table named so holds data of its own.",
    )
    large_table_rows: int = Field(
        default=100_000,
        ge=1,
        description="A data migration (UPDATE/DELETE/INSERT...SELECT, bulk update), table rewrite (type change) "
        "or backfill on a table with at least this many rows needs a human (trigger 'large-data-migration').",
    )
    small_table_rows: int = Field(
        default=10_000,
        ge=0,
        description="With database_url: a lock finding (an index built without CONCURRENTLY, a validated foreign key or "
        "check, SET NOT NULL, a table rewrite such as INTEGER -> BIGINT...) on a table with fewer rows than this is "
        "relaxed to info, saying so: the lock lasts moments (rewriting 10,000 rows and their index took 24 ms on a "
        "loaded 2-core machine; bench/bench_small_tables.py). A type change's data risk is not relaxed: the "
        "preflight's check of the values decides it. 0 turns it off.",
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
    disable: list[str] = Field(
        default_factory=list,
        description="Review rules to turn off for this project: rule ids or glob patterns ('naming-*'); "
        "`db-migrate rules` lists them. Their findings are not reported and do not decide.",
        examples=[["missing-lock-timeout"]],
    )
    enable: list[str] = Field(
        default_factory=list,
        description="Rules to keep on although 'disable' matches them (e.g. disable ['*'] and enable a few).",
        examples=[["drop-column"]],
    )
    severity: dict[str, Severity] = Field(
        default_factory=dict,
        description="Override a rule's severity: rule id -> 'error' (blocks: revise), 'warning' or 'info'.",
        examples=[{"missing-lock-timeout": "info"}],
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Glob patterns of revision files (relative to the project root, e.g. 'migrations/versions/legacy_*.py') "
        "that `review --all` skips; it says how many it skipped.",
        examples=[["alembic/versions/legacy_*.py"]],
    )
    baseline: str | None = Field(
        default=None,
        description="A revision id: it and every revision before it are history. `review --all` skips them, and "
        "classify_escalation (and the decision of every tool) fires no trigger for them; each says so in 'unchecked'.",
        examples=["4f2a9c1b7e3d"],
    )
    target_version: str | None = Field(
        default=None,
        description="The production server's engine and version, e.g. 'postgresql 11' or 'mysql 8.0'. Rules that "
        "depend on it use it: before PostgreSQL 11 any column default rewrites the table. Default: a current server.",
        examples=["postgresql 16"],
    )
    conventions: ConventionSettings = Field(
        default_factory=ConventionSettings,
        description="Override what the review infers about the project's habits: downgrades ('never' for a project "
        "that writes none, 'raise' when they raise by design, 'written'), naming ('convention' or 'database'), "
        "markers (revision ids empty on purpose). Every verdict states what it assumed in 'conventions'.",
        examples=[{"downgrades": "never"}],
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

    @field_validator("target_version")
    @classmethod
    def _engine_and_version(cls, value: str | None) -> str | None:
        if value is not None:
            parse_target_version(value)
        return value

    def rule_severity(self, rule: str, default: Severity) -> Severity | None:
        """The severity this project gives ``rule``'s findings, or None when the rule is disabled."""
        from fnmatch import fnmatchcase

        if any(fnmatchcase(rule, p) for p in self.disable) and not any(fnmatchcase(rule, p) for p in self.enable):
            return None
        return self.severity.get(rule, default)

    @property
    def target(self) -> tuple[str, tuple[int, ...]] | None:
        """``target_version`` as (dialect, version numbers), e.g. ``("postgresql", (11,))``; None when unset."""
        return parse_target_version(self.target_version) if self.target_version else None

    @field_validator("protected_tables", "audit_tables", "derived_tables", "production_url_patterns", "production_environments", "sensitive_columns")
    @classmethod
    def _non_empty_patterns(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("patterns must be non-empty strings")
        return value


POLICY_KEYS: frozenset[str] = frozenset(Policy.model_fields)
#: Engine names target_version accepts, and the dialect each means.
TARGET_ENGINES = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}


def parse_target_version(value: str) -> tuple[str, tuple[int, ...]]:
    """``"postgresql 11"`` -> ``("postgresql", (11,))``; ValueError naming the expected form otherwise."""
    engine, _, version = value.strip().partition(" ")
    dialect = TARGET_ENGINES.get(engine.lower())
    numbers = version.strip().split(".")
    if dialect is None or not all(n.isdigit() for n in numbers):
        raise ValueError(
            f"expected '<engine> <version>' with engine one of {', '.join(sorted(TARGET_ENGINES))}, e.g. 'postgresql 11'"
        )
    return dialect, tuple(int(n) for n in numbers)


@cache
def known_rule_ids() -> tuple[str, ...]:
    """The ids of the review rules, read from the rule modules' source (importing them would load alembic)."""
    import re
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "rules"
    ids: set[str] = set()
    for path in folder.glob("*.py"):
        if not path.name.startswith("_") and path.name != "base.py":
            ids.update(re.findall(r'^    id = "([a-z0-9-]+)"', path.read_text(encoding="utf-8"), re.MULTILINE))
    return tuple(sorted(ids))


def _rule_problems(policy: Policy) -> list[str]:
    """Rule names in disable/enable/severity that match no rule, with the closest id."""
    if not (policy.disable or policy.enable or policy.severity):
        return []
    from fnmatch import fnmatchcase

    ids = known_rule_ids()
    problems = []
    for key, names in (("disable", policy.disable), ("enable", policy.enable), ("severity", list(policy.severity))):
        for name in names:
            if not any(fnmatchcase(i, name) for i in ids):
                close = difflib.get_close_matches(name, ids, n=1, cutoff=0.6)
                problems.append(f"{key}: no rule {name!r}" + (f"; did you mean {close[0]!r}?" if close else " (see `db-migrate rules`)"))
    return problems


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
    if policy is not None:
        problems += _rule_problems(policy)
    if problems:
        raise ConfigInvalid(
            f"Invalid escalation policy in {source}: " + "; ".join(problems) + ".",
            hint="Fix these keys; every key is documented in the policy resource / README ("
            + ", ".join(Policy.model_fields) + ").",
        )
    assert policy is not None
    return policy


def load_policy(project) -> Policy:
    """The policy in effect for ``project``: its ``[tool.db-migrate]`` keys over the defaults.

    Raises :class:`~db_migrate.errors.ConfigInvalid` for a bad key.
    """
    return policy_from_settings(project.settings, source=f"[tool.db-migrate] of {project.root / 'pyproject.toml'}")


def baseline_revisions(history, policy: Policy) -> frozenset[str]:
    """The baseline revision and its ancestors (history: no trigger fires for them); empty without a baseline.

    Raises :class:`~db_migrate.errors.ConfigInvalid` when the baseline is not a revision of the history.
    """
    if not policy.baseline:
        return frozenset()
    try:
        base = history.resolve(policy.baseline).revision
    except DbMigrateError as e:
        raise ConfigInvalid(
            f"baseline = {policy.baseline!r} in [tool.db-migrate] names no revision of this history: {e.message}",
            hint="Set baseline to the id of the last revision that is history ({tool:check_heads} lists them), or remove it.",
        ) from None
    return frozenset(history.ancestors(base, include_self=True)) if base else frozenset()
