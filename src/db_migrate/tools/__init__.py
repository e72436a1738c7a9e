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
    from db_migrate.errors import DbMigrateError
    from db_migrate.tools.limits import check_arguments
    from db_migrate.urls import scrub, scrub_value, secrets_in, url_secrets

    check_arguments(tool, kwargs)

    from db_migrate.project.config import normalize_url

    kwargs = {k: normalize_url(v) if k.endswith("_url") and isinstance(v, str) else v for k, v in kwargs.items()}
    package, func, _ = TOOLS[tool]
    secrets = secrets_in(kwargs) + url_secrets(getattr(project, "url", None))
    service = getattr(importlib.import_module(package), func)
    from db_migrate.sandbox import call_deadline

    try:
        with call_deadline(kwargs.get("timeout")):  # --timeout bounds the whole call, not each job
            return scrub_value(service(project, **kwargs), secrets)
    except DbMigrateError as e:
        e.message = scrub(e.message, secrets)
        e.hint = scrub(e.hint, secrets) if e.hint else e.hint
        e.details = {k: scrub(v, secrets) for k, v in e.details.items()}
        raise


def result_model(tool: str) -> type[Verdict]:
    """The result model of ``tool``: what its outputSchema and the CLI's JSON describe."""
    package, _, model = TOOLS[tool]
    return getattr(importlib.import_module(f"{package}.model"), model)


def exit_code(result: Verdict) -> int:
    """0 proceed (or passed), 1 revise (or failed), 3 escalate."""
    return _EXIT_BY_DECISION.get(result.decision, EXIT_REVISE)
