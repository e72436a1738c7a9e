"""Human approvals that travel with the repository: bound to a revision file's content and its triggers.

- :mod:`.model` — :class:`ApprovalEntry` (one ``[[approval]]``), :class:`ApprovalState` (what a verdict says).
- :mod:`.record` — the TOML file per revision under ``<script_location>/approvals/``: read, append.
- :mod:`.match` — pure matching of fired triggers against entries: approved, or pending with what changed.

Services read the record through :func:`book_for` and hand the :class:`Book` to
:func:`db_migrate.policy.classify.decide_for`, the one decision; only
:func:`record_approval` writes, and only the CLI's ``approve`` command and a
human's answer through MCP elicitation call it (never a tool argument).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from db_migrate.approval.match import Book, RevisionFile, entry_for, evaluate
from db_migrate.approval.model import ApprovalEntry, ApprovalState, ApprovedTrigger, PendingApproval
from db_migrate.approval.record import append_entry, read_entries, record_folder, record_path

__all__ = [
    "ApprovalEntry",
    "ApprovalState",
    "ApprovedTrigger",
    "Book",
    "PendingApproval",
    "RevisionFile",
    "book_for",
    "evaluate",
    "read_entries",
    "record_approval",
    "record_path",
]


def book_for(project: Any, reviews: Iterable[Any]) -> Book:
    """The record's entries and each file's digest, for ``reviews`` (anything with ``revision`` and ``path``).

    ``path`` is project-relative, as in every verdict.  A revision without an id or a file is left out
    (a file that is not valid Python: it fires no trigger to approve).  The folder is listed once; files
    and records are read only for revisions whose triggers fire (:class:`RevisionFile`).
    """
    folder = record_folder(project.script_location)
    try:
        existing = set(os.listdir(folder))
    except OSError:
        existing = set()
    files: dict[str, RevisionFile] = {}
    for r in reviews:
        rev, path = getattr(r, "revision", None), getattr(r, "path", None)
        if rev and path and rev not in files:
            record = record_path(project.script_location, rev)
            files[rev] = RevisionFile(rev, path, project.root / path, record if record.name in existing else None)
    return Book(folder=project.relpath(folder), files=tuple(files.values()))


def now_utc() -> str:
    """Now, UTC, to the second: ``2026-12-07T17:40:00Z``."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def record_approval(project: Any, verdict: Any, revision: str, *, by: str, note: str, via: str) -> ApprovalEntry:
    """Append an entry approving ``revision`` with every trigger ``verdict`` fired for it, for its content now.

    ``verdict`` is a review or classify verdict that covers ``revision`` (its ``reviews``, or the review it
    was made from, give the file).  Raises :class:`~db_migrate.errors.UsageError` when nothing fired for it
    (nothing to approve) or the name is empty, and :class:`~db_migrate.errors.ApprovalRecordError` when the
    record cannot be written.
    """
    from db_migrate.errors import UsageError

    if not by.strip():
        raise UsageError("An approval needs the name of the human who gives it.", hint="Pass --by NAME.")
    book = book_for(project, _reviews(project, verdict, revision))
    f = next((f for f in book.files if f.revision == revision), None)
    triggers: Sequence = verdict.escalation.triggers if verdict.escalation is not None else []
    entry = entry_for(f, triggers, book, by=by.strip(), note=note, via=via, now=now_utc()) if f else None
    if entry is None or not entry.triggers:
        raise UsageError(
            f"{revision} fires no escalation trigger: there is nothing to approve.",
            hint="Only an escalation needs a human's approval; {tool:classify_escalation} says which revisions escalate.",
        )
    append_entry(record_path(project.script_location, revision), entry)
    return entry


def _reviews(project: Any, verdict: Any, revision: str) -> list[Any]:
    reviews = list(getattr(verdict, "reviews", None) or [])
    if not any(getattr(r, "revision", None) == revision for r in reviews):
        from db_migrate.project import load_history

        h = load_history(project).resolve(revision)
        reviews.append(SimpleNamespace(revision=h.revision, path=project.relpath(h.path)))
    return reviews
