"""Cached templates: a database already migrated to some revision.

Replaying a 300-revision history for every roundtrip of its newest revision is
too slow, so the schema at a revision is kept as a template keyed by the
content of the history up to it (``History.digest(revision)``), the env.py and
the config file.  Editing any of them changes the key, so a stale template is
never used.

Names carry the project: ``<project tag>_<key>``, the tag a hash of the
project's config file path and section, so ``purge_templates(project=...)``
(``db-migrate roundtrip --purge-templates``) drops only that project's.

- PostgreSQL: a database ``dbm_tpl_<tag>_<key>`` on the server; scratch
  databases are created from it with ``CREATE DATABASE ... TEMPLATE``
  (retried while another call copies it).  It is built under a scratch name
  and renamed when complete, so a half-built template is never visible.
  Sessions a project's env.py left open on the build database are ended
  first (they would block the rename, and the template would silently not
  be saved); when saving still fails, the reason is returned.  The time of
  last use is kept in the database's comment.
- SQLite: a file ``<cache>/sqlite/<tag>_<key>.db`` (cache: ``$XDG_CACHE_HOME/db-migrate``
  or ``~/.cache/db-migrate``), copied for each scratch database; its mtime is
  the time of last use.  It is used only while it is byte for byte what
  db-migrate saved (its signature, ``<file>.sig``: :func:`db_migrate.cache.sign_file`);
  otherwise it is built again.
- MySQL/MariaDB have no cheap database copy: no templates.

A missing template starts from the template of the nearest ancestor (on the
first-parent line) that has one, so the revision an agent just generated costs
its own upgrade, not a replay of the history: check_heads built the template
at the old head, and the new head's template is that one plus one revision.

The cache is bounded: at most :data:`MAX_TEMPLATES` templates per server (and
as many SQLite files), all projects together (``DB_MIGRATE_MAX_TEMPLATES``
overrides it).  After a new template is saved, the least recently used ones
beyond the bound are dropped; a template being copied at that moment is kept.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

from db_migrate.cache import (
    cache_dir, evict, keep_signature, private_folder, project_tag, read_json, remove, sign_file, signed_by_us, touch,
    write_json,
)
from db_migrate.scratch import PREFIX, admin_engine, quote, scratch_database, server_dialect

TEMPLATE_PREFIX = f"{PREFIX}tpl_"
MIN_REVISIONS = 8
"""Below this many revisions to replay, building a template costs more than it saves."""
MAX_INDEXED = 256
"""Saved templates remembered per project, by revision (see :func:`_nearest_ancestor_template`)."""
MAX_TEMPLATES = 12
"""Templates kept per server (and SQLite files in the cache), least recently used dropped first.

A template of a small history costs a few MB of disk (PostgreSQL's empty
database is ~7.5 MB); twelve cover the newest revisions of a few projects and
branches without filling a developer's disk."""


def _limit() -> int:
    try:
        return max(1, int(os.environ.get("DB_MIGRATE_MAX_TEMPLATES", MAX_TEMPLATES)))
    except ValueError:
        return MAX_TEMPLATES


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
    """The template at ``revision`` (a database name or an SQLite path), built if missing; None if none.

    With ``quiet=False`` a failed build raises its error instead (check_heads:
    a replay that failed or ran out of time is not worth repeating).  See
    :func:`template_for` for the reason when there is none.
    """
    return template_for(project, history, revision, server_url, timeout=timeout, quiet=quiet)[0]


def template_for(project, history, revision: str, server_url: str | None, *,
                 timeout: float | None = None, quiet: bool = True) -> tuple[str | None, str | None]:
    """``(template, why_not)``: the template at ``revision``, built if missing, or None and the reason.

    The reason is None where templates simply do not apply (MySQL, a history
    shorter than :data:`MIN_REVISIONS`); otherwise it says why building or
    saving failed (the caller then replays the history itself, and reports
    any failure of its own).  ``quiet=False``: a failed build raises instead.
    """
    from db_migrate.errors import DbMigrateError
    from db_migrate.sandbox import run_job

    if len(history.ancestors(revision, include_self=True)) < MIN_REVISIONS:
        return None, None
    dialect = "sqlite" if server_url is None else server_dialect(server_url)
    if dialect == "mysql":
        return None, None
    name, found = _existing(project, history, revision, dialect, server_url)
    if found is False:
        return None, None  # another role's template, not ours to copy: a plain build instead
    if found:
        return found, None
    base, base_revision = _nearest_ancestor_template(project, history, revision, dialect, server_url)
    what = "building a template" + (f" from the one at {base_revision}" if base_revision else "")
    try:
        with scratch_database(server_url, purpose="tplbuild", template=base, settings=project.settings) as db:
            run_job(
                "db_migrate.runtime:upgrade", timeout=timeout, cwd=project.root, what=what,
                config_file=str(project.config_file), section=project.section, url=db.url, revision=revision,
            )
            return _save(project, history, revision, dialect, server_url, db, name)
    except DbMigrateError as e:
        if not quiet:
            raise
        return None, f"building the template at {revision} failed: {e.message}"


