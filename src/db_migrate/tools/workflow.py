"""The agent workflow for one schema change, as prompt text.

One source for the MCP prompt ``db-migrate`` (Claude Code's
``/mcp__db-migrate__db-migrate``), the ``review-pending`` prompt and the
``.claude/commands/db-migrate.md`` file that ``db-migrate init`` writes.
"""

from __future__ import annotations

_WORKFLOW = """\
Make this database schema change safely with the db-migrate tools: {change}

Follow these steps in order; each tool returns a `decision` (proceed / revise / escalate).

1. `check_heads` - the revision graph must have exactly one head and no model drift.
   revise: fix what the findings say first (merge heads with create_merge=true only if the user agrees).
2. Edit the SQLAlchemy models for the change. Keep it to this change.
3. `generate_migration` with a short message. Read the generated file, its findings and `unchecked`.
   It writes enum values, server defaults and named CHECK constraints too; a probable rename written as
   drop+add is an error: call it again with rewrite_renames=true (never rename via drop+add).
4. `review_migration` on the new revision. revise: apply each finding's `patch` with `git apply` from the
   project root (db-migrate applied and checked it on a copy first); a finding without one: edit the file as
   its `fix` says. Call review_migration again until the decision is proceed or escalate.
5. `test_roundtrip` on the new revision: upgrade, downgrade, upgrade with seeded rows on a scratch database.
   failed: fix the downgrade or the data step and run it again.
6. `classify_escalation` on the new revision (pass database_url/environment when the user named a target).
   - proceed: report the files changed (models and the revision) and stop; do not apply to a real database.
   - escalate: STOP. Show the user every trigger with its evidence and ask for a decision. Do not apply,
     weaken or split the migration to avoid the escalation.
Never run the migration against a database the user did not hand over as scratch.
"""

_REVIEW_PENDING = """\
Review every migration that is not yet applied{target}.

1. `check_heads`{db_arg} - read `pending` (revisions after the database's current one; all of them when no
   database is given) and fix graph findings first.
2. `review_migration` for each pending revision, oldest first; collect the findings by revision.
3. `classify_escalation` for each pending revision{db_arg}.
Report, per revision: the decision, the errors with file:line and fix, and the escalation triggers.
Do not edit or apply anything unless the user asks; anything that escalates needs the user's decision.
"""


def workflow_prompt(change: str) -> str:
    """The step-by-step instructions for making ``change``."""
    return _WORKFLOW.format(change=change.strip() or "(describe the model change)")


def review_pending_prompt(database_url: str | None = None) -> str:
    """Instructions to review every revision not yet applied to ``database_url``."""
    if database_url:
        return _REVIEW_PENDING.format(target=" to the given database", db_arg=f" with database_url={database_url!r}")
    return _REVIEW_PENDING.format(target="", db_arg="")


def claude_command() -> str:
    """The ``.claude/commands/db-migrate.md`` slash command (``$ARGUMENTS`` is what the user typed)."""
    return (
        "---\n"
        "description: Change the database schema safely (db-migrate MCP tools)\n"
        "argument-hint: <describe the model change>\n"
        "---\n\n" + workflow_prompt("$ARGUMENTS")
    )


def skill_text() -> str:
    """SKILL.md: the packaged copy (a symlink to the repository's top-level file in a checkout).

    Raises :class:`FileNotFoundError` when the package was installed without it.
    """
    from importlib import resources
    from pathlib import Path

    try:
        return resources.files("db_migrate.server").joinpath("SKILL.md").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        top = Path(__file__).resolve().parents[3] / "SKILL.md"
        if top.is_file():
            return top.read_text(encoding="utf-8")
        raise FileNotFoundError("SKILL.md is not installed with this package.") from None


def skill_name(text: str) -> str:
    """The ``name`` of a SKILL.md's front matter: Claude Code wants the skill's folder named the same."""
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":
        for line in lines[1:]:
            if line.strip() == "---":
                break
            key, _, value = line.partition(":")
            if key.strip() == "name" and value.strip():
                return value.strip()
    raise ValueError("SKILL.md has no name in its front matter")
