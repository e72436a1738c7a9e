"""classify_escalation: review a revision, read the database, apply the policy."""

from __future__ import annotations

from typing import Any

from db_migrate.policy.classify import classify, facts_needed
from db_migrate.policy.model import ClassifyResult, DatabaseFacts
from db_migrate.preflight.model import Preflight
from db_migrate.policy.settings import Policy, policy_from_settings
from db_migrate.errors import ConfigInvalid, DbMigrateError
from db_migrate.project import History, Project, load_history
from db_migrate.sandbox import reports_isolation


def load_policy(project: Project) -> Policy:
    """The policy in effect for ``project``: its ``[tool.db-migrate]`` keys over the defaults.

    Raises :class:`~db_migrate.errors.ConfigInvalid` for a bad key.
    """
    return policy_from_settings(project.settings, source=f"[tool.db-migrate] of {project.root / 'pyproject.toml'}")


def baseline_revisions(history: History, policy: Policy) -> frozenset[str]:
    """The baseline revision and its ancestors (history: no trigger fires for them); empty without a baseline.

    Raises :class:`~db_migrate.errors.ConfigInvalid` when the baseline is not a revision of the history.
    """
    if not policy.baseline:
        return frozenset()
    try:
        base = history.resolve(policy.baseline).revision
    except DbMigrateError as e:
        raise ConfigInvalid(
            f"baseline = {policy.baseline!r} in [tool.db-migrate] names no revision of this history: {e.message}",
            hint="Set baseline to the id of the last revision that is history ({tool:check_heads} lists them), or remove it.",
        ) from None
    return frozenset(history.ancestors(base, include_self=True)) if base else frozenset()


@reports_isolation
def read_data(review: Any, database_url: str, policy: Policy, timeout: float | None) -> tuple[DatabaseFacts, Preflight]:
    """What the policy reads from the user's database for ``review`` (read-only): row counts and column contents
    (:func:`db_migrate.policy.database.read_database_facts`), and each change asked of the data (preflight).
    classify_escalation and review_migration both read it, so both decide from the same facts."""
    from db_migrate.policy.database import read_database_facts
    from db_migrate.preflight import run_preflight
    from db_migrate.sandbox import progress

    progress("reading row counts (read-only)", 1, 4)
    tables, columns = facts_needed(review, policy)
    limit = policy.database_timeout_seconds if timeout is None else min(timeout, policy.database_timeout_seconds)
    facts = read_database_facts(
        database_url, tables=tables, columns=columns, exact_count_below=policy.exact_count_below, timeout=limit
    )
    progress("checking the changes against the data (read-only)", 2, 4)
    return facts, run_preflight(review, database_url, policy, timeout=timeout)


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
    from db_migrate.review import review_migration
    from db_migrate.sandbox import progress

    policy = load_policy(project)
    history = baseline_revisions(load_history(project), policy)
    progress("reviewing the revision", 0, 4)
    review = review_migration(project, revision, dialect=dialect_of(database_url), timeout=timeout)
    facts = preflight = None
    if database_url:
        facts, preflight = read_data(review, database_url, policy, timeout)
    progress("applying the escalation policy", 3, 4)
    return classify(review, policy, facts, environment, database_url=database_url, project_url=project.url, preflight=preflight, history=history)