def _save(project, history, revision: str, dialect: str, server_url: str | None, db, name: str) -> tuple[str | None, str | None]:
    """Keep the build database ``db`` as the template ``name`` at ``revision``: ``(template, why_not)``."""
    if dialect == "sqlite":
        path = Path(name)
        private_folder(path.parent)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(db.name, tmp)
        signature = sign_file(tmp, name=path.name)
        os.replace(tmp, path)  # atomic: readers see a complete file or none
        keep_signature(path, signature)
        evict(path, "*.db", _limit())
        _remember(project, revision, name)
        return str(path), None
    why = _pg_save(server_url, db, name)
    if why is None or _pg_usable(server_url, name):
        seal = _catalogue_digest(server_url, name) if why is None else None
        if why is None and seal is None:
            return None, "the template could not be read back after it was saved"
        _pg_mark_used(server_url, name)
        _evict_pg(server_url, keep=name)
        _remember(project, revision, name, seal=(server_url, seal) if seal else None)
        return name, None
    return None, why


def _index_file(project) -> Path:
    return cache_dir() / "templates" / f"{project_tag(project)}.json"


def _remember(project, revision: str, name: str, *, seal: tuple[str, str] | None = None) -> None:
    """Note that a template of ``revision`` was saved, so a build of a descendant can start from it.

    ``seal``: ``(server URL, digest of its catalogue)`` of a server template just built, checked
    before each later use (:func:`_verified`).
    """
    index = _indexed(project)
    revisions, seals = index["revisions"], index["seals"]
    revisions.pop(revision, None)
    revisions[revision] = name  # newest last; the index is a hint, checked against the key on use
    if seal is not None:
        seals.pop(_seal_key(seal[0], name), None)
        seals[_seal_key(seal[0], name)] = seal[1]
    write_json(_index_file(project), {"revisions": dict(list(revisions.items())[-MAX_INDEXED:]),
                                      "seals": dict(list(seals.items())[-MAX_INDEXED:])})


def _indexed(project) -> dict[str, dict[str, str]]:
    """The project's index (signed, :func:`db_migrate.cache.read_json`): ``revisions`` and ``seals``."""
    index = read_json(_index_file(project))
    if not isinstance(index, dict) or not all(isinstance(index.get(k), dict) for k in ("revisions", "seals")):
        return {"revisions": {}, "seals": {}}
    return index


def _seal_key(server_url: str, name: str) -> str:
    from db_migrate.urls import redact_url

    return f"{redact_url(server_url)} {name}"


def _existing(project, history, revision: str, dialect: str, server_url: str | None) -> tuple[str, str | bool | None]:
    """``(name, found)``: the template's name (an SQLite path, or a database name), and the template
    itself when it exists and is ours to copy (marked used), False when another role's, else None."""
    name = f"{project_tag(project)}_{template_key(project, history, revision, dialect)}"
    if dialect == "sqlite":
        path = cache_dir() / "sqlite" / f"{name}.db"
        if not path.is_file() or not signed_by_us(path):
            return str(path), None  # missing, or not the file db-migrate kept: built (and replaced) again
        touch(path)
        return str(path), str(path)
    name = f"{TEMPLATE_PREFIX}{name}"
    usable = _pg_usable(server_url, name)
    if usable is None:
        return name, None
    if not usable:
        return name, False
    if not _verified(project, server_url, name):
        return name, None if _drop_unverified(server_url, name) else False
    _pg_mark_used(server_url, name)
    return name, name


def _nearest_ancestor_template(project, history, revision: str, dialect: str, server_url: str | None) -> tuple[str | None, str | None]:
    """``(template, its revision)`` of the closest ancestor on ``revision``'s first-parent line that has one.

    Upgrading such a database to ``revision`` applies exactly the revisions the ancestor lacks (the
    other parents of a merge included), so the result is the schema at ``revision``.  The usual
    case: a new revision on top of a head whose template an earlier call built.  Candidates come
    from the index of saved templates (any distance back); each is checked against its key (the
    history up to it may have changed).
    """
    index = _indexed(project)["revisions"]
    if not index:
        return None, None
    current: str | None = revision
    while current is not None and current in history.by_id:
        downs = history.by_id[current].down_revisions
        current = downs[0] if downs else None
        if current in index:
            name, found = _existing(project, history, current, dialect, server_url)
            if found and index[current] in (name, found):
                return found, current
    return None, None


