"""generate_migration: autogenerate a revision against a scratch database at head, then review it.

The comparison database is a scratch database (temporary SQLite, or a
throwaway database on ``scratch_url``'s server) upgraded to head through the
project's env.py: the user's development database may be behind, ahead or
dirty, and is never touched.  Only when the user names ``database_url`` is that
database used as it is, for comparison only, in a read-only transaction that is
rolled back.

Guards: a message is required; a history with several heads or with errors
alembic cannot walk is refused (with the merge command); one writer per
project (:func:`~db_migrate.project.writing.revision_lock`); alembic chooses
the file name from the project's ``file_template`` and never overwrites a file;
a failed or killed write leaves no file behind; nothing changed means no file.
"""

from __future__ import annotations

import contextlib
import os
import time

from db_migrate.errors import (
    MigrationCrashed, MigrationLoadError, MigrationTimeout, MultipleHeadsError, ProjectCodeError, Refused, UsageError,
)
from db_migrate.generate.jobs import Outcome
from db_migrate.generate.model import GenerateResult
from db_migrate.project.writing import generated_unedited, remove_new_files, revision_files, revision_lock, set_aside
from db_migrate.heads.graph import analyse
from db_migrate.project import Project, load_history
from db_migrate.urls import redact_url
from db_migrate.sandbox import progress, reports_isolation, run_job
from db_migrate.scratch.engine import ScratchPlan, engine_only, plan_scratch, superuser_only
from db_migrate.verdict import Finding, decide, sort_findings


