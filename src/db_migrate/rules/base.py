"""The rule interface.

A rule is a small class in its own module under :mod:`db_migrate.rules`: a stable
id, a title, a default severity, the phases and dialects it applies to, why the
pattern is dangerous, the safe alternative as an Alembic snippet, and examples
(a bad and a good migration body) that the test-suite runs through the real
review.  The catalogue (``db-migrate rules``, the MCP resource) is generated
from these classes, so the documentation cannot drift from the code.

Every rule rates its findings by one principle, :data:`SEVERITY_PRINCIPLE` (printed at the top of ``db-migrate
rules`` and quoted in the README).

Rules run inside the sandbox worker over a
:class:`~db_migrate.capture.model.RevisionCapture` and yield
:class:`~db_migrate.verdict.Finding` objects built with :meth:`Rule.finding`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, Field

from db_migrate.verdict import Finding, Severity, SourceEdit

if TYPE_CHECKING:
    from db_migrate.capture.model import Phase, RecordedOp, RevisionCapture


SEVERITY_PRINCIPLE = (
    "error: the change fails on every server, loses data, or holds a lock that blocks reads or writes on a table "
    "that existed before the revision for a scan or a rewrite when a safe form exists (without the data, the table "
    "is assumed large; with database_url, tables under the policy's small_table_rows are relaxed and the finding "
    "says why). warning: the harm depends on facts the tool lacks (the rows, the table's size, the server), and the "
    "finding names them. info: worth knowing, nothing to fix."
)
"""The one rule for severities, applied by every rule of the catalogue."""


@dataclass(frozen=True)
class Example:
    """A migration body (``def upgrade()...def downgrade()...``) and what the rule should say of it."""

    bad: str
    """Source of upgrade()/downgrade() that the rule must flag."""
    good: str | None = None
    """The safe version, which the rule must not flag."""
    dialect: str = "postgresql"
    files: tuple[tuple[str, str], ...] = ()
    """Project files beside the revision, as (path relative to the project root, text): the application module an
    example imports."""


class RuleInfo(BaseModel):
    """One entry of the rule catalogue."""

    id: str
    title: str
    severity: Severity
    phases: list[str]
    dialects: list[str] | None = Field(description="None: every dialect.")
    why: str = Field(description="Why it is dangerous: locks, rewrites, data loss, breaking running code.")
    fix: str = Field(description="The safe alternative, as an Alembic snippet.")
    examples: list[dict[str, str | None]] = Field(default_factory=list)


class Rule:
    """Base class of every rule. Subclasses set the class attributes and implement :meth:`check`."""

    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[Severity]
    phases: ClassVar[tuple[str, ...]] = ("upgrade",)
    dialects: ClassVar[tuple[str, ...] | None] = None
    why: ClassVar[str]
    fix: ClassVar[str]
    examples: ClassVar[tuple[Example, ...]] = ()

    def applies_to(self, dialect: str) -> bool:
        return self.dialects is None or dialect in self.dialects

    def check(self, cap: RevisionCapture) -> Iterator[Finding]:
        """Yield findings for one revision. Override."""
        raise NotImplementedError

    def finding(
        self,
        cap: RevisionCapture,
        message: str,
        *,
        rec: RecordedOp | None = None,
        phase: Phase | str | None = None,
        line: int | None = None,
        table: str | None = None,
        column: str | None = None,
        severity: Severity | None = None,
        fix: str | None = None,
        edit: SourceEdit | None = None,
    ) -> Finding:
        """A finding of this rule, anchored to ``rec`` (an operation) when given.

        ``fix`` is the snippet for this finding's own tables, columns and names, or None: the catalogue's
        ``fix`` (written for an example table) is never copied into a finding about another one.
        ``edit`` is the fix as an edit of the revision file, when the rule can write it whole: the review
        turns it into a verified ``patch`` (:mod:`db_migrate.fixes.patches`).

        A line that runs for several tables (``for table in tables: op.create_foreign_key(None, table, ...)``) gets
        its fix said for the loop: written for one table, applied as given it breaks the next pass.
        """
        looped = sorted({r.table for r in cap.ops(rec.phase) if r.line == rec.line and r.table and r.kind == rec.kind}) \
            if rec is not None and rec.line else []
        if len(looped) > 1 and fix:
            fix = (f"# line {rec.line} runs once for each of {', '.join(looped)}: write this in the loop, with the "  # type: ignore[union-attr]
                   f"loop's table in place of {rec.table}\n" + fix)  # type: ignore[union-attr]
            edit = None
        return Finding(
            rule=self.id,
            severity=severity or self.severity,
            phase=phase or (rec.phase if rec is not None else "revision"),
            message=message,
            revision=cap.revision,
            path=cap.relpath,
            line=line if line is not None else (rec.line if rec is not None else None),
            table=table if table is not None else (rec.table if rec is not None else None),
            column=column if column is not None else (rec.column if rec is not None else None),
            fix=fix,
            edit=edit,
        )

    def info(self) -> RuleInfo:
        return RuleInfo(
            id=self.id,
            title=self.title,
            severity=self.severity,
            phases=list(self.phases),
            dialects=list(self.dialects) if self.dialects else None,
            why=self.why,
            fix=self.fix,
            examples=[{"bad": e.bad, "good": e.good, "dialect": e.dialect} for e in self.examples],
        )

    def ops(self, cap: RevisionCapture) -> Iterator[RecordedOp]:
        """The recorded operations of the phases this rule applies to."""
        for phase in ("upgrade", "downgrade"):
            if phase in self.phases:
                yield from cap.ops(phase)  # type: ignore[arg-type]