def _pg_usable(server_url: str, name: str) -> bool | None:
    """None when the template does not exist; else whether we may copy it.

    CREATE DATABASE ... TEMPLATE needs the template's owner (or a superuser) unless it is marked
    a template: one that another role built is there, but not ours to copy.
    """
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from db_migrate.errors import database_error

    sql = text(
        "SELECT d.datistemplate OR pg_has_role(current_user, d.datdba, 'MEMBER') "
        "OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) FROM pg_database d WHERE d.datname = :n"
    )
    try:
        with admin_engine(server_url).connect() as c:
            row = c.execute(sql, {"n": name}).first()
    except SQLAlchemyError as e:  # the first contact with the scratch server: unreachable is the usual reason
        raise database_error(e, server_url, "looking for a template database") from None
    return None if row is None else bool(row[0])


def _verified(project, server_url: str, name: str) -> bool:
    """True when the template's catalogue is what it was when db-migrate built it (:func:`_catalogue_digest`).

    A template someone changed since (an event trigger, a function or trigger planted in it: a
    past compromise of the server, or of a job that could reach it) would pass it on to every
    database copied from it; one we have no record of is not ours to trust either.
    """
    seal = _indexed(project)["seals"].get(_seal_key(server_url, name))
    return seal is not None and _catalogue_digest(server_url, name) == seal


def _drop_unverified(server_url: str, name: str) -> bool:
    """Drop a template that failed :func:`_verified` (it is built again); False when it cannot be dropped."""
    from db_migrate.scratch import drop_database

    try:
        drop_database(server_url, name)
        return True
    except Exception:
        return False  # not ours to drop (another role's), or in use: this call builds without it


_CATALOGUE = """
SELECT md5(string_agg(x, E'\\n' ORDER BY k, o, n)) FROM (
  SELECT 0, oid, 0, ROW(oid, nspname, nspowner, nspacl)::text FROM pg_namespace
  UNION ALL SELECT 1, oid, 0, ROW(oid, relname, relnamespace, relkind, relowner, relacl, relrowsecurity, relforcerowsecurity, reloptions)::text FROM pg_class
  UNION ALL SELECT 2, attrelid, attnum, ROW(attrelid, attnum, attname, atttypid, attnotnull, attisdropped, attgenerated, attacl)::text FROM pg_attribute WHERE attrelid >= 16384
  UNION ALL SELECT 3, oid, 0, ROW(oid, adrelid, adnum, md5(adbin::text))::text FROM pg_attrdef
  UNION ALL SELECT 4, oid, 0, ROW(oid, proname, pronamespace, proowner, prolang, prosecdef, proconfig, proacl, md5(prosrc), probin)::text FROM pg_proc
  UNION ALL SELECT 5, oid, 0, ROW(oid, tgrelid, tgname, tgfoid, tgenabled, tgtype, md5(coalesce(tgqual::text, '')))::text FROM pg_trigger
  UNION ALL SELECT 6, oid, 0, ROW(oid, evtname, evtevent, evtowner, evtfoid, evtenabled, evttags)::text FROM pg_event_trigger
  UNION ALL SELECT 7, oid, 0, ROW(oid, ev_class, rulename, ev_type, ev_enabled, CASE WHEN oid >= 16384 THEN md5(ev_action::text || coalesce(ev_qual::text, '')) END)::text FROM pg_rewrite
  UNION ALL SELECT 8, oid, 0, ROW(oid, conname, conrelid, contypid, contype, md5(coalesce(conbin::text, '')))::text FROM pg_constraint
  UNION ALL SELECT 9, oid, 0, ROW(oid, polrelid, polname, polcmd, polpermissive, polroles, md5(coalesce(polqual::text, '') || coalesce(polwithcheck::text, '')))::text FROM pg_policy
  UNION ALL SELECT 10, oid, 0, ROW(oid, typname, typnamespace, typowner, typacl)::text FROM pg_type
  UNION ALL SELECT 11, oid, 0, ROW(oid, extname, extowner, extversion)::text FROM pg_extension
  UNION ALL SELECT 12, oid, 0, ROW(oid, lanname, lanowner, lanpltrusted, lanacl)::text FROM pg_language
  UNION ALL SELECT 13, oid, 0, ROW(oid, defaclrole, defaclnamespace, defaclobjtype, defaclacl)::text FROM pg_default_acl
  UNION ALL SELECT 14, oid, 0, ROW(oid, castsource, casttarget, castfunc, castcontext, castmethod)::text FROM pg_cast
  UNION ALL SELECT 15, oid, 0, ROW(oid, oprname, oprowner, oprcode)::text FROM pg_operator
) catalogue(k, o, n, x)
"""
"""What a template's digest covers: every object (by oid: a copy keeps them) with its name, owner and
privileges, and the definitions of functions, triggers, rules, defaults, constraints and policies, from
the catalogue's own columns (deparsing them would cost more than the copy); not storage or statistics
(relfilenode, relpages: a VACUUM changes them)."""


