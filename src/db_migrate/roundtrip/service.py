"""test_roundtrip: seeded upgrade → downgrade → upgrade on a scratch database."""

from __future__ import annotations

import time
from typing import Any

from db_migrate.errors import DbMigrateError, MigrationCrashed, MigrationTimeout, UsageError
from db_migrate.project import History, Project, load_history
from db_migrate.roundtrip.model import RoundtripFailure, RoundtripResult, RoundtripStep
from db_migrate.roundtrip.snapshot import describe_changes
from db_migrate.sandbox import DEFAULT_TIMEOUT, progress, reports_isolation, run_job
from db_migrate.scratch import refuse_production, scratch_database
from db_migrate.scratch.engine import engine_only, plan_scratch
from db_migrate.verdict import Finding, Unchecked, decide

_STEP_KINDS = {"upgrade-failed", "downgrade-failed", "reupgrade-failed"}
_PHASE_KIND = {"prepare": "upgrade-failed", "upgrade": "upgrade-failed", "downgrade": "downgrade-failed", "reupgrade": "reupgrade-failed"}


@reports_isolation
def test_roundtrip(
    project: Project,
    revision: str = "head",
    *,
    database_url: str | None = None,
    rows: int = 20,
    from_revision: str | None = None,
    to_revision: str | None = None,
    all_revisions: bool = False,
    environment: str | None = None,
    timeout: float | None = None,
) -> RoundtripResult:
    """Roundtrip ``revision`` (default head) on top of its parent, or every revision of a range.

    ``database_url`` names a PostgreSQL or MySQL/MariaDB *server* on which a
    scratch database is created and dropped; default: a temporary SQLite file.
    A URL the policy considers production is refused.
    """
    t_start = time.perf_counter()
    if rows < 0:
        raise UsageError("rows must be >= 0.")
    # up front, before any work; also a production environment when no server is named
    refuse_production(database_url, project.settings, environment)
    plan = plan_scratch(project, database_url)
    dialect, server = plan.engine, plan.server_url
    history = load_history(project)
    revisions = _select(history, revision, from_revision, to_revision, all_revisions)
    job_timeout = timeout if timeout is not None else DEFAULT_TIMEOUT + 0.5 * len(revisions)

    template = None
    first_parent = history.by_id[revisions[0]].down_revisions
    if len(first_parent) == 1:
        from db_migrate.scratch.templates import ensure_template

        progress(f"preparing the schema of {first_parent[0]}", 0, len(revisions))
        template = ensure_template(project, history, first_parent[0], server, timeout=job_timeout)

    out, database = _run(project, server, revisions, rows, template, job_timeout)
    pairs = [(RoundtripFailure(**_fields(f)), f.get("partial_schema")) for f in out["failures"]]
    if rows > 0:
        _retry_on_empty(project, server, pairs, job_timeout)
    failures = [f for f, _ in pairs]
    # a type or SQL form the scratch engine lacks says nothing about the migration on its own engine
    not_ours = [f for f in failures if engine_only(plan, f"{f.message} {f.error or ''}")]
    failures = [f for f in failures if all(f is not g for g in not_ours)]

    unchecked = [*plan.unchecked, *(
        Unchecked(what=f"{f.step} on {plan.engine}", revision=f.revision,
                  reason=f"{f.message}: {f.error} ({plan.engine} lacks this; the project's engine is {plan.project_dialect or 'unknown'})")
        for f in not_ours
    )]
    unchecked += [Unchecked(what=f"seeding table {t}", reason=why) for t, why in out.get("seed_skipped", {}).items()]
    if out.get("stopped"):
        for rev in revisions:
            if rev not in out["checked"] and not any(f.revision == rev for f in failures):
                unchecked.append(Unchecked(what="roundtrip", reason=out["stopped"], revision=rev))
    for rev in revisions:
        if len(history.by_id[rev].down_revisions) > 1:
            unchecked.append(Unchecked(what="downgrade of a merge", revision=rev,
                                       reason="downgraded to its first parent only"))
    findings = [
        Finding(rule=f.kind, severity="error", phase="downgrade" if f.step == "downgrade" else "upgrade",
                message=f"{f.revision}: {f.message}" + (f": {f.error}" if f.error else ""),
                revision=f.revision, path=project.relpath(history.by_id[f.revision].path) if f.revision in history.by_id else None,
                table=f.table, column=f.column, fix=f.hint)
        for f in failures
    ]
    status = "failed" if failures else "passed"
    checked = len(out["checked"])
    summary = (
        f"roundtrip passed for {checked} revision(s) on {dialect} with {rows} seeded rows per table"
        if status == "passed"
        else f"roundtrip failed on {dialect}: {len(failures)} failure(s) in "
        f"{len({f.revision for f in failures})} revision(s) ({', '.join(sorted({f.kind for f in failures}))})"
    )
    return RoundtripResult(
        decision=decide(findings),
        summary=summary,
        revisions=revisions,
        findings=findings,
        unchecked=unchecked,
        status=status,
        failures=failures,
        steps=[RoundtripStep(**s) for s in out["steps"]],
        runner=out.get("runner"),
        runner_reason=out.get("runner_reason"),
        dialect=dialect,
        database=database,
        rows=rows,
        seeded=out.get("seeded", {}),
        template=template is not None,
        seconds=round(time.perf_counter() - t_start, 3),
        engine=plan.info(),
    )


