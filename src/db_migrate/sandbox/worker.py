"""The worker side: a loop that runs one job at a time and answers over a pipe.

Protocol (child → parent): any number of ``("progress", dict)`` messages, then
one ``("ok", result)`` or ``("error", ErrorInfo-as-dict)``.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

_conn = None  # the pipe of the job in progress, for report_progress


def report_progress(message: str, progress: float | None = None, total: float | None = None) -> None:
    """Send a progress note to whoever waits for the current job (no-op outside a worker)."""
    if _conn is not None:
        try:
            _conn.send(("progress", {"message": message, "progress": progress, "total": total}))
        except (OSError, EOFError):
            pass


def _is_user_module(mod: Any) -> bool:
    f = getattr(mod, "__file__", None)
    if not f:
        return False
    f = os.path.realpath(f)
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return not any(f.startswith(p + os.sep) for p in prefixes) and "/db_migrate/" not in f


def _run_one(target: str, kwargs: dict[str, Any], cwd: str | None) -> tuple[str, Any]:
    from db_migrate.errors import DbMigrateError

    before_modules = set(sys.modules)
    before_path = list(sys.path)
    before_cwd = os.getcwd()
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
    except BaseException as e:  # user code may raise anything; the job must answer
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f"{fr.filename}:{fr.lineno}" for fr in reversed(tb) if "/db_migrate/" not in fr.filename), None)
        return "error", {
            "code": "internal-error" if where is None else "project-code-error",
            "message": f"{type(e).__name__}: {e}" + (f" (at {where})" if where else ""),
            "hint": None,
            "details": {},
        }
    finally:
        # Forget the project's own modules so the next job sees edited files afresh.
        for name in set(sys.modules) - before_modules:
            if _is_user_module(sys.modules.get(name)):
                sys.modules.pop(name, None)
        sys.path[:] = before_path
        # A finder cached for a relative entry ('.', from alembic's prepend_sys_path) is bound to
        # the cwd of the job that created it; drop it so the next project's cwd is searched.
        for key in [k for k in sys.path_importer_cache if not os.path.isabs(k)]:
            sys.path_importer_cache.pop(key, None)
        try:
            os.chdir(before_cwd)
        except OSError:
            pass


def main(conn) -> None:
    """Entry point of a worker process."""
    global _conn
    # User code that prints must never reach the parent's stdout (the MCP stdio channel).
    try:
        os.dup2(2, 1)
    except OSError:
        pass
    sys.stdout = sys.stderr
    import logging
    import logging.config
    import warnings

    warnings.simplefilter("ignore")
    # env.py files call logging.config.fileConfig(alembic.ini), which would print alembic's INFO
    # lines for every step we run. The worker's logging is ours: keep warnings and errors only.
    logging.config.fileConfig = lambda *args, **kwargs: None  # type: ignore[assignment]
    logging.basicConfig(level=logging.WARNING, format="db-migrate worker: %(levelname)s %(name)s: %(message)s")
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if job is None:
            # Asked to stop while idle: nothing is open, so skip interpreter finalisation (half a
            # second with alembic and SQLAlchemy loaded), which the parent would wait for at exit.
            sys.stderr.flush()
            os._exit(0)
        target, kwargs, cwd = job
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
