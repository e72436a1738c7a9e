"""classify_escalation: review a revision, read the database, apply the policy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from db_migrate.errors import DbMigrateError
from db_migrate.policy.classify import classify
from db_migrate.policy.model import ClassifyResult
from db_migrate.policy.settings import baseline_revisions, load_policy
from db_migrate.project import Project, load_history
from db_migrate.sandbox import reports_isolation


@reports_isolation
def classify_escalation(
    project: Project,
    revision: str = "head",
    *,
    database_url: str | None = None,
    environment: str | None = None,
    timeout: float | None = None,
) -> ClassifyResult:
    """Does ``revision`` need a human?  Escalate, revise or proceed, with the triggers and auto classes.

    ``database_url`` (optional) names the user's database; it is only read, in
    a read-only transaction, for the row counts of the tables the revision
    touches and whether dropped columns hold data, and each change is checked
    against the data (:mod:`db_migrate.preflight`: NULLs, duplicates, orphans,
    CHECK violations, values a new type cannot hold, rows a data statement
    touches, table sizes and lock times).  Without it, dropped tables
    and columns are assumed to hold data and table sizes are reported as
    unchecked.
    """
    from db_migrate.project.config import dialect_of
    from db_migrate.fixes import review_with_patches
    from db_migrate.sandbox import progress

    progress("reviewing the revision", 0, 4)
    review = review_with_patches(project, revision, dialect=dialect_of(database_url), timeout=timeout)
    return _decide(project, review, database_url, environment, timeout)


def _decide(project: Project, review: Any, database_url: str | None, environment: str | None,
            timeout: float | None, settled: tuple[Any, frozenset[str]] | None = None) -> ClassifyResult:
    """The policy over one revision's review, with the user's data when given. ``settled``: the project's policy
    and baseline revisions, read once for several revisions."""
    from db_migrate.approval import book_for
    from db_migrate.preflight import read_data
    from db_migrate.sandbox import progress

    policy, history = settled or _settled(project)
    facts = preflight = None
    if database_url:
        facts, preflight = read_data(review, database_url, policy, timeout)
    progress("applying the escalation policy", 3, 4)
    return classify(
        review, policy, facts, environment, database_url=database_url, project_url=project.url, preflight=preflight,
        history=history, approvals=book_for(project, review.reviews),
    )


def _settled(project: Project) -> tuple[Any, frozenset[str]]:
    """The project's escalation policy and the revisions at or before its baseline."""
    policy = load_policy(project)
    return policy, baseline_revisions(load_history(project), policy)


def classify_each(
    project: Project,
    revisions: Sequence[str],
    *,
    database_url: str | None = None,
    environment: str | None = None,
    timeout: float | None = None,
) -> list[ClassifyResult | DbMigrateError]:
    """:func:`classify_escalation` of each revision (ids, prefixes or paths), in that order, from one review job
    for all of them (CI's ``classify A B C``: a job per revision cost about a second each on a long history).
    Each result is what :func:`classify_escalation` of that revision alone returns (its decision, triggers and
    findings; patches are checked for the first files only, as for any call over many revisions), or the error it
    raises."""
    from db_migrate.fixes.patches import offer_patches
    from db_migrate.project.config import dialect_of
    from db_migrate.review import review_migration
    from db_migrate.sandbox import collect_isolation, weakest

    ids = list(dict.fromkeys(load_history(project).resolve(r).revision for r in revisions))
    with collect_isolation() as ran:
        review = review_migration(project, revisions=ids, dialect=dialect_of(database_url), timeout=timeout)
        # one call's patch checks, as review's own for several revisions: the first files' (MAX_FILES) are checked
        review.findings = offer_patches(project, review.findings, dialect=review.dialect, timeout=timeout)
    unloadable = {f.revision for f in review.findings if f.rule == "migration-raises" and f.phase == "revision"}
    results: list[ClassifyResult | DbMigrateError] = []
    settled = _settled(project)
    for rev in ids:
        if rev in unloadable:  # alone, it is the error classify_escalation raises for it (migration-load-failed)
            try:
                results.append(classify_escalation(project, rev, database_url=database_url, environment=environment, timeout=timeout))
            except DbMigrateError as e:
                results.append(e)
            continue
        with collect_isolation() as more:
            decided = _decide(project, _one_revision(review, rev), database_url, environment, timeout, settled)
        decided.isolation = weakest(ran + more)
        results.append(decided)
    return results


def _one_revision(review: Any, revision: str) -> Any:
    """The part of a review of several revisions that is about ``revision`` (what concerns the project as a whole,
    with no revision, belongs to each)."""
    mine = lambda items: [x for x in items if getattr(x, "revision", None) in (revision, None)]  # noqa: E731
    return review.model_copy(update={
        "revisions": [revision], "reviews": [r for r in review.reviews if r.revision == revision],
        "findings": mine(review.findings), "unchecked": mine(review.unchecked), "suppressed": mine(review.suppressed),
    })
