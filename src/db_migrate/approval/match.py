"""Matching a verdict's fired triggers against the record: approved, or pending with what changed.

Pure functions over plain data (no files): :func:`evaluate` is what
:func:`db_migrate.policy.classify.decide_for` calls with a :class:`Book` the
service read (:func:`db_migrate.approval.book_for`).

The evidence digest covers *where* each trigger fired, not what was measured
there: an evidence line ``alembic/versions/x.py:12 upgrade drop_column users.x:
table users has 1,204 rows`` counts as its place (``alembic/versions/x.py:12
upgrade drop_column users.x``), because row counts, "assumed: no database_url
given" and the like differ between the developer's database, CI (no database)
and tomorrow.  The places are project-relative, sorted and de-duplicated, so
the digest is the same on every machine and run.  Together with the file digest
(the file fixes what runs at each place) an approval covers exactly one
content and one set of (trigger, place).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from db_migrate.approval.model import ApprovalEntry, ApprovalState, ApprovedTrigger, PendingApproval
from db_migrate.approval.record import read_entries

#: The ``path[:line]`` an evidence line starts with (``alembic/versions/x.py:12 upgrade ...``).
EVIDENCE_PLACE = re.compile(r"^(?P<path>[^\s:]+\.py)(?::(?P<line>\d+))?(?=[:\s]|$)")


@dataclass(frozen=True)
class RevisionFile:
    """One reviewed revision: its file (project-relative) and record; the file's digest and the record's
    entries are read on first use, so only revisions whose triggers fire cost a read."""

    revision: str
    file: str
    path: Path | None = None
    """The revision file (absolute)."""
    record: Path | None = None
    """Its record, when one exists."""

    @cached_property
    def sha256(self) -> str:
        """sha256 of the file's bytes now ('' when it cannot be read: then no entry matches)."""
        try:
            return file_digest(self.path.read_bytes()) if self.path else ""
        except OSError:
            return ""

    @cached_property
    def entries(self) -> tuple[ApprovalEntry, ...]:
        return tuple(read_entries(self.record)) if self.record else ()


@dataclass(frozen=True)
class Book:
    """The record's entries for the revisions a verdict covers, with each file's digest now."""

    folder: str
    """The records' folder, relative to the project root (``alembic/approvals``)."""
    files: tuple[RevisionFile, ...] = field(default_factory=tuple)

    @cached_property
    def _by_file(self) -> dict[str, str]:
        return {f.file: f.revision for f in self.files}

    def revision_of(self, evidence: str) -> str | None:
        """The revision whose file an evidence line starts with; None for evidence that names no file (production)."""
        m = EVIDENCE_PLACE.match(evidence)
        return self._by_file.get(m.group("path")) if m else None


def place(evidence: str) -> str:
    """The part of an evidence line that says where (everything before the first ``": "``), not what was measured."""
    return evidence.split(": ", 1)[0].strip()


def evidence_digest(places: Iterable[str]) -> str:
    """sha256 of the sorted, de-duplicated places: the same set gives the same digest on every machine."""
    return hashlib.sha256("\n".join(sorted(set(places))).encode("utf-8")).hexdigest()


def file_digest(data: bytes) -> str:
    """sha256 of a revision file's bytes: every byte counts (comments and whitespace included)."""
    return hashlib.sha256(data).hexdigest()


def by_revision(triggers: Sequence, book: Book) -> dict[str, dict[str, list[str]]]:
    """``{revision: {trigger id: [evidence]}}`` for the revisions of ``book``.

    Evidence that names a revision file goes to that revision; evidence that names
    none (a production database) concerns every revision of the verdict.
    """
    out: dict[str, dict[str, list[str]]] = {}
    for t in triggers:
        for ev in t.evidence or [t.trigger]:
            rev = book.revision_of(ev)
            for r in [rev] if rev else [f.revision for f in book.files]:
                out.setdefault(r, {}).setdefault(t.trigger, []).append(ev)
    return out


def approved_triggers(fired: dict[str, list[str]]) -> list[ApprovedTrigger]:
    """What an entry records for ``fired`` (one revision's ``{trigger id: [evidence]}``)."""
    return [
        ApprovedTrigger(id=tid, evidence_sha256=evidence_digest(map(place, ev)), at=sorted({place(e) for e in ev}), evidence=list(ev))
        for tid, ev in fired.items()
    ]


def covers(entry: ApprovalEntry, fired: dict[str, list[str]]) -> bool:
    """Whether ``entry`` approved every trigger in ``fired`` at exactly the places it fires now."""
    have = {t.id: t.evidence_sha256 for t in entry.triggers}
    return all(have.get(tid) == evidence_digest(map(place, ev)) for tid, ev in fired.items())


def _changes(f: RevisionFile, fired: dict[str, list[str]]) -> list[str]:
    """Why no entry of ``f`` covers ``fired``, said against the latest entry."""
    if not f.entries:
        return ["never approved"]
    same = [e for e in f.entries if e.file_sha256 == f.sha256]
    if not same:
        last = f.entries[-1]
        return [f"the revision changed since {last.approved_by} approved it on {last.approved_at[:10]}: its file digest differs"]
    last = same[-1]
    have = {t.id: t for t in last.triggers}
    out = []
    for tid, ev in fired.items():
        places = sorted({place(e) for e in ev})
        if tid not in have:
            out.append(f"new trigger {tid} since {last.approved_by} approved it on {last.approved_at[:10]}: {'; '.join(places)}")
        elif have[tid].evidence_sha256 != evidence_digest(places):
            moved = sorted(set(places) - set(have[tid].at)) or places
            out.append(f"trigger {tid} changed since {last.approved_by} approved it on {last.approved_at[:10]}: now at {'; '.join(moved)}")
    return out


def _uncovered(f: RevisionFile, fired: dict[str, list[str]]) -> list[str]:
    """The triggers a human must still approve: those the latest entry for this content lacks, else all."""
    same = [e for e in f.entries if e.file_sha256 == f.sha256]
    if not same:
        return list(fired)
    have = {t.id: t.evidence_sha256 for t in same[-1].triggers}
    return [tid for tid, ev in fired.items() if have.get(tid) != evidence_digest(map(place, ev))]


def evaluate(triggers: Sequence, book: Book) -> ApprovalState:
    """Per revision of ``book`` with fired ``triggers``: the entry covering this content and these triggers, or pending.

    An entry covers a revision when its ``file_sha256`` is the file's digest now and it
    approved every fired trigger with the same evidence digest (it may have approved
    more: a trigger that needs a database and does not fire in CI).  The newest such
    entry is reported.
    """
    state = ApprovalState(record=book.folder)
    fired = by_revision(triggers, book)
    for f in book.files:
        mine = fired.get(f.revision)
        if not mine:
            continue
        match = next((e for e in reversed(f.entries) if e.file_sha256 == f.sha256 and covers(e, mine)), None)
        if match is not None:
            state.approved.append(match)
        else:
            state.pending.append(PendingApproval(
                revision=f.revision, file=f.file, triggers=_uncovered(f, mine), changes=_changes(f, mine), never_approved=not f.entries,
            ))
    return state


def entry_for(
    f: RevisionFile, triggers: Sequence, book: Book, *, by: str, note: str, via: str, now: str
) -> ApprovalEntry:
    """The entry approving revision ``f`` with the triggers that fire for it now."""
    fired = by_revision(triggers, book).get(f.revision, {})
    return ApprovalEntry(
        revision=f.revision, file=f.file, file_sha256=f.sha256, approved_by=by, approved_at=now, note=note, via=via,
        triggers=approved_triggers(fired),
    )
