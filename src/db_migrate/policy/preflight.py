"""The preflight section of a verdict: what the user's data says about a revision, and what that means.

The answers come from :mod:`db_migrate.preflight` (the checks, a data source that reads the user's
database); the policy reads them here: :func:`verdict_parts` turns them into findings, triggers and
unchecked items (:func:`db_migrate.policy.classify.decide_for`, :func:`~db_migrate.policy.classify.with_data`).

A :class:`Preflight` is carried by ``classify_escalation``'s and
``review_migration``'s verdicts when a ``database_url`` was given.  Each
:class:`DataCheck` is one question asked of the data (how many rows are NULL
where the revision sets NOT NULL, how many duplicate groups a new unique index
would meet, ...) with its evidence: the counts, a few sample rows, and the
queries that were run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from db_migrate.verdict import Unchecked

CheckKind = Literal[
    "not-null",
    "unique",
    "foreign-key",
    "check-constraint",
    "type-change",
    "enum-values",
    "data-statement",
]
#: will-fail: the upgrade stops on these rows (decision revise); loses-data: it runs but destroys values
#: (escalate); passes: no row is in the way; affects: rows a data statement touches (information);
#: unchecked: the question could not be answered within the budget or at all (never read as "passes").
Outcome = Literal["will-fail", "loses-data", "passes", "affects", "unchecked"]

SampleValue = str | int | float | bool | None


class DataCheck(BaseModel):
    """One question a revision's operation asks of the data, and the answer with its evidence."""

    check: CheckKind
    outcome: Outcome
    revision: str | None = None
    path: str | None = None
    line: int | None = None
    operation: str = Field(description="The alembic operation checked, e.g. 'alter_column persons.email nullable=False'.")
    table: str | None = None
    columns: list[str] = Field(default_factory=list)
    count: int | None = Field(
        default=None,
        description="Rows (or, for unique, duplicate groups) that fail, lose data or are touched; None when unknown.",
    )
    at_least: bool = Field(
        default=False, description="True when only part of the table was scanned (row budget): 'count' is a lower bound."
    )
    rows_scanned: int | None = Field(default=None, description="Rows the check read (capped by the row budget).")
    samples: list[dict[str, SampleValue]] = Field(
        default_factory=list, description="A few offending rows: primary key and the values in question (sensitive columns left out)."
    )
    withheld: list[str] = Field(default_factory=list, description="Columns left out of the samples because they are sensitive.")
    queries: list[str] = Field(default_factory=list, description="The read-only queries that were run, as sent.")
    message: str = Field(description="What the data says, in one or two sentences.")
    fix: str | None = Field(default=None, description="A backfill or cleanup step to run before this operation.")
    reason: str | None = Field(default=None, description="For unchecked: why there is no answer.")
    needs_choice: bool = Field(
        default=False,
        description="will-fail, and what the rows need is a value (or a deletion) only the project can choose: "
        "neither the models nor the revision give it (trigger 'value-needed').",
    )


class TableSize(BaseModel):
    """Size of a table the revision rewrites or locks, and how long the lock is expected to be held."""

    table: str
    rows: int | None = Field(default=None, description="Rows (exact unless 'estimate').")
    estimate: bool = Field(default=False, description="'rows' is a catalog estimate or a lower bound (row budget).")
    bytes: int | None = Field(default=None, description="Table plus indexes, where the engine reports it (PostgreSQL, MariaDB/MySQL).")
    operations: list[str] = Field(default_factory=list, description="What the revision does to it that rewrites, scans or locks it.")
    lock: str = Field(description="The strongest lock those operations take, e.g. ACCESS EXCLUSIVE.")
    lock_seconds: float | None = Field(default=None, description="Estimated seconds the lock is held.")
    basis: str = Field(default="", description="How lock_seconds was derived (rate, measurement).")
    queries: list[str] = Field(default_factory=list)


class Preflight(BaseModel):
    """What the user's database (read-only) says about each change of the revision."""

    database: str = Field(description="The database that was read, password hidden.")
    dialect: str
    sample_limit: int = Field(description="Sample rows kept per check (policy 'preflight_samples').")
    row_budget: int = Field(description="Rows one query may scan (policy 'preflight_max_rows').")
    seconds_budget: float = Field(description="Seconds one query may run (policy 'preflight_timeout_seconds').")
    small_table_rows: int = Field(default=0, description="Policy 'small_table_rows': lock findings on smaller tables are relaxed.")
    checks: list[DataCheck] = Field(default_factory=list)
    table_sizes: list[TableSize] = Field(default_factory=list)
    unchecked: list[Unchecked] = Field(default_factory=list, description="Operations or checks that got no answer, and why.")
    written: bool = Field(default=False, description="Always false: preflight only reads, in a read-only transaction.")

    def failing(self) -> list[DataCheck]:
        return [c for c in self.checks if c.outcome == "will-fail"]

    def losing(self) -> list[DataCheck]:
        return [c for c in self.checks if c.outcome == "loses-data"]


