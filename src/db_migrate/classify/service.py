"""classify_escalation: review a revision, read the database, apply the policy."""

from __future__ import annotations

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
    from db_migrate.approval import book_for
    from db_migrate.preflight import read_data
    from db_migrate.project.config import dialect_of
    from db_migrate.fixes import review_with_patches
    from db_migrate.sandbox import progress

    policy = load_policy(project)
    history = baseline_revisions(load_history(project), policy)
    progress("reviewing the revision", 0, 4)
    review = review_with_patches(project, revision, dialect=dialect_of(database_url), timeout=timeout)
    facts = preflight = None
    if database_url:
        facts, preflight = read_data(review, database_url, policy, timeout)
    progress("applying the escalation policy", 3, 4)
    return classify(
        review, policy, facts, environment, database_url=database_url, project_url=project.url, preflight=preflight,
        history=history, approvals=book_for(project, review.reviews),
    )