@reports_isolation
def generate_migration(
    project: Project,
    message: str,
    *,
    database_url: str | None = None,
    scratch_url: str | None = None,
    rewrite_renames: bool = False,
    timeout: float | None = None,
) -> GenerateResult:
    """Autogenerate a revision for the current model changes, check its blind spots and review it.

    - ``database_url``: compare with this database as it is (read only) instead of a scratch database at head.
    - ``scratch_url``: a PostgreSQL/MySQL server to create the scratch database on (default: temp SQLite).
    - ``rewrite_renames``: write probable renames (a column dropped and one of the same type added on one
      table; a table dropped and one with the same columns created) as ``alter_column(new_column_name=...)``
      / ``rename_table``.  It also replaces the head when generate_migration wrote that file with probable
      renames as drop + add, nobody edited it since and (given ``database_url``) that database has not
      applied it (an earlier, finished change is never folded into this one): the new revision is written on
      the head's parent, then the old file is removed, and a ``replaced-revision`` finding names it.  Any
      other head stays, untouched.  Without it, a probable rename is an error (``probable-rename``): the
      revision as written loses data.  Not the default: only the agent knows whether a rename was meant,
      and the error's fix is this one call.
    """
    started = time.perf_counter()
    if not message or not message.strip():
        raise UsageError("A message is required: it names the revision file.", hint='Give {arg:message}, e.g. "add nickname to persons".')
    history = load_history(project)
    report = analyse(history)
    if not report.walkable:
        problems = [f.message for f in report.findings if f.severity == "error"]
        raise MigrationLoadError(
            "The revision history has errors alembic cannot walk: " + " ".join(problems[:5]),
            hint="Run {tool:check_heads} and fix those first.",
        )
    if len(report.heads) > 1:
        raise MultipleHeadsError(
            f"The history has {len(report.heads)} heads ({', '.join(report.heads)}); a new revision would not know its parent.",
            hint="Merge them first: {tool:check_heads} with {arg:create_merge} "
            "or `alembic merge -m 'merge heads' heads`.",
            heads=", ".join(report.heads),
        )
    _require_writable(project, history, report.heads)

    with revision_lock(project):
        replace, why_not = _replaceable_head(project, history, report.heads, database_url, timeout) if rewrite_renames else (None, None)
        before = revision_files(project)
        with set_aside(replace.path) if replace else contextlib.nullcontext(None) as drop:
            try:
                outcome, scratch_seconds, plan = _run(project, message, database_url, scratch_url, rewrite_renames, timeout)
            except (MigrationTimeout, MigrationCrashed):
                remove_new_files(project, before)  # a killed worker may have left a partial file
                raise
            if replace and outcome.created:
                drop()  # the new file is written: generate's own unapplied revision goes
    replaced = []
    if replace and outcome.created:
        replaced.append(Finding(
            rule="replaced-revision", severity="info", phase="history", path=project.relpath(replace.path),
            revision=replace.revision,
            message=f"Replaced {project.relpath(replace.path)} (revision {replace.revision}): generate_migration wrote it, "
            "it was not edited since" + (" nor applied to the named database" if database_url else "")
            + ", and it was the head; the new revision takes its place on the same parent.",
        ))
    elif why_not:
        replaced.append(Finding(rule="replaced-revision", severity="info", phase="history", message=why_not))
    engine = plan.info() if plan else None
    compared = f"a scratch copy of the schema of database {redact_url(database_url)} (read only)" if database_url else (
        f"a scratch database on {redact_url(scratch_url)} upgraded to head" if scratch_url
        else f"a scratch database on the embedded PostgreSQL {engine.version} server upgraded to head" if plan.embedded
        else "a scratch SQLite database upgraded to head"
    )
    engine_notes = list(plan.unchecked) if plan else []
    timings = {"scratch": round(scratch_seconds + outcome.timings.get("upgrade", 0.0), 4),
               "autogenerate": round(outcome.timings.get("autogenerate", 0.0), 4)}
    down = report.heads[0] if report.heads else None
    if replace and outcome.created:
        down = ", ".join(replace.down_revisions) or None

    if not outcome.created:
        timings["total"] = round(time.perf_counter() - started, 4)
        return GenerateResult(
            decision=decide(outcome.findings), created=False, compared_with=compared,
            summary=(
                f"No file was written, but {len(outcome.findings)} difference(s) between the models and "
                + ("that database" if database_url else "head") + " need a revision written by hand: see the findings' fixes."
                if any(f.severity == "error" for f in outcome.findings) else
                "No changes: the models match " + ("that database" if database_url else "head") + "; no file was written."
            ),
            findings=sort_findings([*replaced, *outcome.findings]), timings=timings, down_revision=down,
            engine=engine, unchecked=engine_notes,
        )

    path = project.relpath(outcome.path)
    for f in outcome.findings:
        f.path, f.revision = path, outcome.revision
    from db_migrate.fixes import review_with_patches  # lazy: review pulls in the capture machinery

    progress("reviewing the new revision")
    t = time.perf_counter()
    review = review_with_patches(project, outcome.revision, timeout=timeout)
    timings["review"] = round(time.perf_counter() - t, 4)
    findings = sort_findings([*replaced, *outcome.findings, *review.findings])
    timings["total"] = round(time.perf_counter() - started, 4)
    result = GenerateResult(
        decision=decide(findings, review.escalation),
        summary="",
        revisions=[outcome.revision] if outcome.revision else [],
        findings=findings,
        escalation=review.escalation,
        approval=review.approval,
        unchecked=[*engine_notes, *review.unchecked],
        engine=engine,
        created=True, path=path, revision=outcome.revision, down_revision=down,
        operations=outcome.operations, upgrade_code=outcome.upgrade_code, downgrade_code=outcome.downgrade_code,
        compared_with=compared, timings=timings,
    )
    if outcome.runner == "built-in":
        from db_migrate.verdict import Unchecked

        result.unchecked.append(Unchecked(what="env.py upgrade", reason=f"Head was built without env.py: {outcome.runner_reason}"))
    result.summary = (
        f"{result.decision}: wrote {path} ({len(outcome.operations)} operation(s))"
        + (f", replacing {project.relpath(replace.path)}" if replace else "") + f"; review: {review.decision}; "
        f"{result.counts()['error']} error(s), {result.counts()['warning']} warning(s)."
    )
    return result