#: A table whose estimated lock time reaches this gets an info finding (all sizes are in the section).
LOCK_NOTE_SECONDS = 1.0

#: Rules whose finding is the lock a change holds on an existing table (the severity principle assumes the
#: table is large): on a table the preflight measured under ``small_table_rows`` they are relaxed.
LOCK_RULES = (
    "create-index-non-concurrent", "drop-index-non-concurrent", "add-foreign-key-validating",
    "add-check-constraint-validating", "set-not-null", "add-unique-constraint", "table-rewrite-sql",
    "exclusion-constraint", "missing-lock-timeout", "backfill-in-schema-migration",
)


#: Rules whose finding is a lock *and* a risk to the values (a type change: the rewrite, and values the new type
#: cannot hold): relaxed on a small table only where the preflight found nothing in the way of the values.
LOCK_AND_DATA_RULES = ("alter-column-type",)


def relax_small_tables(findings: list[Any], pf: Preflight) -> list[Any]:
    """``findings`` with lock findings on tables the data shows to be small (exact count under the policy's
    ``small_table_rows``) turned into info, each saying why.

    A type change is relaxed only when no check of that column's values failed, lost data or went unanswered:
    the size settles the lock, never whether the values fit."""
    small = {t.table.rpartition(".")[2]: t.rows for t in pf.table_sizes
             if t.rows is not None and not t.estimate and t.rows < pf.small_table_rows}
    doubtful = {(c.table.rpartition(".")[2], col) for c in pf.checks if c.table and c.outcome != "passes" and c.outcome != "affects"
                for col in c.columns}
    out = []
    for f in findings:
        table = (f.table or "").rpartition(".")[2]
        relaxable = f.rule in LOCK_RULES or (f.rule in LOCK_AND_DATA_RULES and (table, f.column) not in doubtful)
        rows = small.get(table) if relaxable and f.severity != "info" else None
        if rows is None:
            out.append(f)
            continue
        out.append(f.model_copy(update=dict(severity="info", message=(
            f"{f.message} Relaxed: {pf.database} says {f.table} has {rows:,} row(s), under small_table_rows = "
            f"{pf.small_table_rows:,}, so the lock lasts moments."))))
    return out


def verdict_parts(pf: Preflight) -> tuple[list[Any], list[tuple[str, str]], list[Any]]:
    """(findings, triggers as (id, evidence), unchecked) that the preflight adds to a verdict.

    will-fail -> error finding (revise); loses-data -> warning finding and the
    ``data-loss`` trigger (escalate); affects -> info finding; unchecked -> unchecked.
    """
    from db_migrate.verdict import Finding

    severity = {"will-fail": "error", "loses-data": "warning", "affects": "info"}
    findings, triggers = [], []
    for c in pf.checks:
        if c.outcome not in severity:
            continue
        sample = f" Sample: {c.samples[:3]}." if c.samples else ""
        findings.append(Finding(
            rule=f"preflight-{c.check}", severity=severity[c.outcome], phase="database", message=c.message + sample,
            revision=c.revision, path=c.path, line=c.line, table=c.table, column=", ".join(c.columns) or None, fix=c.fix,
        ))
        where = f"{c.path}:{c.line}" if c.path and c.line else (c.path or c.revision or "?")
        if c.outcome == "loses-data":
            triggers.append(("data-loss", f"{where}: {c.message}"))
        elif c.outcome == "will-fail" and c.needs_choice:
            triggers.append(("value-needed", f"{where}: {c.message}"))
    for t in pf.table_sizes:
        if t.lock_seconds is not None and t.lock_seconds >= LOCK_NOTE_SECONDS:
            findings.append(Finding(
                rule="preflight-lock-time", severity="info", phase="database", table=t.table,
                message=f"{t.table} ({t.rows:,}{'+' if t.estimate else ''} rows) is held under {t.lock} for about "
                f"{t.lock_seconds:g} s by: {'; '.join(t.operations)} ({t.basis}).",
            ))
    return findings, triggers, list(pf.unchecked)
