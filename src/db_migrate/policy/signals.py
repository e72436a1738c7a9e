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


def url_hosts(url: str) -> list[tuple[str, str]]:
    """Every ``(what, value)`` a URL names a server or database by, as libpq would read it.

    The netloc host, every ``?host=`` and ``?hostaddr=`` (each may list several,
    comma-separated), the ``?service=`` entry of the PostgreSQL service file,
    and, where the URL names no host, the ``PGHOST``/``PGHOSTADDR``/``PGSERVICE``
    environment libpq falls back to; then the database name (``?dbname=`` too).
    """
    parts = _url_parts(url)
    out: list[tuple[str, str]] = []

    def add(what: str, raw: object) -> None:
        for v in ([raw] if isinstance(raw, str) else list(raw or ())):
            for part in str(v).split(","):
                part = part.strip()
                host = part.rsplit(":", 1)[0] if part.count(":") == 1 else part  # drop a :port
                if host and (what, host) not in out:
                    out.append((what, host))

    q = parts["query"]
    add("host", parts["host"])
    add("host", q.get("host"))
    add("hostaddr", q.get("hostaddr"))
    postgres = parts["backend"] == "postgresql"
    if postgres and not parts["host"] and not q.get("host") and not q.get("hostaddr"):
        add("host", os.environ.get("PGHOST", ""))
        add("hostaddr", os.environ.get("PGHOSTADDR", ""))
    service = q.get("service") or (os.environ.get("PGSERVICE") if postgres else None)
    if postgres and service:
        for key, value in _service_entry(str(service if isinstance(service, str) else service[0])).items():
            if key in ("host", "hostaddr"):
                add(f"{key} of service {service!r}", value)
            elif key == "dbname":
                add("database name", value)
    if parts["database"]:
        # SQLite paths: match the file name, not every directory above it
        add("database name", os.path.basename(parts["database"]) if parts["backend"] == "sqlite" else parts["database"])
    add("database name", q.get("dbname"))
    return out


_NAMING_KEYS = ("host", "hostaddr", "service", "dbname")
_MAX_KEPT_URLS = 64


def _url_parts(url: str) -> dict[str, Any]:
    """What SQLAlchemy's ``make_url`` reads in ``url`` that names a server or a database.

    Kept on disk (``<cache>/url-parts.json``, by a hash of the URL; host and database names
    only, never a credential), so a CLI call on the same URL does not import SQLAlchemy for it:
    that import was a third of a ``db-migrate review`` call.
    """
    import hashlib

    from db_migrate.cache import cache_dir, read_json, write_json

    key = hashlib.sha256(url.encode()).hexdigest()[:32]
    path = cache_dir() / "url-parts.json"
    kept = read_json(path)
    if not isinstance(kept, dict):
        kept = {}
    hit = kept.get(key)
    if isinstance(hit, dict) and {"backend", "host", "database", "query"} <= hit.keys():
        return hit
    from sqlalchemy.engine import make_url

    u = make_url(url)
    parts = {"backend": u.get_backend_name(), "host": u.host or "", "database": u.database or "",
             "query": {k: v if isinstance(v, str) else list(v) for k, v in u.query.items() if k in _NAMING_KEYS}}
    kept.pop(key, None)
    kept[key] = parts  # newest last; the oldest go first
    write_json(path, dict(list(kept.items())[-_MAX_KEPT_URLS:]))
    return parts


def _service_entry(name: str) -> dict[str, str]:
    """The ``[name]`` section of the PostgreSQL service files libpq reads (user's first, then the system's)."""
    import configparser

    files = [os.environ.get("PGSERVICEFILE") or os.path.expanduser("~/.pg_service.conf")]
    sysconf = os.environ.get("PGSYSCONFDIR")
    files += [os.path.join(sysconf, "pg_service.conf")] if sysconf else ["/etc/postgresql-common/pg_service.conf"]
    for path in files:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        if parser.has_section(name):
            return {k.lower(): v for k, v in parser.items(name)}
    return {}


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
