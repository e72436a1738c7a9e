"""Errors that reach users as structured results, never as tracebacks.

Raise a :class:`DbMigrateError` subclass anywhere; the CLI turns it into exit
code 2 with ``{"error": {...}}`` and the MCP server into a tool error whose
text is the same JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydantic is imported when an error is reported, not by every `import errors`
    from db_migrate.verdict import ErrorInfo, ErrorResult


class DbMigrateError(Exception):
    """Base class: a failure with a stable code, a clear message and a hint."""

    code = "error"

    def __init__(self, message: str, *, hint: str | None = None, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = {k: str(v) for k, v in details.items() if v is not None}

    def info(self) -> ErrorInfo:
        from db_migrate.verdict import ErrorInfo

        return ErrorInfo(code=self.code, message=self.message, hint=self.hint, details=self.details)

    def result(self) -> ErrorResult:
        from db_migrate.verdict import ErrorResult

        return ErrorResult(error=self.info())

    def to_json(self) -> str:
        return self.result().model_dump_json(exclude_none=True)


def brief(e: BaseException) -> str:
    """The first line of an error (a driver's own message, without SQLAlchemy's background link)."""
    orig = getattr(e, "orig", None) or e
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


class UsageError(DbMigrateError):
    code = "usage"


class ConfigNotFound(DbMigrateError):
    code = "config-not-found"


class ConfigInvalid(DbMigrateError):
    code = "config-invalid"


class RevisionNotFound(DbMigrateError):
    code = "revision-not-found"


class AmbiguousRevision(DbMigrateError):
    code = "ambiguous-revision"


class MultipleHeadsError(DbMigrateError):
    code = "multiple-heads"


class MigrationLoadError(DbMigrateError):
    """The revision file cannot be read or imported (syntax error, missing module, ...)."""

    code = "migration-load-failed"


class MigrationTimeout(DbMigrateError):
    code = "migration-timeout"


class MigrationCrashed(DbMigrateError):
    """User code killed its worker process (os._exit, segfault, sys.exit outside a job...)."""

    code = "migration-crashed"


class PathOutsideProject(DbMigrateError):
    code = "path-outside-project"


class Refused(DbMigrateError):
    """A request the tool will not carry out (a production URL for scratch, overwriting a file...)."""

    code = "refused"


class DatabaseError(DbMigrateError):
    code = "database-error"


class InternalError(DbMigrateError):
    code = "internal-error"


class ProjectCodeError(DbMigrateError):
    """Project code (env.py, models, a migration) raised an exception."""

    code = "project-code-error"


class GenerateBusy(DbMigrateError):
    """Another generate (or merge) is writing a revision in the same project right now."""

    code = "generate-busy"


class DatabaseMissing(UsageError, DatabaseError):
    """The database named for reading does not exist (never created by reading it)."""

    code = "database-not-found"


class MemoryLimitExceeded(DbMigrateError):
    """Project code needed more memory than one job may use (``DB_MIGRATE_MEMORY_LIMIT_MB``)."""

    code = "memory-limit"
