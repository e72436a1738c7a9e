"""What a job's process may reach and who it is: applied in the forked job before any project code runs.

Every profile (chosen by the caller of :func:`~db_migrate.sandbox.run_job`):

- **its own processes only**: the job is pid 1 of a new PID namespace with a
  fresh ``/proc`` (no other process's ``environ``, ``cmdline`` or
  ``/proc/<pid>/root``; whatever it spawns dies with it).  Root's fork server
  forks it there directly (:func:`fork_into_pid_namespace`); otherwise
  :func:`enter` leaves the PID namespace in the forked job, which forks once
  more and stays outside as the relay and reaper (:func:`supervise`);
- **no privilege**: as root, uid/gid ``nobody`` (:data:`NOBODY`); without root, a
  user namespace; in both, every capability dropped (bounding set, ambient,
  effective, permitted) and ``no_new_privs``.  ``nobody`` must read the
  interpreter and the project: root's private folders on the way (``/root``
  under pyenv, pytest's 0700 folders) are covered by an empty tmpfs with only
  the needed entries bound back (:func:`_expose`); folders db-migrate made for
  the job are handed over (chown), the user's versions folder is lent through
  an idmapped mount (:func:`_lend`), and so is, read-only, a project folder that
  is itself private.  Where that cannot be done (a private project folder the
  job writes into, a private interpreter, no idmapped mounts), the job keeps uid
  0 without any capability, and :class:`~db_migrate.verdict.Isolation` says why;
- **read-only filesystem** except its folders (a private mount namespace, every
  mount made read-only recursively), every listening Unix socket masked;
- ``RLIMIT_AS`` (:data:`DEFAULT_MEMORY_MIB`, or ``DB_MIGRATE_MEMORY_LIMIT_MB``).

Network, by profile:

- ``"static"`` (review, classify): none (a fresh network namespace, loopback down);
- ``"database"`` (roundtrip, generate, the drift check, templates): none but the
  scratch server.  A server on a Unix socket (the embedded PostgreSQL) has that
  one socket bound into the job's folder; a server on TCP is reached through a
  Unix socket in the job's folder that the box's outer process (our code, in the
  caller's network namespace) relays to that host:port alone; the job's scratch
  URL is rewritten accordingly (:mod:`db_migrate.urls`).  SQLite: none;
- ``"ours"``: db-migrate's own code reading the user's database (heads' version
  table): the network is open; it keeps uid 0 without capabilities.

Namespaces need Linux and the right to create them (root, or unprivileged user
namespaces); where they fail, the job still runs in a fresh process with the
memory limit and without capabilities, and the verdict's ``isolation`` field says
what was not restricted.
"""

from __future__ import annotations

import ctypes
import os
import resource
import socket
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
_CLONE_NEWPID = 0x20000000
_CLONE_NEWUSER = 0x10000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT = 428, 429  # new-style syscall numbers, the same everywhere
_OPEN_TREE_CLONE, _AT_EMPTY_PATH, _MOVE_MOUNT_F_EMPTY_PATH = 1, 0x1000, 0x4
_MOUNT_ATTR_IDMAP = 0x00100000
NOBODY = 65534
"""The unprivileged uid and gid project code runs as when db-migrate runs as root (``nobody``)."""


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


def job_environment(environ: Any) -> dict[str, str]:
    """``environ`` without its credential variables (:func:`db_migrate.urls.is_credential_variable`).

    What fork servers and sessions are started with, so that no job's memory (its ``os.environ``,
    its initial environment block) holds the caller's ``PGPASSWORD``, tokens or password URLs:
    the jobs connect with the scratch URL they are handed, never with the caller's credentials.
    """
    from db_migrate.urls import is_credential_variable

    return {k: v for k, v in environ.items() if not is_credential_variable(k, v)}


