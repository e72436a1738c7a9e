"""The five tools as both adapters see them.

The CLI (:mod:`db_migrate.cli`) and the MCP server (:mod:`db_migrate.server`)
share this package and nothing else: the table of tools and their service
functions (:data:`TOOLS`, imported lazily so ``db-migrate rules`` never pays for
alembic and no CLI command imports mcp), the exit codes, the text rendering of
a verdict (:mod:`.render`) and the workflow text of the ``/db-migrate`` prompt
(:mod:`.workflow`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports this package before it needs pydantic
    from db_migrate.verdict import Verdict

#: tool name -> (package, service function, result model in the package's model.py).
TOOLS: dict[str, tuple[str, str, str]] = {
    "review_migration": ("db_migrate.fixes", "review_with_patches", "ReviewResult"),
    "classify_escalation": ("db_migrate.classify", "classify_escalation", "ClassifyResult"),
    "check_heads": ("db_migrate.heads", "check_heads", "HeadsResult"),
    "generate_migration": ("db_migrate.generate", "generate_migration", "GenerateResult"),
    "test_roundtrip": ("db_migrate.roundtrip", "test_roundtrip", "RoundtripResult"),
}

EXIT_PROCEED = 0
EXIT_REVISE = 1
EXIT_USAGE = 2
EXIT_ESCALATE = 3
_EXIT_BY_DECISION = {"proceed": EXIT_PROCEED, "revise": EXIT_REVISE, "escalate": EXIT_ESCALATE}


def call(tool: str, project: Any, **kwargs: Any) -> Verdict:
    """Run the service function behind ``tool`` (imported on first use).

    The last line of defence for secrets: the password and secret query values
    of every URL in the arguments (and of the project's own ``sqlalchemy.url``)
    are hidden in the verdict and in any error, whatever path they took there.

    URL arguments are normalised here too, the one door both adapters go through
    (``postgres://`` is accepted as PostgreSQL), and string arguments over their
    limits are refused (:func:`db_migrate.tools.limits.check_arguments`).
    """
    from db_migrate.tools.limits import check_arguments

    check_arguments(tool, kwargs)
    package, func, _ = TOOLS[tool]
    return _guarded(getattr(importlib.import_module(package), func), project, kwargs)


#: Services that answer a tool for several revisions from one job, as the CLI asks them (``classify A B C``).
EACH_AT_ONCE: dict[str, tuple[str, str]] = {"classify_escalation": ("db_migrate.classify.service", "classify_each")}


def call_each(tool: str, project: Any, revisions: list[str], **kwargs: Any) -> list[Any]:
    """:func:`call` of ``tool`` for each revision, in order (a verdict, or the error that revision raised); one job
    for all where the tool has such a service."""
    from db_migrate.errors import DbMigrateError
    from db_migrate.tools.limits import check_arguments

    if tool not in EACH_AT_ONCE:
        out: list[Any] = []
        for r in revisions:
            try:
                out.append(call(tool, project, revision=r, **kwargs))
            except DbMigrateError as e:
                out.append(e)
        return out
    for r in revisions:
        check_arguments(tool, {**kwargs, "revision": r})
    module, func = EACH_AT_ONCE[tool]
    return _guarded(getattr(importlib.import_module(module), func), project, {**kwargs, "revisions": revisions})


def _guarded(service: Any, project: Any, kwargs: dict[str, Any]) -> Any:
    """``service(project, **kwargs)`` with URL arguments normalised, the whole call under ``--timeout``, and every
    secret of those URLs (and of the project's own) hidden in what it returns or raises."""
    from db_migrate.errors import DbMigrateError
    from db_migrate.project.config import normalize_url
    from db_migrate.sandbox import call_deadline
    from db_migrate.urls import scrub, scrub_value, secrets_in, url_secrets

    kwargs = {k: normalize_url(v) if k.endswith("_url") and isinstance(v, str) else v for k, v in kwargs.items()}
    secrets = secrets_in(kwargs) + url_secrets(getattr(project, "url", None))
    def hidden(e: DbMigrateError) -> DbMigrateError:
        e.message = scrub(e.message, secrets)
        e.hint = scrub(e.hint, secrets) if e.hint else e.hint
        e.details = {k: scrub(v, secrets) for k, v in e.details.items()}
        return e

    try:
        with call_deadline(kwargs.get("timeout")):  # --timeout bounds the whole call, not each job
            out = scrub_value(service(project, **kwargs), secrets)
    except DbMigrateError as e:
        raise hidden(e)
    return [hidden(v) if isinstance(v, DbMigrateError) else v for v in out] if isinstance(out, list) else out


def result_model(tool: str) -> type[Verdict]:
    """The result model of ``tool``: what its outputSchema and the CLI's JSON describe."""
    package, _, model = TOOLS[tool]
    return getattr(importlib.import_module(f"{package}.model"), model)


def exit_code(result: Verdict) -> int:
    """0 proceed (or passed), 1 revise (or failed), 3 escalate."""
    return _EXIT_BY_DECISION.get(result.decision, EXIT_REVISE)
