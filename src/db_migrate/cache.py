"""The user's cache folder, the tag that names a project's entries in it, and proof that an entry is ours.

Everything db-migrate keeps between calls can be rebuilt, and is kept under
one folder: ``$XDG_CACHE_HOME/db-migrate`` (or ``~/.cache/db-migrate``):

- ``sqlite/``: SQLite templates (:mod:`db_migrate.scratch.templates`);
- ``templates/``: which revisions have a template, per project (the same module);
- ``drift/``: drift answers (:mod:`db_migrate.heads.drift_cache`);
- ``parsed/``: revision headers read from the files (:mod:`db_migrate.project.history`);
- ``url-parts.json``: the names a URL gives (:mod:`db_migrate.policy.signals`);
- ``key``: the per-user key that signs all of the above (0600, created once, never overwritten).

Each entry's name starts with the project's tag, so one project's entries can
be dropped without touching another's.

Only db-migrate's own code writes here, in the calling process, never in a job
(project code runs in jobs).  A kept answer that db-migrate replays decides a
verdict (a drift answer says "models match head"), so every JSON entry is
signed (:func:`write_json`): an HMAC-SHA256 with :func:`key` over the entry's
file name and bytes.  :func:`read_json` ignores an entry whose signature does
not verify (forged, edited, copied from another entry or another user's
cache), exactly as it ignores a damaged one: it is rebuilt.  The folders
db-migrate creates here are 0700, so another user (the unprivileged identity
jobs run as) cannot even read them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

KEY_BYTES = 32
_keys: dict[Path, bytes | None] = {}
_secrets: set[str] = set()
"""Paths of the secret files this process knows of (:func:`secret_paths`)."""
"""The signing key per cache folder, read once per process (None: no usable key there)."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "db-migrate"


def project_tag(project) -> str:
    """8 hex digits naming the project (its config file and section)."""
    ident = f"{Path(project.config_file).resolve()}\0{project.section}"
    return hashlib.sha256(ident.encode()).hexdigest()[:8]


def private_folder(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing: 0700, only its user reads what is kept there.

    The cache folder itself keeps the usual mode: as root, the embedded PostgreSQL server's
    system user must traverse it to its data directory (:mod:`db_migrate.scratch.embedded`).
    """
    path.mkdir(mode=0o777 if path == cache_dir() else 0o700, parents=True, exist_ok=True)
    return path


def key_file() -> Path:
    """Where the signing key lives (see :func:`key`)."""
    return cache_dir() / "key"


def key() -> bytes | None:
    """This user's signing key: :data:`KEY_BYTES` random bytes in ``<cache>/key`` (:func:`secret_file`)."""
    path = key_file()
    if path not in _keys:
        _keys[path] = secret_file(path, KEY_BYTES)
    return _keys[path]


def secret_file(path: Path, size: int, *, create: bool = True) -> bytes | None:
    """``size`` random bytes kept at ``path``, created on first need; None when there is no usable one.

    ``create=False``: only read it (None when it does not exist).

    Created atomically (written under a temporary name, then hard-linked to its name: the link
    fails if another process created it first, so a secret is never overwritten, and no reader
    sees a half-written one).  None when the file is not a regular file of ours readable by nobody
    else (someone else's file, a symlink, a group- or world-readable file): such a secret may be
    known to someone else.
    """
    _secrets.add(str(path))
    value = _read_secret(path, size)
    if create and value is None and not path.exists() and not path.is_symlink():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, secrets.token_bytes(size))
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process was first: use its secret
            finally:
                tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only folder: no secret, so nothing that needs one
        value = _read_secret(path, size)
    return value


def secret_paths() -> list[str]:
    """The secret files a job must not read (the signing key, the embedded server's password, ...).

    The sandbox hides them in a job's own view of the filesystem, where it can
    (:func:`db_migrate.sandbox.isolation.apply`); being 0600, they are closed to a job that runs as
    another user anyway.
    """
    key()  # made now if missing: a key created while a job runs would be in plain view of that job
    return sorted({str(key_file()), *_secrets})


def _read_secret(path: Path, size: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        data = os.read(fd, size + 1)
    finally:
        os.close(fd)
    return data if len(data) == size else None


def _mac(secret: bytes, path: Path, body: bytes) -> str:
    # the file's name is signed too: an entry copied under another entry's name (another key) does not verify
    return hmac.new(secret, path.name.encode() + b"\0" + body, hashlib.sha256).hexdigest()


def read_json(path: Path) -> object | None:
    """The JSON kept at ``path`` when db-migrate signed it, else None (missing, damaged, forged: rebuilt, never trusted)."""
    import json

    secret = key()
    if secret is None:
        return None
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    mac, _, body = raw.partition(b"\n")
    if not hmac.compare_digest(mac, _mac(secret, path, body).encode()):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def write_json(path: Path, data: object) -> bool:
    """Keep ``data`` at ``path``, signed, atomically (readers see the old file or the new one); False when not kept."""
    import json
    import threading

    secret = key()
    if secret is None:
        return False
    try:
        private_folder(path.parent)
        body = json.dumps(data).encode()
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(_mac(secret, path, body).encode() + b"\n" + body)
        os.replace(tmp, path)
        return True
    except OSError:
        return False  # a read-only cache: only this call keeps what it computed


def sign_file(path: Path, *, name: str | None = None) -> str | None:
    """A signature of the file at ``path``: its content under ``name`` (default: its own name); None without a key.

    ``name``: the name the file will have (a file written under a temporary name, then renamed).
    """
    secret = key()
    if secret is None:
        return None
    try:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").digest()
    except OSError:
        return None
    return _mac(secret, path.with_name(name or path.name), digest)


def signature_file(path: Path) -> Path:
    """Where the signature of a kept file lives (beside it; :func:`evict` and :func:`remove` drop both)."""
    return path.with_name(path.name + ".sig")


def keep_signature(path: Path, signature: str | None) -> None:
    """Write ``signature`` (:func:`sign_file`) beside ``path``; nothing when there is none."""
    if signature is None:
        return
    try:
        tmp = signature_file(path).with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(signature, encoding="ascii")
        os.replace(tmp, signature_file(path))
    except OSError:
        pass  # unsigned: the next call does not use the file, and builds it again


def signed_by_us(path: Path) -> bool:
    """True when the file at ``path`` is, byte for byte, what db-migrate signed (:func:`keep_signature`)."""
    try:
        kept = signature_file(path).read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return False
    mine = sign_file(path)
    return mine is not None and hmac.compare_digest(mine, kept)


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
        signature_file(f).unlink(missing_ok=True)


def remove(folder: Path, pattern: str) -> list[str]:
    """Remove the files matching ``pattern`` in ``folder``; returns their paths."""
    removed = []
    for f in folder.glob(pattern) if folder.is_dir() else ():
        f.unlink(missing_ok=True)
        signature_file(f).unlink(missing_ok=True)
        removed.append(str(f))
    return removed
