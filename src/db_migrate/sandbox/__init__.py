"""Run untrusted project code (migrations, env.py, models) in worker processes.

A crash, a hang, ``sys.exit`` or a stray ``print`` in user code cannot take the
server down or corrupt its stdout: jobs run in a pre-warmed worker process,
with a timeout, and every failure comes back as a
:class:`~db_migrate.errors.DbMigrateError`.

Jobs are plain top-level functions named by ``"module:function"``; their
keyword arguments and return value must pickle (pydantic models do).  A job may
call :func:`report_progress` to stream progress to the caller; parent-side
service code calls :func:`progress`.  The MCP server runs each service function
through :func:`run_in_scope`, which forwards both to the client and kills the
call's workers on cancellation.
"""

from db_migrate.sandbox.pool import DEFAULT_TIMEOUT, prewarm, progress, reporting_to, run_in_scope, run_job, shutdown
from db_migrate.sandbox.worker import report_progress

__all__ = [
    "DEFAULT_TIMEOUT",
    "prewarm",
    "progress",
    "report_progress",
    "reporting_to",
    "run_in_scope",
    "run_job",
    "shutdown",
]
