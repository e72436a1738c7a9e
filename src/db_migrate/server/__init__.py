"""The MCP adapter: tools, prompts and resources over one Alembic project (thin).

:func:`build_server` makes the server (for in-memory tests with
``mcp.Client(server)``); :func:`serve` runs it over stdio or streamable HTTP.
Importing this package imports mcp: the CLI does so only for ``serve``.
"""

from db_migrate.server.app import INSTRUCTIONS, build_server, serve

__all__ = ["INSTRUCTIONS", "build_server", "serve"]
