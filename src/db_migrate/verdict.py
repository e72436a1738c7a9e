"""The one verdict model shared by the MCP tools, the CLI and the tests.

Every tool returns a subclass of :class:`Verdict`.  The CLI prints exactly
``model_dump(mode="json")`` under ``--format json`` and the MCP server returns the
same model as structured content, so an agent, a CI job and a test all read the
same fields.

Decision rule (see :func:`decide`): escalate when any escalation trigger fired,
revise when any error-severity finding remains, else proceed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

Severity = Literal["error", "warning", "info"]
Decision = Literal["proceed", "revise", "escalate"]
#: Where a finding was seen: a revision's upgrade or downgrade, the revision as a
#: whole (its source, its header), or the revision graph / database state.
FindingPhase = Literal["upgrade", "downgrade", "revision", "history", "database"]

SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}


# --- the approval record's entries and what a verdict says of them (db_migrate.approval reads and writes them)


class ApprovedTrigger(BaseModel):
    """One escalation trigger a human approved, bound to where it fired."""

    id: str = Field(description="The trigger id, e.g. 'drop-with-data'.")
    evidence_sha256: str = Field(
        description="sha256 of the places the trigger fired (sorted, project-relative; no counts, timings or absolute paths)."
    )
    at: list[str] = Field(default_factory=list, description="The places the digest covers, readable: 'path:line phase kind table'.")
    evidence: list[str] = Field(default_factory=list, description="The evidence as the human saw it (not part of the digest).")


class ApprovalEntry(BaseModel):
    """One human's sign-off on one content of one revision file: an ``[[approval]]`` of the record."""

    revision: str = Field(description="The revision id.")
    file: str = Field(description="The revision file, relative to the project root.")
    file_sha256: str = Field(description="sha256 of the revision file's bytes when it was approved: any edit voids the approval.")
    approved_by: str = Field(description="Who approved.")
    approved_at: str = Field(description="When, UTC ISO 8601 (2026-12-07T17:40:00Z).")
    note: str = Field(default="", description="Their note: why, under which conditions.")
    via: Literal["cli", "mcp-elicitation"] = Field(
        description="cli: `db-migrate approve`; mcp-elicitation: a human's answer to classify_escalation's question."
    )
    triggers: list[ApprovedTrigger] = Field(default_factory=list)

    @property
    def by_on(self) -> str:
        """``approved by Ana on 2026-12-07`` (the date part of approved_at)."""
        return f"approved by {self.approved_by} on {self.approved_at[:10]}"


class PendingApproval(BaseModel):
    """A revision whose escalation no recorded approval covers, and what changed since the last one."""

    revision: str
    file: str | None = None
    triggers: list[str] = Field(default_factory=list, description="The trigger ids that still need a human.")
    changes: list[str] = Field(
        default_factory=list,
        description="Why the record does not cover it: never approved, the file changed since, a new or moved trigger.",
    )
    never_approved: bool = Field(default=False, description="True when the record has no entry for this revision at all.")


class ApprovalState(BaseModel):
    """What the approval record says about a verdict's escalation, per revision."""

    record: str = Field(description="Where the records live, relative to the project root (one TOML file per revision).")
    approved: list[ApprovalEntry] = Field(default_factory=list, description="Revisions whose every fired trigger a human approved for this exact content.")
    pending: list[PendingApproval] = Field(default_factory=list, description="Revisions that still need a human, with what changed.")
    written: ApprovalEntry | None = Field(default=None, description="The entry this call appended (a human's answer through elicitation).")


class SourceEdit(BaseModel):
    """An edit of a revision file that carries out a finding's fix (db_migrate.fixes.patches applies it).

    ``replace-body``: ``function``'s body becomes ``code``; ``prepend`` / ``append``: ``code`` goes first / last
    in ``function``'s body (a body that is only ``pass`` is replaced); ``replace-statement``: the statement
    at ``line`` (the whole of it, however many lines it spans) becomes ``code``.  ``code`` is unindented.
    """

    mode: Literal["replace-body", "prepend", "append", "replace-statement"]
    function: Literal["upgrade", "downgrade"] = "downgrade"
    code: str
    line: int | None = None
    settles: list[str] = Field(
        default_factory=list,
        description="Rules of the data's findings this edit also settles (a backfill settles 'preflight-not-null').",
    )


