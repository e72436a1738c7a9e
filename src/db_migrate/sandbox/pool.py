"""The parent side: a small pool of warm worker processes.

Idle workers are kept (at most ``MAX_IDLE``) with alembic and SQLAlchemy already
imported.  A timed-out, crashed or cancelled job kills its worker; the next job
gets a fresh one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from collections.abc import Callable, Iterator
from typing import Any

from db_migrate.errors import DbMigrateError, InternalError, MigrationCrashed, MigrationTimeout

DEFAULT_TIMEOUT = float(os.environ.get("DB_MIGRATE_TIMEOUT", "60"))
MAX_IDLE = 2

_idle: list["Worker"] = []
_lock = threading.Lock()

ProgressFn = Callable[[dict[str, Any]], None]


class Worker:
    """One ``python -m db_migrate.sandbox`` process, talking over a socket pair.

    A plain subprocess (not multiprocessing's spawn/forkserver) so that callers
    need no ``if __name__ == "__main__"`` guard and the child never re-imports
    the caller's main module.
    """

    def __init__(self) -> None:
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # never litter the user's versions/ with __pycache__
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "db_migrate.sandbox", str(child_sock.fileno())],
            pass_fds=(child_sock.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # a Ctrl-C to the parent does not hit a job mid-way
        )
        child_sock.close()
        self.conn = Connection(parent_sock.detach())

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(2)
        except Exception:
            pass
        try:
            self.conn.close()
        except Exception:
            pass

    def stop(self) -> None:
        try:
            self.conn.send(None)
            self.proc.wait(1)
        except Exception:
            pass
        self.kill()

def _checkout() -> Worker:
    with _lock:
        while _idle:
            w = _idle.pop()
            if w.alive():
                return w
            w.kill()
    return Worker()


def _checkin(w: Worker) -> None:
    with _lock:
        if len(_idle) < MAX_IDLE and w.alive():
            _idle.append(w)
            return
    w.stop()


def prewarm() -> None:
    """Start a worker now (in the background of the caller's own start-up work)."""
    w = _checkout()
    _checkin(w)


def run_job(
    target: str,
    *,
    timeout: float | None = None,
    cwd: str | os.PathLike[str] | None = None,
    on_progress: ProgressFn | None = None,
    what: str = "project code",
    **kwargs: Any,
) -> Any:
    """Run ``target(**kwargs)`` in a worker; return its result or raise a DbMigrateError."""
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    scope: CallScope | None = getattr(_local, "scope", None)
    if scope is not None and scope.cancelled:
        raise MigrationCrashed("The call was cancelled.")
    if on_progress is None and scope is not None:
        on_progress = scope.progress_payload
    w = _checkout()
    if scope is not None:
        scope.workers.add(w)
    deadline = time.monotonic() + timeout
    try:
        w.conn.send((target, kwargs, str(cwd) if cwd else None))
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not w.conn.poll(left):
                w.kill()
                raise MigrationTimeout(
                    f"{what[:1].upper()}{what[1:]} did not finish within {timeout:g} s; the worker was stopped.",
                    hint="Look for an endless loop, a blocking call or a lock wait in the migration or env.py; "
                    "raise the limit with --timeout or DB_MIGRATE_TIMEOUT if it is just slow.",
                )
            try:
                status, payload = w.conn.recv()
            except (EOFError, OSError):
                code = w.exitcode
                w.kill()
                if scope is not None and scope.cancelled:
                    raise MigrationCrashed("The job was cancelled.") from None
                raise MigrationCrashed(
                    f"{what[:1].upper()}{what[1:]} killed its worker process (exit code {code}).",
                    hint="The migration or env.py crashed the interpreter (os._exit, a signal, a native crash).",
                ) from None
            if status == "progress":
                if on_progress is not None:
                    on_progress(payload)
                continue
            break
    except DbMigrateError:
        raise
    except Exception as e:
        w.kill()
        raise InternalError(f"Worker communication failed: {e}") from None
    finally:
        if scope is not None:
            scope.workers.discard(w)
    _checkin(w)
    if status == "ok":
        return payload
    raise error_from_info(payload)


def error_from_info(info: dict[str, Any]) -> DbMigrateError:
    """Rebuild the DbMigrateError subclass a worker reported."""
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


_local = threading.local()


class CallScope:
    """The workers and progress sink of one tool call running in a thread.

    Service functions stay synchronous and unaware of MCP: they call
    :func:`progress` and :func:`run_job`; :func:`run_in_scope` forwards
    progress to the async caller and, on cancellation, kills the call's workers
    so its ``finally`` clauses (dropping scratch databases) run at once.
    """

    def __init__(self, sink: Callable[[str, float | None, float | None], None] | None) -> None:
        self.sink = sink
        self.workers: set[Worker] = set()
        self.cancelled = False

    def progress_payload(self, payload: dict[str, Any]) -> None:
        if self.sink is not None:
            self.sink(payload.get("message", ""), payload.get("progress"), payload.get("total"))

    def cancel(self) -> None:
        self.cancelled = True
        for w in list(self.workers):
            w.kill()


def progress(message: str, progress: float | None = None, total: float | None = None) -> None:
    """Report progress from parent-side service code (no-op outside :func:`run_in_scope`)."""
    scope: CallScope | None = getattr(_local, "scope", None)
    if scope is not None and scope.sink is not None:
        scope.sink(message, progress, total)


async def run_in_scope(fn: Callable[..., Any], *args: Any, on_progress: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """Run the synchronous service function ``fn`` in a thread; cancellation kills its workers.

    ``on_progress(message, progress, total)`` may be async; it is called on the event loop.
    """
    import functools
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
        try:
            return fn(*args, **kwargs)
        finally:
            _local.scope = None

    try:
        return await anyio.to_thread.run_sync(functools.partial(call), abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        scope.cancel()
        raise


def shutdown() -> None:
    with _lock:
        workers, _idle[:] = list(_idle), []
    for w in workers:
        w.stop()


atexit.register(shutdown)


@contextlib.contextmanager
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