def _listening_unix_sockets() -> list[str]:
    """Paths of the Unix sockets bound on this machine (read before leaving the network namespace)."""
    try:
        lines = open("/proc/net/unix", encoding="ascii", errors="replace").read().splitlines()[1:]
    except OSError:
        return []
    return sorted({parts[7] for parts in (ln.split() for ln in lines) if len(parts) >= 8 and parts[7].startswith("/")})


# -- reachability for the unprivileged identity --------------------------------------------------


def _allows(st: os.stat_result, bits: int) -> bool:
    """Whether uid/gid :data:`NOBODY` (no supplementary groups) has ``bits`` (r=4, w=2, x=1) on ``st``."""
    if st.st_uid == NOBODY:
        mode = st.st_mode >> 6
    elif st.st_gid == NOBODY:
        mode = st.st_mode >> 3
    else:
        mode = st.st_mode
    return mode & bits == bits


def readable_by_nobody(path: str, *, write: bool = False) -> bool:
    """Whether :data:`NOBODY` may read ``path`` itself (list and search it, for a folder), or write it.

    Only the path's own mode: the folders above it are made passable by :func:`_expose`.
    """
    import stat

    try:
        st = os.stat(path)
    except OSError:
        return True  # nothing there to read: not a reason to keep root's identity
    bits = 4 | (1 if stat.S_ISDIR(st.st_mode) else 0) | (2 if write else 0)
    return _allows(st, bits)


_runtime_paths: list[str] | None = None


def _interpreter_paths() -> list[str]:
    """The interpreter and the folders it imports from (the same for every job of a fork server)."""
    global _runtime_paths
    if _runtime_paths is None:
        found = [os.path.realpath(p) for p in (sys.executable, *sys.path) if p and os.path.exists(p)]
        _runtime_paths = list(dict.fromkeys(found))
    return _runtime_paths


_server_pid_ns: int | None = None
"""The fork server's own PID namespace (a descriptor), to return to after forking a job into a new one."""


def prepare() -> None:
    """Once in the fork server: what every job's identity check reads, and its own PID namespace."""
    global _server_pid_ns
    _interpreter_paths()
    if sys.platform.startswith("linux") and os.geteuid() == 0 and _in_initial_user_namespace():
        try:
            _server_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            _server_pid_ns = None


def fork_into_pid_namespace(request: dict[str, Any]) -> bool:
    """In the fork server, just before forking ``request``'s job: make that child pid 1 of a new PID namespace.

    The cheap way (no second fork of a big interpreter): root's fork server leaves its PID
    namespace for its *next* child only (``unshare(CLONE_NEWPID)``), and :func:`leave_pid_namespace`
    returns right after the fork.  Not for a job that needs the TCP relay (the relay runs in an
    outer process of the box: :func:`enter`), nor without root (a user namespace comes first).
    """
    relay = request.get("relay")
    if _server_pid_ns is None or request.get("profile") is None or (relay and not relay.get("path")):
        return False
    return _libc().unshare(_CLONE_NEWPID) == 0


def leave_pid_namespace() -> None:
    """Back to the fork server's own PID namespace for its later children (after :func:`fork_into_pid_namespace`)."""
    _check(_libc().setns(_server_pid_ns, _CLONE_NEWPID), "setns(CLONE_NEWPID)")


def limit_memory(memory_mib: int | None) -> None:
    """``RLIMIT_AS`` of the job (None: none)."""
    if memory_mib is not None:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mib * 1024 * 1024, memory_mib * 1024 * 1024))
        except (ValueError, OSError):
            pass