class Finding(BaseModel):
    """One problem (or note) found by a rule, anchored to a source line."""

    rule: str = Field(description="Stable rule id, e.g. 'add-column-not-null-no-default'.")
    severity: Severity = Field(description="error blocks (decision 'revise'); warning and info inform.")
    phase: FindingPhase = Field(description="Where it was seen: upgrade, downgrade, revision, history or database.")
    message: str = Field(description="What is wrong, in one or two sentences.")
    revision: str | None = Field(default=None, description="Revision id the finding belongs to.")
    path: str | None = Field(default=None, description="File path, relative to the project root when inside it.")
    line: int | None = Field(default=None, description="1-based source line of the operation.")
    table: str | None = None
    column: str | None = None
    fix: str | None = Field(default=None, description="The safe alternative, usually an Alembic snippet.")
    patch: str | None = Field(
        default=None,
        description="The fix as a unified diff (paths relative to the project root) that `git apply` accepts; "
        "db-migrate applied it to a copy of the project and checked the result (patch_checked) before offering it.",
    )
    patch_checked: list[str] = Field(
        default_factory=list,
        description="What the patched copy passed: git-apply, review, roundtrip ('roundtrip on sqlite' when not the project's engine).",
    )
    edit: SkipJsonSchema[SourceEdit | None] = Field(default=None, exclude=True)
    """The text edit of the revision file behind ``patch`` (internal: never serialised). A rollback finding with
    one has a downgrade db-migrate can write, so it is something to revise, not to escalate."""


#: ``Unchecked.what`` of a revision that could not be loaded or recorded at all: nothing of it was checked.
WHOLE_REVISION = "every operation of the revision"


class Unchecked(BaseModel):
    """Something the tool could not check, and why: never silently skipped."""

    what: str = Field(description="What could not be checked.")
    reason: str = Field(description="Why not.")
    revision: str | None = None
    path: str | None = None
    line: int | None = None


class Trigger(BaseModel):
    """An escalation trigger that fired."""

    trigger: str = Field(description="Trigger id, e.g. 'drop-with-data', 'protected-table'.")
    reason: str = Field(description="Why this needs a human.")
    evidence: list[str] = Field(default_factory=list, description="Concrete facts: file:line, tables, row counts.")


class Escalation(BaseModel):
    """The outcome of the escalation policy."""

    required: bool = Field(description="True when a human must approve before this proceeds.")
    triggers: list[Trigger] = Field(default_factory=list)
    auto_classes: list[str] = Field(
        default_factory=list,
        description="Change classes the policy lets an agent handle alone (add-nullable-column, add-index, ...).",
    )


class EngineInfo(BaseModel):
    """The database engine a tool ran DDL on (its scratch database)."""

    name: str = Field(description="postgresql, mysql, mariadb or sqlite.")
    version: str = Field(description="Server version, e.g. '18.6' (SQLite: the library version).")
    embedded: bool = Field(default=False, description="True for the PostgreSQL server db-migrate runs itself.")


