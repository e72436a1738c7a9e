"""The parent side: ask the fork server for a fresh process per job, wait for its answer, clean up.

One fork server per process (started on first use or by :func:`prewarm`).  A
job is never reused: it answers once and dies; on a timeout, a cancel, a
Ctrl-C or any other exception here its whole process group is killed at once.
The job's prints come back through a pipe and are copied to our stderr with
every known secret hidden; its temporary directory is removed afterwards.
"""

from __future__ import annotations

import atexit
import functools
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from typing import Any

from db_migrate.errors import DbMigrateError, InternalError, MigrationCrashed, MigrationTimeout
from db_migrate.sandbox.isolation import job_environment, memory_limit_mib
from db_migrate.sandbox.report import (  # noqa: F401  (re-exported: where callers found them)
    _check_timeout, _local, _record, call_deadline, collect_isolation, progress, record_isolation, reports_isolation, weakest,
)
from db_migrate.urls import environment_secrets, is_scratch_url, scrub, scrub_value, secrets_in

DEFAULT_TIMEOUT = float(os.environ.get("DB_MIGRATE_TIMEOUT", "60"))

ProgressFn = Callable[[dict[str, Any]], None]


class ForkServer:
    """The ``python -m db_migrate.sandbox`` process; see :mod:`db_migrate.sandbox.forkserver`.

    A plain subprocess (not multiprocessing's forkserver) so that callers need no
    ``if __name__ == "__main__"`` guard and the server never imports the caller's
    main module.  It leaves when our end of the control socket closes.
    """

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = job_environment(os.environ)  # no credential in any job's memory
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # never litter the user's versions/ with __pycache__
        self.proc: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-m", "db_migrate.sandbox", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # jobs write to their own pipe; the server itself never prints
            env=env,
            start_new_session=True,  # a Ctrl-C to our terminal is ours to handle, not the server's
        )
        theirs.close()
        self.ctl = ours
        self.lock = threading.Lock()

    @classmethod
    def session(cls, ctl: socket.socket) -> ForkServer:
        """A session of the warm parent CLI calls share (:mod:`.shared`): the same protocol on ``ctl``."""
        server = cls.__new__(cls)
        server.proc, server.ctl, server.lock = None, ctl, threading.Lock()
        return server

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.ctl.fileno() != -1  # a dead session shows on the next fork, which is retried

    def fork(self, request: dict[str, Any], fds: list[int]) -> int:
        """Fork a job (``fds``: its socket and output pipe); return its pid."""
        with self.lock:
            socket.send_fds(self.ctl, [pickle.dumps(request)], fds)
            answer = self.ctl.recv(8)
        if len(answer) != 8:
            raise OSError("the fork server is gone")
        pid = struct.unpack("q", answer)[0]
        if pid <= 0:
            raise OSError("the fork server could not fork")
        return pid

    def stop(self) -> None:
        try:
            self.ctl.close()  # the server (or session) kills any job left and exits
            if self.proc is not None:
                self.proc.wait(2)
        except Exception:
            if self.proc is not None:
                self.proc.kill()


_server: ForkServer | None = None
_server_lock = threading.Lock()
_share = False


def share_fork_server(enabled: bool = True) -> bool:
    """Use the warm parent that CLI calls share (:mod:`.shared`) instead of a private fork server.

    For short-lived processes (the CLI): they would otherwise pay the fork server's start-up,
    most of a call.  ``DB_MIGRATE_SHARED_WORKER=0`` overrides it.  True when it is used: then the
    caller also hands the warm parent its scratch databases to supervise
    (:func:`db_migrate.scratch.set_supervisor` with :func:`.shared.supervise`).
    """
    global _share
    from db_migrate.sandbox import shared

    _share = enabled and shared.enabled()
    return _share


def _fork_server() -> ForkServer:
    global _server
    with _server_lock:
        if _server is None or not _server.alive():
            if _server is not None:
                _server.stop()
            _server = _new_server()
        return _server


def _new_server() -> ForkServer:
    if _share:
        from db_migrate.sandbox import shared

        ctl = shared.connect()
        if ctl is not None:
            return ForkServer.session(ctl)
    return ForkServer()


def prewarm() -> None:
    """Start the fork server now (in the background of the caller's own start-up work)."""
    _fork_server()


def shutdown() -> None:
    global _server
    with _server_lock:
        server, _server = _server, None
    if server is not None:
        server.stop()


