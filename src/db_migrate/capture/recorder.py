"""Record what ``upgrade()`` and ``downgrade()`` do, offline, with alembic itself.

The revision module is imported and each phase runs under an offline
``EnvironmentContext`` (``as_sql=True``, literal binds, the project's dialect):
every ``op.xxx(...)`` builds an alembic operation object and passes it to
``AbstractOperations.invoke``; the recorder wraps ``invoke`` to keep the object,
the calling line in the revision file and the SQL alembic renders for it.

This module runs user code: call it only inside a sandbox worker.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import io
import re
import signal
import sys
import types
from pathlib import Path
from typing import Any

from alembic.operations import BatchOperations, Operations, ops
from alembic.operations.base import AbstractOperations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import types as sa_types

from db_migrate.capture.offline import NO_ROWS, NOT_INSTALLED, is_offline_artifact, stand_in_url
from db_migrate.capture.model import PhaseOutcome, RecordedOp, RevisionCapture
from db_migrate.capture.context import ProjectContext, no_connections
from db_migrate.capture.source import drops_after, function_body_kind, irreversible_marker, refusal, source_facts
from db_migrate.capture.syntax import phase_function
from db_migrate.project.headers import body_kind
from db_migrate.project.headers import parse_header

PHASE_SECONDS = 10  # one phase of one revision; a loop longer than this is reported, not waited out

_active: _Recorder | None = None
_patched = False


class _Recorder:
    def __init__(self, cap: RevisionCapture, buf: io.StringIO) -> None:
        self.cap = cap
        self.buf = buf
        self.phase = "upgrade"
        self.autocommit_depth = 0
        self.invoke_depth = 0
        """Operations being invoked: above 0, an operation is run by another one (implied)."""
        self.batch_tables: list[str] = []
        self.temporary_tables: set[str] = set()
        """Temporary tables raw SQL created so far in this phase."""
        self.filename = str(cap.path)
        self.answers: dict[int, bool] = {}
        """The answer a stand-in tested on each line of the revision gives (see :func:`_answer`)."""
        self.guards: _Guards = _Guards()
        """Lines of the revision's guards whose expression the history's guards agree on (``ProjectContext.guards``)."""

    def caller_line(self) -> int | None:
        f = sys._getframe(2)
        while f is not None:
            if f.f_code.co_filename == self.filename:
                return f.f_lineno
            f = f.f_back
        return None


def _install_patches() -> None:
    """Wrap alembic's invoke/autocommit_block/batch_alter_table once per worker process."""
    global _patched
    if _patched:
        return
    orig_invoke = AbstractOperations.invoke
    orig_autocommit = MigrationContext.autocommit_block
    orig_batch = Operations.batch_alter_table

    def invoke(self: AbstractOperations, operation: Any) -> Any:
        rec = _active
        if rec is None:
            return orig_invoke(self, operation)
        ops_list = rec.cap.ops(rec.phase)  # type: ignore[arg-type]
        if isinstance(getattr(operation, "schema", None), _StandIn):
            operation.schema = str(operation.schema)  # schema=SCHEMA from a module not here: named by its stand-in
        entry = RecordedOp(
            op=operation,
            phase=rec.phase,  # type: ignore[arg-type]
            index=len(ops_list),
            line=rec.caller_line(),
            in_autocommit_block=rec.autocommit_depth > 0,
            implied=rec.invoke_depth > 0,
            batch_table=rec.batch_tables[-1] if isinstance(self, BatchOperations) and rec.batch_tables else None,
        )
        ops_list.append(entry)
        start = rec.buf.tell()
        rec.invoke_depth += 1
        try:
            result = orig_invoke(self, operation)
        except NotImplementedError as e:
            entry.render_error = f"{rec.cap.dialect} cannot render this operation offline: {e}"
            return None
        except Exception as e:
            result = _again_renderable(orig_invoke, self, operation, rec.buf, start)
            if result is _FAILED:
                entry.render_error = f"{type(e).__name__}: {e}"
                return None
        finally:
            rec.invoke_depth -= 1
        text = rec.buf.getvalue()[start:]
        entry.sql = [s.strip() for s in text.split(";\n") if s.strip() and s.strip() not in ("BEGIN", "COMMIT")]
        alone = text.strip().rstrip(";").strip()
        if not entry.sql and isinstance(operation, ops.ExecuteSQLOp) and alone.upper() in ("BEGIN", "COMMIT"):
            entry.sql = [alone]  # the revision's own COMMIT (conn.execute(text("COMMIT"))), not alembic's
        if isinstance(operation, ops.ExecuteSQLOp):
            _translate(ops_list, entry, rec.cap.dialect, rec.temporary_tables)
        return result

    @contextlib.contextmanager
    def autocommit_block(self: MigrationContext):
        rec = _active
        if rec is not None:
            rec.autocommit_depth += 1
        try:
            with orig_autocommit(self):
                yield
        finally:
            if rec is not None:
                rec.autocommit_depth -= 1

    @contextlib.contextmanager
    def batch_alter_table(self: Operations, table_name: str, *args: Any, **kw: Any):
        rec = _active
        if rec is None:
            with orig_batch(self, table_name, *args, **kw) as b:
                yield b
            return
        if rec.cap.dialect == "sqlite":
            # Offline, SQLite's "move and copy" needs a live connection to reflect the table;
            # recording only needs the operations, so ask alembic not to recreate.
            kw["recreate"] = "never"
        rec.batch_tables.append(table_name)
        try:
            with orig_batch(self, table_name, *args, **kw) as b:
                yield b
        finally:
            rec.batch_tables.pop()

    _index_columns_may_repeat()
    _record_unknown_operations()
    _inspect_offline_as_stand_in()
    _select_takes_a_list()
    _removed_type_names()
    _input_is_a_stand_in()
    AbstractOperations.invoke = invoke  # type: ignore[method-assign]
    MigrationContext.autocommit_block = autocommit_block  # type: ignore[method-assign,assignment]
    Operations.batch_alter_table = batch_alter_table  # type: ignore[method-assign,assignment]
    _patched = True


