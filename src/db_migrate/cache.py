"""The user's cache folder, and the tag that names a project's entries in it.

Everything db-migrate keeps between calls can be rebuilt, and is kept under
one folder: ``$XDG_CACHE_HOME/db-migrate`` (or ``~/.cache/db-migrate``):

- ``sqlite/``: SQLite templates (:mod:`db_migrate.scratch.templates`);
- ``drift/``: drift answers (:mod:`db_migrate.heads.drift_cache`);
- ``parsed/``: revision headers read from the files (:mod:`db_migrate.project.history`).

Each entry's name starts with the project's tag, so one project's entries can
be dropped without touching another's.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "db-migrate"


def project_tag(project) -> str:
    """8 hex digits naming the project (its config file and section)."""
    ident = f"{Path(project.config_file).resolve()}\0{project.section}"
    return hashlib.sha256(ident.encode()).hexdigest()[:8]


def read_json(path: Path) -> object | None:
    """The JSON kept at ``path``, or None when it is missing or damaged (a cache is rebuilt, never trusted blindly)."""
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: object) -> bool:
    """Keep ``data`` at ``path`` atomically (readers see the old file or the new one); False when it cannot be written."""
    import json
    import threading

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
        return True
    except OSError:
        return False  # a read-only cache: only this call keeps what it computed


def touch(path: Path) -> None:
    """Mark ``path`` as just used (its mtime orders eviction)."""
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only cache still works, it just forgets the order of use


def evict(keep: Path, pattern: str, limit: int) -> None:
    """Drop the least recently used files matching ``pattern`` beside ``keep`` beyond ``limit`` (``keep`` stays)."""
    def last_use(f: Path) -> float:
        try:
            return f.stat().st_mtime
        except OSError:
            return 0.0  # removed meanwhile by another call's eviction

    files = sorted(keep.parent.glob(pattern), key=last_use, reverse=True)
    for f in [f for f in files if f != keep][limit - 1:]:
        f.unlink(missing_ok=True)


def remove(folder: Path, pattern: str) -> list[str]:
    """Remove the files matching ``pattern`` in ``folder``; returns their paths."""
    removed = []
    for f in folder.glob(pattern) if folder.is_dir() else ():
        f.unlink(missing_ok=True)
        removed.append(str(f))
    return removed
