"""test_roundtrip: seeded upgrade → downgrade → upgrade on a scratch database."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from db_migrate.errors import DbMigrateError, MigrationCrashed, MigrationTimeout, ProjectCodeError, UsageError
from db_migrate.project import History, Project, load_history
from db_migrate.roundtrip.locks import LockCheck, StatementTrace, confirm_findings
from db_migrate.roundtrip.model import RoundtripFailure, RoundtripResult, RoundtripStep
from db_migrate.roundtrip.snapshot import describe_changes
from db_migrate.sandbox import DEFAULT_TIMEOUT, progress, reports_isolation, run_job
from db_migrate.scratch import refuse_production, scratch_database
from db_migrate.scratch.engine import SUPERUSER_ONLY_REASON, engine_only, plan_scratch, superuser_only
from db_migrate.scratch.extensions import engine_limit, stand_in_note, stand_ins_used
from db_migrate.verdict import Escalation, Finding, Trigger, Unchecked, decide

if TYPE_CHECKING:
    from db_migrate.policy.classify import PolicyDecision

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

    The decision: ``revise`` when a step failed (the findings name it);
    otherwise the project's policy without a database, as review_migration
    applies it (``escalate`` when a trigger fires), else ``proceed``.  So a
    passed roundtrip never says proceed where review escalates.

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

    template, template_why = None, None
    first_parent = history.by_id[revisions[0]].down_revisions
    if len(first_parent) == 1:
        from db_migrate.scratch.templates import template_for

        progress(f"preparing the schema of {first_parent[0]}", 0, len(revisions))
        template, template_why = template_for(project, history, first_parent[0], server, timeout=job_timeout)

    run = _run_all(project, history, server, revisions, rows, template, job_timeout)
    pairs = run["pairs"]
    if rows > 0:
        _retry_on_empty(project, server, run, template, job_timeout)
    failures, artifacts = _split_seed_artifacts([f for f, _ in pairs])
    # a type or SQL form the scratch engine lacks says nothing about the migration on its own engine
    not_ours = [f for f in failures if engine_only(plan, f"{f.message} {f.error or ''}")]
    # nor does an extension the scratch server lacks (pgcrypto beyond its stand-in, PostGIS)
    limits = [(f, why) for f in failures if all(f is not g for g in not_ours)
              and (why := engine_limit(f.error, stand_ins=plan.embedded))]
    # nor does what only a superuser may do, on the embedded server where project code is an ordinary role
    not_super = [f for f in failures if superuser_only(plan, f.error) and all(f is not g for g in not_ours)
                 and all(f is not g for g, _ in limits)]
    not_ours += not_super
    # nor does a package the project needs that is not installed where db-migrate runs (uvx, another venv)
    lacking = [(f, name) for f in failures if (name := _not_installed(project, f.error))]
    set_aside = [*not_ours, *(f for f, _ in limits), *(f for f, _ in lacking)]
    failures = [f for f in failures if all(f is not g for g in set_aside)]

    unchecked = [*plan.unchecked, *(
        Unchecked(what=f"{f.step} as an ordinary role", revision=f.revision,
                  reason=SUPERUSER_ONLY_REASON.format(error=f"{f.message}: {f.error}"))
        if any(f is g for g in not_super) else
        Unchecked(what=f"{f.step} on {plan.engine}", revision=f.revision,
                  reason=f"{f.message}: {f.error} ({plan.engine} lacks this; the project's engine is {plan.project_dialect or 'unknown'})")
        for f in not_ours
    )]
    unchecked += [
        Unchecked(what=f"{f.step} of {f.revision}", revision=f.revision,
                  reason=f"{f.message}: {f.error}. {name} is not installed where db-migrate runs, and is not part of "
                  "the project: install the project's dependencies into db-migrate's environment (or db-migrate "
                  "into the project's), then test again.")
        for f, name in lacking
    ]
    unchecked += [Unchecked(what=f"{f.step} of {f.revision} on this scratch server", revision=f.revision,
                            reason=f"{why} ({f.error})") for f, why in limits]
    if plan.embedded:
        used = stand_ins_used(_sources(history, revisions))
        if used:
            unchecked.append(Unchecked(what="extensions " + ", ".join(used), reason=stand_in_note(used)))
    unchecked += [Unchecked(what=f"seeding table {t}", reason=why) for t, why in run["seed_skipped"].items()]
    if template_why:
        unchecked.append(Unchecked(what="template of the parent schema", reason=template_why + "; the history was replayed instead"))
    for rev, why in run["blocked"].items():
        unchecked.append(Unchecked(what="roundtrip", reason=why, revision=rev))
    for f in artifacts:
        unchecked.append(Unchecked(what=f"{f.step} of {f.revision} with rows", revision=f.revision,
                                   reason=_seed_reason(f, f.revision in run["retested"])))
    findings = [
        Finding(rule=f.kind, severity="error", phase="downgrade" if f.step == "downgrade" else "upgrade",
                message=f"{f.revision}: {f.message}" + (f": {f.error}" if f.error else ""),
                revision=f.revision, path=project.relpath(history.by_id[f.revision].path) if f.revision in history.by_id else None,
                table=f.table, column=f.column, fix=f.hint)
        for f in failures
    ]
    decided, policy_unchecked = _policy(project, history, revisions, environment, timeout)
    unchecked += policy_unchecked
    escalation = decided.escalation if decided else None
    # a failed step is an error finding (revise); as in every tool, a trigger outranks it, so review,
    # classify and roundtrip give one decision for the same revision
    checked = len(set(run["checked"]))
    not_tested = set(run["blocked"]) | {f.revision for f in set_aside}
    not_tested -= set(run["checked"])
    status = "failed" if failures else ("untested" if not checked else "partial") if not_tested else "passed"
    if status in ("untested", "partial"):
        # nothing tested is not a pass: a revision that could not run is never proceeded with on its account
        escalation = _untested_escalation(escalation, sorted(not_tested, key=revisions.index), unchecked)
    decision = decide(findings, escalation)
    untested = f", {len(not_tested)} could not be tested" if not_tested else ""
    summary = (
        f"roundtrip {'passed' if status == 'passed' else 'ran'} for {checked} revision(s) on {dialect} with {rows} "
        f"seeded rows per table{untested}"
        if status != "failed"
        else f"roundtrip failed on {dialect}: {len(failures)} failure(s) in "
        f"{len({f.revision for f in failures})} revision(s) ({', '.join(sorted({f.kind for f in failures}))}); "
        f"{checked} of {len(revisions)} revision(s) roundtripped{untested}"
    )
    if decision == "escalate" and decided is not None and decided.escalation is not None and decided.escalation.required:
        summary = f"{decided.headline}; {summary}"
    else:
        summary = f"{decision}: {summary}"
    locks = [StatementTrace(**t) for t in run["locks"]]
    lock_checks, lock_unchecked = _lock_checks(project, history, run["checked"], locks) if locks else ([], [])
    return RoundtripResult(
        decision=decision,
        summary=summary,
        escalation=escalation,
        approval=decided.approval if decided else None,
        revisions=revisions,
        findings=findings,
        unchecked=unchecked + lock_unchecked,
        status=status,
        failures=failures,
        steps=[RoundtripStep(**s) for s in run["steps"]],
        runner=run["runner"],
        runner_reason=run["runner_reason"],
        dialect=dialect,
        database=run["database"],
        rows=rows,
        seeded=run["seeded"],
        template=template is not None,
        databases=run["databases"],
        locks=locks,
        lock_checks=lock_checks,
        seconds=round(time.perf_counter() - t_start, 3),
        engine=plan.info(),
    )


def _policy(
    project: Project, history: History, revisions: list[str], environment: str | None, timeout: float | None
) -> tuple[PolicyDecision | None, list[Unchecked]]:
    """The escalation policy without a database over the roundtripped revisions, as review applies it.

    A roundtrip that passed proves the way back, not that the change is one an
    agent may make alone: the decision is never proceed where review escalates.
    Review's own lint findings stay review's; only the escalation is taken over.
    """
    from db_migrate.policy.classify import decide_for
    from db_migrate.policy.settings import baseline_revisions, load_policy
    from db_migrate.review import review_paths

    policy = load_policy(project)
    old = baseline_revisions(history, policy)
    try:
        review = review_paths(project, [history.by_id[r] for r in revisions], timeout=timeout, policy=policy, history=old)
    except DbMigrateError as e:
        return None, [Unchecked(what="escalation policy", reason=f"the revisions could not be reviewed: {e.message}")]
    from db_migrate.approval import book_for

    return decide_for(
        review, policy, environment=environment, project_url=project.url, history=old, approvals=book_for(project, review.reviews)
    ), []


def _run_all(project: Project, history: History, server: str | None, revisions: list[str], rows: int,
             template: str | None, timeout: float) -> dict[str, Any]:
    """Run the roundtrip job until every revision was tested or found untestable.

    A job hands back in ``resume`` what it could not test on its database (the
    descendants of a failed upgrade; everything after a failed step where the
    rollback could not restore the parent's schema); each round starts a fresh
    scratch database from the same template.  Every round tests or blocks at
    least one revision, so this ends.
    """
    acc: dict[str, Any] = {"pairs": [], "steps": [], "checked": [], "seeded": {}, "seed_skipped": {}, "blocked": {},
                           "locks": [], "runner": None, "runner_reason": None, "database": "", "databases": 0,
                           "settled": set(), "retested": set()}
    by_rev: dict[str, RoundtripFailure] = {}
    pending = list(revisions)
    while pending:
        known_failed = [r for r, f in by_rev.items() if f.kind == "upgrade-failed"]
        out, database = _run(project, history, server, pending, rows, template, timeout, known_failed=known_failed)
        acc["databases"] += 1
        acc["database"] = acc["database"] or database
        if acc["runner"] is None or out.get("runner") == "built-in":
            acc["runner"], acc["runner_reason"] = out.get("runner"), out.get("runner_reason")
        for raw in out["failures"]:
            f = RoundtripFailure(**_fields(raw))
            acc["pairs"].append((f, raw.get("partial_schema")))
            by_rev.setdefault(f.revision, f)
        # a known failure's upgrade ran again as a prepare step, on unseeded tables: that settles populated_only
        for rev in out.get("prepared", []):
            if rev in by_rev and by_rev[rev].kind == "upgrade-failed" and rows > 0:
                by_rev[rev].populated_only = True
                acc["settled"].add(rev)
        for rev in out.get("fails_empty", []):
            if rev in by_rev:
                by_rev[rev].populated_only = False
                acc["settled"].add(rev)
        acc["steps"] += out["steps"]
        acc["checked"] += out["checked"]
        acc["seeded"].update(out.get("seeded", {}))
        acc["seed_skipped"].update(out.get("seed_skipped", {}))
        acc["blocked"].update(out.get("blocked", {}))
        acc["locks"] += out.get("locks", [])
        done = set(acc["checked"]) | set(acc["blocked"]) | set(by_rev)
        nxt = [r for r in out.get("resume", []) if r not in done]
        if nxt and nxt == pending:  # no progress: never loop (a job that tested nothing and failed nothing)
            for r in nxt:
                acc["blocked"][r] = "the roundtrip could not reach it"
            nxt = []
        pending = nxt
    return acc


def _select(history: History, revision: str, from_rev: str | None, to_rev: str | None, all_revs: bool) -> list[str]:
    """The revisions to roundtrip, parents before children."""
    if not (all_revs or from_rev or to_rev):
        return [history.resolve(revision).revision]  # type: ignore[list-item]
    # every head when no top is named: --all on an unmerged history tests each branch
    tops = [history.resolve(to_rev).revision] if to_rev else (history.heads if all_revs else [history.resolve("head").revision])
    wanted: set[str] = set()
    for top in tops:
        wanted |= history.ancestors(top, include_self=True)
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

    for top in tops:
        visit(top)
    return order


def _run(project: Project, history: History | None, server: str | None, revisions: list[str], rows: int,
         template: str | None, timeout: float, *, keep_schemas: bool = False,
         known_failed: list[str] | None = None) -> tuple[dict[str, Any], str]:
    """One roundtrip job on a fresh scratch database; a stopped worker becomes a failure, not an exception.

    After a stopped worker, the revisions it had not reached that do not need
    the stopped one are handed back in ``resume``; those that need it are blocked.
    """
    last: dict[str, Any] = {"message": f"{revisions[0]}: prepare"}

    def on_progress(payload: dict[str, Any]) -> None:
        last.update(payload)
        progress(payload.get("message", ""), payload.get("progress"), payload.get("total"))

    with scratch_database(server, purpose="roundtrip", template=template, settings=project.settings) as db:
        database = db.redacted
        t0 = time.perf_counter()
        try:
            out = run_job(
                "db_migrate.roundtrip.job:run", timeout=timeout, cwd=project.root, on_progress=on_progress,
                what="the roundtrip", config_file=str(project.config_file), section=project.section,
                url=db.url, revisions=revisions, rows=rows, keep_schemas=keep_schemas, known_failed=known_failed or [],
            )
        except (MigrationTimeout, MigrationCrashed) as e:
            rev, _, phase = str(last.get("message", "")).partition(": ")
            if history is not None and rev not in history.by_id:
                rev = revisions[0]
            failure = {"kind": _PHASE_KIND.get(phase, "upgrade-failed"), "revision": rev or revisions[0],
                       "step": phase if phase in _PHASE_KIND else "upgrade",
                       "message": f"{phase or 'upgrade'} of {rev} did not complete", "error": e.message,
                       "error_code": e.code, "hint": e.hint}
            step = {"revision": failure["revision"], "step": failure["step"], "ok": False,
                    "seconds": round(time.perf_counter() - t0, 4)}
            out = {"failures": [failure], "steps": [step], "checked": [], "seeded": {}, "blocked": {}, "resume": []}
            if history is not None:
                stopped = failure["revision"]
                rest = revisions[revisions.index(stopped) + 1:] if stopped in revisions else list(revisions)
                needs = {r for r in rest if stopped in history.ancestors(r)}
                out["blocked"] = {r: f"its ancestor {stopped} did not complete ({e.code})" for r in needs}
                out["resume"] = [r for r in rest if r not in needs]
        except ProjectCodeError as e:
            if _not_installed(project, e.message) is None:
                raise
            # a revision imports, at load time, a package not installed here: alembic loads every revision
            # file before running any, so none of this job's revisions can run (each is unchecked, not failed)
            at = re.search(r"\(at (.+?):\d+\)$", e.message)
            rev = next((r for r in revisions if history is not None and at is not None
                        and str(history.by_id[r].path) == at.group(1)), revisions[0])
            out = {"failures": [{"kind": "upgrade-failed", "revision": rev, "step": "upgrade",
                                 "message": f"loading {rev} failed", "error": e.message}],
                   "steps": [], "checked": [], "seeded": {}, "resume": [],
                   "blocked": {r: f"the history could not be loaded here: {e.message}" for r in revisions if r != rev}}
    return out, database


def _retry_on_empty(project: Project, server: str | None, run: dict[str, Any], template: str | None,
                    timeout: float) -> None:
    """Re-run each failed step's revision on an empty database: ``populated_only`` when it then passes.

    A step that fails only with the seeded rows does not end the revision's
    test: the rest of its roundtrip (after a failed upgrade, its own
    downgrade and re-upgrade) runs on the empty database, and what fails
    there is reported like any failure (``run["retested"]`` lists those
    revisions, and they count as checked).  Adds the scratch
    databases it took to ``run["databases"]``.
    """
    run.setdefault("retested", set())
    for f, partial in list(run["pairs"]):
        if f.kind not in _STEP_KINDS or f.error_code == "migration-timeout" or f.step == "prepare":
            continue
        if f.populated_only is False:
            continue  # settled: its upgrade failed again before any row was seeded
        if f.populated_only and f.kind != "upgrade-failed":
            continue
        progress(f"{f.revision}: retrying on an empty database")
        run["databases"] += 1
        out, _ = _run(project, None, server, [f.revision], 0, template, timeout, keep_schemas=True)
        again = [g for g in out["failures"] if g["kind"] == f.kind and g["revision"] == f.revision]
        f.populated_only = not again
        if not f.populated_only:
            continue
        # the rest of its roundtrip, on the empty database: counted and reported like any other
        run["retested"].add(f.revision)
        run["checked"] += [r for r in out["checked"] if r == f.revision and r not in run["checked"]]
        later = ("downgrade", "reupgrade") if f.kind == "upgrade-failed" else ("reupgrade",)
        run["steps"] += [s for s in out["steps"] if s["revision"] == f.revision and s["step"] in later]
        for raw in out["failures"]:
            if raw["revision"] == f.revision and raw["kind"] != f.kind:
                raw["message"] = f"{raw['message']} (on an empty database: the {f.step} fails only with seeded rows)"
                run["pairs"].append((RoundtripFailure(**_fields(raw)), None))
        if f.kind == "upgrade-failed" and f.applied_partway:
            full = out.get("schemas", {}).get(f.revision)
            if full is not None and partial is not None:
                # alembic's batch temp tables are leftovers of the failure, not part of the revision
                f.not_applied = [c for c in describe_changes(partial, full) if "_alembic_tmp_" not in c]


# SQLSTATEs of a value that does not convert to the new type (invalid text representation, datetime format)
_CONVERSION_ERRORS = {"22P02", "22007", "22008"}
# a constraint or a limit that invented rows break (unique, check, foreign key, exclusion; too long, out of
# range): real rows may or may not hold such values, so the seeded rows prove nothing
_VALUE_ERRORS = {"23505", "23514", "23503", "23P01", "22001", "22003"}
_CONSTRAINT = re.compile(r'constraint "([^"]+)"')
# NULL rows under SET NOT NULL of an existing nullable column (PostgreSQL 23502 from ALTER ... SET NOT NULL; MySQL
# 22004 "Invalid use of NULL value", MariaDB 01000 "Data truncated" from MODIFY ... NOT NULL): the seeder put NULLs
# where the column allowed them
_SET_NOT_NULL = re.compile(r"\bALTER\s+COLUMN\s+\S+\s+SET\s+NOT\s+NULL\b|\bMODIFY\s+(?:COLUMN\s+)?\S+\s[^\]]*\bNOT\s+NULL\b",
                           re.IGNORECASE)
_NULL_REFUSED = {"23502", "22004", "01000"}
# the free-form text the seeder invents (seed._text): 'status-3', 'status-3xxxx', 'user3@example.org'
_INVENTED = re.compile(r"^(\w{0,12}-\d+x*|user\d+@example\.org)$")


_NO_MODULE = re.compile(r"^ModuleNotFoundError: No module named '([\w.]+)'")


def _not_installed(project: Project, error: str | None) -> str | None:
    """The package an error says is missing, when it is neither installed here nor the project's own.

    A missing module *inside* the project's own package (a renamed file) is the revision's bug and
    stays a failure; a missing third-party package only says where db-migrate was installed.
    """
    import importlib.util

    m = _NO_MODULE.match(error or "")
    if m is None:
        return None
    top = m.group(1).split(".")[0]
    if (project.root / top).is_dir() or (project.root / f"{top}.py").is_file():
        return None
    try:
        if importlib.util.find_spec(top) is not None:
            return None
    except (ImportError, ValueError):
        pass
    return top


def _split_seed_artifacts(failures: list[RoundtripFailure]) -> tuple[list[RoundtripFailure], list[RoundtripFailure]]:
    """(failures, seed artifacts).

    An upgrade that passes on an empty database and fails only because it
    cannot convert a value the seeder invented for a free-form column
    ('status-3' cast to an enum or a number) fails on a value no real row of
    that column need hold: that is not the revision's fault.  A value taken
    from the schema (an enum label, a CHECK's list) could be in real rows, so
    a conversion refusing it stays a failure (a dropped enum value, say).
    Likewise a constraint or a limit the revision adds that the invented rows
    break (a UNIQUE over repeated values, a CHECK, a foreign key to ids that
    are not there, a narrower column): the rows prove nothing about real data.
    So does SET NOT NULL on a column that allowed NULLs, where the seeder put some: whether real rows are NULL
    there is the data's question (review and classify with database_url ask it).  A new NOT NULL column without
    a default stays a failure: any row at all breaks it.
    """
    real, artifacts = [], []
    for f in failures:
        value = re.search(r': "([^"]*)"', f.error or "")
        if f.kind == "upgrade-failed" and f.populated_only and (
                f.sqlstate in _VALUE_ERRORS
                or (f.sqlstate in _NULL_REFUSED and _SET_NOT_NULL.search(f.error or ""))
                or (f.sqlstate in _CONVERSION_ERRORS and value is not None and _INVENTED.match(value.group(1)))):
            artifacts.append(f)
        else:
            real.append(f)
    return real, artifacts


def _seed_reason(f: RoundtripFailure, retested: bool) -> str:
    """The ``unchecked`` reason of an upgrade only the invented rows break: the constraint and the value."""
    m = _CONSTRAINT.search(f.error or "")
    what = f"constraint {m.group(1)}" if m else "the conversion"
    tested = (" Its downgrade and re-upgrade were tested on an empty database." if retested else "")
    return (f"only the seeded values fail it ({f.error}); it passes on an empty database.{tested} The values "
            f"db-migrate invents are no evidence about real rows: check {what} against real data.")


def _untested_escalation(escalation: Escalation | None, revisions: list[str], unchecked: list[Unchecked]) -> Escalation:
    """The policy's escalation plus the trigger that no revision goes ahead untested."""
    evidence = [f"{u.revision}: {u.reason}" for u in unchecked if u.revision in revisions][:10]
    trigger = Trigger(
        trigger="untested-revision",
        reason=f"{len(revisions)} revision(s) could not be roundtripped here ({', '.join(revisions[:10])}"
        f"{' ...' if len(revisions) > 10 else ''}): a human, or a scratch server that can run them, must check them.",
        evidence=evidence)
    base = escalation.model_copy(deep=True) if escalation is not None else Escalation(required=True)
    base.required = True
    base.triggers.append(trigger)
    return base


def _sources(history: History, revisions: list[str]) -> list[str]:
    """The source of ``revisions`` and of their ancestors (what ran on the scratch database)."""
    wanted: set[str] = set()
    for r in revisions:
        wanted |= history.ancestors(r, include_self=True)
    out = []
    for r in wanted:
        try:
            out.append(history.by_id[r].path.read_text(errors="replace"))
        except OSError:
            continue
    return out


def _lock_checks(project: Project, history: History, checked: list[str],
                 locks: list[StatementTrace]) -> tuple[list[LockCheck], list[Unchecked]]:
    """The review's lock and rewrite findings of the tested revisions, confirmed or cleared by what was measured."""
    from db_migrate.review import review_paths

    headers = [history.by_id[r] for r in checked if r in history.by_id]
    try:
        review = review_paths(project, headers, dialect="postgresql")
    except DbMigrateError as e:
        return [], [Unchecked(what="review findings against the measured locks", reason=e.message)]
    out: list[LockCheck] = []
    for rev in checked:
        traces = [t for t in locks if t.revision == rev]
        out += confirm_findings([f for f in review.findings if f.revision == rev], traces)
    return out, []


def _fields(raw: dict[str, Any]) -> dict[str, Any]:
    known = RoundtripFailure.model_fields
    return {k: v for k, v in raw.items() if k in known}