def _why_not_nobody(cwd: str | None, writable: list[str]) -> str | None:
    """Why project code cannot run as :data:`NOBODY` (None: it can).

    It must read the interpreter, db-migrate and the project (``cwd``) and write the
    ``writable`` paths that are not ours to hand over (the user's versions folder: we never
    change the owner or mode of a project file).
    """
    lent = _project_to_lend(cwd, writable)
    paths = _interpreter_paths()
    for path in paths:
        if not (lent and _within(path, lent)) and not readable_by_nobody(path) and not _covered(path, paths):
            return f"the interpreter's {path} is not readable by an unprivileged user"
    if cwd and not lent and not readable_by_nobody(cwd) and not any(_within(cwd, w) for w in writable if not _ours(w)):
        return f"the project folder {cwd} is not readable by an unprivileged user, and the job writes inside it"
    for path in writable:
        try:
            if not _ours(path) and not os.stat(path).st_mode & 0o200:
                return f"{path} (where the job writes) is not writable by its owner"
        except OSError:
            pass
    return None


def _covered(path: str, paths: list[str]) -> bool:
    """``path`` (a folder the interpreter imports from, such as the checkout ``python -m`` put on sys.path) blocks the
    way to another of ``paths``: :func:`_expose` covers it with a tmpfs holding only what the job needs, which the
    job can read (a checkout made by ``mktemp -d``, mode 0700, holding the virtualenv)."""
    import stat

    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and not _allows(st, 1) and any(p != path and _within(p, path) for p in paths)


def _within(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _project_to_lend(cwd: str | None, writable: list[str]) -> str | None:
    """The project folder when :data:`NOBODY` may not read it as it is and it can be lent read-only (:func:`_lend`).

    Not when the job writes inside it (the versions folder: a read-only idmapped mount would
    hide that folder's own mount) nor when it lies in a folder lent for writing (that covers it).
    """
    if not cwd or readable_by_nobody(cwd):
        return None
    if any(_within(w, cwd) or (_within(cwd, w) and not _ours(w)) for w in writable):
        return None
    return os.path.realpath(cwd)


def _lend(libc, path: str, *, write: bool = True) -> None:
    """Let :data:`NOBODY` write the user's folder ``path`` (the versions folder) without changing it on disk.

    ``write=False``: read it only (a project folder that is itself private, 0700 under umask 077).

    An idmapped bind mount (Linux 5.12+, ext4, xfs, btrfs, tmpfs...) of ``path`` onto itself, in
    the job's mount namespace only: its owner appears as ``nobody`` there, and what the job
    creates is owned on disk by that owner, as if db-migrate had written it.
    """
    st = os.stat(path)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    child = os.fork()
    if child == 0:  # holds a user namespace mapping the owner to nobody, long enough to open it
        try:
            os.close(ready_r)
            os.close(go_w)
            os.write(ready_w, b"1" if libc.unshare(_CLONE_NEWUSER) == 0 else b"0")
            os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError(0, "no user namespace for the idmapped mount")
        with open(f"/proc/{child}/uid_map", "w") as f:
            f.write(f"{st.st_uid} {NOBODY} 1")
        with open(f"/proc/{child}/gid_map", "w") as f:
            f.write(f"{st.st_gid} {NOBODY} 1")
        userns = os.open(f"/proc/{child}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(go_w)
        os.close(ready_r)
        os.waitpid(child, 0)
    tree = -1
    try:
        tree = libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, path.encode(), _OPEN_TREE_CLONE | os.O_CLOEXEC)
        _check(0 if tree >= 0 else -1, f"open_tree {path}")
        attr = _MountAttr(_MOUNT_ATTR_IDMAP | (0 if write else _MOUNT_ATTR_RDONLY), _MOUNT_ATTR_RDONLY if write else 0, 0, userns)
        rc = libc.syscall(_SYS_MOUNT_SETATTR, tree, b"", _AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr))
        _check(0 if rc == 0 else -1, f"idmap {path}")
        rc = libc.syscall(_SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, path.encode(), _MOVE_MOUNT_F_EMPTY_PATH)
        _check(0 if rc == 0 else -1, f"mount idmapped {path}")
    finally:
        os.close(userns)
        if tree >= 0:
            os.close(tree)


