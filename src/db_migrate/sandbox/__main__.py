"""``python -m db_migrate.sandbox FD``: the fork server, serving on the control socket FD.

``python -m db_migrate.sandbox --listen PATH IDLE``: the warm parent CLI calls share
(:mod:`db_migrate.sandbox.shared`), listening on the Unix socket PATH.
"""

import socket
import sys

from db_migrate.sandbox import forkserver

_listen = sys.argv[1] == "--listen"
_ctl = None if _listen else socket.socket(fileno=int(sys.argv[1]))
# mako (imported by alembic) loads pygments, when installed, only to colour HTML error pages of
# templates; a job never shows one, and pygments is a tenth of the start-up.
sys.modules.setdefault("mako.ext.pygmentplugin", None)  # type: ignore[arg-type]
# What every job needs, imported once here so each forked job starts warm. Nothing here runs project code.
import alembic.autogenerate  # noqa: E402,F401
import alembic.command  # noqa: E402,F401
import alembic.config  # noqa: E402,F401
import alembic.operations  # noqa: E402,F401
import alembic.runtime.migration  # noqa: E402,F401
import logging.config  # noqa: E402,F401
import multiprocessing.connection  # noqa: E402,F401
import tempfile  # noqa: E402,F401
import traceback  # noqa: E402,F401

import importlib  # noqa: E402

import sqlalchemy  # noqa: E402,F401
import sqlalchemy.dialects.sqlite  # noqa: E402,F401
import sqlalchemy.orm  # noqa: E402,F401  (the models of nearly every project)

#: The modules jobs run from (``run_job("module:function")`` names them), by name: the sandbox is an
#: engine the services use, and depends on none of them; importing them here, before any fork, only
#: makes every job start warm.  The scratch servers' dialects and drivers follow, when installed (a job
#: would import them on each connect).  Nothing here runs project code.
WARM_MODULES = (
    "db_migrate.capture.recorder", "db_migrate.capture.sql", "db_migrate.rules", "db_migrate.generate.jobs",
    "db_migrate.heads.jobs", "db_migrate.review.engine", "db_migrate.roundtrip.job", "db_migrate.runtime",
)
OPTIONAL_MODULES = ("sqlalchemy.dialects.postgresql", "sqlalchemy.dialects.mysql", "psycopg", "pymysql",
                    "sqlalchemy.ext.asyncio", "pglast", "sqlglot")

for _module in WARM_MODULES:
    importlib.import_module(_module)
importlib.import_module("db_migrate.rules").all_rules()  # imports every rule module (our code, no project's)
for _module in OPTIONAL_MODULES:
    try:
        importlib.import_module(_module)
    except ImportError:
        pass

if _ctl is None:
    from db_migrate.sandbox import shared

    shared.serve_shared(sys.argv[2], float(sys.argv[3]))
else:
    forkserver.serve(_ctl)
