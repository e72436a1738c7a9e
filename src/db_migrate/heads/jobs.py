"""Worker-side jobs of check_heads (run through :func:`db_migrate.sandbox.run_job`).

- :func:`read_database_revisions` reads the version table of the *user's*
  database, read-only: no env.py, no DDL, a read-only transaction where the
  dialect has one, rolled back.  It runs in a worker only for the timeout (a
  database that never answers).
- :func:`create_merge` runs ``alembic.command.merge`` (it imports every
  revision file, and env.py when ``revision_environment`` is set) through a
  scratch :class:`~db_migrate.runtime.Runtime`.
"""

from __future__ import annotations

from pathlib import Path

from db_migrate.errors import DatabaseError, ProjectCodeError, UsageError, brief
from db_migrate.project import Project, redact_url


def read_database_revisions(url: str, version_table: str = "alembic_version", version_table_schema: str | None = None) -> list[str]:
    """The revisions recorded in ``url``'s version table ([] when it has none), without writing anything."""
    from alembic.runtime.migration import MigrationContext

    from db_migrate.readonly import read_only_connection

    try:
        with read_only_connection(url) as conn:
            ctx = MigrationContext.configure(
                conn, opts={"version_table": version_table, "version_table_schema": version_table_schema}
            )
            return sorted(ctx.get_current_heads())
    except (DatabaseError, UsageError):
        raise
    except Exception as e:
        raise DatabaseError(
            f"Cannot read the version table of {redact_url(url)}: {brief(e)}",
            hint="Check that database_url is reachable and that its user may read the version table.",
        ) from None


def create_merge(project: Project, message: str, scratch_url: str) -> str:
    """Write a merge revision of all heads with ``alembic.command.merge``; return its path.

    alembic runs env.py during a merge when ``revision_environment`` is set, so
    the merge goes through a :class:`~db_migrate.runtime.Runtime` on the scratch
    database: env.py gets the scratch connection, and any engine it builds
    itself is redirected there; it never reaches the user's database.
    """
    from alembic import command
    from alembic.util import CommandError

    from db_migrate.generate.writing import refuse_overwrite
    from db_migrate.runtime import Runtime

    written: list[Path] = []
    try:
        with Runtime(str(project.config_file), project.section, scratch_url) as rt, refuse_overwrite(written):
            script = command.merge(rt.config, "heads", message=message)
    except CommandError as e:
        raise ProjectCodeError(f"alembic merge failed: {e}", hint="Fix the history (see the other findings) and call again.") from None
    if script is None:  # pragma: no cover - alembic returns None only for sourceless setups
        return str(written[0]) if written else ""
    return str(Path(script.path).resolve())
