"""What a revision does, as recorded without a database.

These objects live inside the sandbox worker only: they hold alembic's own
operation objects (``AddColumnOp``, ``AlterColumnOp``, ``ExecuteSQLOp``...),
which carry SQLAlchemy columns and types and are not meant to cross a process
boundary.  Rules read them there; what leaves the worker is pydantic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # imported where used: the policy reads these models in the CLI process, which need not load alembic
    from alembic.operations import ops

from db_migrate.capture.context import ProjectContext
from db_migrate.capture.statement import SqlStatement  # noqa: F401  (where rules and captures have always found it)

Phase = Literal["upgrade", "downgrade"]

UNKNOWN_OPERATION = "unknown_operation"
"""The kind of ``op.<name>(...)`` where alembic defines no ``<name>`` (a plugin's operation): recorder.UnknownOperation."""

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def op_kind(op: ops.MigrateOperation) -> str:
    """alembic's name for an operation: ``AddColumnOp`` -> ``add_column``."""
    name = type(op).__name__
    if name.endswith("Op"):
        name = name[:-2]
    return _CAMEL.sub("_", name).lower().replace("execute_s_q_l", "execute")


@dataclass
class RecordedOp:
    """One alembic operation as ``upgrade()``/``downgrade()`` invoked it."""

    op: ops.MigrateOperation
    """alembic's operation object, with every argument."""
    phase: Phase
    index: int
    """Position within its phase (0-based)."""
    line: int | None
    """1-based line in the revision file of the ``op.xxx(...)`` call."""
    sql: list[str] = field(default_factory=list)
    """SQL rendered for the dialect (empty when rendering failed or was deferred by batch mode)."""
    render_error: str | None = None
    in_autocommit_block: bool = False
    implied: bool = False
    """Run by another operation, not written in the file: the ``CREATE TYPE`` that ``create_table`` emits for
    an ``sa.Enum`` column on PostgreSQL. Evidence must not cite it as something the file does."""
    """Ran inside ``with op.get_context().autocommit_block():`` (outside the migration transaction)."""
    batch_table: str | None = None
    """Set when invoked through ``op.batch_alter_table(<table>)``."""
    sql_text: str | None = None
    """Set on an operation translated from a raw statement in ``op.execute``: that statement.

    The op then stands where the statement ran (same phase position, the ``op.execute`` line)
    and every rule sees it as it sees the native operation.
    """
    statements: list[SqlStatement] | None = None
    """For ``ExecuteSQLOp``: its statements, parsed when it was recorded (None: parse on demand)."""

    @property
    def from_sql(self) -> bool:
        """This alembic operation was written as raw SQL (see :attr:`sql_text`)."""
        return self.sql_text is not None

    @property
    def kind(self) -> str:
        return op_kind(self.op)

    @property
    def table(self) -> str | None:
        for attr in ("table_name", "source_table"):
            v = getattr(self.op, attr, None)
            if isinstance(v, str):
                return v
        return self.batch_table

    @property
    def column(self) -> str | None:
        from alembic.operations import ops

        op = self.op
        if isinstance(op, ops.AddColumnOp):
            return op.column.name
        v = getattr(op, "column_name", None)
        return v if isinstance(v, str) else None


@dataclass
class SourceFact:
    """A fact read from the revision's syntax tree (what recording cannot see)."""

    kind: Literal[
        "interpolated-sql",  # op.execute(f"..."), "%", .format, + : detail = how
        "app-import",  # import of application code: detail = module
        "missing-import",  # module that cannot be imported here: detail = module
        "orm-session",  # Session(...)/sessionmaker(...) use
        "bind-read",  # op.get_bind() / connection reads rows
        "sys-exit",
    ]
    line: int
    detail: str = ""
    names: tuple[str, ...] = ()
    """For imports: the names taken from the module (``from app.models import User`` -> ``("User",)``)."""


@dataclass
class UnrecordedDrop:
    """``op.drop_table('t')`` / ``op.drop_column('t', 'c')`` (or a batch's ``drop_column('c')``), or literal SQL that
    deletes rows, read from the source after the line where recording of its phase stopped: it was never recorded,
    yet it drops what it names."""

    phase: Phase
    kind: Literal["drop_table", "drop_column", "execute"]
    table: str
    column: str | None
    line: int
    after_line: int
    """The line where recording of the phase stopped."""
    schema: str | None = None
    sql: str | None = None
    """For ``execute``: the literal statement that deletes rows of ``table`` (``DELETE FROM t ...``, ``TRUNCATE t``)."""


@dataclass
class PhaseOutcome:
    """How running one phase went."""

    ran: bool = False
    """The function exists and was called."""
    completed: bool = False
    """It returned normally (everything it does was recorded)."""
    error: str | None = None
    """Why it stopped early, with the line when known."""
    error_line: int | None = None
    stop_line: int | None = None
    """The line of the function's own statement that was running when it stopped (``error_line`` may be in a helper
    it called): what comes after it in the function was not recorded."""
    body: Literal["missing", "pass", "not-implemented", "code"] = "code"
    """What the function's source is: absent, only ``pass``/docstring, raising NotImplementedError, or real code."""


@dataclass
class RevisionCapture:
    """Everything recorded about one revision file."""

    path: Path
    relpath: str
    revision: str | None
    down_revisions: tuple[str, ...]
    message: str | None
    dialect: str
    source: str
    upgrade: list[RecordedOp] = field(default_factory=list)
    downgrade: list[RecordedOp] = field(default_factory=list)
    upgrade_outcome: PhaseOutcome = field(default_factory=PhaseOutcome)
    downgrade_outcome: PhaseOutcome = field(default_factory=PhaseOutcome)
    facts: list[SourceFact] = field(default_factory=list)
    load_error: str | None = None
    """Set when the module could not be imported at all (nothing was recorded)."""
    stubbed_modules: list[str] = field(default_factory=list)
    """Modules not installed here that were replaced by stand-ins so recording could go on."""
    stand_in_arguments: list[str] = field(default_factory=list)
    """``upgrade(op, tables, ...)`` signatures: the project's runner passes arguments; all but ``op`` were stand-ins."""
    target_version: tuple[int, ...] | None = None
    """The production server's version when the project names one for this dialect (``target_version``)."""
    context: ProjectContext = field(default_factory=lambda: ProjectContext())
    """What the project's env.py decides for every revision (naming convention, lock_timeout)."""
    irreversible: str | None = None
    """The reason given by a ``# db-migrate: irreversible <reason>`` marker on downgrade(), when there is one, or
    the message of a downgrade that only raises (``raise RuntimeError("downgrade not supported")``)."""
    downgrade_raises: bool = False
    """downgrade() only raises an exception other than NotImplementedError: a deliberate stop, not a failure."""
    assumed_branches: list[tuple[str, int, str]] = field(default_factory=list)
    """(phase, line, what was assumed) where the revision branched on a value that is not here: recording took the
    way that goes on (the review lists them as unchecked)."""
    lent_names: list[str] = field(default_factory=list)
    """Names the revision imports from SQLAlchemy/alembic that the installed versions lack (``sqlalchemy.engine.
    LegacyCursorResult``): stand-ins while it was recorded."""
    engine_functions: list[tuple[str, int, list[str]]] = field(default_factory=list)
    """(phase, line of the phase's function, its ``<phase>_<engine>`` functions): a multi-database revision whose
    functions for each database were recorded in turn as one phase."""
    went_on: list[tuple[str, int]] = field(default_factory=list)
    """(phase, line) where recording stopped offline and went on past the statements that failed there."""
    skipped_statements: list[tuple[str, int]] = field(default_factory=list)
    """(phase, line) of each top-level statement after such a stop that failed too and was skipped."""
    upgrade_refusal: str | None = None
    """The message of an upgrade() that starts with an unconditional raise: the project's declared refusal."""
    unrecorded_drops: list[UnrecordedDrop] = field(default_factory=list)
    """Drops with literal names the source holds after a phase's recording stopped (:func:`capture.source.drops_after`)."""
    _statements: dict[str, list[tuple[RecordedOp, SqlStatement]]] = field(default_factory=dict, repr=False)

    def captured(self, phase: Phase) -> bool:
        """The phase ran to its end (or does not exist): everything it does was recorded."""
        o = self.outcome(phase)
        return o.completed or not o.ran

    def ops(self, phase: Phase) -> list[RecordedOp]:
        return self.upgrade if phase == "upgrade" else self.downgrade

    def outcome(self, phase: Phase) -> PhaseOutcome:
        return self.upgrade_outcome if phase == "upgrade" else self.downgrade_outcome

    def tables_created(self, phase: Phase, before_index: int | None = None) -> set[str]:
        """Tables this phase creates (before ``before_index`` when given)."""
        from alembic.operations import ops

        return {
            r.op.table_name
            for r in self.ops(phase)
            if isinstance(r.op, ops.CreateTableOp) and (before_index is None or r.index < before_index)
        }

    def columns_added(self, phase: Phase, before_index: int | None = None) -> set[tuple[str, str]]:
        """(table, column) pairs this phase adds (before ``before_index`` when given)."""
        from alembic.operations import ops

        out: set[tuple[str, str]] = set()
        for r in self.ops(phase):
            if before_index is not None and r.index >= before_index:
                continue
            if isinstance(r.op, ops.AddColumnOp):
                out.add((r.op.table_name, r.op.column.name))
        return out

    def source_line(self, line: int | None) -> str:
        if not line:
            return ""
        lines = self.source.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""

    def statements(self, phase: Phase) -> list[tuple[RecordedOp, SqlStatement]]:
        """Every SQL statement ``op.execute`` ran in ``phase`` that is not an alembic operation, parsed (cached).

        Statements translated into alembic operations (``RecordedOp.from_sql``) are not here: they are
        in :meth:`ops` as those operations.
        """
        cache = self._statements.get(phase)
        if cache is None:
            from alembic.operations import ops

            from db_migrate.capture.sql import parse_sql

            cache = []
            for rec in self.ops(phase):
                if isinstance(rec.op, ops.ExecuteSQLOp):
                    if rec.statements is None:
                        text = rec.op.sqltext if isinstance(rec.op.sqltext, str) else ";\n".join(rec.sql)
                        rec.statements = parse_sql(text, self.dialect)
                    cache.extend((rec, stmt) for stmt in rec.statements)
            self._statements[phase] = cache
        return cache

    def statements_of(self, rec: RecordedOp) -> list[SqlStatement]:
        """The parsed statements of one ``op.execute`` of this revision (none for any other operation)."""
        self.statements(rec.phase)
        return list(rec.statements or [])

    def facts_of(self, kind: str) -> list[SourceFact]:
        return [f for f in self.facts if f.kind == kind]
