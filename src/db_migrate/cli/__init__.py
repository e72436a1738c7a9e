"""The ``db-migrate`` command line: a thin adapter over the service functions.

:func:`main` is the console script; :mod:`.init` registers the server in a
project.  What the CLI shares with the MCP server (the tool table, exit codes,
text rendering) lives in :mod:`db_migrate.tools`, so both adapters agree on
every result.
"""

from db_migrate.cli.main import main

__all__ = ["main"]
