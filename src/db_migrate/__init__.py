"""db-migrate: safe Alembic migrations for AI coding agents (MCP server and CLI)."""

__version__ = "0.1.0"
