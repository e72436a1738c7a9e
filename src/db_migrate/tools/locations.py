"""Where a finding or an escalation trigger points, as CI tools want it.

Findings carry paths relative to the project root; code scanning (SARIF) and
GitHub annotations want paths relative to the repository root, which differs
when the Alembic project lives in a subdirectory (``backend/alembic.ini``).
Escalation triggers carry their location inside the evidence text
(``alembic/versions/x.py:12: table ...``), which :func:`trigger_location` reads back.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from db_migrate.verdict import Finding, Trigger, Verdict


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


_EVIDENCE_PLACE = re.compile(r"^(?P<path>[^\s:]+\.py)(?::(?P<line>\d+))?(?=[:\s]|$)")


def trigger_location(trigger: Trigger, locator: Locator, default: str | None) -> Location:
    """The first ``path[:line]`` an evidence line starts with, else ``default`` (the revision's file)."""
    for ev in trigger.evidence:
        m = _EVIDENCE_PLACE.match(ev)
        if m:
            return locator.of(m.group("path"), int(m.group("line") or 0) or None)
    return locator.of(default, None)


def items(result: Verdict, locator: Locator, default_path: str | None = None) -> list[Item]:
    """Every finding of ``result``, then every fired escalation trigger, as :class:`Item`.

    A trigger whose evidence names no file is shown at ``default_path`` (the revision
    the verdict is about), else at the first file a finding names.
    """
    out = [_finding_item(f, locator) for f in result.findings]
    if result.escalation is not None and result.escalation.required:
        default = default_path or next((f.path for f in result.findings if f.path), None) or _revision_path(result)
        for t in result.escalation.triggers:
            loc = trigger_location(t, locator, default)
            out.append(Item(
                rule=f"escalate/{t.trigger}", severity="error", title=f"needs a human: {t.trigger}",
                message=t.reason + ("\n" + "\n".join(f"- {e}" for e in t.evidence) if t.evidence else ""),
                location=loc, revision=(result.revisions or [None])[0], fix=None,
                identity="|".join(("escalate", t.trigger, *(result.revisions or []))),
            ))
    return out


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
