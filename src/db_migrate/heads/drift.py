"""Model drift: do the models (env.py's ``target_metadata``) match the schema the migrations build?

The schema at head comes from a cached template
(:func:`db_migrate.scratch.templates.ensure_template`, keyed by the content of
the history, env.py and the config): the first call replays the history once
to build it, later calls copy it (``CREATE DATABASE ... TEMPLATE`` on
PostgreSQL, a file copy on SQLite) and run only env.py and autogenerate
(``db_migrate.heads.jobs:drift_diff``), importing no revision file.  Short
histories and MySQL (no cheap copy) are replayed on a fresh scratch database.
Every operation autogenerate would emit is drift.  The same run tells whether
alembic's own view of the heads agrees with the static one (the heads stamped
in the template).  A complete answer is kept (:mod:`.drift_cache`) and
replayed while the history, env.py, the models and the engine are unchanged:
then no project code runs and no scratch server is needed.

The scratch engine is chosen by :func:`db_migrate.scratch.engine.plan_scratch`
(the embedded PostgreSQL server for a PostgreSQL project).  Whatever goes wrong
here (project code that cannot run, a failing revision, a timeout, a killed
worker) lands in ``unchecked``: check_heads' graph result is never lost to it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from db_migrate.errors import DbMigrateError, MigrationTimeout
from db_migrate.project import History, Project
from db_migrate.sandbox import DEFAULT_TIMEOUT, progress, run_job
from db_migrate.scratch.extensions import engine_limit, stand_in_note, stand_ins_used
from db_migrate.verdict import EngineInfo, Finding, Unchecked

MIN_DIFF_SECONDS = 10.0
"""The autogenerate step gets at least this long (or the whole budget, if smaller), even when building the template used most of it."""


@dataclass
class DriftOutcome:
    """What the drift check found (each part may be empty)."""

    operations: list[str] = field(default_factory=list)
    """The rendered alembic code autogenerate would write (one item), or nothing."""
    alembic_heads: list[str] | None = None
    findings: list[Finding] = field(default_factory=list)
    unchecked: list[Unchecked] = field(default_factory=list)
    engine: EngineInfo | None = None
    template: bool = False
    """True when the schema at head came from a cached template."""
    cached: bool = False
    """True when the whole answer was replayed from :mod:`.drift_cache` (nothing ran)."""

    @property
    def checked(self) -> bool:
        return not any(u.what == "model drift" for u in self.unchecked)


def model_drift(
    project: Project, history: History, head: str | None, *, scratch_url: str | None = None, timeout: float | None = None
) -> DriftOutcome:
    """The drift at ``head`` (the history's single head; None for an empty history); see the module docstring."""
    from db_migrate.heads import drift_cache
    from db_migrate.scratch import scratch_database
    from db_migrate.scratch.engine import plan_scratch
    from db_migrate.scratch.templates import ensure_template

    kept = None
    plan = None
    if drift_cache.enabled():
        kept = drift_cache.entry_path(project, history, head, drift_cache.engine_identity(project, scratch_url))
        replay = drift_cache.load(kept)
        if replay is not None:
            return DriftOutcome(**{**_outcome_from_json(replay), "cached": True})
    out = DriftOutcome()
    budget = timeout if timeout is not None else DEFAULT_TIMEOUT
    started = time.monotonic()
    try:
        if _without_metadata(project, out, kept, budget):
            return out
        plan = plan_scratch(project, scratch_url)
        out.unchecked.extend(plan.unchecked)
        progress("preparing the schema at head for the drift check")
        template = ensure_template(project, history, head, plan.server_url, timeout=budget, quiet=False) if head else None
        out.template = template is not None
        left = max(min(budget, MIN_DIFF_SECONDS), budget - (time.monotonic() - started))
        progress("comparing the models with the schema at head")
        with scratch_database(plan.server_url, purpose="drift", template=template, settings=project.settings) as db:
            out.engine = plan.info()
            diff = run_job(
                "db_migrate.heads.jobs:drift_diff",
                timeout=left, cwd=project.root, what="the drift check (env.py + autogenerate)",
                config_file=str(project.config_file), section=project.section, url=db.url,
                upgrade_first=template is None,
            )
    except DbMigrateError as e:
        # the graph result stands whatever happens here; a timeout is worth a hint of its own
        hint = e.hint
        if isinstance(e, MigrationTimeout):
            hint = ("The template at head is kept once built, so a later call is fast; or raise the limit "
                    "(--timeout / DB_MIGRATE_TIMEOUT), or skip drift (--no-drift).")
        # an extension the scratch server lacks is its limitation: say how to check it (never a finding)
        limit = engine_limit(e.message, stand_ins=bool(plan and plan.embedded))
        hint = limit.replace("this revision", "the history") if limit else hint
        out.unchecked.append(Unchecked(what="model drift", reason=f"{e.message}" + (f" ({hint})" if hint else "")))
        _note_stand_ins(out, plan, history, head)
        return out
    _note_stand_ins(out, plan, history, head)

    out.alembic_heads = diff.heads
    if diff.runner == "built-in":
        out.unchecked.append(Unchecked(what="env.py", reason=f"Migrations ran without the project's env.py: {diff.runner_reason}"))
    if not diff.empty:
        _drift_finding(out, diff)
    # the stand-in note is part of the answer for this history and engine: kept and replayed with it
    if kept is not None and all(u.what.startswith("extensions ") for u in out.unchecked):
        drift_cache.save(kept, _outcome_to_json(out), [str(project.config_file), *diff.read_files], diff.listed_folders)
    return out


NO_METADATA = ("env.py gives alembic no target_metadata, so the models cannot be compared "
               "(set target_metadata = Base.metadata, your models' MetaData, in env.py)")


def _without_metadata(project: Project, out: DriftOutcome, kept, budget: float) -> bool:
    """True (with the answer in ``out``, kept like a drift answer) when env.py gives no target_metadata.

    Asked before anything is built: without models there is nothing to compare, and a history of
    thousands of revisions would otherwise be replayed on every call only to find that out.
    """
    from db_migrate.heads import drift_cache

    progress("reading env.py's target_metadata")
    probe = run_job("db_migrate.heads.jobs:target_metadata_probe", isolation="static", timeout=budget, cwd=project.root,
                    what="env.py (reading target_metadata)", config_file=str(project.config_file), section=project.section)
    if not probe["none"]:
        return False
    out.unchecked.append(Unchecked(what="model drift", reason=NO_METADATA))
    if kept is not None:  # a complete answer about the project as it is: kept while env.py and what it read are unchanged
        drift_cache.save(kept, _outcome_to_json(out), [str(project.config_file), *probe["files"]], probe["folders"])
    return True


def _note_stand_ins(out: DriftOutcome, plan, history: History, head: str | None) -> None:
    """On the embedded server: the pgcrypto / uuid-ossp stand-ins the history at head ran against, in ``unchecked``."""
    if plan is None or not plan.embedded or head is None:
        return
    sources = []
    for rev in history.ancestors(head, include_self=True):
        try:
            sources.append(history.by_id[rev].path.read_text(errors="replace"))
        except OSError:
            continue
    used = stand_ins_used(sources)
    if used:
        out.unchecked.append(Unchecked(what="extensions " + ", ".join(used), reason=stand_in_note(used)))


def _drift_finding(out: DriftOutcome, diff) -> None:
    """The model-drift finding for a non-empty autogenerate result."""
    lines = [o.text for o in diff.ops]
    out.operations = [diff.python]
    out.findings.append(Finding(
        rule="model-drift", severity="error", phase="history",
        message=f"The models differ from the schema at head: autogenerate would emit {len(diff.ops)} operation(s): "
        + "; ".join(lines[:8]) + (" ..." if len(lines) > 8 else "") + ".",
        fix="Generate a revision for the model change (generate_migration / `db-migrate generate -m MESSAGE`), "
        "or revert the model edit. Autogenerate would write:\n" + diff.python,
    ))


def _outcome_to_json(out: DriftOutcome) -> dict:
    return {
        "operations": out.operations, "alembic_heads": out.alembic_heads, "template": out.template,
        "findings": [f.model_dump(mode="json") for f in out.findings],
        "engine": out.engine.model_dump(mode="json") if out.engine else None,
        "unchecked": [u.model_dump(mode="json") for u in out.unchecked],
    }


def _outcome_from_json(data: dict) -> dict:
    return {
        "operations": list(data["operations"]), "alembic_heads": data["alembic_heads"], "template": bool(data["template"]),
        "findings": [Finding.model_validate(f) for f in data["findings"]],
        "engine": EngineInfo.model_validate(data["engine"]) if data["engine"] else None,
        "unchecked": [Unchecked.model_validate(u) for u in data.get("unchecked", ())],
    }