class Isolation(BaseModel):
    """Which isolation the project code behind a verdict ran under (the weakest of its jobs).

    The default describes no isolation at all; :func:`db_migrate.sandbox.reports_isolation`
    fills it in from the jobs a tool call actually ran.
    """

    process: Literal["none", "fresh-process"] = Field(
        default="none", description="fresh-process: every job ran in a process forked for it alone, which died after answering."
    )
    network: Literal["unrestricted", "scratch-database-only", "none"] = Field(
        default="unrestricted", description="What project code could reach over the network."
    )
    filesystem: Literal["unrestricted", "read-only"] = Field(
        default="unrestricted", description="read-only: nothing could be written but the paths in writable."
    )
    writable: list[str] = Field(default_factory=list, description="What project code could write when the filesystem was read-only.")
    identity: Literal["caller", "root-without-capabilities", "unprivileged"] = Field(
        default="caller",
        description="Who project code ran as: unprivileged (uid nobody, or a user namespace), root without "
        "capabilities (the project could not be read by an unprivileged user), or the caller (capabilities kept).",
    )
    processes: Literal["shared", "own-pid-namespace"] = Field(
        default="shared",
        description="own-pid-namespace: project code saw only its own processes (a fresh /proc), not the caller's "
        "or anyone else's environment and command line.",
    )
    memory_limit_mib: int | None = Field(default=None, description="Address-space limit of each job, if any.")
    summary: str = Field(default="no isolation", description="The same in one line.")


class Verdict(BaseModel):
    """Common fields of every tool result."""

    tool: str = Field(description="Which tool produced this verdict.")
    decision: Decision = Field(
        description="proceed: go on; revise: fix the errors in findings and call again; "
        "escalate: stop and ask a human, showing escalation.triggers."
    )
    summary: str = Field(description="One line for humans.")
    revisions: list[str] = Field(default_factory=list, description="Revision ids this verdict covers.")
    findings: list[Finding] = Field(default_factory=list)
    escalation: Escalation | None = None
    # a small schema in every tool's output schema (tools/list stays short); the model validates in Python
    approval: Annotated[ApprovalState | None, WithJsonSchema({"type": ["object", "null"]})] = Field(
        default=None,
        description="The approval record (approvals/<revision>.toml beside versions/) for this escalation: "
        "'approved' (entries: approved_by, approved_at, note, file_sha256, triggers) and 'pending' (revision, "
        "triggers, changes: what changed since the last approval); null when nothing escalated.",
    )
    unchecked: list[Unchecked] = Field(default_factory=list, description="What could not be checked, and why.")
    engine: EngineInfo | None = Field(
        default=None,
        description="The engine and server version DDL ran on; None when the tool ran no DDL. When it is not "
        "the project's dialect, unchecked says so.",
    )
    isolation: Isolation = Field(default_factory=Isolation, description="Which isolation project code ran under for this verdict.")
    left_out: list[str] = Field(
        default_factory=list,
        description="What this result leaves out to stay small (MCP results keep at most 100 entries per list and "
        "500 findings, every error kept); empty when complete. Ask for fewer revisions, or use the CLI's --format json.",
    )

    def counts(self) -> dict[str, int]:
        return count_severities(self.findings)


def count_severities(findings: list[Finding]) -> dict[str, int]:
    """How many findings of each severity."""
    out = {"error": 0, "warning": 0, "info": 0}
    for f in findings:
        out[f.severity] += 1
    return out


def describe_counts(findings: list[Finding]) -> str:
    """``"3 error(s), 9 warning(s), 9 note(s)"``."""
    c = count_severities(findings)
    return f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} note(s)"


def decide(findings: list[Finding], escalation: Escalation | None = None) -> Decision:
    """escalate if a trigger fired, revise if an error remains, else proceed."""
    if escalation is not None and escalation.required:
        return "escalate"
    if any(f.severity == "error" for f in findings):
        return "revise"
    return "proceed"


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Stable order: by revision file, line, then severity."""
    return sorted(
        findings,
        key=lambda f: (f.path or "", f.line or 0, SEVERITY_ORDER[f.severity], f.rule),
    )


class ErrorInfo(BaseModel):
    """A structured error: what went wrong, and what to do about it."""

    code: str = Field(description="Stable error code, e.g. 'revision-not-found', 'migration-timeout'.")
    message: str = Field(description="Clear, one-paragraph explanation.")
    hint: str | None = Field(default=None, description="What to do next.")
    details: dict[str, str] = Field(default_factory=dict)


class ErrorResult(BaseModel):
    """What the CLI prints under --format json when a call fails (exit code 2)."""

    error: ErrorInfo
