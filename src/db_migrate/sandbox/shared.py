"""One warm fork server shared by the CLI calls of a user, so a CLI call does not pay its start-up.

A fork server imports alembic, SQLAlchemy and the rules before its first job:
about 0.6 s, more than the whole of ``alembic upgrade --sql | squawk``.  The
MCP server pays it once per session; a CLI call (``db-migrate review REV`` in
a pre-commit hook, an agent's loop) paid it every time.  So CLI calls share a
*warm parent* of fork servers:

- ``python -m db_migrate.sandbox --listen PATH`` (:func:`serve_shared`)
  imports everything, then listens on a Unix socket in a private folder
  (``<cache>/run``, or ``/tmp/db-migrate-UID`` when that path is too long for a
  socket; mode 0700, the socket 0600; the peer's uid is checked on both ends).  It never runs project code and never reads a caller's message:
  for each connection it forks a *session* and goes back to listening.
- The session (:func:`_session`) takes the caller's environment and working
  directory from the caller's first message, then is exactly the private fork
  server of :mod:`.forkserver` for that one caller: it forks one job per
  request, kills every job and what it spawned when the caller's connection
  closes (the CLI exits, is killed, or crashes), and exits.  So nothing of one
  call reaches another: every job is a fresh fork of a session that is a
  fresh fork of a process that has seen no caller.
- The environment: the warm parent is started with a minimal environment
  (``PATH``, ``HOME``, the locale, the ``PYTHON*`` variables that shape
  imports), so the memory and ``/proc/PID/environ`` a job inherits hold no
  other call's secrets; the session sets the caller's own ``os.environ``.
- The warm parent serves one interpreter and one copy of db-migrate: the
  socket's name is a hash of ``sys.executable``, ``sys.path`` (and each entry's
  mtime: a ``pip install`` changes it) and the size and mtime of every file of
  the package, so an upgraded or edited db-migrate gets a new one.  It exits
  after :data:`IDLE_SECONDS` without a session (``DB_MIGRATE_WORKER_IDLE_MINUTES``),
  or when its socket is removed or replaced.

The warm parent is also the *supervisor* of what a CLI call must undo should
it die: :func:`supervise` opens a second kind of session, a *guard*, and
registers clean-ups (``"module:function"`` and its arguments: the scratch
database a roundtrip created, and its server); :func:`release` withdraws one
once the call has done it itself.  When the caller's connection closes with
clean-ups still registered (``kill -9``, a crash), the guard runs them at once
and exits, so a killed call's scratch database is dropped then, not by the
next run's sweep.  A registration is one datagram sent before the database is
created, so the guard has it even when the caller dies the next instant.

``DB_MIGRATE_SHARED_WORKER=0`` makes the CLI start a private fork server per
call instead, as the MCP server always does (and no guard: the next run's
sweep drops what a killed call left).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

IDLE_SECONDS = 600.0
"""How long the warm parent waits for a next CLI call (``DB_MIGRATE_WORKER_IDLE_MINUTES`` overrides)."""
START_SECONDS = 30.0
"""How long a caller waits for a warm parent it started to listen."""
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux
_KEPT_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ",
             "PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE")


def enabled() -> bool:
    return os.environ.get("DB_MIGRATE_SHARED_WORKER", "1").strip().lower() not in ("0", "false", "no", "off")


def idle_seconds() -> float:
    try:
        return max(1.0, float(os.environ["DB_MIGRATE_WORKER_IDLE_MINUTES"]) * 60)
    except (KeyError, ValueError):
        return IDLE_SECONDS


def run_dir() -> Path:
    from db_migrate.cache import cache_dir

    return cache_dir() / "run"


def socket_path() -> Path | None:
    """The warm parent's socket for this interpreter and this copy of db-migrate (None: path too long)."""
    import db_migrate

    md = hashlib.sha256(f"{sys.executable}\0{sys.version}".encode())
    for entry in sys.path[1:]:
        with contextlib.suppress(OSError):
            md.update(f"\0{entry}:{os.stat(entry or '.').st_mtime_ns}".encode())
    package = Path(db_migrate.__file__).resolve().parent
    for dirpath, dirnames, filenames in os.walk(package):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                with contextlib.suppress(OSError):
                    st = os.stat(os.path.join(dirpath, name))
                    md.update(f"\0{dirpath}/{name}:{st.st_mtime_ns}:{st.st_size}".encode())
    md.update(f"\0{run_dir()}".encode())  # one per cache folder, wherever its socket lives
    name = f"fork-{md.hexdigest()[:16]}.sock"
    for folder in (run_dir(), Path("/tmp") / f"db-migrate-{os.getuid()}"):  # a short folder when the cache's is too deep
        if len(os.fsencode(folder / name)) <= _MAX_SOCKET_PATH:
            return folder / name
    return None


