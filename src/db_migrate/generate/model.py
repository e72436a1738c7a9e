"""The result of generate_migration."""

from __future__ import annotations

from pydantic import Field

from db_migrate.runtime import OpDescription
from db_migrate.verdict import Verdict


class GenerateResult(Verdict):
    """The revision autogenerate wrote (or why none was written), its blind spots and its review.

    The review of the new revision is merged in (its findings, escalation and
    unchecked items are this verdict's), not repeated as a nested result: each
    finding appears once.
    """

    tool: str = "generate_migration"
    created: bool = Field(description="False when the models already match head: no file was written.")
    path: str | None = Field(default=None, description="The new revision file, relative to the project root.")
    revision: str | None = Field(default=None, description="The new revision id.")
    down_revision: str | None = Field(default=None, description="The head it revises.")
    operations: list[OpDescription] = Field(default_factory=list, description="What the upgrade does, one item per operation.")
    upgrade_code: str = Field(default="", description="The upgrade operations as rendered alembic Python.")
    downgrade_code: str = Field(default="", description="The downgrade operations as rendered alembic Python.")
    compared_with: str = Field(description="What the models were compared with: a scratch database at head, or the named database.")
    timings: dict[str, float] = Field(
        default_factory=dict, description="Seconds spent: scratch (create + upgrade to head), autogenerate, review, total."
    )
