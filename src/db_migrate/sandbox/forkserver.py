"""The fork server: a warm process that forks one child per job and never runs project code itself.

``python -m db_migrate.sandbox FD`` imports alembic and SQLAlchemy once, then
waits on the control socket FD (a ``SOCK_SEQPACKET`` pair with the parent).
Each request carries, as passed file descriptors, the job's own socket and the
write end of the pipe its output goes to; the server forks, answers with the
child's pid and goes back to waiting.  So every job starts warm and every job
starts clean: whatever a revision does to the interpreter (patching our job
functions, caching a connection, leaving a thread) dies with its child.

The child (:func:`_job`):

- leads its own process group (the parent kills the group as a whole on a
  timeout or a cancel; the server kills it once the child has answered, so a
  process a revision spawned dies with it);
- receives SIGKILL when the server dies (``PR_SET_PDEATHSIG``), and the server
  kills every job group when the parent dies (its end of the control socket
  closes, even on ``kill -9``);
- drops the control socket (project code cannot ask for more forks), sends
  fds 1 and 2 to the output pipe (never the caller's stdout/stderr: a spawned
  process cannot keep ``$(db-migrate ...)`` waiting), applies
  :mod:`.isolation`, runs the job and ``_exit``\\ s;
- is pid 1 of its own PID namespace: root's server forks it there directly
  (:func:`~.isolation.fork_into_pid_namespace`); otherwise (a TCP relay, no root)
  the child leaves the namespace itself and forks the job proper, staying
  outside as its relay and reaper in the same process group.  Either way, when
  the job exits the kernel kills whatever it left in its namespace.

The server is a child subreaper: descendants orphaned by a finished job come
back to it and are killed and reaped, so nothing a job started outlives it.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import struct
from typing import Any

_jobs: set[int] = set()


def serve(ctl: socket.socket) -> None:
    """Serve fork requests on ``ctl`` until the parent closes it."""
    from db_migrate.sandbox import isolation, worker

    worker.quiet_logging()
    isolation.become_subreaper()
    isolation.prepare()
    import gc

    # Everything imported so far is shared with every job; keep the collector from walking (and so
    # copying, page by page) that heap in each forked child.
    gc.freeze()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the parent's to handle (it cancels jobs)
    signal.signal(signal.SIGTERM, lambda *_: _shutdown())
    signal.signal(signal.SIGCHLD, lambda *_: _reap())
    try:
        while True:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(ctl, 1 << 20, 4)
            except OSError:
                break
            if not msg:
                break  # the parent is gone: nothing may outlive it
            # No reaping between fork and bookkeeping: a job that ends at once must still be known as one.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            new_pid_ns = False
            try:
                request = pickle.loads(msg)
                new_pid_ns = request["in_new_pid_namespace"] = isolation.fork_into_pid_namespace(request)
                pid = os.fork()
            except Exception:
                if new_pid_ns:
                    isolation.leave_pid_namespace()
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                for fd in fds:
                    os.close(fd)
                ctl.send(struct.pack("q", -1))
                continue
            if pid == 0:
                _job(ctl, fds, request)  # never returns
            if new_pid_ns:
                isolation.leave_pid_namespace()
            try:
                os.setpgid(pid, pid)  # also done in the child: whichever runs first wins the race
            except OSError:
                pass
            _jobs.add(pid)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            for fd in fds:
                os.close(fd)
            ctl.send(struct.pack("q", pid))
    finally:
        _shutdown()


def _reap() -> None:
    """Kill the group of every finished job, then reap it; kill orphans that came back to us."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            break
        if info is None:
            break
        pid = info.si_pid
        if pid in _jobs:
            _killpg(pid)  # the leader is a zombie until reaped, so its pid (= the group id) is not reused
            _jobs.discard(pid)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    for pid in _children() - _jobs:
        try:
            os.kill(pid, signal.SIGKILL)  # a descendant of a finished job, re-parented to us
        except OSError:
            pass


def _children() -> set[int]:
    pid = os.getpid()
    try:
        return {int(p) for p in open(f"/proc/{pid}/task/{pid}/children").read().split()}
    except OSError:
        return set()


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def _shutdown() -> None:
    """Kill every job group, then every descendant that comes back to us, before leaving.

    A job killed here orphans what it spawned into another session only as it dies; as the
    subreaper we receive those orphans, so keep killing and reaping until no child is left
    (bounded: a process in uninterruptible sleep must not keep the server forever).
    """
    import time

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for pid in list(_jobs):
        _killpg(pid)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        kids = _children()
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            break  # no child left at all
        time.sleep(0.01)
    os._exit(0)


def _relay_target(relay: dict[str, Any] | None) -> tuple[str, int] | str | None:
    if not relay:
        return None
    return relay["path"] if relay.get("path") else (relay["host"], int(relay["port"]))


def _job(ctl: socket.socket, fds: list[int], request: dict[str, Any]) -> None:
    """The forked child: isolate, run one job, answer, exit."""
    code = 0
    try:
        server = os.getppid()
        os.setpgid(0, 0)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        from db_migrate.sandbox import isolation, worker

        isolation.die_with_parent(signal.SIGKILL)
        if os.getppid() != server:
            os._exit(1)
        ctl.close()
        conn_fd, out_fd = fds
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        from multiprocessing.connection import Connection

        tmpdir = request["tmpdir"]
        os.environ["TMPDIR"] = tmpdir
        import tempfile

        tempfile.tempdir = tmpdir
        box = dict(profile=request.get("profile"), tmpdir=tmpdir, writable=request.get("writable") or [],
                   own=request.get("own") or [], hidden=request.get("hidden") or [],
                   relay=request.get("relay"), memory_mib=request.get("memory_mib"))
        # the fork server may have forked us into a new PID namespace (we are its pid 1: when we
        # exit, the kernel kills whatever we leave in it)
        in_pid_ns, listener = bool(request.get("in_new_pid_namespace")), None
        if in_pid_ns:
            isolation.limit_memory(box["memory_mib"])
        else:
            refused, listener = isolation.enter(**box)
            if refused is None:
                # The job proper is our child: pid 1 of its own PID namespace, in this process group
                # (the group kill reaches it), killed when we die. We stay outside as its relay and reaper.
                child = os.fork()
                if child:
                    os.close(conn_fd)
                    isolation.supervise(child, listener, _relay_target(request.get("relay")))  # never returns
                isolation.die_with_parent(signal.SIGKILL)
                in_pid_ns = True
            if listener is not None:
                listener.close()
        iso = isolation.apply(**box, cwd=request.get("cwd"), pid_namespace=in_pid_ns, keep_fds=(conn_fd,))
        conn = Connection(conn_fd)
        conn.send(("isolation", iso))
        target, kwargs, cwd = conn.recv()  # the job itself comes on its own socket: any size
        worker.serve_one(conn, target, kwargs, cwd)
    except BaseException:
        code = 70
        try:
            import traceback

            traceback.print_exc()  # to the job's output pipe, if it got that far: our bug, shown to the caller
        except BaseException:
            pass
    finally:
        os._exit(code)