class UnknownOperation(ops.MigrateOperation):
    """``op.<name>(...)`` where alembic defines no ``<name>``: an operation a plugin adds to ``op`` when the project's
    env.py imports it (``op.sync_enum_values``, ``op.create_entity``), or a mistake.  It is recorded where it ran,
    with its arguments, and not rendered: what it does is unknown, not nothing."""

    def __init__(self, name: str, args: tuple, kw: dict) -> None:
        self.name = name
        self.args = args
        self.kw = kw

    def reverse(self) -> ops.MigrateOperation:
        raise NotImplementedError(f"op.{self.name} is not an alembic operation")


def _record_unknown_operations() -> None:
    """While a phase is recorded, ``op.<unknown name>`` is an :class:`UnknownOperation` to call, not an AttributeError
    that stops the phase: the rest of the phase is still recorded (the review says the operation is unchecked)."""
    import alembic.op as op_module

    def __getattr__(name: str) -> Any:
        rec = _active
        if rec is None or name.startswith("_"):
            raise AttributeError(f"module 'alembic.op' has no attribute {name!r}")

        def call(*args: Any, **kw: Any) -> Any:
            ops_list = rec.cap.ops(rec.phase)  # type: ignore[arg-type]
            ops_list.append(RecordedOp(
                op=UnknownOperation(name, args, kw), phase=rec.phase, index=len(ops_list),  # type: ignore[arg-type]
                line=rec.caller_line(), in_autocommit_block=rec.autocommit_depth > 0,
            ))
            return _StandIn(f"<result of op.{name}()>")  # a value nobody knows: branching on it stops the phase

        return call

    op_module.__getattr__ = __getattr__  # type: ignore[attr-defined]  (PEP 562: asked only for missing names)


#: Type names SQLAlchemy 2 removed, and the type each always stood for: ``sa.Binary`` was ``LargeBinary``.
_RENAMED_TYPES = {"Binary": "LargeBinary"}


def _removed_type_names() -> None:
    """``sa.Binary(...)`` in a revision written for the SQLAlchemy 1.x its project pins: the same type under the
    name 2.x gives it, so the revision is recorded instead of stopping on a name only db-migrate's SQLAlchemy lacks."""
    import sqlalchemy
    from sqlalchemy import types as sqltypes

    for old, new in _RENAMED_TYPES.items():
        for module in (sqlalchemy, sqltypes):
            if not hasattr(module, old):
                setattr(module, old, getattr(sqltypes, new))


def _input_is_a_stand_in() -> None:
    """``input("Type OKAY to go on: ")`` in a revision: offline nobody answers (it raised EOFError, reported as the
    revision's bug), so the answer is a stand-in, and the revision's test of it is recorded both ways, keeping the
    way that goes on to the migration's operations. The question itself is the project's gate for a person."""
    import builtins

    typed = builtins.input

    def answer(prompt: object = "") -> Any:
        return _StandIn("the answer a person types at input()") if _active is not None else typed(prompt)

    builtins.input = answer


def _select_takes_a_list() -> None:
    """``sa.select([t.c.id], t.c.kind == 'x')``, SQLAlchemy 1.x's spelling, as 2.x spells it (``select(t.c.id).where(
    ...)``): a revision written for the 1.x its project pins is recorded on, not stopped by an API only the
    SQLAlchemy db-migrate runs with lacks. Only that spelling is translated; anything else reaches 2.x unchanged."""
    import sqlalchemy
    from sqlalchemy import sql
    from sqlalchemy.sql import expression

    modern = sqlalchemy.select

    def select(*args: Any, **kw: Any) -> Any:
        if args and isinstance(args[0], (list, tuple)) and len(args) <= 2 and set(kw) <= {"whereclause", "from_obj"}:
            stmt = modern(*args[0])
            where = args[1] if len(args) == 2 else kw.get("whereclause")
            stmt = stmt.where(where) if where is not None else stmt
            return stmt.select_from(*kw["from_obj"]) if kw.get("from_obj") is not None else stmt
        return modern(*args, **kw)

    sqlalchemy.select = sql.select = expression.select = select  # type: ignore[assignment]