def _select(history: History, revision: str, from_rev: str | None, to_rev: str | None, all_revs: bool) -> list[str]:
    """The revisions to roundtrip, parents before children."""
    if not (all_revs or from_rev or to_rev):
        return [history.resolve(revision).revision]  # type: ignore[list-item]
    top = history.resolve(to_rev or "head").revision
    wanted = history.ancestors(top, include_self=True)
    if from_rev:
        low = history.resolve(from_rev).revision
        if low not in wanted:
            raise UsageError(f"{from_rev} is not an ancestor of {to_rev or 'head'}.")
        below = history.ancestors(low)
        wanted = {r for r in wanted if r not in below}
    order: list[str] = []
    seen: set[str] = set()

    def visit(rid: str) -> None:  # iterative enough: histories are chains, recursion depth is per branch point
        stack = [(rid, False)]
        while stack:
            r, done = stack.pop()
            if done:
                order.append(r)
                continue
            if r in seen or r not in wanted:
                continue
            seen.add(r)
            stack.append((r, True))
            stack.extend((p, False) for p in reversed(history.by_id[r].down_revisions))

    visit(top)
    return order


def _run(project: Project, server: str | None, revisions: list[str], rows: int, template: str | None,
         timeout: float, *, keep_schemas: bool = False) -> tuple[dict[str, Any], str]:
    """One roundtrip job on a fresh scratch database; a stopped worker becomes a failure, not an exception."""
    last: dict[str, Any] = {"message": f"{revisions[0]}: prepare"}

    def on_progress(payload: dict[str, Any]) -> None:
        last.update(payload)
        progress(payload.get("message", ""), payload.get("progress"), payload.get("total"))

    with scratch_database(server, purpose="roundtrip", template=template, settings=project.settings) as db:
        database = db.redacted
        try:
            out = run_job(
                "db_migrate.roundtrip.job:run", timeout=timeout, cwd=project.root, on_progress=on_progress,
                what="the roundtrip", config_file=str(project.config_file), section=project.section,
                url=db.url, revisions=revisions, rows=rows, keep_schemas=keep_schemas,
            )
        except (MigrationTimeout, MigrationCrashed) as e:
            rev, _, phase = str(last.get("message", "")).partition(": ")
            failure = {"kind": _PHASE_KIND.get(phase, "upgrade-failed"), "revision": rev or revisions[0],
                       "step": phase if phase in _PHASE_KIND else "upgrade",
                       "message": f"{phase or 'upgrade'} of {rev} did not complete", "error": e.message,
                       "error_code": e.code, "hint": e.hint}
            out = {"failures": [failure], "steps": [], "checked": [], "stopped": "the worker was stopped", "seeded": {}}
        except DbMigrateError:
            raise
    return out, database


def _retry_on_empty(project: Project, server: str | None, pairs: list[tuple[RoundtripFailure, dict | None]],
                    timeout: float) -> None:
    """Re-run each failed step's revision on an empty database: ``populated_only`` when it then passes.

    ``pairs``: each failure with the schema left behind by a partly applied step (or None).
    """
    for f, partial in pairs:
        if f.kind not in _STEP_KINDS or f.error_code == "migration-timeout":
            continue
        progress(f"{f.revision}: retrying on an empty database")
        out, _ = _run(project, server, [f.revision], 0, None, timeout, keep_schemas=True)
        again = [g for g in out["failures"] if g["kind"] == f.kind]
        f.populated_only = not again
        if f.populated_only and f.kind == "upgrade-failed" and f.applied_partway:
            full = out.get("schemas", {}).get(f.revision)
            if full is not None and partial is not None:
                # alembic's batch temp tables are leftovers of the failure, not part of the revision
                f.not_applied = [c for c in describe_changes(partial, full) if "_alembic_tmp_" not in c]


def _fields(raw: dict[str, Any]) -> dict[str, Any]:
    known = RoundtripFailure.model_fields
    return {k: v for k, v in raw.items() if k in known}
