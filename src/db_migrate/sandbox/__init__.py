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

import importlib
from typing import Any

# Loaded on first use (PEP 562): a static command imports the light report module only, never the job machinery.
_FROM = {
    **dict.fromkeys(("DEFAULT_TIMEOUT", "prewarm", "reporting_to", "run_in_scope", "run_job", "share_fork_server",
                     "shutdown"), "db_migrate.sandbox.parent"),
    **dict.fromkeys(("call_deadline", "collect_isolation", "progress", "record_isolation", "reports_isolation", "weakest"),
                    "db_migrate.sandbox.report"),
    "report_progress": "db_migrate.sandbox.worker",
}


def __getattr__(name: str) -> Any:
    if name not in _FROM:
        raise AttributeError(f"module 'db_migrate.sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(_FROM[name]), name)
    globals()[name] = value
    return value


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
