"""The ``db-migrate`` command line: a thin adapter over the service functions.

:func:`main` is the console script.  :mod:`.services` (the tool table, exit
codes, the human-approval fold) and :mod:`.render` (text for people) are
shared with the MCP server, so both adapters agree on every result.
"""

from db_migrate.cli.main import main

__all__ = ["main"]
