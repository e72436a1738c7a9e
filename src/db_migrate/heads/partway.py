"""Where a migration failed partway: the database's actual schema against the schema its stamp says.

MariaDB/MySQL have no transactional DDL: a revision that fails halfway leaves
its first operations applied while the version table still names the revision
before it.  Given the user's ``database_url``, check_heads

1. reflects the user's database (read-only, :mod:`db_migrate.readonly`) into a
   ``MetaData``, in the parent: project code never gets a connection to it,
2. builds the schema the stamped revision(s) should have on a scratch database
   of the same kind (``scratch_url``; else a temporary SQLite file for SQLite,
   the embedded PostgreSQL server for PostgreSQL; MariaDB/MySQL need
   ``scratch_url``), through :class:`db_migrate.runtime.Runtime` with the
   project's env.py, and
3. lets alembic's autogenerate compare the two (``produce_migrations`` with the
   reflected schema as the target): every operation it emits is a difference
   the stamp does not explain.

Those differences are matched against the upgrade operations of the next
pending revision (kind, table, column or name): matched ones are *already
applied*, the rest of that revision is *not applied*, and anything else is
drift made by hand.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from db_migrate.runtime import OpDescription


class SchemaDifference(BaseModel):
    """What the job found: the operations that turn the stamped schema into the actual one."""

    stamped: list[str]
    ops: list[OpDescription] = Field(default_factory=list)
    python: str = ""
    runner: str = "project-env"


def reflect_database(database_url: str, version_table: str = "alembic_version") -> Any:
    """The user's schema as a ``MetaData`` (read-only, our own code), without alembic's version table."""
    from sqlalchemy import MetaData

    from db_migrate.readonly import read_only_connection

    actual = MetaData()
    with read_only_connection(database_url) as conn:
        actual.reflect(bind=conn)
    if version_table in actual.tables:
        actual.remove(actual.tables[version_table])
    return actual


def compare_job(config_file: str, section: str, scratch_url: str, actual: Any, stamped: list[str],
                version_table: str = "alembic_version") -> SchemaDifference:
    """Job (in a worker): build ``stamped`` on ``scratch_url`` and diff it with ``actual`` (the reflected schema)."""
    from alembic.autogenerate import produce_migrations, render_python_code
    from alembic.runtime.migration import MigrationContext

    from db_migrate.runtime import Runtime, describe_ops

    def keep(obj, name, type_, reflected, compare_to) -> bool:
        return not (type_ == "table" and name == version_table)

    with Runtime(config_file, section, scratch_url) as rt:
        for rev in stamped:
            rt.upgrade(rev)
        rt.commit()
        ctx = MigrationContext.configure(rt.connection, opts={"compare_type": True, "include_object": keep})
        script = produce_migrations(ctx, actual)
        rt.rollback()
        ops = script.upgrade_ops
        return SchemaDifference(stamped=list(stamped), ops=describe_ops(ops), python=render_python_code(ops), runner=rt.runner)


def _same_change(diff: OpDescription, op: Any) -> bool:
    """Whether an autogenerate difference is what a revision's operation does."""
    if (diff.table or None) != (op.table or None):
        return False
    names = {op.column, (op.detail or {}).get("name")} - {None}
    kinds = {diff.op, {"modify_nullable": "alter_column", "modify_type": "alter_column"}.get(diff.op, diff.op)}
    if op.kind == "create_unique_constraint":
        kinds.add("create_index")  # MariaDB reflects a UNIQUE constraint as a unique index
    return op.kind in kinds and (not names or diff.name in names or op.kind == "create_table")


def _scratch_server(dialect: str | None, scratch_url: str | None):
    """Where to build the stamped schema: a server URL, None (a temporary SQLite file), or False (nowhere fitting).

    The comparison only means something on the database's own engine: ``scratch_url`` when it is one,
    a temporary file for SQLite, the embedded PostgreSQL server (:mod:`db_migrate.scratch.embedded`) for PostgreSQL.
    """
    from db_migrate.project.config import dialect_of

    if scratch_url:
        return scratch_url if dialect_of(scratch_url) == dialect else False
    if dialect == "sqlite":
        return None
    if dialect == "postgresql":
        from db_migrate.scratch.embedded import ensure_running

        return ensure_running()
    return False


