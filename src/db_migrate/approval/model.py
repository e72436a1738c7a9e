"""The approval record's entries and what a verdict says about them (plain pydantic, no db_migrate imports).

:mod:`db_migrate.verdict` carries :class:`ApprovalState` in every verdict, so this
module sits below it and imports nothing of the project.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


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