def _catalogue_digest(server_url: str, name: str) -> str | None:
    """A digest of the catalogue of the database ``name`` (:data:`_CATALOGUE`); None when it cannot be read."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from db_migrate.scratch import database_url

    # no pooled connection may stay open on a template: CREATE DATABASE ... TEMPLATE needs it alone
    eng = create_engine(database_url(server_url, name), poolclass=NullPool)
    try:
        with eng.connect() as c:
            return str(c.execute(text(_CATALOGUE)).scalar())
    except Exception:
        return None
    finally:
        eng.dispose()


def _pg_save(server_url: str, db, name: str) -> str | None:
    """Rename the build database ``db`` to the template ``name``; None when done, else why not.

    On the embedded server, the build's objects go to the template owner and the database to
    db-migrate first (:func:`db_migrate.scratch.embedded.take_back`): no job role keeps a hold on it.
    """
    from sqlalchemy import text

    from db_migrate.errors import brief
    from db_migrate.scratch import embedded

    built = db.name
    try:
        if db.role is not None:
            embedded.take_back(server_url, built, db.role)
        with admin_engine(server_url).connect() as c:
            # our own scratch database: a session env.py leaked in the worker would block the rename
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": built})
            c.execute(text(f"ALTER DATABASE {quote('postgresql', built)} RENAME TO {quote('postgresql', name)}"))
        return None
    except Exception as e:
        return f"the template could not be saved: {brief(e)}"  # or another call saved the same one first


def _pg_mark_used(server_url: str, name: str) -> None:
    from sqlalchemy import text

    try:
        with admin_engine(server_url).connect() as c:
            c.execute(text(f"COMMENT ON DATABASE {quote('postgresql', name)} IS 'db-migrate template, used {time.time():.0f}'"))
    except Exception:
        pass  # a template someone else just evicted: the copy already failed or succeeded


def _pg_templates(server_url: str, prefix: str = TEMPLATE_PREFIX) -> list[tuple[str, float]]:
    """``(name, last use)`` of the templates on the server whose names start with ``prefix``."""
    from sqlalchemy import text

    with admin_engine(server_url).connect() as c:
        rows = c.execute(
            text("SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname LIKE :p"),
            {"p": prefix.replace("_", r"\_") + "%"},
        ).all()
    out = []
    for name, comment in rows:
        try:
            used = float((comment or "").rsplit(" ", 1)[-1])
        except ValueError:
            used = 0.0
        out.append((name, used))
    return out


def _evict_pg(server_url: str, *, keep: str) -> None:
    from sqlalchemy import text

    others = sorted((t for t in _pg_templates(server_url) if t[0] != keep), key=lambda t: t[1], reverse=True)
    for name, _ in others[_limit() - 1:]:
        try:
            with admin_engine(server_url).connect() as c:
                c.execute(text(f"DROP DATABASE IF EXISTS {quote('postgresql', name)}"))  # no FORCE: a copy in progress wins
        except Exception:
            pass


def purge_templates(server_url: str | None = None, project=None) -> list[str]:
    """Remove cached templates: the SQLite files, and the ``dbm_tpl_*`` databases of a PostgreSQL server.

    With ``project``, only that project's templates (any revision, any key); without, every template.
    """
    from db_migrate.scratch import drop_database

    tag = f"{project_tag(project)}_" if project is not None else ""
    remove(cache_dir() / "templates", f"{project_tag(project)}.json" if project is not None else "*.json")  # the index
    removed = remove(cache_dir() / "sqlite", f"{tag}*.db")
    if server_url is not None and server_dialect(server_url) == "postgresql":
        _pg_usable(server_url, TEMPLATE_PREFIX)  # a structured database-error when the server is unreachable
        for n, _ in _pg_templates(server_url, TEMPLATE_PREFIX + tag):
            drop_database(server_url, n)
            removed.append(n)
    return removed