def partway_findings(project, history, current: list[str], pending: list[str], database_url: str,
                     scratch_url: str | None, timeout: float | None) -> tuple[list, list, bool | None]:
    """(findings, unchecked, whether the schema matches its stamp; None when not compared)."""
    from db_migrate.errors import DbMigrateError
    from db_migrate.project import redact_url
    from db_migrate.project.config import dialect_of
    from db_migrate.sandbox import progress, run_job
    from db_migrate.scratch import scratch_database
    from db_migrate.verdict import Finding, Unchecked

    what = "schema of the database against its stamped revision"
    dialect = dialect_of(database_url)
    try:
        server = _scratch_server(dialect, scratch_url)
    except DbMigrateError as e:
        return [], [Unchecked(what=what, reason=e.message + (f" ({e.hint})" if e.hint else ""))], None
    if server is False:
        return [], [Unchecked(what=what, reason=f"needs scratch_url on a {dialect} server to build the stamped schema "
                              "(the user's database is never written)")], None
    progress("building the stamped schema on a scratch database to compare with the database")
    version_table = project.settings.get("version_table", "alembic_version")
    try:
        actual = reflect_database(database_url, version_table)
        with scratch_database(server, purpose="partway", settings=project.settings) as db:
            diff: SchemaDifference = run_job(
                "db_migrate.heads.partway:compare_job", timeout=timeout, cwd=project.root,
                what="comparing the database with its stamped revision", config_file=str(project.config_file),
                section=project.section, scratch_url=db.url, actual=actual, stamped=current, version_table=version_table,
            )
    except DbMigrateError as e:
        return [], [Unchecked(what=what, reason=e.message)], None
    where = redact_url(database_url)
    stamp = ", ".join(current) or "no revision"
    if not diff.ops:
        return [], [], True
    nxt = pending[0] if pending else None
    header = history.by_id.get(nxt) if nxt else None
    applied, missing = [], []
    if header is not None:
        from db_migrate.review import review_migration

        review = review_migration(project, nxt, dialect=dialect, timeout=timeout)
        for op in (o for r in review.reviews for o in r.operations if o.phase == "upgrade"):
            hit = next((d for d in diff.ops if _same_change(d, op)), None)
            label = f"line {op.line}: {op.kind} " + ".".join(x for x in (op.table, op.column or (op.detail or {}).get("name")) if x)
            (applied if hit else missing).append((label, hit))
    explained = {id(h) for _, h in applied if h is not None}
    other = [d.text for d in diff.ops if id(d) not in explained]
    findings = []
    if applied:
        rel = project.relpath(header.path)
        findings.append(Finding(
            rule="database-partly-migrated", severity="error", phase="database", revision=nxt, path=rel,
            message=f"{where} is stamped at {stamp}, but {len(applied)} of the {len(applied) + len(missing)} operation(s) of the "
            f"next revision {nxt} are already applied: " + "; ".join(a for a, _ in applied)
            + (". Not applied: " + "; ".join(m for m, _ in missing) if missing else ". All of them are applied")
            + ". The revision failed partway (no transactional DDL) or was applied by hand.",
            fix=("Finish the revision by hand (apply only the operations not applied), then `alembic stamp " + nxt
                 + "`; or undo the applied operations and run `alembic upgrade` again. Ask a human before changing a "
                 "shared database." if missing else f"The schema already matches {nxt}: `alembic stamp {nxt}` records it."),
        ))
    if other:
        findings.append(Finding(
            rule="database-schema-differs", severity="warning", phase="database",
            message=f"{where} differs from the schema of its stamped revision ({stamp}) in ways no pending revision explains: "
            + "; ".join(other[:10]) + (" ..." if len(other) > 10 else "") + ".",
            fix="Find out who changed the schema by hand; write a revision for it or revert it.",
        ))
    return findings, [], False
