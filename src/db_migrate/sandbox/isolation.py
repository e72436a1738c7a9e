"""What a job's process may reach: applied inside the forked job, before any project code runs.

Two profiles, chosen by the caller of :func:`~db_migrate.sandbox.run_job`:

- ``"static"`` (review, classify: capture offline, no database): no network at
  all (a fresh network namespace has only a loopback that is down), the whole
  filesystem read-only except the job's own temporary directory (a private
  mount namespace, every mount made read-only recursively), and every listening
  Unix socket (PostgreSQL, MariaDB, ...) masked so a local server cannot be
  reached through the filesystem either;
- ``"database"`` (roundtrip, generate, the drift check, templates: they need
  the scratch database): read-only filesystem except the temporary directory
  and the paths the caller names (the SQLite scratch file's folder, the
  versions folder a new revision goes to).  When the scratch database is
  reached through a Unix socket (``host=/socket/dir``), the network namespace
  is private too and only that socket stays visible; over TCP the network is
  NOT restricted (reaching one host:port only would need a network namespace
  with a forwarder) and :class:`~db_migrate.verdict.Isolation` says so.

Both set ``RLIMIT_AS`` (:data:`DEFAULT_MEMORY_MIB`, or ``DB_MIGRATE_MEMORY_LIMIT_MB``).

Namespaces need Linux and the right to create them (root, or unprivileged user
namespaces); where :func:`os.unshare`-equivalents fail, the job still runs in a
fresh process with the memory limit and the verdict's ``isolation`` field says
that the filesystem and network were not restricted.
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from typing import Any

from db_migrate.verdict import Isolation

DEFAULT_MEMORY_MIB = 2048
"""Address-space limit of one job. Python with alembic, SQLAlchemy and a driver maps ~300 MiB."""

_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 4096, 16384, 1 << 18
_MOUNT_ATTR_RDONLY = 0x1
_AT_RECURSIVE = 0x8000
_AT_FDCWD = -100
_SYS_MOUNT_SETATTR = 442  # the same number on every architecture (new-style syscall table)
_PR_SET_PDEATHSIG = 1


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def memory_limit_mib() -> int | None:
    """The per-job address-space limit in MiB (``DB_MIGRATE_MEMORY_LIMIT_MB``; 0 = none)."""
    raw = os.environ.get("DB_MIGRATE_MEMORY_LIMIT_MB")
    if raw is None:
        return DEFAULT_MEMORY_MIB
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_MEMORY_MIB
    return value if value > 0 else None


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def die_with_parent(sig: int) -> None:
    """Ask Linux to send ``sig`` to this process when its parent exits (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        try:
            _libc().prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to us (so we can reap and kill them), not to init."""
    if sys.platform.startswith("linux"):
        try:
            _libc().prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass


def _listening_unix_sockets() -> list[str]:
    """Paths of the Unix sockets bound on this machine (read before leaving the network namespace)."""
    try:
        lines = open("/proc/net/unix", encoding="ascii", errors="replace").read().splitlines()[1:]
    except OSError:
        return []
    return sorted({parts[7] for parts in (ln.split() for ln in lines) if len(parts) >= 8 and parts[7].startswith("/")})


def _socket_dir(url: str | None) -> str | None:
    """The socket directory of a scratch URL that names one (``?host=/dir`` or a host starting with /)."""
    if not url:
        return None
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
    except Exception:
        return None
    hosts = [u.host or "", *(v for k, v in u.query.items() if k == "host" for v in ([v] if isinstance(v, str) else v))]
    dirs = [h for h in hosts if h.startswith("/")]
    return dirs[0] if dirs and all(h.startswith("/") or not h for h in hosts) else None


def apply(profile: str | None, *, tmpdir: str, writable: list[str], scratch_url: str | None,
          memory_mib: int | None = None, hidden: list[str] = ()) -> Isolation:
    """Restrict the current (freshly forked, single-threaded) process; return what holds.

    ``memory_mib``: the address-space limit the caller read from its environment (None: no limit).
    ``hidden``: secret files (:func:`db_migrate.cache.secret_paths`) the job sees as empty.
    """
    limit = memory_mib
    if limit is not None:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit * 1024 * 1024, limit * 1024 * 1024))
        except (ValueError, OSError):
            limit = None
    base: dict[str, Any] = dict(process="fresh-process", memory_limit_mib=limit)
    if profile is None:
        return Isolation(**base, summary="a fresh process per job; filesystem and network not restricted")
    socket_dir = _socket_dir(scratch_url) if profile == "database" else None
    private_net = profile == "static" or socket_dir is not None
    sockets = _listening_unix_sockets()
    try:
        if not sys.platform.startswith("linux"):
            raise OSError("namespaces need Linux")
        libc = _libc()
        _check(libc.unshare(_CLONE_NEWNS | (_CLONE_NEWNET if private_net else 0)), "unshare")
        _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "make mounts private")
        keep = [p for p in (tmpdir, *writable) if p and os.path.isdir(p)]
        for path in keep:
            _check(libc.mount(path.encode(), path.encode(), None, _MS_BIND | _MS_REC, None), f"bind {path}")
        _mount_setattr(libc, "/", set_=_MOUNT_ATTR_RDONLY)
        for path in keep:
            _mount_setattr(libc, path, clear=_MOUNT_ATTR_RDONLY)
        for sock in sockets:
            if socket_dir is not None and os.path.dirname(sock) == socket_dir.rstrip("/"):
                continue
            libc.mount(b"/dev/null", sock.encode(), None, _MS_BIND, None)  # best effort: it may be gone
        for secret in hidden:
            libc.mount(b"/dev/null", secret.encode(), None, _MS_BIND, None)  # best effort: it may not exist yet
    except OSError as e:
        return Isolation(
            **base, summary=f"a fresh process per job; filesystem and network not restricted (namespaces unavailable: {e.strerror or e})",
        )
    # transient folders by what they are (verdicts stay comparable from call to call), others by path
    writable_desc = ["the job's temporary directory", *(
        "the SQLite scratch database's folder" if os.path.basename(p.rstrip("/")).startswith("dbm_") else p
        for p in writable if p
    )]
    if profile == "static":
        return Isolation(**base, network="none", filesystem="read-only", writable=writable_desc,
                         summary="a fresh process per job; no network; read-only filesystem except its temporary directory")
    net = "scratch-database-only" if private_net else "unrestricted"
    return Isolation(
        **base, network=net, filesystem="read-only", writable=writable_desc,
        summary="a fresh process per job; read-only filesystem except " + ", ".join(writable_desc) + "; "
        + ("network: only the scratch database's Unix socket" if private_net
           else "network not restricted (the scratch database is reached over TCP)"),
    )


def _mount_setattr(libc, path: str, *, set_: int = 0, clear: int = 0) -> None:
    attr = _MountAttr(set_, clear, 0, 0)
    rc = libc.syscall(_SYS_MOUNT_SETATTR, _AT_FDCWD, path.encode(), _AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr))
    _check(0 if rc == 0 else -1, f"mount_setattr {path}")
