"""check_heads: graph health, model drift and database state in one verdict.

Three kinds of database may be involved, and they are kept apart:

* ``database_url`` is the **user's** database.  check_heads only *reads* its
  version table (read-only transaction, no env.py, nothing created) to say
  whether it is behind head or on a revision the history does not know.
* ``scratch_url`` names a **server** on which a throwaway database is created
  for the drift check and for the schema of the database's stamped revision
  (:mod:`.partway`), and dropped afterwards.  Without it the drift check
  uses a temporary SQLite file.  The user's database is never used for drift.
* The static part (headers, graph) needs no database and imports no user code.
"""

from __future__ import annotations

from pathlib import Path

from db_migrate.errors import MigrationCrashed, MigrationTimeout, Refused
from db_migrate.heads.graph import GraphReport, analyse
from db_migrate.heads.model import HeadsResult
from db_migrate.project import History, Project, load_history
from db_migrate.urls import redact_url
from db_migrate.sandbox.report import progress, reports_isolation  # the light half: a static check runs no job
from db_migrate.verdict import Finding, Unchecked, decide, sort_findings

DEFAULT_MERGE_MESSAGE = "merge heads"


@reports_isolation
def check_heads(
    project: Project,
    *,
    database_url: str | None = None,
    scratch_url: str | None = None,
    create_merge: bool = False,
    merge_message: str | None = None,
    drift: bool = True,
    timeout: float | None = None,
) -> HeadsResult:
    """Check the revision graph of ``project``; optionally merge heads, check drift and a database's state.

    - ``database_url``: the user's database, read only (its current revision vs head, and its actual
      schema vs the schema its stamped revision should have: which operations of a revision that
      failed partway are already applied; built on ``scratch_url``, or a temp file for SQLite).
    - ``scratch_url``: a PostgreSQL/MySQL server to build the drift scratch database on (default: temp SQLite).
    - ``create_merge``: when there are several heads, write a merge revision with ``alembic merge``
      (never by default; never over an existing file).
    - ``drift``: compare the models (env.py's ``target_metadata``) with the schema at head.
    """
    if scratch_url:
        from db_migrate.scratch import refuse_production

        # Asked to create a database on a production server: refuse the call (exit 2), do not
        # answer "proceed" with the drift check merely noted as unchecked.
        refuse_production(scratch_url, project.settings)
    progress("reading revision headers")
    history = load_history(project)
    report = analyse(history)
    # the headers are read from the top of each file only: a syntax error below them breaks alembic too
    report.findings.extend(_unparseable_bodies(project, history))
    extra: list[Finding] = []
    unchecked: list[Unchecked] = []

    merge_path: Path | None = None
    if create_merge:
        merge_path = _merge(project, report, merge_message or DEFAULT_MERGE_MESSAGE, timeout)
        if merge_path is not None:
            history = load_history(project)
            report = analyse(history)
            extra.append(
                Finding(
                    rule="merge-created", severity="info", phase="history",
                    message=f"Created merge revision {project.relpath(merge_path)}; review it and commit it.",
                    revision=(history.by_path(merge_path).revision if history.by_path(merge_path) else None),
                    path=project.relpath(merge_path),
                )
            )

    current: list[str] | None = None
    pending: list[str] = []
    schema_matches: bool | None = None
    if database_url:
        progress("reading the database's current revision")
        from db_migrate.sandbox import run_job

        current = run_job(
            "db_migrate.heads.jobs:read_database_revisions",
            timeout=timeout, what="reading the database's version table", isolation="ours",
            url=database_url,
            version_table=project.settings.get("version_table", "alembic_version"),
            version_table_schema=project.settings.get("version_table_schema"),
        )
        found, pending = _database_state(history, report, current, database_url)
        extra.extend(found)
        if not any(f.rule == "database-unknown-revision" for f in found):
            from db_migrate.heads.partway import partway_findings

            found, skipped, schema_matches = partway_findings(project, history, current, pending, database_url, scratch_url, timeout)
            extra.extend(found)
            unchecked.extend(skipped)

    operations: list[str] = []
    alembic_heads: list[str] | None = None
    engine = None
    drift_cached = False
    if drift:
        outcome = _drift(project, history, report, scratch_url, timeout)
        operations, alembic_heads, engine = outcome.operations, outcome.alembic_heads, outcome.engine
        drift_cached = outcome.cached
        extra.extend(outcome.findings)
        unchecked.extend(outcome.unchecked)

    alembic_agrees = None
    if alembic_heads is not None:
        alembic_agrees = sorted(alembic_heads) == report.heads
        if not alembic_agrees:
            extra.append(
                Finding(
                    rule="alembic-disagrees", severity="error", phase="history",
                    message=f"Alembic reports heads {', '.join(sorted(alembic_heads)) or 'none'} but the revision "
                    f"headers say {', '.join(report.heads) or 'none'}: a header is computed at import time.",
                    fix="Write revision/down_revision as plain literal strings.",
                )
            )

    findings = sort_findings(report.findings + extra)
    result = HeadsResult(
        decision=decide(findings),
        summary="",
        revisions=report.heads,
        findings=findings,
        unchecked=unchecked,
        heads=report.heads,
        bases=report.bases,
        revision_count=len(history.by_id),
        merge_points=report.merge_points,
        current=current,
        pending=pending,
        schema_matches_stamp=schema_matches,
        merge_revision=project.relpath(merge_path) if merge_path else None,
        alembic_agrees=alembic_agrees,
        drift_operations=operations,
        engine=engine,
        drift_cached=drift_cached,
    )
    result.summary = _summary(result, drift_checked=drift and not any(u.what == "model drift" for u in unchecked))
    return result


