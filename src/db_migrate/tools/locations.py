"""Where a finding or an escalation trigger points, as CI tools want it.

Findings carry paths relative to the project root; code scanning (SARIF) and
GitHub annotations want paths relative to the repository root, which differs
when the Alembic project lives in a subdirectory (``backend/alembic.ini``).
Escalation triggers carry their location inside the evidence text
(``alembic/versions/x.py:12: table ...``), which :func:`trigger_location` reads back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from db_migrate.approval.match import EVIDENCE_PLACE

if TYPE_CHECKING:
    from db_migrate.verdict import Finding, Verdict


@dataclass(frozen=True)
class Location:
    """A file relative to the repository root (``/`` separated) and a 1-based line."""

    uri: str
    line: int


@dataclass(frozen=True)
class Item:
    """One thing to report: a finding, or a fired escalation trigger with its own location."""

    rule: str
    severity: str
    title: str
    message: str
    location: Location
    revision: str | None
    fix: str | None
    identity: str
    """What stays the same while lines move (rule, revision, table, column): the fingerprint's input."""
    suppressed: str | None = None
    """Why this is not a problem to act on: the approval (``approved by Ana on 2026-12-07: note``)."""


def repository_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding ``.git`` (a directory or a worktree file), else ``start``."""
    start = start.resolve()
    for d in (start, *start.parents):
        if (d / ".git").exists():
            return d
    return start


class Locator:
    """Turns project-relative paths into repository-relative ones."""

    def __init__(self, project_root: Path, fallback: Path, base: Path | None = None) -> None:
        self.project_root = project_root.resolve()
        self.base = (base or repository_root(self.project_root)).resolve()
        self.fallback = fallback
        """Where a finding without a file (the revision graph, the database) is shown: the Alembic config."""

    def uri(self, path: str | os.PathLike[str] | None) -> str:
        p = Path(path) if path else self.fallback
        if not p.is_absolute():
            p = self.project_root / p
        try:
            rel = p.resolve().relative_to(self.base)
        except ValueError:
            return p.resolve().as_uri()
        return rel.as_posix()

    def of(self, path: str | None, line: int | None) -> Location:
        return Location(self.uri(path), line if path and line and line > 0 else 1)


def trigger_location(evidence: list[str], locator: Locator, default: str | None) -> Location:
    """The first ``path[:line]`` an evidence line starts with, else ``default`` (the revision's file)."""
    for ev in evidence:
        m = EVIDENCE_PLACE.match(ev)
        if m:
            return locator.of(m.group("path"), int(m.group("line") or 0) or None)
    return locator.of(default, None)


def items(result: Verdict, locator: Locator, default_path: str | None = None) -> list[Item]:
    """Every finding of ``result``, then every fired escalation trigger per revision, as :class:`Item`.

    A trigger is reported once per revision whose file holds its evidence, at that evidence and under
    that revision; evidence that names no file (a production database) belongs to ``default_path``
    (the revision the verdict is about), else to the first file a finding names.  A revision the
    approval record approved gives ``suppressed`` items (the justification), shown to code scanning
    as suppressed results; without an approval record only a required escalation is reported.
    """
    out = [_finding_item(f, locator) for f in result.findings]
    esc = result.escalation
    approved = {e.revision: e for e in (result.approval.approved if result.approval is not None else [])}
    if esc is None or not (esc.required or approved):
        return out
    files = _revision_files(result)
    default = default_path or next((f.path for f in result.findings if f.path), None) or _revision_path(result)
    default_rev = next((r for r, p in files.items() if p == default), None) or (result.revisions or [None])[0]
    for t in esc.triggers:
        per: dict[str | None, list[str]] = {}
        for ev in t.evidence or [""]:
            m = EVIDENCE_PLACE.match(ev)
            rev = next((r for r, p in files.items() if m and p == m.group("path")), None) if m else None
            per.setdefault(rev or default_rev, []).append(ev)
        for rev, evidence in per.items():
            entry = approved.get(rev) if rev else None
            out.append(Item(
                rule=f"escalate/{t.trigger}", severity="error", title=f"needs a human: {t.trigger}",
                message=t.reason + "".join(f"\n- {e}" for e in evidence if e),
                location=trigger_location(evidence, locator, files.get(rev) if rev else default), revision=rev, fix=None,
                identity="|".join(("escalate", t.trigger, rev or "")),
                suppressed=(entry.by_on + (f": {entry.note}" if entry.note else "")) if entry else None,
            ))
    return out


def _revision_files(result: Verdict) -> dict[str, str]:
    """Revision id -> its file (project-relative), from everything the verdict says about both."""
    files: dict[str, str] = {}
    sources = [*(getattr(result, "reviews", None) or []), *result.findings, *(getattr(result, "operations", None) or [])]
    for x in sources:
        rev, path = getattr(x, "revision", None), getattr(x, "path", None)
        if rev and path and path.endswith(".py"):
            files.setdefault(rev, path)
    if result.approval is not None:
        for x in [*result.approval.approved, *result.approval.pending]:
            if x.file:
                files.setdefault(x.revision, x.file)
    return files


def _finding_item(f: Finding, locator: Locator) -> Item:
    return Item(
        rule=f.rule, severity=f.severity, title=f.rule, message=f.message, location=locator.of(f.path, f.line),
        revision=f.revision, fix=f.fix,
        identity="|".join(x or "" for x in (f.rule, f.revision, f.path, f.phase, f.table, f.column)),
    )


def _revision_path(result: Verdict) -> str | None:
    for review in getattr(result, "reviews", None) or []:
        if getattr(review, "path", None):
            return review.path
    return None
