"""The review verdict: findings per revision plus the operations each revision performs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from db_migrate.policy.conventions import Conventions
from db_migrate.policy.preflight import Preflight
from db_migrate.verdict import Finding, Unchecked, Verdict

DetailValue = str | bool | int | float | None | list[str]


class Operation(BaseModel):
    """One alembic operation a revision performs, summarised for classification."""

    revision: str | None
    phase: Literal["upgrade", "downgrade"]
    kind: str = Field(description="alembic's operation name: add_column, drop_table, alter_column, execute, ...")
    table: str | None = None
    column: str | None = None
    line: int | None = None
    detail: dict[str, DetailValue] = Field(
        default_factory=dict,
        description="The operation's arguments that matter: nullable, type, existing_type, server_default, "
        "new_column_name, constraint_type, postgresql_concurrently, sql, sql_kind, columns, ...",
    )
    sql: list[str] = Field(default_factory=list, description="SQL rendered for the review dialect.")
    table_created_here: bool = Field(default=False, description="The table was created earlier in the same phase.")


class StoppedPhase(BaseModel):
    """A phase whose recording stopped before its end: what it does after ``line`` was not recorded."""

    phase: Literal["upgrade", "downgrade"]
    line: int | None = Field(default=None, description="The phase's own statement that was running when it stopped.")
    reason: str = Field(description="Why it stopped (an offline limit, a module not installed here, or an error).")


class RevisionReview(BaseModel):
    """What one revision does."""

    revision: str | None
    path: str
    message: str | None = None
    down_revisions: list[str] = Field(default_factory=list)
    operations: list[Operation] = Field(default_factory=list)
    reads_data: bool = Field(default=False, description="It reads rows (get_bind, sessions): a data migration.")
    stated_rows: int | None = Field(
        default=None, description="The largest row count the revision's docstring or comments state ('~2.4M rows')."
    )
    stated_rows_where: str | None = Field(default=None, description="Where and how it says so: 'line 3: ~2.4M rows'.")
    stated_one_way: str | None = Field(
        default=None, description="Where its docstring or comments say it cannot be undone: 'line 40: Unfortunately "
        "this process is not reversible.'",
    )
    stopped: list[StoppedPhase] = Field(
        default_factory=list,
        description="Phases whose recording stopped early: their operations are those before the stop, not all "
        "they do (what was not recorded is not absent).",
    )


class SuppressedFinding(Finding):
    """A finding silenced by a ``# db-migrate: ignore[rule-id] reason`` comment, with that reason."""

    reason: str | None = Field(default=None, description="The text after the comment's closing bracket; null when none was given.")


class RevisionOutcome(BaseModel):
    """What the worker returns for one revision (internal; merged into ReviewResult)."""

    review: RevisionReview
    findings: list[Finding] = Field(default_factory=list)
    suppressed: list[SuppressedFinding] = Field(default_factory=list)
    unchecked: list[Unchecked] = Field(default_factory=list)
    load_error: str | None = None
    context_files: list[str] = Field(default_factory=list)
    """Project files env.py imported to give its target_metadata (the models): part of the cache key."""


class ReviewResult(Verdict):
    """The verdict of review_migration."""

    tool: str = "review_migration"
    dialect: str = Field(description="Dialect the revisions were rendered for.")
    reviews: list[RevisionReview] = Field(default_factory=list)
    suppressed: list[SuppressedFinding] = Field(
        default_factory=list,
        description="Findings silenced by a `# db-migrate: ignore[rule-id] reason` comment, each with its reason.",
    )
    conventions: Conventions | None = Field(
        default=None,
        description="What the verdict assumed about the project's habits (downgrades written or not, naming, "
        "labelled branches, marker revisions): inferred from its history, or set in [tool.db-migrate] conventions.",
    )
    preflight: Preflight | None = Field(
        default=None,
        description="With database_url: what the data says about each change (read-only): rows that make the "
        "upgrade fail or lose data, table sizes and lock times.",
    )
