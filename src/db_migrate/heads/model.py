"""The result of check_heads."""

from __future__ import annotations

from pydantic import Field

from db_migrate.verdict import Verdict


class HeadsResult(Verdict):
    """Health of the revision graph, model drift, and (optionally) where a database stands."""

    tool: str = "check_heads"
    heads: list[str] = Field(default_factory=list, description="Head revision ids, sorted. Healthy: exactly one.")
    bases: list[str] = Field(default_factory=list, description="Revisions with no parent, sorted.")
    revision_count: int = Field(0, description="Revision files with a readable id.")
    merge_points: list[str] = Field(default_factory=list, description="Revisions that merge two or more parents.")
    current: list[str] | None = Field(
        default=None,
        description="Revisions recorded in database_url's version table ([] = never migrated); None when no database was given.",
    )
    pending: list[str] = Field(
        default_factory=list, description="Revisions between the database's current revision and head, oldest first."
    )
    schema_matches_stamp: bool | None = Field(
        default=None,
        description="With database_url: whether the database's actual schema is the schema its stamped revision builds "
        "(False: see the database-partly-migrated / database-schema-differs findings); None when not compared.",
    )
    merge_revision: str | None = Field(default=None, description="Path of the merge revision created by create_merge.")
    alembic_agrees: bool | None = Field(
        default=None,
        description="Whether alembic's own ScriptDirectory (which imports every revision) reports the same heads; "
        "None when it was not consulted.",
    )
    drift_operations: list[str] = Field(
        default_factory=list,
        description="Rendered alembic operations autogenerate would emit to make head match the models (empty: no drift).",
    )
    drift_cached: bool = Field(
        default=False,
        description="True when the drift answer was reused from an earlier check of the same history, env.py, models "
        "and engine (nothing ran); DB_MIGRATE_DRIFT_CACHE=0 turns that off.",
    )