def _unparseable_bodies(project: Project, history: History) -> list[Finding]:
    """An ``unparseable-revision`` finding for every revision file whose body is not valid Python."""
    findings = []
    for h in history.headers:
        if (error := history.body_errors.get(h.path)) is None:
            continue
        message, line = error
        rel = project.relpath(h.path)
        findings.append(Finding(
            rule="unparseable-revision", severity="error", phase="history", revision=h.revision, path=rel, line=line,
            message=f"{rel} is not valid Python ({message}); alembic cannot load the history.",
            fix="Fix the syntax error, or move the file out of the versions folder if it is not a revision.",
        ))
    return findings


def _merge(project: Project, report: GraphReport, message: str, timeout: float | None) -> Path | None:
    """Write a merge revision of all heads (None when there is nothing to merge)."""
    from db_migrate.project.writing import remove_new_files, revision_files, revision_lock
    from db_migrate.scratch import scratch_database

    if len(report.heads) < 2:
        return None
    if not report.walkable:
        raise Refused(
            "Cannot create a merge revision: the history has errors alembic cannot walk "
            "(see check_heads without create_merge).",
            hint="Fix the unparseable, duplicate, dangling or cyclic revisions first.",
        )
    progress("creating the merge revision")
    from db_migrate.sandbox import run_job

    with revision_lock(project):
        before = revision_files(project)
        try:
            with scratch_database(purpose="merge") as db:
                path = run_job(
                    "db_migrate.heads.jobs:create_merge",
                    timeout=timeout, cwd=project.root, what="alembic merge", writable=project.version_locations,
                    project=project, message=message, scratch_url=db.url,
                )
        except (MigrationTimeout, MigrationCrashed):
            remove_new_files(project, before)
            raise
    return Path(path) if path else None


def _database_state(
    history: History, report: GraphReport, current: list[str], url: str
) -> tuple[list[Finding], list[str]]:
    """Compare the database's recorded revisions with the history: unknown ids, pending revisions."""
    where = redact_url(url)
    unknown = [c for c in current if c not in history.by_id]
    findings = [
        Finding(
            rule="database-unknown-revision", severity="error", phase="database",
            message=f"The database {where} is at revision {c}, which is not in this history "
            "(a revision file deleted, or a branch not merged here).",
            revision=c,
            fix="Restore the missing revision file (git log -- the versions folder), or ask a human before stamping.",
        )
        for c in unknown
    ]
    if unknown:
        return findings, []
    applied: set[str] = set()
    for c in current:
        applied |= history.ancestors(c, include_self=True)
    target: set[str] = set()
    for h in report.heads:
        target |= history.ancestors(h, include_self=True)
    pending = _oldest_first(history, target - applied)
    if pending:
        findings.append(
            Finding(
                rule="database-behind-head", severity="warning", phase="database",
                message=f"The database {where} is at {', '.join(current) or 'no revision (empty version table)'}; "
                f"{len(pending)} revision(s) are not applied yet: {', '.join(pending[:10])}"
                + (" ..." if len(pending) > 10 else "") + ".",
                fix="Review and test the pending revisions, then `alembic upgrade head`.",
            )
        )
    return findings, pending


def _oldest_first(history: History, ids: set[str]) -> list[str]:
    """``ids`` in an order where every revision comes after its parents (ties by id)."""
    import heapq

    parents = {r: [p for p in (*history.by_id[r].down_revisions, *history.by_id[r].depends_on) if p in ids] for r in ids}
    waiting = {r: len(ps) for r, ps in parents.items()}
    kids: dict[str, list[str]] = {r: [] for r in ids}
    for r, ps in parents.items():
        for p in ps:
            kids[p].append(r)
    ready = [r for r, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        r = heapq.heappop(ready)
        out.append(r)
        for k in kids[r]:
            waiting[k] -= 1
            if waiting[k] == 0:
                heapq.heappush(ready, k)
    return out


def _drift(project: Project, history: History, report: GraphReport, scratch_url: str | None, timeout: float | None):
    """Model drift at head (a :class:`~db_migrate.heads.drift.DriftOutcome`)."""
    from db_migrate.heads.drift import DriftOutcome, model_drift

    if not report.walkable or len(report.heads) > 1:
        why = "the history has several heads" if report.walkable else "the history has errors alembic cannot walk"
        return DriftOutcome(unchecked=[Unchecked(what="model drift", reason=f"Not checked: {why}.")])
    head = report.heads[0] if report.heads else None
    return model_drift(project, history, head, scratch_url=scratch_url, timeout=timeout)


def _summary(r: HeadsResult, *, drift_checked: bool) -> str:
    parts = []
    if len(r.heads) == 1:
        parts.append(f"1 head ({r.heads[0]})")
    else:
        parts.append(f"{len(r.heads)} heads" + (f" ({', '.join(r.heads[:4])})" if r.heads else ""))
    parts.append(f"{r.revision_count} revisions")
    errors = r.counts()["error"]
    if errors:
        parts.append(f"{errors} error(s)")
    if r.merge_revision:
        parts.append(f"merge written to {r.merge_revision}")
    if drift_checked:
        parts.append((f"model drift: {len(r.drift_operations)} operation(s)" if r.drift_operations else "models match head")
                     + (" (unchanged since the last check)" if r.drift_cached else ""))
    if r.current is not None:
        parts.append(f"database behind by {len(r.pending)}" if r.pending else "database at head")
    if r.schema_matches_stamp is not None:
        parts.append("its schema matches its stamped revision" if r.schema_matches_stamp else "its schema differs from its stamped revision")
    return "; ".join(parts) + "."