def _run(project: Project, message: str, database_url, scratch_url, rewrite_renames, timeout) -> tuple[Outcome, float, ScratchPlan | None]:
    """Run the autogenerate job against the named database or a fresh scratch database.

    Returns (outcome, scratch seconds, the scratch plan or None when the named database was used).
    """
    from db_migrate.scratch import scratch_database

    job = dict(
        timeout=timeout, cwd=project.root, what="autogenerate (env.py, models and migrations)",
        writable=project.version_locations,
        config_file=str(project.config_file), section=project.section, message=message.strip(),
        rewrite_renames=rewrite_renames,
    )
    if database_url:
        # Project code never gets a connection to the user's database: our own job copies its schema
        # (read only) to a scratch database, and env.py and the models run against that copy.
        from db_migrate.project.config import dialect_of

        dialect = dialect_of(database_url)
        server = None if dialect == "sqlite" else scratch_url
        if server is None and dialect == "postgresql":
            from db_migrate.scratch.embedded import EmbeddedUnavailable, ensure_running

            try:
                server = ensure_running()
            except EmbeddedUnavailable:
                server = None
        if server is None and dialect != "sqlite":
            raise UsageError(
                "Comparing with a database server needs a scratch server too: db-migrate copies the schema there, "
                "so that env.py and the models never connect to the database itself.",
                hint="Pass scratch_url (--scratch-url), a server of the same kind where db-migrate may create a scratch database.",
            )
        progress("copying the schema of the named database to a scratch database")
        t = time.perf_counter()
        from db_migrate.generate.copy import copy_schema

        with scratch_database(server, purpose="generate", settings=project.settings) as db:
            # in this process, our code alone: the job's box has no network but the scratch server,
            # and reading the user's database is not project code's business (read_timeout bounds it)
            copy_schema(source_url=database_url, target_url=db.url, read_timeout=timeout,
                        version_table=project.settings.get("version_table", "alembic_version"),
                        version_table_schema=project.settings.get("version_table_schema"))
            created = time.perf_counter() - t
            progress("comparing the models with the copy of the named database")
            return run_job("db_migrate.generate.jobs:autogenerate_revision", url=db.url,
                           upgrade_first=False, read_only=True, **job), created, None
    progress("building a scratch database at head")
    t = time.perf_counter()
    plan = plan_scratch(project, scratch_url)
    with scratch_database(plan.server_url, purpose="generate", settings=project.settings) as db:
        created = time.perf_counter() - t
        try:
            outcome = run_job("db_migrate.generate.jobs:autogenerate_revision", url=db.url, upgrade_first=True, **job)
        except ProjectCodeError as e:
            if engine_only(plan, e.message):
                raise ProjectCodeError(
                    f"On {plan.engine}, not the project's {plan.project_dialect or 'unknown'} engine: {e.message}",
                    hint=f"{plan.engine} lacks what this history uses; pass a {plan.project_dialect or 'matching'} "
                    "scratch server (scratch_url, CLI --scratch-url).",
                ) from None
            if superuser_only(plan, e.message):
                raise ProjectCodeError(
                    f"On the embedded PostgreSQL server project code runs as an ordinary role, not a superuser: {e.message}",
                    hint="Pass a PostgreSQL scratch server where the history's role may do this (scratch_url, CLI --scratch-url).",
                ) from None
            raise
        return outcome, created, plan


def _replaceable_head(project: Project, history, heads: list[str], database_url: str | None, timeout):
    """(the head revision generate may replace, None) or (None, why not): see :func:`generate_migration`.

    Replaceable: the single head's file was written by generate_migration with probable renames as
    drop + add (``probable-rename`` errors) and not edited since
    (:func:`~db_migrate.project.writing.generated_unedited`), and, when ``database_url`` is given,
    that database has not recorded it (read only).  Without ``database_url`` nobody can tell whether a
    developer database ran it; the file being generate's own and unedited is the guard.
    """
    if len(heads) != 1:
        return None, None
    head = history.by_id.get(heads[0])
    mark = generated_unedited(head.path) if head is not None else None
    if mark is None:
        return None, (f"Did not replace the head {heads[0]}: generate_migration did not write it, or it was edited "
                      "since; the new revision (if any) goes on top of it.")
    if not mark["renames_pending"]:
        return None, None  # generate's own, but another change: it stays, the new revision goes on top

    if database_url:
        applied = run_job("db_migrate.heads.jobs:read_database_revisions", timeout=timeout, what="reading the version table",
                          url=database_url, version_table=project.settings.get("version_table", "alembic_version"),
                          version_table_schema=project.settings.get("version_table_schema"))
        if head.revision in applied:
            return None, (f"Did not replace the head {head.revision}: the named database has applied it. Downgrade that "
                          "database first, or keep it and let the new revision go on top.")
    return head, None


def _require_writable(project: Project, history, heads: list[str]) -> None:
    """Refuse early when the folder the new revision goes to cannot be written."""
    if len(project.version_locations) == 1 or not heads:
        target = project.version_locations[0]
    else:
        target = history.by_id[heads[0]].path.parent
    probe = target if target.exists() else target.parent
    if not os.access(probe, os.W_OK):
        raise Refused(
            f"The versions folder {project.relpath(target)} is not writable.",
            hint="Fix its permissions (or run where the project is writable) and call again.",
            path=project.relpath(target),
        )