def _inspect_offline_as_stand_in() -> None:
    """``sa.inspect(op.get_bind())`` while a phase is recorded: a stand-in inspector, not NoInspectionAvailable.

    Offline there is no database to reflect; what the revision asks it (``has_table``, ``get_columns``) is a
    value that is not here, so its branches on the answers are taken as for any stand-in (the way that goes on).
    """
    import sqlalchemy
    from sqlalchemy import inspection
    from sqlalchemy.engine.mock import MockConnection
    from sqlalchemy.engine.reflection import Inspector

    original = inspection.inspect
    from_engine = Inspector.from_engine

    def offline(subject: Any) -> bool:
        return _active is not None and isinstance(subject, MockConnection)

    def inspect(subject: Any, raiseerr: bool = True) -> Any:
        return _StandIn("the database's inspector") if offline(subject) else original(subject, raiseerr)

    def inspector_from(bind: Any) -> Any:  # the older spelling: Inspector.from_engine(op.get_bind())
        return _StandIn("the database's inspector") if offline(bind) else from_engine(bind)

    inspection.inspect = sqlalchemy.inspect = inspect  # type: ignore[assignment]
    Inspector.from_engine = staticmethod(inspector_from)  # type: ignore[method-assign,assignment]


def _index_columns_may_repeat() -> None:
    """Let ``op.create_index('ix', 't', ['c', 'c'])`` build its index: PostgreSQL accepts a column twice.

    alembic builds the index on a placeholder table with one column per name it is given, and SQLAlchemy refuses a
    second column of the same name; the name given again now means the column already there, so the index keeps
    both entries (``ON t (c, c)``) and the rules read it like any other, instead of failing on our placeholder.
    """
    from alembic.util import sqla_compat

    original = sqla_compat._textual_index_column

    def index_column(table: Any, text_: Any) -> Any:
        if isinstance(text_, str) and text_ in table.c:
            return table.c[text_]
        return original(table, text_)

    sqla_compat._textual_index_column = index_column


def _translate(ops_list: list[RecordedOp], entry: RecordedOp, dialect: str, temporary: set[str]) -> None:
    """Put the alembic operations an ``op.execute`` amounts to in its place (see :mod:`db_migrate.capture.rawsql`)."""
    from db_migrate.capture.rawsql import translate_execute

    replacement = translate_execute(entry, dialect, temporary)
    if len(replacement) == 1 and replacement[0] is entry:
        return
    pos = next(i for i in range(len(ops_list) - 1, -1, -1) if ops_list[i] is entry)
    ops_list[pos : pos + 1] = replacement
    for i, r in enumerate(ops_list[pos:], start=pos):
        r.index = i


class _StandInBranch(Exception):
    """The revision's own code decided something on a stand-in's value (``if skip_something(): return``).

    A stand-in has no real value: recording stops here, and :func:`capture_file` records the phase again once
    with each answer for this line, keeping the path that goes on to the migration's operations (said in
    ``assumed_branches``).
    """

    def __init__(self, how: str, name: str, line: int) -> None:
        super().__init__(f"the code {how} {name}, a value from a module or argument not available here")
        self.how, self.name, self.line = how, name, line


