"""The result of test_roundtrip."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from db_migrate.roundtrip.locks import LockCheck, StatementTrace
from db_migrate.verdict import Verdict

FailureKind = Literal["upgrade-failed", "downgrade-failed", "reupgrade-failed", "schema-mismatch", "data-loss"]
Step = Literal["prepare", "seed", "upgrade", "downgrade", "reupgrade", "snapshot"]


class RoundtripFailure(BaseModel):
    """One thing that went wrong; every failure is reported, not just the first."""

    kind: FailureKind
    revision: str
    step: Step = Field(description="The step that failed, or after which the difference was seen.")
    message: str = Field(description="What went wrong, by name: 'after the downgrade: column persons.email type ...'.")
    error: str | None = Field(default=None, description="The database or Python error of a failed step.")
    error_code: str | None = Field(default=None, description="'migration-timeout' or 'migration-crashed' when the worker was stopped.")
    where: str | None = Field(default=None, description="file:line in the revision where the error was raised.")
    sqlstate: str | None = Field(default=None, description="The database's error code (PostgreSQL SQLSTATE), when it raised.")
    hint: str | None = None
    table: str | None = None
    column: str | None = None
    rows: int | None = Field(default=None, description="Rows affected (data-loss).")
    populated_only: bool | None = Field(
        default=None,
        description="For a failed step: true when the same step passes on an empty database (the seeded rows make it fail).",
    )
    applied_partway: list[str] = Field(
        default_factory=list, description="DDL that took effect before the failure (MySQL/MariaDB and SQLite DDL is not transactional)."
    )
    not_applied: list[str] = Field(default_factory=list, description="What the revision does on an empty database that did not happen.")


class RoundtripStep(BaseModel):
    revision: str
    step: Step
    seconds: float
    ok: bool


class RoundtripResult(Verdict):
    """Seeded upgrade → downgrade → upgrade of one revision or a range, on a scratch database."""

    tool: str = "test_roundtrip"
    status: Literal["passed", "failed", "partial", "untested"] = Field(
        description="passed: every revision roundtripped; failed: a step or a comparison failed (findings); partial: "
        "no failure, but some revisions could not be tested (unchecked says why); untested: none could be.")
    failures: list[RoundtripFailure] = Field(default_factory=list)
    steps: list[RoundtripStep] = Field(default_factory=list, description="Each step with its duration.")
    runner: Literal["project-env", "built-in"] | None = Field(
        default=None, description="project-env: the project's env.py ran the migrations; built-in: it could not (see runner_reason)."
    )
    runner_reason: str | None = None
    dialect: str
    database: str = Field(description="The scratch database used (redacted; already dropped).")
    rows: int = Field(description="Rows seeded per table.")
    seeded: dict[str, int] = Field(default_factory=dict, description="Rows inserted per table.")
    template: bool = Field(default=False, description="True when the parent schema came from a cached template.")
    databases: int = Field(default=1, description="Scratch databases used: one more for each failed step whose "
                           "rollback could not restore the parent's schema (and for each retry on an empty database).")
    locks: list[StatementTrace] = Field(
        default_factory=list,
        description="PostgreSQL: per statement of each revision's upgrade, the locks first held after it (pg_locks of "
        "the migration's own backend) and the tables it rewrote (relfilenode changed).",
    )
    lock_checks: list[LockCheck] = Field(
        default_factory=list,
        description="The review's lock and rewrite findings for the tested revisions, confirmed or cleared by `locks`.",
    )
    seconds: float = 0.0
