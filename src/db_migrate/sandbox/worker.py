"""The job side: runs ONE job in a freshly forked process and answers over its socket.

Protocol (child → parent): ``("isolation", Isolation)`` first (sent by the fork
server's child before the job starts), any number of ``("progress", dict)``
messages, then one ``("ok", result)`` or ``("error", ErrorInfo-as-dict)``.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

_conn = None  # the socket of the job in progress, for report_progress


def report_progress(message: str, progress: float | None = None, total: float | None = None) -> None:
    """Send a progress note to whoever waits for the current job (no-op outside a job)."""
    if _conn is not None:
        try:
            _conn.send(("progress", {"message": message, "progress": progress, "total": total}))
        except (OSError, EOFError):
            pass


def _run_one(target: str, kwargs: dict[str, Any], cwd: str | None) -> tuple[str, Any]:
    from db_migrate.errors import DbMigrateError

    try:
        if cwd:
            os.chdir(cwd)
            sys.path.insert(0, cwd)  # like alembic's default prepend_sys_path = .
        module_name, func_name = target.split(":")
        fn = getattr(importlib.import_module(module_name), func_name)
        return "ok", fn(**kwargs)
    except DbMigrateError as e:
        return "error", e.info().model_dump()
    except SystemExit as e:
        return "error", {
            "code": "migration-crashed",
            "message": f"Project code called sys.exit({e.code!r}) while db-migrate was running it.",
            "hint": "Migrations and env.py must not exit the interpreter; raise an exception instead.",
            "details": {},
        }
    except MemoryError:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        limit = "no limit" if soft == resource.RLIM_INFINITY else f"{soft // (1024 * 1024)} MiB"
        return "error", {
            "code": "memory-limit",
            "message": f"Project code ran out of memory (the limit of one job: {limit}).",
            "hint": "Look for a runaway allocation in the migration or env.py; raise the limit with "
            "DB_MIGRATE_MEMORY_LIMIT_MB (0 = no limit) if it really needs more.",
            "details": {},
        }
    except BaseException as e:  # user code may raise anything; the job must answer
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f"{fr.filename}:{fr.lineno}" for fr in reversed(tb) if "/db_migrate/" not in fr.filename), None)
        return "error", {
            "code": "internal-error" if where is None else "project-code-error",
            "message": f"{type(e).__name__}: {e}" + (f" (at {where})" if where else ""),
            "hint": _missing_module_hint(e) if where is not None else None,
            "details": {},
        }


def _missing_module_hint(e: BaseException) -> str | None:
    """What to do when project code imports a package this environment lacks (running it needs it)."""
    if not isinstance(e, ModuleNotFoundError) or not e.name:
        return None
    return (f"The project's code imports {e.name}, which is not installed where db-migrate runs ({sys.executable}). "
            "Running migrations needs the project's dependencies: install them into this environment, "
            "or install db-migrate into the project's own.")


def quiet_logging() -> None:
    """Our logging for jobs (set up once in the fork server, inherited by every job)."""
    import logging
    import logging.config
    import warnings

    warnings.simplefilter("ignore")
    # env.py files call logging.config.fileConfig(alembic.ini), which would print alembic's INFO
    # lines for every step we run. The job's logging is ours: keep warnings and errors only.
    logging.config.fileConfig = lambda *args, **kwargs: None  # type: ignore[assignment]
    logging.basicConfig(level=logging.WARNING, format="db-migrate worker: %(levelname)s %(name)s: %(message)s")


def serve_one(conn, target: str, kwargs: dict[str, Any], cwd: str | None) -> None:
    """Run ``target(**kwargs)`` and send its outcome on ``conn`` (the caller exits afterwards)."""
    global _conn
    sys.dont_write_bytecode = True  # never litter the user's versions/ with __pycache__
    _conn = conn
    try:
        status, payload = _run_one(target, kwargs, cwd)
    finally:
        _conn = None
    try:
        conn.send((status, payload))
    except (BrokenPipeError, ConnectionError, EOFError, OSError):
        return  # the parent stopped waiting (timeout, cancellation): nothing to answer
    except Exception as e:  # an unpicklable result is our bug, but must still answer
        try:
            conn.send(("error", {"code": "internal-error", "message": f"cannot send result: {e}", "hint": None, "details": {}}))
        except (BrokenPipeError, ConnectionError, EOFError, OSError):
            return
