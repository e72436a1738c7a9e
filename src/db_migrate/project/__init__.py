"""Finding the Alembic project and reading its revision history without importing it.

- :mod:`.config` locates ``alembic.ini`` or ``pyproject.toml [tool.alembic]`` and
  reads ``[tool.db-migrate]`` settings.
- :mod:`.headers` parses revision headers statically (no user code runs).
- :mod:`.history` builds the revision graph from those headers and resolves a
  revision reference (id, unique prefix, ``head`` or a file path).
"""

from db_migrate.project.config import Project, load_project, redact_url
from db_migrate.project.headers import RevisionHeader, parse_header
from db_migrate.project.history import History, load_history

__all__ = [
    "History",
    "Project",
    "RevisionHeader",
    "load_history",
    "load_project",
    "parse_header",
    "redact_url",
]