def _blocking_ancestor(path: str, passable: set[str]) -> str | None:
    """The first folder above ``path`` that :data:`NOBODY` cannot pass through (None: all pass).

    ``passable``: folders it will pass whatever their mode (handed over or lent to it).
    """
    parts = path.split("/")
    for i in range(2, len(parts)):
        folder = "/".join(parts[:i])
        if folder in passable:
            continue
        try:
            if not _allows(os.stat(folder), 1):
                return folder
        except OSError:
            return None
    return None


def _expose(libc, paths: list[str], passable: list[str]) -> None:
    """Make ``paths`` reachable for :data:`NOBODY` in this mount namespace, and nothing beside them.

    A folder on the way that it may not pass (``/root``, 0700, holding the interpreter under
    pyenv; pytest's 0700 temporary folders) is covered with an empty tmpfs (0755) into which
    only the needed entries are bind-mounted back: the job reaches the interpreter and the
    project, but not the rest of root's home (``~/.pgpass``, ``~/.cache``).  Repeated until no
    folder on the way blocks.  The ``passable`` folders (the job's writable ones: handed over or
    lent to it) are never covered: what they hold must stay as it is on disk.
    """
    paths = [os.path.realpath(p) for p in paths]
    through = {os.path.realpath(p) for p in passable}
    for _round in range(32):
        blocked: dict[str, set[str]] = {}
        for path in paths:
            folder = _blocking_ancestor(path, through)
            if folder is not None:
                blocked.setdefault(folder, set()).add(folder + "/" + path[len(folder) + 1:].split("/")[0])
        if not blocked:
            return
        for folder in sorted(blocked, key=len)[:1]:  # the outermost first: the others may lie below it
            fds = {child: os.open(child, os.O_PATH) for child in sorted(blocked[folder])}
            try:
                _check(libc.mount(b"tmpfs", folder.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                                  b"mode=755,size=64k"), f"cover {folder}")
                for child, fd in fds.items():
                    if os.path.isdir(f"/proc/self/fd/{fd}"):
                        os.mkdir(child, 0o755)
                    else:
                        os.close(os.open(child, os.O_CREAT | os.O_WRONLY, 0o644))
                    _check(libc.mount(f"/proc/self/fd/{fd}".encode(), child.encode(), None, _MS_BIND | _MS_REC, None),
                           f"expose {child}")
            finally:
                for fd in fds.values():
                    os.close(fd)
    raise OSError(0, "too many folders to pass")


_own: set[str] = set()
"""The folders db-migrate made for the job in this process (its temporary directory, an SQLite scratch folder)."""


def _ours(path: str) -> bool:
    """A transient folder db-migrate made for this job: it may be handed over to the job's identity."""
    return path.rstrip("/") in _own


def _hand_over(paths: list[str]) -> None:
    """Give our own transient folders (and what is in them) to :data:`NOBODY`, so the job can write there."""
    for path in paths:
        if not _ours(path):
            continue
        os.chown(path, NOBODY, NOBODY)
        for entry in os.scandir(path):
            os.chown(entry.path, NOBODY, NOBODY, follow_symlinks=False)


# -- the relay to the scratch server ---------------------------------------------------------------


