"""Cached templates: a database already migrated to some revision.

Replaying a 300-revision history for every roundtrip of its newest revision is
too slow, so the schema at a revision is kept as a template keyed by the
content of the history up to it (``History.digest(revision)``), the env.py and
the config file.  Editing any of them changes the key, so a stale template is
never used (old ones linger until :func:`purge_templates`).

- PostgreSQL: a database ``dbm_tpl_<key>`` on the server; scratch databases are
  created from it with ``CREATE DATABASE ... TEMPLATE`` (retried while another
  call copies it).  It is built under a scratch name and renamed when complete,
  so a half-built template is never visible.
- SQLite: a file ``<cache>/sqlite/<key>.db`` (cache: ``$XDG_CACHE_HOME/db-migrate``
  or ``~/.cache/db-migrate``), copied for each scratch database.
- MySQL/MariaDB have no cheap database copy: no templates.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from db_migrate.scratch import PREFIX, admin_engine, quote, scratch_database, server_dialect

TEMPLATE_PREFIX = f"{PREFIX}tpl_"
MIN_REVISIONS = 8
"""Below this many revisions to replay, building a template costs more than it saves."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "db-migrate"


def template_key(project, history, revision: str, dialect: str) -> str:
    md = hashlib.sha256()
    md.update(history.digest(revision).encode())
    md.update(dialect.encode())
    for path in (project.config_file, project.script_location / "env.py"):
        try:
            md.update(Path(path).read_bytes())
        except OSError:
            pass
    return md.hexdigest()[:20]


def ensure_template(
    project, history, revision: str, server_url: str | None, *, timeout: float | None = None, quiet: bool = True
) -> str | None:
    """The template at ``revision`` (a database name or an SQLite path), built if missing.

    Returns None where templates do not apply (MySQL, a short history) or the
    build failed (the caller then replays the history itself, and reports any
    failure).  With ``quiet=False`` a failed build raises its error instead
    (check_heads: a replay that failed or ran out of time is not worth repeating).
    """
    from db_migrate.errors import DbMigrateError
    from db_migrate.sandbox import run_job

    if len(history.ancestors(revision, include_self=True)) < MIN_REVISIONS:
        return None
    dialect = "sqlite" if server_url is None else server_dialect(server_url)
    if dialect == "mysql":
        return None
    key = template_key(project, history, revision, dialect)
    if dialect == "sqlite":
        path = cache_dir() / "sqlite" / f"{key}.db"
        if path.is_file():
            return str(path)
    else:
        name = f"{TEMPLATE_PREFIX}{key}"
        usable = _pg_usable(server_url, name)
        if usable is not None:
            return name if usable else None  # another role's template: a plain build instead
    try:
        with scratch_database(server_url, purpose="tplbuild", settings=project.settings) as db:
            run_job(
                "db_migrate.runtime:upgrade", timeout=timeout, cwd=project.root, what="building a template",
                config_file=str(project.config_file), section=project.section, url=db.url, revision=revision,
            )
            if dialect == "sqlite":
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                shutil.copyfile(db.name, tmp)
                os.replace(tmp, path)  # atomic: readers see a complete file or none
                return str(path)
            return name if _pg_rename(server_url, db.name, name) or _pg_usable(server_url, name) else None
    except DbMigrateError:
        if not quiet:
            raise
        return None


def _pg_usable(server_url: str, name: str) -> bool | None:
    """None when the template does not exist; else whether we may copy it.

    CREATE DATABASE ... TEMPLATE needs the template's owner (or a superuser) unless it is marked
    a template: one that another role built is there, but not ours to copy.
    """
    from sqlalchemy import text

    from db_migrate.errors import DatabaseError, brief
    from db_migrate.urls import redact_url

    sql = text(
        "SELECT d.datistemplate OR pg_has_role(current_user, d.datdba, 'MEMBER') "
        "OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) FROM pg_database d WHERE d.datname = :n"
    )
    try:
        with admin_engine(server_url).connect() as c:
            row = c.execute(sql, {"n": name}).first()
    except Exception as e:
        raise DatabaseError(
            f"Cannot reach the scratch server {redact_url(server_url)}: {brief(e)}",
            hint="Check that the server runs and that database_url names it (host, port, user).",
        ) from None
    return None if row is None else bool(row[0])


def _pg_rename(server_url: str, old: str, new: str) -> bool:
    from sqlalchemy import text

    try:
        with admin_engine(server_url).connect() as c:
            c.execute(text(f"ALTER DATABASE {quote('postgresql', old)} RENAME TO {quote('postgresql', new)}"))
        return True
    except Exception:
        return False  # another call finished the same template first


def purge_templates(server_url: str | None = None) -> list[str]:
    """Remove cached templates: the SQLite files, and the ``dbm_tpl_*`` databases of a PostgreSQL server."""
    from sqlalchemy import text

    from db_migrate.scratch import drop_database

    removed: list[str] = []
    sqlite_dir = cache_dir() / "sqlite"
    if sqlite_dir.is_dir():
        for f in sqlite_dir.glob("*.db"):
            f.unlink(missing_ok=True)
            removed.append(str(f))
    if server_url is not None and server_dialect(server_url) == "postgresql":
        _pg_usable(server_url, TEMPLATE_PREFIX)  # a structured database-error when the server is unreachable
        with admin_engine(server_url).connect() as c:
            names = c.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": TEMPLATE_PREFIX.replace("_", r"\_") + "%"}
            ).scalars().all()
        for n in names:
            drop_database(server_url, n)
            removed.append(n)
    return removed