atexit.register(shutdown)


class Job:
    """One forked job: its socket, its output pipe, its temporary directory and its process group."""

    def __init__(self, profile: str | None, writable: Iterable[str], scratch_url: str | None, secrets: list[str],
                 cwd: str | None = None, own: Iterable[str] = ()) -> None:
        self.secrets = secrets
        self.tmpdir = tempfile.mkdtemp(prefix="dbm_job_")
        self.pid: int | None = None
        self.scratch_url, relay = scratch_url, None
        if profile == "database" and scratch_url:
            self.scratch_url, relay = _relay(scratch_url, os.path.join(self.tmpdir, "s"))
        ours, theirs = socket.socketpair()
        out_r, out_w = os.pipe()
        try:
            from db_migrate.cache import secret_paths

            request = {"tmpdir": self.tmpdir, "profile": profile, "writable": [str(p) for p in writable],
                       "own": list(own), "relay": relay, "cwd": cwd, "memory_mib": memory_limit_mib(),
                       "hidden": secret_paths()}
            for _attempt in range(2):  # a dead server (killed, crashed) is replaced once
                try:
                    self.pid = _fork_server().fork(request, [theirs.fileno(), out_w])
                    break
                except OSError:
                    shutdown()
            if self.pid is None:
                raise InternalError("Cannot start a sandbox process: the fork server does not answer.")
        except BaseException:
            ours.close()
            os.close(out_r)
            raise
        finally:
            theirs.close()
            os.close(out_w)
        self.conn = Connection(ours.detach())
        self.out = out_r
        self._partial = b""
        self.out_open = True
        self.killed = False

    def kill(self) -> None:
        """Kill the job's whole process group (whatever it spawned goes with it)."""
        if self.pid is not None and not self.killed:
            self.killed = True
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass

    def forward_output(self) -> None:
        """Copy what the job printed to our stderr, line by line, secrets hidden."""
        try:
            data = os.read(self.out, 65536)
        except OSError:
            data = b""
        if not data:
            self.out_open = False
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > 65536:  # no newline for a long time: flush it anyway
            lines.append(self._partial)
            self._partial = b""
        self._emit(lines)

    def drain(self) -> None:
        """Forward what is already in the pipe, without waiting for writers that may never close it."""
        os.set_blocking(self.out, False)
        chunks = [self._partial]
        while True:
            try:
                data = os.read(self.out, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        self._partial = b""
        self._emit(b"".join(chunks).split(b"\n"))

    def _emit(self, lines: list[bytes]) -> None:
        text = [scrub(ln.decode("utf-8", "replace"), self.secrets) for ln in lines if ln.strip()]
        if text:
            try:
                sys.stderr.write("\n".join(text) + "\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        for closer in (self.drain, self.conn.close, lambda: os.close(self.out)):
            try:
                closer()
            except Exception:
                pass
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _relay(scratch_url: str, folder: str) -> tuple[str, dict[str, Any] | None]:
    """The URL a job uses to reach its scratch server through the box's relay, and the relay's plan.

    The job has no network of its own: it connects to a Unix socket in ``folder`` (inside its
    temporary directory) that the box's outer process, our code, forwards to the scratch server
    alone (:func:`db_migrate.sandbox.isolation.supervise`).  SQLite needs no relay.
    """
    from db_migrate.urls import server_address, unix_socket_url

    try:
        address = server_address(scratch_url)
    except Exception:
        address = None
    if address is None:
        return scratch_url, None
    url, name = unix_socket_url(scratch_url, folder)
    plan: dict[str, Any] = {"folder": folder, "name": name}
    if isinstance(address, str):
        plan["path"] = address
    else:
        plan["host"], plan["port"] = address
    return url, plan


def _time_left(timeout: float, what: str) -> float:
    """``timeout``, cut to what is left of the call's deadline; MigrationTimeout when nothing is."""
    bound = getattr(_local, "deadline", None)
    if bound is None:
        return timeout
    left = bound[0] - time.monotonic()
    if left <= 0:
        raise MigrationTimeout(
            f"The call's time limit of {bound[1]:g} s was used up before {what} could run.",
            hint="An earlier step of the call used the time (see its own error). Raise the limit with --timeout or "
            "DB_MIGRATE_TIMEOUT if the project is just slow.",
        )
    return min(timeout, left)


def run_job(
    target: str,
    *,
    timeout: float | None = None,
    cwd: str | os.PathLike[str] | None = None,
    on_progress: ProgressFn | None = None,
    what: str = "project code",
    isolation: str | None = "database",
    writable: Iterable[str | os.PathLike[str]] = (),
    scratch: str | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``target(**kwargs)`` in a freshly forked job; return its result or raise a DbMigrateError.

    ``isolation``: ``"static"`` (no network, nothing writable but the job's temp
    dir), ``"database"`` (the default: read-only filesystem but ``writable``; an
    SQLite scratch file's folder is writable; no network, but the ``scratch``
    server through the box's relay: the URL handed to the job is rewritten to
    the relay's Unix socket), ``"ours"`` (db-migrate's own code reading the
    user's database, in a job only to bound it with the timeout: the network is
    not restricted, the job keeps root's uid without capabilities, and its box is
    not counted in the verdict's ``isolation``) or None (a fresh process only).
    Every profile runs the job in its own PID namespace without capabilities,
    as uid ``nobody`` when we are root (:mod:`.isolation`).  Secrets of every URL
    among the arguments, and of the caller's credential variables, are hidden in
    what comes back (the result, error texts, the job's prints).
    """
    timeout = _time_left(_check_timeout(DEFAULT_TIMEOUT if timeout is None else timeout), what)
    scope: CallScope | None = getattr(_local, "scope", None)
    if scope is not None and scope.cancelled:
        raise MigrationCrashed("The call was cancelled.")
    if on_progress is None and scope is not None:
        on_progress = scope.progress_payload
    if scratch is None:
        scratch = next((v for v in kwargs.values() if is_scratch_url(v)), None)
    # the job gets none of the caller's credential variables (job_environment); should one reach its
    # output anyway (read from a file, say), it is hidden like the URLs' secrets
    secrets = secrets_in(kwargs) + secrets_in(scratch) + environment_secrets(os.environ)
    paths, own = [os.fspath(p) for p in writable], []
    if scratch and scratch.startswith("sqlite"):
        from db_migrate.urls import sqlite_path

        folder = os.path.dirname(os.path.abspath(sqlite_path(scratch)))
        # a temporary folder of ours (scratch_database's): handed over to the job; anything else is only lent
        (own if os.path.basename(folder).startswith("dbm_") else paths).append(folder)
    job = Job(isolation, [*paths, *own], scratch, secrets, cwd=os.fspath(cwd) if cwd else None, own=own)
    if scratch and job.scratch_url != scratch:  # through the relay
        kwargs = {k: job.scratch_url if v == scratch else v for k, v in kwargs.items()}
    if scope is not None:
        scope.jobs.add(job)
    status, payload = "error", None
    deadline = time.monotonic() + timeout
    try:
        if scope is not None and scope.cancelled:  # while the job was being forked (its fork server starting, say)
            raise MigrationCrashed("The call was cancelled.")
        job.conn.send((target, kwargs, str(cwd) if cwd else None))
        while True:
            left = deadline - time.monotonic()
            ready = wait([job.conn, *([job.out] if job.out_open else [])], timeout=left) if left > 0 else []
            if not ready:
                job.kill()
                _late_progress(job, on_progress, secrets)
                raise MigrationTimeout(
                    f"{what[:1].upper()}{what[1:]} did not finish within {timeout:.3g} s; its process was stopped.",
                    hint="Look for an endless loop, a blocking call or a lock wait in the migration or env.py; "
                    "raise the limit with --timeout or DB_MIGRATE_TIMEOUT if it is just slow.",
                )
            if job.out in ready:
                job.forward_output()
            if job.conn not in ready:
                continue
            try:
                status, payload = job.conn.recv()
            except (EOFError, OSError):
                job.kill()
                if scope is not None and scope.cancelled:
                    raise MigrationCrashed("The job was cancelled.") from None
                raise MigrationCrashed(
                    f"{what[:1].upper()}{what[1:]} killed its process before answering.",
                    hint="The migration or env.py crashed the interpreter (os._exit, a signal, a native crash).",
                ) from None
            if status == "progress":
                if on_progress is not None:
                    on_progress(scrub_value(payload, secrets))
                continue
            if status == "isolation":
                if isolation != "ours":  # our own code's box says nothing about project code's
                    _record(payload)
                continue
            break
    except DbMigrateError:
        job.kill()
        raise
    except BaseException as e:  # Ctrl-C, SIGTERM, a bug here: the job must not outlive the wait
        job.kill()
        if isinstance(e, Exception):
            raise InternalError(f"Sandbox communication failed: {e}") from None
        raise
    finally:
        if scope is not None:
            scope.jobs.discard(job)
        job.close()
    if status == "ok":
        return scrub_value(payload, secrets)
    raise error_from_info({k: scrub(v, secrets) if isinstance(v, str) else v for k, v in payload.items()})


def _late_progress(job: Job, on_progress: ProgressFn | None, secrets: list[str]) -> None:
    """Deliver progress the job sent just before it was stopped (it tells where it hung)."""
    try:
        while job.conn.poll(0):
            status, payload = job.conn.recv()
            if status == "progress" and on_progress is not None:
                on_progress(scrub_value(payload, secrets))
    except (EOFError, OSError):
        pass


def error_from_info(info: dict[str, Any]) -> DbMigrateError:
    """Rebuild the DbMigrateError subclass a job reported."""
    classes = {c.code: c for c in _subclasses(DbMigrateError)}
    cls = classes.get(info.get("code", ""), DbMigrateError)
    err = cls(info.get("message", "unknown error"), hint=info.get("hint"), **(info.get("details") or {}))
    if cls is DbMigrateError:
        err.code = info.get("code", "error")
    return err


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


# -- calls from the MCP server: progress and cancellation -----------------------------------------


class CallScope:
    """The jobs and progress sink of one tool call running in a thread.

    Service functions stay synchronous and unaware of MCP: they call
    :func:`progress` and :func:`run_job`; :func:`run_in_scope` forwards
    progress to the async caller and, on cancellation, kills the call's jobs
    so its ``finally`` clauses (dropping scratch databases) run at once.
    """

    def __init__(self, sink: Callable[[str, float | None, float | None], None] | None) -> None:
        self.sink = sink
        self.jobs: set[Job] = set()
        self.cancelled = False

    def progress_payload(self, payload: dict[str, Any]) -> None:
        if self.sink is not None:
            self.sink(payload.get("message", ""), payload.get("progress"), payload.get("total"))

    def cancel(self) -> None:
        self.cancelled = True
        for job in list(self.jobs):
            job.kill()


_active_scopes: set[CallScope] = set()


def cancel_all_calls(wait: float = 0.0) -> bool:
    """Cancel every call :func:`run_in_scope` is running (their jobs are killed); the server is stopping.

    With ``wait``, give their clean-up (dropping scratch databases) up to that long; progress is no
    longer reported meanwhile (the event loop may be the one waiting).  True when all have finished.
    """
    for scope in list(_active_scopes):
        scope.sink = None
        scope.cancel()
    deadline = time.monotonic() + wait
    while _active_scopes and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _active_scopes


@contextmanager
def reporting_to(sink: Callable[[str, float | None, float | None], None]) -> Iterator[None]:
    """Send this thread's progress (:func:`progress`, and jobs' :func:`report_progress`) to ``sink``.

    What the CLI uses for its progress display; the server uses :func:`run_in_scope`.
    """
    previous = getattr(_local, "scope", None)
    _local.scope = CallScope(sink)
    try:
        yield
    finally:
        _local.scope = previous


async def run_in_scope(fn: Callable[..., Any], *args: Any, on_progress: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """Run the synchronous service function ``fn`` in a thread; cancellation kills its jobs.

    ``on_progress(message, progress, total)`` may be async; it is called on the event loop.
    """
    import inspect

    import anyio
    import anyio.from_thread
    import anyio.to_thread

    def sink(message: str, p: float | None, total: float | None) -> None:
        if on_progress is None:
            return
        try:
            if inspect.iscoroutinefunction(on_progress):
                anyio.from_thread.run(on_progress, message, p, total)
            else:
                anyio.from_thread.run_sync(on_progress, message, p, total)
        except Exception:
            pass  # progress is best effort; never fail the call for it

    scope = CallScope(sink)

    def call() -> Any:
        _local.scope = scope
        _active_scopes.add(scope)
        try:
            return fn(*args, **kwargs)
        finally:
            _local.scope = None
            _active_scopes.discard(scope)  # only now: its clean-up (dropping scratch databases) is done

    try:
        return await anyio.to_thread.run_sync(functools.partial(call), abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        scope.cancel()
        raise
