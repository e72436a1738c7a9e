"""``python -m db_migrate.sandbox FD``: a worker process serving jobs on socket FD."""

import socket
import sys
from multiprocessing.connection import Connection

from db_migrate.sandbox import worker

_sock = socket.socket(fileno=int(sys.argv[1]))
_conn = Connection(_sock.detach())
# mako (imported by alembic) loads pygments, when installed, only to colour HTML error pages of
# templates; a worker never shows one, and pygments is a tenth of its start-up.
sys.modules.setdefault("mako.ext.pygmentplugin", None)  # type: ignore[arg-type]
# Warm up with what every job needs while the parent does its own start-up.
import alembic.operations  # noqa: E402,F401
import alembic.runtime.migration  # noqa: E402,F401

worker.main(_conn)
