"""Errors that reach users as structured results, never as tracebacks.

Raise a :class:`DbMigrateError` subclass anywhere; the CLI turns it into exit
code 2 with ``{"error": {...}}`` and the MCP server into a tool error whose
text is the same JSON.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # pydantic is imported when an error is reported, not by every `import errors`
    from db_migrate.verdict import ErrorInfo, ErrorResult

#: Which adapter a caller used: hints name its own way of saying things.
Interface = Literal["cli", "mcp"]

#: ``{tool:NAME}`` in a hint: the MCP tool, or the CLI command that runs it.
_COMMANDS = {
    "review_migration": "db-migrate review", "classify_escalation": "db-migrate classify", "check_heads": "db-migrate heads",
    "generate_migration": "db-migrate generate", "test_roundtrip": "db-migrate roundtrip",
}
#: ``{arg:NAME}`` in a hint: a tool argument (MCP), or the CLI flag for it.
_FLAGS = {"create_merge": "--create-merge", "all_revisions": "--all", "message": "-m/--message", "revision": "REV"}
_ARGUMENTS = {"create_merge": "create_merge=true", "all_revisions": "all_revisions=true"}
_PLACEHOLDER = re.compile(r"\{(tool|arg|config):?(\w*)\}")


def render_hint(hint: str | None, interface: Interface | None) -> str | None:
    """``hint`` with its placeholders said the way ``interface`` says them.

    ``{tool:check_heads}`` -> ``the check_heads tool`` (MCP) or ``db-migrate heads`` (CLI);
    ``{arg:database_url}`` -> ``the database_url argument`` or ``--database-url``;
    ``{config}`` -> ``db-migrate serve --project DIR`` or ``--config PATH``.
    Without an interface both forms are given.
    """
    if not hint:
        return hint

    def say(m: re.Match[str]) -> str:
        kind, name = m.group(1), m.group(2)
        if kind == "tool":
            forms = (f"the {name} tool", _COMMANDS.get(name, name))
        elif kind == "arg":
            forms = (_ARGUMENTS.get(name, f"the {name} argument"), _FLAGS.get(name, "--" + name.replace("_", "-")))
        else:
            forms = ("`db-migrate serve --project DIR` (or its --config PATH)", "--config PATH")
        if interface == "mcp":
            return forms[0]
        if interface == "cli":
            return forms[1]
        return f"{forms[0]} ({forms[1]})"

    return _PLACEHOLDER.sub(say, hint)


class DbMigrateError(Exception):
    """Base class: a failure with a stable code, a clear message and a hint.

    A hint may name tools, arguments and configuration through placeholders
    (:func:`render_hint`); each adapter renders them for its interface, so an
    MCP client is told about tool arguments and a shell user about flags.
    """

    code = "error"

    def __init__(self, message: str, *, hint: str | None = None, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.hint_template = hint
        self.details = {k: str(v) for k, v in details.items() if v is not None}

    @property
    def hint(self) -> str | None:
        """The hint for no interface in particular (both forms): what verdicts quoting an error carry."""
        return render_hint(self.hint_template, None)

    @hint.setter
    def hint(self, value: str | None) -> None:
        self.hint_template = value

    def info(self, interface: Interface | None = None) -> ErrorInfo:
        from db_migrate.verdict import ErrorInfo

        return ErrorInfo(code=self.code, message=self.message, hint=render_hint(self.hint_template, interface), details=self.details)

    def result(self, interface: Interface | None = None) -> ErrorResult:
        from db_migrate.verdict import ErrorResult

        return ErrorResult(error=self.info(interface))

    def to_json(self, interface: Interface | None = None) -> str:
        return self.result(interface).model_dump_json(exclude_none=True)


def brief(e: BaseException) -> str:
    """The first line of an error (a driver's own message, without SQLAlchemy's background link)."""
    orig = getattr(e, "orig", None) or e
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


#: Driver messages that mean the server could not be reached at all (wrong host or port, server down).
_UNREACHABLE = (
    "connection refused", "could not translate host name", "name or service not known", "timeout expired",
    "can't connect", "unknown mysql server host", "no route to host", "network is unreachable", "connection timed out",
    "is the server running", "temporary failure in name resolution", "nodename nor servname",
)


def database_error(e: BaseException, url: str | None, doing: str, *, hint: str | None = None) -> "DatabaseError":
    """A :class:`DatabaseError` for a driver exception ``e`` raised while ``doing`` something on ``url``.

    A server that cannot be reached gets its host and port in the message and
    details and a hint to check them; other failures keep ``hint``.
    """
    host = port = None
    shown = None
    try:
        from db_migrate.urls import redact_url, server_of

        if url:
            host, port = server_of(url)
            shown = redact_url(url)  # every credential-bearing part, query values included
    except Exception:
        pass
    text = brief(e)
    if any(s in text.lower() for s in _UNREACHABLE):
        return DatabaseError(
            f"Cannot reach the database server at {host}:{port} while {doing}: {text}",
            hint=f"Check that a server listens on {host}:{port} and that the URL's host and port are right "
            "(for a scratch server: a development or CI server where db-migrate may create databases), or omit "
            "the URL to use db-migrate's own scratch engine where the tool allows it.",
            host=host, port=port, database=shown,
        )
    return DatabaseError(f"{doing[:1].upper()}{doing[1:]} failed on {shown or 'the database'}: {text}", hint=hint,
                         host=host, port=port, database=shown)


class UsageError(DbMigrateError):
    code = "usage"


class InvalidArgument(UsageError):
    """An argument no call could use (too long for any revision, URL or message): refused before any work."""

    code = "invalid-argument"


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


class ApprovalRecordError(DbMigrateError):
    """The approval record (``approvals/<revision>.toml``) cannot be written, or changed while being written."""

    code = "approval-record"
