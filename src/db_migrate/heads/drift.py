"""Model drift: do the models (env.py's ``target_metadata``) match the schema the migrations build?

A scratch database (temporary SQLite, or a throwaway database on
``scratch_url``'s server) is upgraded to head through the project's env.py and
compared with the models by alembic autogenerate (``db_migrate.runtime``'s
``autogenerate_diff`` job).  Every operation autogenerate would emit is drift.
The same run tells whether alembic's own view of the heads (it imports every
revision file) agrees with the static one.
"""

from __future__ import annotations

from db_migrate.errors import DbMigrateError, MigrationCrashed, MigrationTimeout
from db_migrate.project import Project
from db_migrate.sandbox import progress, run_job
from db_migrate.verdict import Finding, Unchecked


def model_drift(
    project: Project, *, scratch_url: str | None = None, timeout: float | None = None
) -> tuple[list[str], list[str] | None, list[Finding], list[Unchecked]]:
    """(rendered operations, alembic's heads, findings, unchecked) for the drift at head.

    Project code that cannot run (env.py or the models fail to import, no
    ``target_metadata``) lands in ``unchecked``: drift is then unknown, not an error.
    A timeout or a crash is still raised.
    """
    from db_migrate.scratch import scratch_database

    progress("building a scratch database at head for the drift check")
    try:
        with scratch_database(scratch_url, purpose="drift", settings=project.settings) as db:
            diff = run_job(
                "db_migrate.runtime:autogenerate_diff",
                timeout=timeout, cwd=project.root, what="the drift check (upgrade to head + autogenerate)",
                config_file=str(project.config_file), section=project.section, url=db.url,
            )
    except (MigrationTimeout, MigrationCrashed):
        raise
    except DbMigrateError as e:
        return [], None, [], [Unchecked(what="model drift", reason=f"{e.message}" + (f" ({e.hint})" if e.hint else ""))]

    unchecked = []
    if diff.runner == "built-in":
        unchecked.append(Unchecked(what="env.py", reason=f"Migrations ran without the project's env.py: {diff.runner_reason}"))
    if diff.empty:
        return [], diff.heads, [], unchecked
    lines = [o.text for o in diff.ops]
    finding = Finding(
        rule="model-drift", severity="error", phase="history",
        message=f"The models differ from the schema at head: autogenerate would emit {len(diff.ops)} operation(s): "
        + "; ".join(lines[:8]) + (" ..." if len(lines) > 8 else "") + ".",
        fix="Generate a revision for the model change (generate_migration / `db-migrate generate -m MESSAGE`), "
        "or revert the model edit. Autogenerate would write:\n" + diff.python,
    )
    return [diff.python], diff.heads, [finding], unchecked
