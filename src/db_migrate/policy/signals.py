"""Is this production?  The one place that answers it, for every tool.

Production is signalled by the ``environment`` argument, the
``DB_MIGRATE_ENV`` environment variable, or a database URL matching the
policy's ``production_url_patterns``.  ``classify_escalation`` turns a signal
into the ``production-database`` trigger; scratch tools (roundtrip, generate)
refuse to work on such a URL.
"""

from __future__ import annotations

import os
from fnmatch import fnmatchcase
from typing import Any

from db_migrate.urls import url_hosts

__all__ = ["ENV_VAR", "production_signal", "url_hosts"]

ENV_VAR = "DB_MIGRATE_ENV"


def production_signal(url: str | None, settings: dict[str, Any] | None = None, environment: str | None = None) -> str | None:
    """A human reason when production is signalled, else None.

    ``settings`` is the project's ``[tool.db-migrate]`` table
    (``Project.settings``) or an already validated
    :class:`~db_migrate.policy.settings.Policy`; an invalid table raises
    :class:`~db_migrate.errors.ConfigInvalid`.
    """
    from db_migrate.policy.settings import Policy, policy_from_settings

    policy = settings if isinstance(settings, Policy) else policy_from_settings(settings)
    prod_envs = {e.strip().lower() for e in policy.production_environments}
    if environment and environment.strip().lower() in prod_envs:
        return f"environment={environment!r} names production"
    env = os.environ.get(ENV_VAR)
    if env and env.strip().lower() in prod_envs:
        return f"{ENV_VAR}={env!r} names production"
    if url:
        return _url_signal(url, policy.production_url_patterns)
    return None


def _url_signal(url: str, patterns: list[str]) -> str | None:
    from db_migrate.urls import redact_url

    shown = redact_url(url) or ""
    try:
        candidates = url_hosts(url)
    except Exception:
        candidates = []  # an unparseable URL is still matched as text
    candidates.append(("URL", shown))
    for pattern in patterns:
        p = pattern.lower()
        for what, value in candidates:
            if value and fnmatchcase(value.lower(), p):
                where = f"{what} {value!r}" if what == "URL" else f"{what} {value!r} of {shown}"
                return f"{where} matches production pattern {pattern!r}"
    return None
