"""Fixes as verified patches: the review an agent acts on.

A rule that can write its fix whole gives the finding an ``edit`` (:class:`db_migrate.verdict.SourceEdit`);
:mod:`.patches` turns it into a unified diff and checks it on a copy of the project (``git apply``, a review of
the patched revision, and its roundtrip) before it is offered as ``Finding.patch``.  Checking a patch runs
both the review and the roundtrip, so this service sits above both (the roundtrip itself decides through the
review); the ``review_migration`` tool calls :func:`review_with_patches`.
"""

from __future__ import annotations

from typing import Any

from db_migrate.project import Project
from db_migrate.review import review_migration
from db_migrate.review.model import ReviewResult
from db_migrate.sandbox import reports_isolation

__all__ = ["review_with_patches"]


@reports_isolation
def review_with_patches(project: Project, revision: str = "head", *, all_revisions: bool = False, **kwargs: Any) -> ReviewResult:
    """:func:`db_migrate.review.review_migration`, with each fix db-migrate can write as a checked ``patch``.

    A review of every revision (``all_revisions``: CI's question) checks no patch; an agent fixing a
    revision asks for that one, and gets them.
    """
    from db_migrate.fixes.patches import offer_patches

    result = review_migration(project, revision, all_revisions=all_revisions, **kwargs)
    if not all_revisions:
        result.findings = offer_patches(project, result.findings, dialect=result.dialect, timeout=kwargs.get("timeout"))
    return result