def relay_listener(folder: str, name: str) -> socket.socket:
    """The Unix socket the job connects to (``folder/name``), bound before the job leaves the network."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = os.path.join(folder, name)
    listener.bind(path)
    os.chmod(path, 0o666)  # for the job's identity; the folder (the job's own, 0700) is the gate
    listener.listen(16)
    return listener


def _connect(target: tuple[str, int] | str) -> socket.socket:
    # the timeout bounds only a server that never answers; the call's own timeout kills us anyway
    if isinstance(target, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        try:
            sock.connect(target)
        except BaseException:
            sock.close()
            raise
    else:
        sock = socket.create_connection(target, timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as libpq and the drivers do: no Nagle stall per query
    sock.settimeout(None)
    return sock


def supervise(child: int, listener: socket.socket | None, target: tuple[str, int] | str | None) -> None:
    """The box's outer process: relay the job's connections to the scratch server until it exits; exit.

    Our own code, outside the job's network namespace: every connection the job opens on the
    relay socket goes to ``target`` (the scratch server's ``(host, port)`` or Unix socket path) and
    nowhere else.  Exits with the job's exit code once the job (pid 1 of its PID namespace: the
    kernel kills whatever it left there with it) has exited.
    """
    import select

    code = 1
    try:
        pidfd = os.pidfd_open(child)
        peers: dict[socket.socket, socket.socket] = {}
        while True:
            ready, _, _ = select.select([pidfd, *([listener] if listener else []), *peers], [], [])
            if pidfd in ready:
                break
            for sock in ready:
                if sock is listener:
                    inside, _ = listener.accept()
                    try:
                        outside = _connect(target)  # type: ignore[arg-type]
                    except OSError:
                        inside.close()  # the job sees a refused connection, as without the relay
                        continue
                    peers[inside], peers[outside] = outside, inside
                    continue
                if sock not in peers:
                    continue  # closed with its peer earlier in this round
                try:
                    data = sock.recv(65536)
                    if data:
                        peers[sock].sendall(data)
                        continue
                except OSError:
                    pass
                other = peers.pop(sock)
                peers.pop(other, None)
                sock.close()
                other.close()
        code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    except BaseException:
        pass
    os._exit(code if 0 <= code < 256 else 1)


# -- the box ---------------------------------------------------------------------------------------


def enter(profile: str | None, *, tmpdir: str, writable: list[str], own: list[str] = (), relay: dict[str, Any] | None = None,  # type: ignore[assignment]
          memory_mib: int | None = None, hidden: list[str] = ()) -> tuple[int | None, socket.socket | None]:
    """First half of the box, in the forked job before anything else: limits, a PID namespace, the relay.

    For a job the fork server could not fork into a new PID namespace itself
    (:func:`fork_into_pid_namespace`: the TCP relay, no root).
    Sets ``RLIMIT_AS`` (``memory_mib``), and for a profile, leaves the PID namespace (the
    *next* child is pid 1 of a new one) and binds the relay socket when the job needs a
    scratch server.  Returns ``(None, listener)`` when the caller should fork the job
    itself, else ``(errno-ish, listener)`` when no PID namespace could be made (the job runs
    in this process then).  The caller forks; the parent side calls :func:`supervise`, the
    child :func:`apply`.
    """
    limit_memory(memory_mib)
    if profile is None or not sys.platform.startswith("linux"):
        return 1, None
    listener = relay_listener(relay["folder"], relay["name"]) if relay and not relay.get("path") else None
    libc = _libc()
    try:
        if os.geteuid() != 0:
            _enter_user_namespace(libc)
        _check(libc.unshare(_CLONE_NEWPID), "unshare(CLONE_NEWPID)")
    except OSError as e:
        return e.errno or 1, listener
    return None, listener


def _enter_user_namespace(libc) -> None:
    """Without root: a user namespace where we are root (over it alone), so that the namespaces below work."""
    uid, gid = os.geteuid(), os.getegid()
    _check(libc.unshare(_CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def apply(profile: str | None, *, tmpdir: str, writable: list[str], own: list[str] = (), relay: dict[str, Any] | None = None,  # type: ignore[assignment]
          memory_mib: int | None = None, cwd: str | None = None, pid_namespace: bool = False,
          keep_fds: tuple[int, ...] = (), hidden: list[str] = ()) -> Isolation:
    """Restrict the current (freshly forked, single-threaded) process before project code runs; return what holds.

    ``pid_namespace``: this process is pid 1 of a new PID namespace (:func:`enter` and a fork
    made it so); a fresh ``/proc`` is mounted, showing the job's own processes only.
    ``keep_fds``: the descriptors the job needs (its socket); every other one but 0-2 is closed.
    ``own``: the ``writable`` folders db-migrate made for this job (an SQLite scratch folder): they
    are handed over to ``nobody``; the others (the user's versions folder) are lent through an
    idmapped mount, never changed on disk.
    ``hidden``: secret files (:func:`db_migrate.cache.secret_paths`: the cache's signing key, the embedded
    server's password) the job sees as empty, whatever identity it runs as.
    """
    _own.update(p.rstrip("/") for p in (tmpdir, *own))
    limit = memory_mib
    if limit is not None and resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY:
        limit = None  # enter() could not set it
    base: dict[str, Any] = dict(process="fresh-process", memory_limit_mib=limit)
    if profile is None:
        return Isolation(**base, summary="a fresh process per job; filesystem and network not restricted")
    private_net = profile in ("static", "database")  # "ours": our own code reading the user's database
    sockets = _listening_unix_sockets()
    relay_dir = relay["folder"] if relay else None
    keep = [p for p in (tmpdir, *writable) if p and os.path.isdir(p)]
    notes: list[str] = []
    root = os.geteuid() == 0 and _in_initial_user_namespace()
    why = _why_not_nobody(cwd, [p for p in writable if p]) if root and profile != "ours" else None
    lend_project = _project_to_lend(cwd, [p for p in writable if p]) if root and why is None and profile != "ours" else None
    try:
        if not sys.platform.startswith("linux"):
            raise OSError("namespaces need Linux")
        libc = _libc()
        _check(libc.unshare(_CLONE_NEWNS | (_CLONE_NEWNET if private_net else 0)), "unshare")
        _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "make mounts private")
        if root and why is None:
            try:
                _expose(libc, [*_interpreter_paths(), *([cwd] if cwd else []), *keep], [*keep, *([lend_project] if lend_project else [])])
            except OSError as e:
                why = f"its folders cannot be made reachable: {e.strerror or e}"
        for path in keep:
            _check(libc.mount(path.encode(), path.encode(), None, _MS_BIND | _MS_REC, None), f"bind {path}")
        _mount_setattr(libc, "/", set_=_MOUNT_ATTR_RDONLY)
        for path in keep:
            _mount_setattr(libc, path, clear=_MOUNT_ATTR_RDONLY)
        if relay and relay.get("path"):
            _pass_socket(libc, relay["path"], relay_dir, relay["name"])  # before the masking below hides it
        for sock in sockets:
            if relay_dir is not None and os.path.dirname(sock) == relay_dir:
                continue
            libc.mount(b"/dev/null", sock.encode(), None, _MS_BIND, None)  # best effort: it may be gone
        for secret in hidden:
            libc.mount(b"/dev/null", secret.encode(), None, _MS_BIND, None)  # best effort: it may not exist yet
    except OSError as e:
        _drop_privileges(None)
        return Isolation(
            **base, identity=_identity_now(),
            summary=f"a fresh process per job; filesystem and network not restricted (namespaces unavailable: {e.strerror or e})",
        )
    processes = "shared"
    if pid_namespace:
        try:
            _check(libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None), "mount /proc")
            processes = "own-pid-namespace"
        except OSError as e:
            notes.append(f"other processes visible (no /proc of its own: {e.strerror or e})")
    else:
        notes.append("other processes visible (no PID namespace)")
    _close_fds(keep_fds)
    as_nobody = root and why is None and profile != "ours"
    if as_nobody:
        try:
            _hand_over(keep)
            for path in keep:
                if not _ours(path):
                    _lend(libc, path)
            if lend_project:
                _lend(libc, lend_project, write=False)
        except OSError as e:
            as_nobody, why = False, f"its folders cannot be handed over: {e}"
    if why and profile != "ours":
        notes.append(f"runs as root without capabilities ({why})")
    _drop_privileges(NOBODY if as_nobody else None)
    identity = _identity_now()
    writable_desc = ["the job's temporary directory", *(
        "the SQLite scratch database's folder" if _ours(p) else p for p in writable if p
    )]
    who = {"unprivileged": "as an unprivileged user", "root-without-capabilities": "as root without capabilities",
           "caller": "with the caller's privileges"}[identity]
    head = (f"a fresh process per job {who}" + (", no capabilities" if identity != "caller" else "")
            + (", its own PID namespace" if processes == "own-pid-namespace" else ""))
    fs = "read-only filesystem except " + ", ".join(writable_desc)
    tail = "".join(f"; {n}" for n in notes)
    if profile == "static":
        return Isolation(**base, network="none", filesystem="read-only", writable=writable_desc, identity=identity,
                         processes=processes, summary=f"{head}; no network; {fs}{tail}")
    if profile == "ours":
        return Isolation(**base, network="unrestricted", filesystem="read-only", writable=writable_desc, identity=identity,
                         processes=processes, summary=f"{head}; {fs}; network not restricted (db-migrate's own reader){tail}")
    network = "scratch-database-only" if relay else "none"
    return Isolation(
        **base, network=network, filesystem="read-only", writable=writable_desc, identity=identity, processes=processes,
        summary=f"{head}; {fs}; " + (("network: only the scratch server's Unix socket" if relay.get("path") else
                                 "network: only the scratch server, through db-migrate's relay") if relay else "no network") + tail,
    )


def _pass_socket(libc, path: str, folder: str, name: str) -> None:
    """Bind the scratch server's Unix socket ``path`` to ``folder/name`` in the job's folder.

    No relay hop for a server on a Unix socket (the embedded PostgreSQL server): the job
    connects to that one socket inode directly, through a path it may reach; the socket's own
    path, like every listening socket, is masked.
    """
    os.makedirs(folder, mode=0o700, exist_ok=True)
    target = os.path.join(folder, name)
    os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))
    _check(libc.mount(path.encode(), target.encode(), None, _MS_BIND, None), f"pass the scratch server's socket {path}")


def _in_initial_user_namespace() -> bool:
    try:
        return open("/proc/self/uid_map").read().split() == ["0", "0", "4294967295"]
    except OSError:
        return False


def _close_fds(keep: tuple[int, ...]) -> None:
    """Close every descriptor but 0-2 and ``keep``: no inherited handle leads out of the box."""
    for fd in sorted({int(n) for n in os.listdir("/proc/self/fd")} - {0, 1, 2, *keep}):
        try:
            os.close(fd)
        except OSError:
            pass


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_privileges(uid: int | None) -> None:
    """Drop every capability (bounding set, ambient, effective, permitted), become ``uid``, set no_new_privs.

    Best effort where the process lacks the right to (it then has nothing to drop); the
    identity and capabilities that hold are read back by :func:`_identity_now`.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = _libc()
    try:
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # leaving uid 0 clears the permitted and effective sets
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    libc.capset(ctypes.byref(header), ctypes.byref(data))
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def _identity_now() -> str:
    """``unprivileged``, ``root-without-capabilities`` or ``caller`` (capabilities left), from /proc/self/status."""
    fields = {}
    try:
        for line in open("/proc/self/status"):
            key, _, value = line.partition(":")
            fields[key] = value.split()
    except OSError:
        return "caller"
    if int(fields.get("CapEff", ["1"])[0], 16) or int(fields.get("CapPrm", ["1"])[0], 16):
        return "caller"
    if not _in_initial_user_namespace():
        return "unprivileged"  # a user namespace: the caller's uid outside, no power over anything outside
    if os.geteuid() == 0:
        return "root-without-capabilities"
    return "unprivileged" if os.geteuid() == NOBODY else "caller"


def _mount_setattr(libc, path: str, *, set_: int = 0, clear: int = 0) -> None:
    attr = _MountAttr(set_, clear, 0, 0)
    rc = libc.syscall(_SYS_MOUNT_SETATTR, _AT_FDCWD, path.encode(), _AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr))
    _check(0 if rc == 0 else -1, f"mount_setattr {path}")