def _peer(sock: socket.socket) -> tuple[int, int]:
    """``(pid, uid)`` of the process at the other end."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return pid, uid


def _peer_uid(sock: socket.socket) -> int:
    return _peer(sock)[1]


def _a_caller(sock: socket.socket) -> bool:
    """The peer is this user, in our mount and network namespaces: a CLI process, never a job.

    Jobs see this socket masked (:mod:`.isolation` hides every listening Unix socket from them);
    should one reach it anyway, its private namespaces give it away, and it gets no session.
    """
    pid, uid = _peer(sock)
    if uid != os.getuid():
        return False
    try:
        return all(os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}") for ns in ("mnt", "net"))
    except OSError:
        return False


# --------------------------------------------------------------------------- the caller's side


def connect(*, guard: bool = False) -> socket.socket | None:
    """A session of the warm parent for this process (started when none listens), or None.

    None means: use a private fork server (no usable folder or socket path, or the warm
    parent would not start); the caller never fails for the sake of a speed-up.
    ``guard``: a guard session (:func:`supervise`) instead of a fork server.
    """
    path = socket_path()
    if path is None:
        return None
    try:
        _private_folder(path.parent)
    except OSError:
        return None
    sock = _session_at(path, guard)
    if sock is not None:
        return sock
    import fcntl

    try:
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one caller starts it; the others wait and connect
            sock = _session_at(path, guard)
            if sock is None:
                proc = _start(path)
                deadline = time.monotonic() + START_SECONDS
                while sock is None and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.01)
                    sock = _session_at(path, guard)
    except OSError:
        return None
    return sock


def _private_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = folder.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        os.chmod(folder, 0o700)  # ours: close it; another user's: the check below refuses it
        st = folder.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise PermissionError(f"{folder} is not a private folder of this user")


def _session_at(path: Path, guard: bool = False) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.settimeout(10)
        sock.connect(os.fspath(path))
        if _peer_uid(sock) != os.getuid():
            raise PermissionError("the fork server's socket belongs to another user")
        from db_migrate.sandbox.isolation import job_environment

        env = job_environment(os.environ)  # no credential in any job's memory
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # never litter the user's versions/ with __pycache__
        sock.send(pickle.dumps({"env": env, "cwd": os.getcwd(), "guard": guard}))
        if sock.recv(8) != b"ok":
            raise ConnectionError("the fork server refused the session")
        sock.settimeout(None)
        return sock
    except (OSError, ValueError):
        sock.close()
        return None


_guard: socket.socket | None = None
_guard_lock = threading.Lock()


def supervise(target: str, *args: Any) -> bool:
    """Have the warm parent run ``target(*args)`` should this process end before :func:`release`.

    ``target`` is ``"module:function"``; ``args`` must pickle.  False when no guard can be had
    (no warm parent; the caller goes on without one: the next run's sweep is the fallback).
    """
    global _guard
    message = pickle.dumps(("add", target, args))
    with _guard_lock:
        for _attempt in range(2):  # a guard whose warm parent was replaced is gone: connect again once
            if _guard is None:
                _guard = connect(guard=True)
                if _guard is None:
                    return False
            try:
                _guard.send(message)
                return True
            except OSError:
                _guard.close()
                _guard = None
    return False


def release(target: str, *args: Any) -> None:
    """Withdraw a clean-up :func:`supervise` registered: the caller has done it itself."""
    with _guard_lock:
        if _guard is not None:
            with contextlib.suppress(OSError):
                _guard.send(pickle.dumps(("done", target, args)))


def _run_guard(conn: socket.socket) -> None:
    """A guard session: keep the caller's clean-ups; when its connection closes, run those left.

    Datagrams a caller sent before dying are still read before the end of the connection, so a
    clean-up registered is never missed.  Each runs once, whatever the others do.
    """
    import importlib

    held: list[tuple[str, tuple[Any, ...]]] = []
    while True:
        try:
            msg = conn.recv(1 << 20)
        except InterruptedError:
            continue
        except OSError:
            break
        if not msg:
            break
        try:
            op, target, args = pickle.loads(msg)  # our caller, the same user (checked): not untrusted input
        except Exception:
            continue
        if op == "add":
            held.append((target, tuple(args)))
        elif (target, tuple(args)) in held:
            held.remove((target, tuple(args)))
    for target, args in held:
        module, _, func = target.partition(":")
        try:
            getattr(importlib.import_module(module), func)(*args)
        except Exception:
            pass  # gone already, or unreachable now: the next run's sweep is still there


def _start(path: Path) -> subprocess.Popen:
    # warm parents of this interpreter with an older copy of db-migrate (an upgrade, an edit of an
    # editable install) would only idle: stop them (their sessions in progress go on)
    for other in path.parent.glob("fork-*.pid"):
        if other != path.with_suffix(".pid") and _pid_file(other)[1] == sys.executable:
            stop(other.with_suffix(".sock"))
    env = {k: os.environ[k] for k in _KEPT_ENV if k in os.environ}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "db_migrate.sandbox", "--listen", os.fspath(path), str(idle_seconds())],
        cwd="/", env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # neither our terminal's signals nor our exit reach it
    )


def stop(path: Path | None = None) -> bool:
    """Stop the warm parent (sessions in progress go on); True when one was running."""
    path = path or socket_path()
    if path is None:
        return False
    pid, _ = _pid_file(path.with_suffix(".pid"))
    try:
        if pid is None or b"db_migrate.sandbox" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False  # gone, or a pid reused by another program
        os.kill(pid, signal.SIGTERM)
        return True
    except OSError:
        return False


def _pid_file(path: Path) -> tuple[int | None, str | None]:
    """``(pid, interpreter)`` a warm parent wrote beside its socket."""
    try:
        pid, executable = path.read_text().split("\n", 1)
        return int(pid), executable
    except (OSError, ValueError):
        return None, None


# --------------------------------------------------------------------------- the warm parent's side


def serve_shared(path: str, idle: float) -> None:
    """Listen on ``path`` and fork a session per connection, until idle for ``idle`` seconds."""
    from db_migrate.sandbox import worker

    worker.quiet_logging()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # bound at its own name, not renamed into place: jobs mask every listening socket by the path
    # /proc/net/unix shows, which is the path it was bound at (the caller starting us holds the lock)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a stale socket of a dead server
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)  # created 0600 under the umask
    finally:
        os.umask(old_umask)
    listener.listen(64)
    mine = os.stat(path).st_ino
    Path(path).with_suffix(".pid").write_text(f"{os.getpid()}\n{sys.executable}")
    sessions: set[int] = set()

    def reap(*_: object) -> None:
        while sessions:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                sessions.clear()
                return
            if pid == 0:
                return
            sessions.discard(pid)

    def leave(*_: object) -> None:
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == mine:
                os.unlink(path)
                Path(path).with_suffix(".pid").unlink(missing_ok=True)
        os._exit(0)  # sessions are processes of their own: they go on serving their callers

    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, leave)  # at once: select() would otherwise resume its wait
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    last = time.monotonic()
    while True:
        try:
            ready, _, _ = select.select([listener], [], [], min(5.0, idle))
        except InterruptedError:
            continue
        now = time.monotonic()
        if sessions:
            last = now
        if not ready:
            try:
                replaced = os.stat(path).st_ino != mine
            except OSError:
                replaced = True
            if replaced or (not sessions and now - last >= idle):
                break
            continue
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        if not _a_caller(conn):
            conn.close()
            continue
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # a session that ends at once is still known
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            conn.close()
            continue
        if pid == 0:
            listener.close()
            _session(conn)  # never returns
        sessions.add(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        conn.close()
        last = now
    leave()


def _session(conn: socket.socket) -> None:
    """A forked session: take the caller's environment and folder, then serve it as a private fork server."""
    code = 0
    try:
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        conn.settimeout(10)
        hello = pickle.loads(conn.recv(1 << 20))  # our caller, the same user (checked): not untrusted input
        conn.settimeout(None)
        os.environ.clear()
        os.environ.update(hello["env"])
        import tempfile

        tempfile.tempdir = None  # from the caller's TMPDIR
        if hello.get("guard"):
            conn.send(b"ok")
            _run_guard(conn)  # stays in "/": it never runs project code
            return
        spawned_in = sys.path[0] if sys.path else None
        os.chdir(hello["cwd"])
        if spawned_in == "/":  # `python -m` put our start folder first; a private server has its caller's there
            sys.path[0] = hello["cwd"]
        conn.send(b"ok")
        from db_migrate.sandbox import forkserver

        forkserver.serve(conn)  # exits when the caller's connection closes
    except BaseException:
        code = 70
    finally:
        os._exit(code)