class _Guards(dict):
    """{line of a guard's test: the value the project's history gives its expression}, and the lines a recording
    answered from it (said in ``assumed_branches``)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.used: set[int] = set()


_MAX_BRANCHES = 6
"""Lines whose stand-in test gets an answer, per phase: two more recordings each."""


def _answer(how: str, name: str) -> bool | None:
    """What the revision's own code (two frames up) gets when it tests a stand-in: the answer chosen for that line,
    or None when the test is library code (SQLAlchemy building a column from a stand-in type keeps the permissive
    answers). Raises :class:`_StandInBranch` for a line of the revision that has no answer yet."""
    rec = _active
    f = sys._getframe(2)
    if rec is None or f is None or f.f_code.co_filename != rec.filename:
        return None
    if f.f_lineno in rec.answers:
        return rec.answers[f.f_lineno]
    if f.f_lineno in rec.guards:
        rec.guards.used.add(f.f_lineno)
        return rec.guards[f.f_lineno]
    raise _StandInBranch(how, name, f.f_lineno)


#: What a revision reads of an application's declarative model (``LetterRate.__table__``): the model is not here,
#: so these are stand-ins like any other attribute of it.
_MODEL_ATTRIBUTES = frozenset({"__table__", "__tablename__", "__mapper__", "__table_args__"})


_FAILED = object()


def _again_renderable(invoke: Any, operations: Any, operation: Any, buf: Any, start: int) -> Any:
    """Run ``operation`` once more after making what kept it from rendering offline renderable; ``_FAILED`` when
    nothing could be, or it fails again.

    - a column type that is a stand-in (from a module not installed here), also inside ``ARRAY(...)``, is lent as
      a type of its own name (``CREATE TABLE t (payload JSONType)``);
    - a value bound to an untyped column (``sa.table('infos', sa.column('version'))``) gets the type its value
      has (``sa.literal``), so it renders as a literal (``UPDATE infos SET version='26.08'``).
    """
    import sqlalchemy as sa
    from sqlalchemy.sql import visitors

    def lent(t: Any) -> Any:
        return _lent_base(t.__name__)()

    found = False
    columns = [operation.column] if isinstance(operation, ops.AddColumnOp) else \
        [c for c in getattr(operation, "columns", []) if isinstance(c, sa.Column)] if isinstance(operation, ops.CreateTableOp) else []
    for c in columns:
        if isinstance(c.type, _StandIn):
            c.type, found = lent(c.type), True
        elif isinstance(getattr(c.type, "item_type", None), _StandIn):  # ARRAY(<stand-in>)
            c.type.item_type, found = lent(c.type.item_type), True
    if isinstance(operation, ops.ExecuteSQLOp) and isinstance(operation.sqltext, sa.sql.ClauseElement):
        def typed(bind: Any) -> None:
            nonlocal found
            if isinstance(bind.type, sa.types.NullType) and bind.value is not None:
                bind.type, found = sa.literal(bind.value).type, True

        operation.sqltext = visitors.cloned_traverse(operation.sqltext, {}, {"bindparam": typed})
    if not found:
        return _FAILED
    buf.seek(start)
    buf.truncate()
    try:
        return invoke(operations, operation)
    except Exception:
        return _FAILED


class _LentBase(sa_types.UserDefinedType):
    """A type from a module not installed here, lent under its own name: as a column type (rendered by that name,
    and by alembic as ``module.Name()``, the project's own spelling), and as the base of a revision's class built
    on it. Any arguments; what they were is not known here."""

    cache_ok = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        pass

    def get_col_spec(self, **kw: Any) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@functools.lru_cache(maxsize=None)
def _lent_base(name: str) -> type:
    """The class lent for the stand-in ``name`` (``sqlmodel.sql.sqltypes.AutoString()``): one per name, of the
    stand-in's module and name, built on :class:`_LentBase`."""
    module, _, base = re.sub(r"(?:\(\))+$", "", name).rpartition(".")  # (SQLAlchemy may call a stand-in again)
    return type(re.sub(r"\W", "_", base) or "StandIn", (_LentBase,), {"__module__": module or "builtins"})


class _StandIn(types.ModuleType):
    """A module that is not installed here: every attribute is another stand-in.

    Used as a value it is permissive (calls, attributes, being passed to alembic). When the revision's own code
    branches on it (a truth test, a comparison, a loop), the answer is chosen per line by :func:`capture_file`,
    which records both ways and keeps the one that goes on to the migration's operations.
    """

    __path__: list[str] = []
    __hash__ = types.ModuleType.__hash__

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name not in _MODEL_ATTRIBUTES:
            raise AttributeError(name)  # Python's own protocol (copy, pickle, the import system probe these)
        return _StandIn(f"{self.__name__}.{name}")

    def __call__(self, *a: Any, **k: Any) -> Any:
        return _StandIn(f"{self.__name__}()")

    def __getitem__(self, key: Any) -> Any:  # current_app.config["SMS_SENDER"]: an unknown value's item is unknown
        return _StandIn(f"{self.__name__}[{key!r}]")

    def __bool__(self) -> bool:
        answer = _answer("branches on", self.__name__)
        return True if answer is None else answer

    def __iter__(self):
        _answer("loops over", self.__name__)  # said once per line; whatever the answer, the items are unknown
        return iter(())

    def __contains__(self, item: object) -> bool:  # 'legacy' not in inspector.get_table_names(): a branch, both ways
        answer = _answer("tests", f"whether {item!r} is in {self.__name__}")
        return False if answer is None else answer

    def __eq__(self, other: object) -> Any:
        answer = _answer("compares", self.__name__)
        return self is other if answer is None else answer

    def __ne__(self, other: object) -> Any:
        answer = _answer("compares", self.__name__)
        return self is not other if answer is None else answer

    def __enter__(self) -> Any:  # ``with helpers.constraints_dropped(...):`` records its body; what it does itself is unknown
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __mro_entries__(self, bases: tuple) -> tuple:
        # ``class Thumbnail(UploadedFileField)``: a class of the project's built on a name not here; used as a column
        # type it is one, rendered under the class's own name. A class of its own per stand-in: two of them as bases
        # (``class M(MixinA, MixinB)``) must not be the same base twice
        return (_lent_base(self.__name__),)


    def __repr__(self) -> str:  # errors that quote a stand-in say what it is (the review reads them as unchecked)
        return f"<_StandIn {self.__name__}>"

    def __str__(self) -> str:
        # spliced into SQL (f"... VALUES ('{config['SENDER']}')"): one identifier-like word, so the statement still
        # parses and its kind and tables are read; the value itself stays unknown (it names the stand-in)
        return "_StandIn_" + re.sub(r"\W+", "_", self.__name__).strip("_")


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname.split(".")[0] in self.names:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StandIn(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


class _PhaseTimeout(BaseException):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _PhaseTimeout()


def _load_module(path: Path, stand_ins: set[str]) -> types.ModuleType:
    name = f"_dbm_revision_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    finder = _StandInFinder(stand_ins) if stand_ins else None
    if finder:
        sys.meta_path.insert(0, finder)
    try:
        spec.loader.exec_module(module)
    finally:
        if finder:
            sys.meta_path.remove(finder)
    return module


def _raised_reading_rows(exc: BaseException, cap: RevisionCapture) -> bool:
    """SQLAlchemy's ORM raised it, in a revision that reads rows through a session or its connection.

    Offline, a query returns nothing real (objects "deleted", no row found, a mock result), so the ORM fails
    where the project's own run would not: recording stopped, and the review says so as unchecked.
    """
    if not any(f.kind in ("orm-session", "bind-read") for f in cap.facts):
        return False
    tb, innermost = exc.__traceback__, None
    while tb is not None:
        innermost = tb.tb_frame.f_globals.get("__name__", "")
        tb = tb.tb_next
    return type(exc).__module__.startswith("sqlalchemy.orm") or (innermost or "").startswith("sqlalchemy.orm")


def _where(exc: BaseException, filename: str) -> int | None:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _empty_namespace(obj: Any) -> bool:
    """A namespace package (a folder with no ``__init__.py``) none of whose names were found here."""
    return isinstance(obj, types.ModuleType) and getattr(obj, "__file__", None) is None and hasattr(obj, "__path__") \
        and not isinstance(obj, _StandIn)


_MISSING_NAME = re.compile(r"cannot import name '(\w+)' from '((?:sqlalchemy|alembic)[\w.]*)'")


def _lend_missing_library_name(error: ImportError, lent: list[tuple[types.ModuleType, str]]) -> bool:
    """``from sqlalchemy.engine import LegacyCursorResult``: a name the SQLAlchemy/alembic the project pins has and
    the installed one does not. Lend the module a stand-in of that name while the revision loads (a failure of
    ours, not the revision's); True when lent."""
    m = _MISSING_NAME.search(str(error))
    owner = sys.modules.get(m.group(2)) if m else None
    if owner is None or hasattr(owner, m.group(1)) or len(lent) >= 10:
        return False
    setattr(owner, m.group(1), _StandIn(f"{m.group(2)}.{m.group(1)}"))
    lent.append((owner, m.group(1)))
    return True


def _stand_in_for_missing_names(module: types.ModuleType) -> set[str]:
    """``import app`` where ``app`` is a folder without its code (the application's source is not here, only its
    migrations): a name used from it later (``app.utils.database.UTCDateTime``) is a stand-in, as it would be had
    the import failed. Without this the phase stops at the first such name and what follows goes unrecorded.
    Returns the names of the packages given stand-ins."""
    given: set[str] = set()
    for value in list(vars(module).values()):
        if _empty_namespace(value) and "__getattr__" not in vars(value):
            value.__getattr__ = lambda attr, _ns=value.__name__: _StandIn(f"{_ns}.{attr}")  # PEP 562
            given.add(value.__name__.split(".")[0])
    return given


def _line_in(exc: BaseException, fn: Any) -> int | None:
    """The line of ``fn``'s own statement that was running when ``exc`` stopped it (a helper it called may be
    where the error is: that line is ``error_line``)."""
    # the engines' own functions, for upgrade(engine_name) run as each upgrade_<engine>() (:func:`_each_engine`)
    codes = getattr(fn, "engine_codes", None) or [getattr(fn, "__code__", None)]
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def capture_file(
    path: Path, *, root: Path, dialect: str, relpath: str | None = None, phase_seconds: float = PHASE_SECONDS,
    context: ProjectContext | None = None,
) -> RevisionCapture:
    """Record one revision file. Never raises for problems in the file itself.

    ``context`` (the project's env.py facts) is kept on the capture, and its ``target_metadata`` is handed
    to alembic as env.py would, so unnamed constraints get the names the project's convention gives them.
    """
    _install_patches()
    source = path.read_text(encoding="utf-8", errors="replace")
    header = parse_header(path, source)
    cap = RevisionCapture(
        path=path,
        relpath=relpath or str(path),
        revision=header.revision,
        down_revisions=header.down_revisions,
        message=header.message,
        dialect=dialect,
        source=source,
        context=context or ProjectContext(),
    )
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        cap.load_error = f"not valid Python: {e.msg} (line {e.lineno})"
        return cap
    cap.facts = source_facts(tree, root)
    cap.irreversible = irreversible_marker(tree, source)
    cap.upgrade_outcome.body = function_body_kind(tree, "upgrade")  # type: ignore[assignment]
    cap.downgrade_outcome.body = function_body_kind(tree, "downgrade")  # type: ignore[assignment]
    cap.downgrade_raises = body_kind(tree, "downgrade")[0] == "raise"
    cap.upgrade_refusal = refusal(tree, "upgrade")

    stand_ins: set[str] = set()
    lent: list[tuple[types.ModuleType, str]] = []  # names lent to SQLAlchemy/alembic modules while the file loads
    module = None
    for _ in range(5):  # each round replaces one more missing top-level module
        try:
            module = _load_module(path, stand_ins)
            break
        except ImportError as e:
            if _lend_missing_library_name(e, lent):
                continue
            # A missing module, or a name from a namespace package with no code here (the application's
            # source is not on this machine): stand in for it. Other ImportErrors are the revision's own.
            top = (e.name or "").split(".")[0]
            missing = isinstance(e, ModuleNotFoundError) or "(unknown location)" in str(e)
            if not top or top in stand_ins or not missing:
                cap.load_error = f"import failed: {e}"
                return cap
            stand_ins.add(top)
            for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
                sys.modules.pop(name, None)  # the empty namespace package would be found again
        except SystemExit as e:
            cap.load_error = f"the module calls sys.exit({e.code!r}) when imported"
            return cap
        except BaseException as e:  # user code at import time may raise anything
            line = _where(e, str(path))
            cap.load_error = f"importing it raised {type(e).__name__}: {e}" + (f" (line {line})" if line else "")
            return cap
    for owner, name in lent:
        delattr(owner, name)  # the revision's globals keep the stand-in; the library is as it was for the next file
    cap.lent_names = [f"{owner.__name__}.{name}" for owner, name in lent]
    if module is not None:
        stand_ins |= _stand_in_for_missing_names(module)
    cap.stubbed_modules = sorted(stand_ins)
    if module is None:
        cap.load_error = "import failed: too many missing modules"
        return cap

    for phase in ("upgrade", "downgrade"):
        fn = getattr(module, phase, None)
        if not callable(fn):
            continue
        fn = _each_engine(cap, module, phase, fn)
        args = _runner_arguments(fn)
        if args:
            cap.stand_in_arguments = sorted({f"{phase}({', '.join(args)})"} | set(cap.stand_in_arguments))
        _record_phase_choosing_branches(cap, phase, fn, args, phase_seconds)
        outcome = cap.outcome(phase)  # type: ignore[arg-type]
        if not outcome.completed and outcome.stop_line and not (phase == "upgrade" and cap.upgrade_refusal):
            recorded = {(r.kind, r.table, r.column) for r in cap.ops(phase)}  # type: ignore[arg-type]
            if (phase, outcome.stop_line) in cap.went_on:
                # what follows was recorded, except the statements that failed too: their drops are read from the source
                lines = [outcome.stop_line, *(line for p, line in cap.skipped_statements if p == phase)]
                found = [d for line in lines for d in drops_after(tree, phase, line, within_statement=True)]
            else:
                found = drops_after(tree, phase, outcome.stop_line)
            said = {" ".join(t.split()).lower() for r in cap.ops(phase) for t in r.sql}  # type: ignore[arg-type]
            found = [d for d in found if d.kind != "execute" or _deletes_rows(d, cap.dialect, said)]
            seen: set[tuple] = set()
            for d in found:
                if (d.kind == "execute" or (d.kind, d.table, d.column) not in recorded) and (d.kind, d.table, d.column, d.line) not in seen:
                    seen.add((d.kind, d.table, d.column, d.line))
                    cap.unrecorded_drops.append(d)
    return cap


def _deletes_rows(d: Any, dialect: str, recorded_sql: set[str]) -> bool:
    """The literal statement read from the source parses as a DELETE or TRUNCATE (not a log line that says "delete
    from"), and the phase did not record it."""
    from db_migrate.capture.sql import parse_sql

    stmts = parse_sql(d.sql or "", dialect)
    return len(stmts) == 1 and not stmts[0].parse_error and stmts[0].kind.upper() in ("DELETE", "TRUNCATE") \
        and " ".join((d.sql or "").split()).lower() not in recorded_sql


def _record_phase_choosing_branches(cap: RevisionCapture, phase: str, fn: Any, args: list[str], seconds: float) -> None:
    """Record ``phase``; where the revision branches on a stand-in, record it once with each answer for that line
    and keep the recording that went further (more operations, then finished), one line after another.

    A guard such as ``if not settings.database_url: return`` or ``if skip_on(dialect()): return`` tests a value
    that is not here: the path that goes on is the one that changes the database, which is what a review is for.
    Each answer taken is said in ``cap.assumed_branches``; a loop over a stand-in records no pass of its body.
    """
    answers: dict[int, bool] = {}
    guards = _guard_lines(cap)
    best = _record_phase(cap, phase, fn, args, seconds, answers, guards)
    while isinstance(best[2], _StandInBranch) and len(answers) < _MAX_BRANCHES and best[2].line not in answers:
        branch = best[2]
        tries = [(a, _record_phase(cap, phase, fn, args, seconds, {**answers, branch.line: a}, guards)) for a in (False, True)]
        # most operations; then a way that stopped at another value not here (it may go on, once that is answered)
        # over one that ended: ``if x not in names: return`` then ``if not pk[...]: create_primary_key``
        answer, best = max(tries, key=lambda t: (len(t[1][0]), isinstance(t[1][2], _StandInBranch), t[1][1].completed, not t[0]))
        answers[branch.line] = answer
        other = len(next(t for t in tries if t[0] != answer)[1][0])
        if branch.how == "loops over":
            said = (f"it loops over {branch.name}, a value not available here: its items are unknown, so no pass of "
                    "the loop's body was recorded")
        else:
            said = (f"it {branch.how.replace('branches on', 'tests')} {branch.name}, a value not available here: the "
                    f"way that goes on was recorded ({len(best[0])} operation(s)), not the other ({other})")
        cap.assumed_branches.append((phase, branch.line, said))
    for line in sorted(guards.used):
        cap.assumed_branches.append((phase, line, "it tests a value not available here that most of the project's "
                                     f"revisions guard on: taken as {str(guards[line]).lower()}, as they need it to be "
                                     "to go on"))
    ops_list, outcome, stopped = best
    if stopped is not None and outcome.stop_line and is_offline_artifact(outcome.error or ""):
        skipped: list[int] = []
        went_on = _past_the_stop(cap, phase, fn, outcome.stop_line, skipped)
        if went_on is not None:
            more, _, _ = _record_phase(cap, phase, went_on, args, seconds, answers, guards)
            if len(more) > len(ops_list):
                ops_list = more
                cap.went_on.append((phase, outcome.stop_line))
                cap.skipped_statements += [(phase, line) for line in sorted(set(skipped))]
    cap.ops(phase)[:] = ops_list  # type: ignore[arg-type]
    setattr(cap, f"{phase}_outcome", outcome)
    cap._statements.pop(phase, None)


def _past_the_stop(cap: RevisionCapture, phase: str, fn: Any, stop_line: int, skipped: list[int]) -> Any | None:
    """``phase``'s function again, each top-level statement from the one that stopped on: ``try: <it> except
    Exception: pass`` (stand-in branches still reach :func:`capture_file`).

    Offline, a read of rows (or a value not here) stops the phase, but what comes after it often does not depend
    on it: ``rows = conn.execute(...).fetchall()`` then ``op.add_column(...)``. Skipping what fails records the
    operations the revision runs anyway; what depends on the rows stays unknown (the review says so).
    """
    try:
        tree = ast.parse(cap.source)
    except SyntaxError:
        return None
    fdef = phase_function(tree, phase)
    if fdef is None or fdef.decorator_list or getattr(fn, "__code__", None) is None:
        return None
    at = next((i for i, st in enumerate(fdef.body) if st.lineno <= stop_line <= (st.end_lineno or st.lineno)), None)
    if at is None:
        return None

    def wrapped(st: ast.stmt) -> ast.stmt:
        handler = ast.ExceptHandler(type=ast.Name("Exception", ast.Load()), name="_dbm_error", body=[ast.Expr(ast.Call(
            ast.Name("__dbm_went_on__", ast.Load()), [ast.Name("_dbm_error", ast.Load()), ast.Constant(st.lineno)], []))])
        return ast.copy_location(ast.Try(body=[st], handlers=[handler], orelse=[], finalbody=[]), st)

    fdef.body = fdef.body[:at] + [wrapped(st) for st in fdef.body[at:]]
    code = compile(ast.fix_missing_locations(ast.Module(body=[fdef], type_ignores=[])), str(cap.path), "exec")
    fn.__globals__["__dbm_went_on__"] = functools.partial(_went_on, skipped)
    namespace: dict[str, Any] = {}
    exec(code, fn.__globals__, namespace)  # the revision's own function, recompiled: its globals, its file's lines
    return namespace.get(phase)


def _went_on(skipped: list[int], error: Exception, line: int) -> None:
    """A top-level statement from the stop on failed: note its line and go on (stand-in branches are answered)."""
    if isinstance(error, _StandInBranch):
        raise error  # answered per line like any other branch
    skipped.append(line)


def _guard_lines(cap: RevisionCapture) -> _Guards:
    """{line of a guard's test: value} for this revision's guards whose expression the project's history agrees on."""
    from db_migrate.capture.guards import guard_tests
    from db_migrate.capture.source import parsed

    known = cap.context.guards
    tree = parsed(cap.source) if known else None
    return _Guards({} if tree is None else {
        test.lineno: known[text] for _, test, _ in guard_tests(tree) if (text := ast.unparse(test)) in known
    })


def _record_phase(cap: RevisionCapture, phase: str, fn: Any, args: list[str], seconds: float,
                  answers: dict[int, bool], guards: _Guards | None = None,
                  ) -> tuple[list[RecordedOp], PhaseOutcome, BaseException | None]:
    """One recording of ``phase`` with the given stand-in answers: its operations, its outcome, what stopped it."""
    global _active
    path = str(cap.path)
    cap.ops(phase).clear()  # type: ignore[arg-type]
    cap._statements.pop(phase, None)
    outcome = PhaseOutcome(ran=True, body=cap.outcome(phase).body)  # type: ignore[arg-type]
    stopped: BaseException | None = None
    rec = _Recorder(cap, io.StringIO())
    rec.phase = phase
    rec.answers = answers
    rec.guards = guards if guards is not None else _Guards()
    _active = rec
    old_handler = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        with _offline_context(cap.dialect, rec.buf, cap.context) as ctx, Operations.context(ctx), no_connections():
            fn(*(_runner_argument(name) for name in args))
        outcome.completed = True
    except _PhaseTimeout as e:
        stopped = e
        outcome.error = f"{phase}() did not finish within {seconds:g} s (endless loop?)"
        outcome.stop_line = _line_in(e, fn)
    except SystemExit as e:
        stopped = e
        outcome.error = f"{phase}() calls sys.exit({e.code!r})"
        outcome.error_line = _where(e, path)
        outcome.stop_line = _line_in(e, fn)
    except NotImplementedError as e:
        stopped = e
        outcome.error = f"{phase}() raises NotImplementedError{': ' + str(e) if str(e) else ''}"
        outcome.error_line = _where(e, path)
        outcome.stop_line = _line_in(e, fn)
    except ModuleNotFoundError as e:
        stopped = e
        # imported inside the function, so no stand-in could be prepared: the environment lacks it
        outcome.error_line = _where(e, path)
        outcome.error = f"{phase}() imports {e.name}, {NOT_INSTALLED}"
        outcome.stop_line = _line_in(e, fn)
    except AttributeError as e:
        stopped = e
        outcome.error_line = _where(e, path)
        outcome.stop_line = _line_in(e, fn)
        if _empty_namespace(getattr(e, "obj", None)):
            # ``from app.db import migration`` found a folder without its code (the application's source is not
            # here): a name from it is missing here, not in the project
            outcome.error = f"{phase}() uses {e.obj.__name__}.{e.name}, from {NOT_INSTALLED} (a package folder without its code)"
        else:
            outcome.error = f"{phase}() stopped with {type(e).__name__}: {e}"
    except BaseException as e:
        stopped = e
        outcome.error_line = _where(e, path)
        outcome.error = f"{phase}() stopped with {type(e).__name__}: {e}"
        if _raised_reading_rows(e, cap):
            outcome.error += f" ({NO_ROWS})"
        outcome.stop_line = _line_in(e, fn)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        _active = None
    return list(cap.ops(phase)), outcome, stopped  # type: ignore[arg-type]


def _each_engine(cap: RevisionCapture, module: types.ModuleType, phase: str, fn: Any) -> Any:
    """Flask-Migrate's multi-database template: ``upgrade(engine_name='')`` calls ``upgrade_<engine>()`` by name, and
    its env.py runs the revision once per database. Offline no env.py names the engines, so the phase is every
    ``upgrade_<engine>`` of the file in turn (else only ``upgrade_()`` ran, and the others' operations went unseen)."""
    import inspect

    try:
        if "engine_name" not in inspect.signature(fn).parameters:
            return fn
    except (TypeError, ValueError):
        return fn
    path = str(cap.path)
    engines = sorted((f for name, f in vars(module).items() if name.startswith(f"{phase}_") and callable(f)
                      and getattr(getattr(f, "__code__", None), "co_filename", None) == path),
                     key=lambda f: f.__code__.co_firstlineno)
    if not engines:
        return fn
    cap.engine_functions.append((phase, fn.__code__.co_firstlineno, [f.__name__ for f in engines]))

    def every_engine() -> None:
        for f in engines:
            f()

    every_engine.engine_codes = [f.__code__ for f in engines]  # type: ignore[attr-defined]
    return every_engine


def _runner_arguments(fn: Any) -> list[str]:
    """Names of the required parameters of ``upgrade``/``downgrade`` (normally none).

    Some projects' env.py call ``upgrade(op, tables, tester)`` themselves; offline
    we pass alembic's ``op`` for a parameter named ``op`` and stand-ins for the rest,
    so the operations are still recorded.
    """
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [
        p.name for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def _runner_argument(name: str) -> Any:
    if name in ("op", "operations"):
        from alembic import op

        return op
    return _StandIn(f"<argument {name}>")


@contextlib.contextmanager
def _offline_context(dialect: str, buf: io.StringIO, project: ProjectContext | None = None):
    """An offline MigrationContext for ``dialect``, and alembic's ``context`` proxy for migrations that use it.

    ``project``: its ``target_metadata``, so alembic applies its naming convention as it does for real, and its
    config's main section (database URLs replaced by stand-ins), so a revision reading ``context.config`` or
    ``op.get_context().config`` finds the options the project gives it rather than failing on our bare config.
    """
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    project = project or ProjectContext()
    bare = Config()
    bare.set_main_option("script_location", str(Path(__file__).parent))
    script = ScriptDirectory.from_config(bare)
    cfg = Config(ini_section=project.ini_section)
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    # env.py often sets sqlalchemy.url itself (from the environment): a revision reading it finds one either way
    options = {"sqlalchemy.url": stand_in_url(f"{dialect}://"), **project.ini_options}
    for name, value in options.items():
        cfg.set_main_option(name, value.replace("%", "%%"))  # already interpolated: keep it as it reads
    with EnvironmentContext(cfg, script, as_sql=True) as env:
        env.configure(
            dialect_name=dialect,
            output_buffer=buf,
            literal_binds=True,
            transaction_per_migration=False,
            target_metadata=project.metadata,
        )
        ctx = env.get_context()
        _record_bind_execute(ctx)
        yield ctx


def _record_bind_execute(ctx: MigrationContext) -> None:
    """Make ``op.get_bind().execute(...)`` pass through ``invoke`` like ``op.execute``.

    Offline, the bind is a mock connection that only renders SQL: statements run
    through it (``conn.execute(sa.text("DELETE ..."))``, ``ENUM.create(bind)``)
    would otherwise reach the output without being recorded, and the rules
    would never see them.
    """
    from alembic.operations import ops

    conn = ctx.connection
    if conn is None or not hasattr(conn, "_execute_impl"):
        return
    render = conn._execute_impl

    def execute(construct: Any, *multiparams: Any, **params: Any) -> Any:
        if _active is None or isinstance(construct, ops.MigrateOperation):
            return render(construct, *multiparams, **params)
        return Operations(ctx).invoke(ops.ExecuteSQLOp(construct))

    conn._execute_impl = execute

    def commit() -> None:  # ``op.get_bind().commit()`` ends the migration's transaction: recorded as the COMMIT it sends
        Operations(ctx).invoke(ops.ExecuteSQLOp("COMMIT"))

    if not hasattr(conn, "commit"):
        conn.commit = commit
