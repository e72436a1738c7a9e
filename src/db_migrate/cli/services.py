"""The five service functions, as both adapters (CLI and MCP server) see them.

One table names each tool's service function and result model; both adapters
import a service only when it is called, so ``db-migrate rules`` never pays
for alembic and ``db-migrate review`` never imports mcp.  Everything an adapter
needs besides argument parsing lives here or in :mod:`db_migrate.cli.render`:

- :func:`service` / :func:`result_model`: lazy lookup by tool name;
- :func:`exit_code`: decision -> CLI exit code;
- :func:`with_approval`: fold a human's answer into a classify verdict.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from db_migrate.verdict import Verdict, decide

#: tool name -> (module, service function, result model).
TOOLS: dict[str, tuple[str, str, str]] = {
    "review_migration": ("db_migrate.review", "review_migration", "ReviewResult"),
    "classify_escalation": ("db_migrate.policy", "classify_escalation", "ClassifyResult"),
    "check_heads": ("db_migrate.heads", "check_heads", "HeadsResult"),
    "generate_migration": ("db_migrate.generate", "generate_migration", "GenerateResult"),
    "test_roundtrip": ("db_migrate.roundtrip", "test_roundtrip", "RoundtripResult"),
}

EXIT_PROCEED = 0
EXIT_REVISE = 1
EXIT_USAGE = 2
EXIT_ESCALATE = 3
_EXIT_BY_DECISION = {"proceed": EXIT_PROCEED, "revise": EXIT_REVISE, "escalate": EXIT_ESCALATE}


def service(tool: str) -> Callable[..., Verdict]:
    """The service function behind ``tool``, imported on first use."""
    module, func, _ = TOOLS[tool]
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        from db_migrate.errors import InternalError

        raise InternalError(f"The {tool} tool is not available in this installation ({e}).") from None


def call(tool: str, project: Any, **kwargs: Any) -> Verdict:
    """Call the service behind ``tool`` with the keyword arguments it accepts.

    Unset options (``None``, or a flag at its default) that the service does not
    declare are dropped, so both adapters can offer one option set while the
    services evolve; an option that *was* set but is unknown is a usage error,
    never silently ignored.
    """
    import inspect

    from db_migrate.errors import UsageError

    fn = service(tool)
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    accepted: dict[str, Any] = {}
    for name, value in kwargs.items():
        if takes_any or name in params:
            accepted[name] = value
        elif value is not None and (name, value) not in _DEFAULT_FLAGS:
            raise UsageError(f"{tool} does not support the option {name!r} in this version.")
    return fn(project, **accepted)


#: Option values that mean "not asked for" (dropped when a service has no such parameter).
_DEFAULT_FLAGS = {("create_merge", False), ("rewrite_renames", False), ("all_revisions", False), ("drift", True)}


def result_model(tool: str) -> type[Verdict]:
    """The result model of ``tool`` (its package's ``model.py``); :class:`Verdict` until it exists.

    The fallback only matters while a service is being written: the server can
    still start and publish a (less precise) output schema.
    """
    module, _, model = TOOLS[tool]
    try:
        return getattr(importlib.import_module(f"{module}.model"), model)
    except (ImportError, AttributeError):
        return Verdict


def exit_code(result: Verdict) -> int:
    """0 proceed (or passed), 1 revise (or failed), 3 escalate."""
    return _EXIT_BY_DECISION.get(result.decision, EXIT_REVISE)


class ApprovalQuestion(BaseModel):
    """What the human is asked when a change needs sign-off (an elicitation form)."""

    approve: bool = Field(description="Approve this schema change despite the escalation triggers?")
    note: str = Field(default="", description="Optional: why, or what must change first.")


class HumanApproval(BaseModel):
    """The human's answer to an escalation, as recorded in the classify verdict."""

    asked: bool = Field(description="True when the human was asked through the MCP client.")
    answer: Literal["approved", "rejected", "declined", "cancelled", "not-asked"] = Field(
        description="approved turns escalate into the underlying decision; anything else leaves escalate in place."
    )
    note: str = Field(default="", description="The human's note, or why nobody was asked.")


def with_approval(result: Verdict, approval: HumanApproval | None = None) -> Verdict:
    """The classify tool's output: ``result`` with ``human_approval`` recorded.

    Only an explicit approval lifts ``escalate``; it re-decides without the
    escalation, so remaining errors still say ``revise``.  A rejection, a
    decline, a cancel or no answer keep ``escalate`` (fail closed).  Both
    adapters call this, so the CLI's JSON and the tool's structured content
    have the same shape (``human_approval`` is null from the CLI).
    """
    update: dict[str, Any] = {"human_approval": approval}
    if approval is not None and result.decision == "escalate":
        note = f": {approval.note}" if approval.note else ""
        if approval.answer == "approved":
            update["decision"] = decide(result.findings, None)
            update["summary"] = f"{result.summary} (approved by a human{note})"
        elif approval.asked:
            update["summary"] = f"{result.summary} (human answer: {approval.answer}{note})"
    model = approval_model(type(result))
    return model.model_validate({**result.model_dump(), **update})


_approval_models: dict[type, type] = {}


def approval_model(base: type[Verdict]) -> type[Verdict]:
    """``base`` plus an optional ``human_approval`` field (the classify tool's output model)."""
    if "human_approval" in base.model_fields:
        return base
    if base not in _approval_models:
        from pydantic import create_model

        _approval_models[base] = create_model(
            base.__name__,
            __base__=base,
            __doc__=base.__doc__,
            human_approval=(
                HumanApproval | None,
                Field(default=None, description="The human's answer when escalation asked one; null when nobody was asked."),
            ),
        )
    return _approval_models[base]
