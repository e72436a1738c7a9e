"""Run untrusted project code (migrations, env.py, models) in a fresh process per job.

A crash, a hang, ``sys.exit``, a stray ``print`` or a monkey-patch in user code
cannot take the server down, corrupt its stdout or reach a later call: each job
is forked from a warm fork server that never runs project code
(:mod:`.forkserver`), runs under the isolation its caller asks for
(:mod:`.isolation`: namespaces, a memory limit), answers once and dies, and
every failure comes back as a :class:`~db_migrate.errors.DbMigrateError`.

Jobs are plain top-level functions named by ``"module:function"``; their
keyword arguments and return value must pickle (pydantic models do).  A job may
call :func:`report_progress` to stream progress to the caller; parent-side
service code calls :func:`progress`.  The MCP server runs each service function
through :func:`run_in_scope`, which forwards both to the client and kills the
call's jobs on cancellation.  Service functions are decorated with
:func:`reports_isolation` so their verdict says what their jobs ran under.
"""

from db_migrate.sandbox.parent import (
    DEFAULT_TIMEOUT,
    call_deadline,
    collect_isolation,
    prewarm,
    progress,
    record_isolation,
    reporting_to,
    reports_isolation,
    run_in_scope,
    run_job,
    share_fork_server,
    shutdown,
    weakest,
)
from db_migrate.sandbox.worker import report_progress

__all__ = [
    "DEFAULT_TIMEOUT",
    "call_deadline",
    "collect_isolation",
    "prewarm",
    "progress",
    "record_isolation",
    "report_progress",
    "share_fork_server",
    "reporting_to",
    "reports_isolation",
    "run_in_scope",
    "run_job",
    "shutdown",
    "weakest",
]
