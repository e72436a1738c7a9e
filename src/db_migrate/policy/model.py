"""What classify_escalation returns, and the database facts it reads."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from db_migrate.approval.model import ApprovalEntry, ApprovalState
from db_migrate.policy.conventions import Conventions
from db_migrate.policy.preflight import Preflight
from db_migrate.verdict import Verdict, decide


#: The MCP resource with the whole policy in effect; a classify verdict refers to it instead of repeating it.
POLICY_URI = "db-migrate://policy"


class RowCount(BaseModel):
    """Rows in one table of the database that was read."""

    rows: int = Field(description="Number of rows (exact, or the catalog estimate when 'estimate' is true).")
    estimate: bool = Field(description="True when 'rows' is PostgreSQL's pg_class.reltuples estimate, not a COUNT(*).")


class DatabaseFacts(BaseModel):
    """What the policy read from the user's database (read-only) about the tables a revision touches."""

    database: str = Field(description="The database URL, password hidden.")
    dialect: str
    row_counts: dict[str, RowCount] = Field(default_factory=dict, description="Per table (schema-qualified when a schema was given).")
    column_has_data: dict[str, bool] = Field(
        default_factory=dict, description="'table.column' -> whether any row holds a non-NULL value."
    )
    missing: list[str] = Field(default_factory=list, description="Tables or 'table.column's the database does not have.")
    failed: dict[str, str] = Field(default_factory=dict, description="Table or column -> why it could not be read.")


class ClassifiedOperation(BaseModel):
    """One upgrade operation and the auto class it falls into (or why none fits)."""

    revision: str | None = None
    path: str | None = None
    line: int | None = None
    kind: str = Field(description="alembic operation name, e.g. add_column, execute.")
    table: str | None = None
    column: str | None = None
    auto_class: str | None = Field(default=None, description="The auto class this operation fits, None when none fits.")
    note: str = Field(default="", description="Why it fits that class, or why it fits none.")


class ApprovalQuestion(BaseModel):
    """What the human is asked when a change needs sign-off (an elicitation form)."""

    approve: bool = Field(description="Approve this schema change despite the escalation triggers?")
    name: str = Field(default="", description="Your name, for the approval record in the repository.")
    note: str = Field(default="", description="Optional: why, or what must change first.")


class HumanApproval(BaseModel):
    """The human's answer to an escalation, as recorded in the classify verdict."""

    asked: bool = Field(description="True when the human was asked through the MCP client.")
    answer: Literal["approved", "rejected", "declined", "cancelled", "not-asked"] = Field(
        description="approved turns escalate into the underlying decision; anything else leaves escalate in place."
    )
    note: str = Field(default="", description="The human's note, or why nobody was asked.")
    name: str = Field(default="", description="The name the human gave, recorded with an approval.")


class ClassifyResult(Verdict):
    """classify_escalation's verdict: escalate (a trigger fired), revise (review errors remain) or proceed."""

    tool: Literal["classify_escalation"] = "classify_escalation"
    policy: str = Field(
        default=POLICY_URI,
        description="Where the whole policy in effect is: this MCP resource ([tool.db-migrate] of pyproject.toml over the defaults).",
    )
    policy_settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Only the policy settings that decided this verdict: those behind its triggers, the row threshold "
        "when a database was read, and any the project changed that shape findings or auto classes.",
    )
    database: str | None = Field(default=None, description="The database that was read (password hidden), if any.")
    row_counts: dict[str, RowCount] = Field(
        default_factory=dict, description="Rows of the tables the revision touches, when a database was read."
    )
    operations: list[ClassifiedOperation] = Field(
        default_factory=list, description="Every upgrade operation with the auto class it fits (or why none)."
    )
    all_automatic: bool = Field(
        default=False,
        description="True when every upgrade operation fits an enabled auto class and no trigger fired: "
        "an agent may apply the revision alone (rename-column still needs verification with test_roundtrip).",
    )
    conventions: Conventions | None = Field(
        default=None,
        description="What the decision assumed about the project's habits (downgrades written or not, naming, "
        "labelled branches, markers, trigger functions): the review's, inferred from the history or set in "
        "[tool.db-migrate] conventions.",
    )
    preflight: Preflight | None = Field(
        default=None, description="What the data in database_url says about each change (read-only); null without a database."
    )
    human_approval: HumanApproval | None = Field(
        default=None, description="The human's answer when escalation asked one; null when nobody was asked (always from the CLI)."
    )

    def answered(self, approval: HumanApproval, entry: ApprovalEntry | None = None, record: str = "") -> "ClassifyResult":
        """This verdict with the human's answer recorded.

        Only an explicit approval lifts ``escalate``: the escalation is then no
        longer required (its triggers stay as the record of what was approved)
        and the verdict is re-decided without it, so remaining errors still say
        ``revise``; the summary starts with the new decision.  A rejection, a
        decline, a cancel or no answer keep ``escalate`` (fail closed).
        ``entry`` is the approval this answer appended to the record (in ``record``), if it was written.
        """
        update: dict[str, object] = {"human_approval": approval}
        if self.decision == "escalate":
            note = f": {approval.note}" if approval.note else ""
            if approval.answer == "approved" and self.escalation is not None:
                decision = decide(self.findings, None)
                approved = ", ".join(t.trigger for t in self.escalation.triggers)
                errors = sum(1 for f in self.findings if f.severity == "error")
                rest = f"; {errors} review error(s) remain" if decision == "revise" else ""
                update["decision"] = decision
                update["escalation"] = self.escalation.model_copy(update={"required": False})
                who = entry.by_on if entry is not None else "approved by a human"
                update["summary"] = f"{decision}: {approved} {who}{note}{rest}."
                if entry is not None:
                    update["approval"] = ApprovalState(record=record, approved=[entry], written=entry)
            elif approval.asked:
                update["summary"] = f"{self.summary} (human answer: {approval.answer}{note})"
        return self.model_copy(update=update)
