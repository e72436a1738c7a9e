"""The worker side of the review: capture each revision, run every rule, summarise.

:func:`review_job` is what :func:`db_migrate.review.review_migration` runs in a
sandbox worker.  :func:`review_source` runs the same pipeline in-process on a
source string, for the rule examples and tests (trusted code only).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic.operations import ops

from db_migrate.capture.dialects import type_sql
from db_migrate.capture.model import UNKNOWN_OPERATION, RecordedOp, RevisionCapture
from db_migrate.capture.offline import (
    PLUGIN_OPERATION,
    is_library_version_artifact,
    is_offline_artifact,
    is_stand_in_artifact,
    library_versions,
)
from db_migrate.preflight.details import data_detail
from db_migrate.rules._helpers import classify_type_change
from db_migrate.review.model import Operation, RevisionOutcome, RevisionReview, StoppedPhase, SuppressedFinding
from db_migrate.verdict import WHOLE_REVISION, Finding, Unchecked, sort_findings

_IGNORE = re.compile(r"#\s*db-migrate:\s*ignore(-file)?\[([\w\-,\s]+)\]\s*(.*)")



def review_job(
    files: list[tuple[str, str]], root: str, dialect: str, phase_seconds: float = 10,
    config_file: str | None = None, section: str | None = None, target_version: str | None = None,
) -> list[RevisionOutcome]:
    """Capture and review each ``(path, relpath)``; one outcome per file, in order.

    ``config_file``/``section`` name the project's alembic config: its env.py is read once for the
    facts every revision shares (:mod:`db_migrate.capture.context`).  ``target_version`` is the
    policy's (``"postgresql 11"``): rules see its numbers when it names the dialect reviewed for.
    """
    import sys

    from db_migrate.capture.context import ensure_metadata, prepend_sys_path, read_project_context
    from db_migrate.capture.recorder import capture_file
    from db_migrate.policy.settings import parse_target_version
    from db_migrate.rules.add_column import needs_model
    from db_migrate.rules.naming import needs_naming_convention

    target = parse_target_version(target_version) if target_version else None
    prepend_sys_path(config_file, section)
    context = read_project_context(config_file, section)
    out = []
    for path, relpath in files:
        # each revision is loaded as alembic would load it alone: what another revision imported (a
        # stand-in for a missing module, a helper module's state) is gone; the models env.py imported stay
        shared = set(sys.modules)
        options = dict(root=Path(root), dialect=dialect, relpath=relpath, phase_seconds=phase_seconds)
        cap = capture_file(Path(path), context=context, **options)
        if not context.metadata_read and needs_naming_convention(cap):
            # only now is env.py run for target_metadata; record again so alembic applies its convention
            before_env = set(sys.modules)
            ensure_metadata(context)
            shared |= set(sys.modules) - before_env
            if context.metadata is not None:
                cap = capture_file(Path(path), context=context, **options)
        elif not context.metadata_read and needs_model(cap):
            before_env = set(sys.modules)
            ensure_metadata(context)  # the model's default for a new NOT NULL column (what existing rows get)
            shared |= set(sys.modules) - before_env
        for name in set(sys.modules) - shared:
            sys.modules.pop(name, None)
        if target is not None and target[0] == ("mysql" if dialect == "mariadb" else dialect):
            cap.target_version = target[1]
        outcome = review_capture(cap)
        outcome.context_files = list(context.files)
        out.append(outcome)
    return out


def review_capture(cap: RevisionCapture) -> RevisionOutcome:
    """Run every rule that applies over one capture."""
    from db_migrate.rules import all_rules

    unchecked = _unchecked(cap)
    findings: list[Finding] = []
    if cap.load_error is None:
        for rule in all_rules():
            if not rule.applies_to(cap.dialect):
                continue
            try:
                findings.extend(rule.check(cap))
            except Exception as e:  # a rule bug must not hide the others' findings
                unchecked.append(Unchecked(what=f"rule {rule.id}", reason=f"the rule failed: {type(e).__name__}: {e}", revision=cap.revision, path=cap.relpath))
    kept, suppressed = _apply_suppressions(cap, _merge_loops(findings, _def_lines(cap.source)))
    return RevisionOutcome(
        review=_summarise(cap),
        findings=sort_findings(kept),
        suppressed=suppressed,
        unchecked=unchecked,
        load_error=cap.load_error,
    )


#: A rule firing at one line for at least this many tables is a loop over tables: one finding says it.
_LOOP_TABLES = 3


def _def_lines(source: str) -> set[int]:
    """Lines of ``def`` statements: a finding anchored there is about the function, not one statement."""
    import ast

    from db_migrate.capture.source import parsed

    tree = parsed(source)
    return {n.lineno for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))} if tree else set()


def _merge_loops(findings: list[Finding], def_lines: set[int] = frozenset()) -> list[Finding]:
    """Findings of one rule at one line for many tables (``for table in TABLES: op.alter_column(table, ...)``)
    become one finding naming the tables: the source has one statement to fix, not dozens."""
    groups: dict[tuple, list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.rule, f.line, f.phase, f.severity), []).append(f)
    out: list[Finding] = []
    for f in findings:
        group = groups[(f.rule, f.line, f.phase, f.severity)]
        tables = list(dict.fromkeys(g.table for g in group if g.table))
        if f.line is None or f.line in def_lines or len(tables) < _LOOP_TABLES:
            out.append(f)
        elif f is group[0]:
            shown = ", ".join(tables[:8]) + (f" and {len(tables) - 8} more" if len(tables) > 8 else "")
            out.append(f.model_copy(update=dict(
                message=f"{f.message} The same line does this for {len(tables)} tables in a loop ({shown}), "
                f"{len(group)} time(s) in all.", column=None,
            )))
    return out


def _unchecked(cap: RevisionCapture) -> list[Unchecked]:
    out: list[Unchecked] = []

    def add(what: str, reason: str, line: int | None = None) -> None:
        out.append(Unchecked(what=what, reason=reason, revision=cap.revision, path=cap.relpath, line=line))

    if cap.load_error:
        if is_stand_in_artifact(cap.load_error) or is_library_version_artifact(cap.load_error):
            add(WHOLE_REVISION, f"importing it needs what is not available here (a module not "
                f"installed, or an API of another SQLAlchemy/alembic version), not a fault of the revision: {cap.load_error}")
        else:
            add(WHOLE_REVISION, cap.load_error)
        return out
    if cap.stubbed_modules:
        add(
            "values taken from " + ", ".join(cap.stubbed_modules),
            "not installed here; stand-ins were used, so types and values from these modules are unknown",
        )
    for phase, line, sentence in cap.assumed_branches:
        add(f"{phase}() at line {line}, the way not taken", sentence, line)
    if cap.lent_names:
        add(f"values of {', '.join(cap.lent_names)}", f"{library_versions()} (what db-migrate runs revisions with) "
            "lack these names, which the version the project pins has: stand-ins were used", None)
    for phase, line, functions in cap.engine_functions:
        add(f"{phase}() at line {line}, one database at a time", f"{phase}(engine_name) runs {phase}_<engine>() for the "
            f"database env.py names: {', '.join(functions)} were recorded in turn as if on one database, so what one "
            "does to another's tables is not told apart", line)
    if cap.stand_in_arguments:
        add(
            "values of the arguments of " + ", ".join(cap.stand_in_arguments),
            "the project's own runner passes them; offline, alembic's op was passed and stand-ins for the others",
        )
    for phase in ("upgrade", "downgrade"):
        o = cap.outcome(phase)  # type: ignore[arg-type]
        if not o.error:
            continue
        if is_stand_in_artifact(o.error):
            why = ("it uses a value from a module or argument that is not available here, so recording stopped: what "
                   "it does after that line is not checked")
        elif PLUGIN_OPERATION in o.error:
            why = ("it calls an operation a plugin registers (imported by the project's env.py, not available here), "
                   "so recording stopped: what it does after that line is not checked")
        elif is_library_version_artifact(o.error):
            why = (f"it uses an API that {library_versions()} (what db-migrate runs revisions with) no longer has, "
                   "though the SQLAlchemy/alembic the project pins may: a failure of ours, not the revision's, so what "
                   "it does after that line is not checked")
        elif is_offline_artifact(o.error):
            why = "it reads data through the connection, which offline analysis cannot do"
        else:
            continue  # the revision's own error: migration-raises says so
        # the phase's own statement that was running; the error itself may be in a helper it called
        at = o.stop_line or o.error_line
        inner = f"; at line {o.error_line}, in what that line calls" if o.error_line and o.error_line != at else ""
        if (phase, o.stop_line) in cap.went_on:
            why = why.split(", so recording stopped")[0] + (
                ": recording skipped each statement that failed offline and went on, so the operations after it were "
                "recorded, but what depends on the values it could not have is not checked")
        add(f"{phase}() after line {at or '?'}", f"{why} ({o.error}{inner})", at)
    for rec in cap.upgrade + cap.downgrade:
        if rec.kind == UNKNOWN_OPERATION:
            add(
                f"op.{rec.op.name} in {rec.phase}() at line {rec.line or '?'}",
                "alembic defines no such operation: a plugin the project's env.py imports adds it to op (or it is a "
                "mistake). It was recorded where it runs and the rest of the phase was recorded, but what it does is "
                "not checked",
                rec.line,
            )
            continue
        if rec.render_error and not (isinstance(rec.op, ops.DropConstraintOp) and not rec.op.constraint_name):
            add(f"SQL of {rec.kind} on {rec.table or '?'}", rec.render_error, rec.line)
    for phase in ("upgrade", "downgrade"):
        for rec, stmt in cap.statements(phase):  # type: ignore[arg-type]
            if stmt.parse_error:
                add(
                    f"raw SQL in {phase}() at line {rec.line or '?'}: {' '.join(stmt.text.split())[:80]}",
                    f"the {cap.dialect} parser cannot read it ({stmt.parse_error}), so no rule checked what it does",
                    rec.line,
                )
    reads = cap.facts_of("bind-read") + cap.facts_of("orm-session")
    if reads:
        add("what the data migration does with the rows it reads", "rows are only known on a real database; run test_roundtrip", reads[0].line)
    return out


def _apply_suppressions(cap: RevisionCapture, findings: list[Finding]) -> tuple[list[Finding], list[Finding]]:
    """Drop findings silenced by ``# db-migrate: ignore[rule-id] reason`` on the line or the line above."""
    lines = cap.source.splitlines()
    # rule id -> the reason written after the comment (the first one that names the rule wins)
    file_ignores: dict[str, str] = {}
    line_ignores: dict[int, dict[str, str]] = {}
    for no, text in enumerate(lines, start=1):
        m = _IGNORE.search(text)
        if not m:
            continue
        reason = m.group(3).strip()
        ids = {i.strip(): reason for i in m.group(2).split(",") if i.strip()}
        if m.group(1):
            file_ignores = {**ids, **file_ignores}
        else:
            for at in (no, no + 1):
                line_ignores[at] = {**ids, **line_ignores.get(at, {})}
    kept, dropped = [], []
    for f in findings:
        ids = {**file_ignores, **line_ignores.get(f.line or -1, {})}
        for key in (f.rule, "all"):
            if key in ids:
                dropped.append(SuppressedFinding(**f.model_dump(), reason=ids[key] or None))
                break
        else:
            kept.append(f)
    return kept, dropped


def _default_str(d: Any) -> str | None:
    if d is None or d is False:
        return None
    arg = getattr(d, "arg", d)
    text = getattr(arg, "text", None)
    if text is not None:
        return str(text)
    try:
        return str(arg)
    except Exception:
        return type(arg).__name__


def _detail(rec: RecordedOp, dialect: str) -> dict[str, Any]:
    from db_migrate.rules._helpers import adds_primary_key

    op = rec.op
    d: dict[str, Any] = {}
    if isinstance(op, ops.AddColumnOp):
        c = op.column
        d.update(
            type=type_sql(c.type, dialect), nullable=bool(c.nullable), server_default=_default_str(c.server_default),
            primary_key=adds_primary_key(rec), unique=bool(c.unique),
            foreign_keys=[fk.target_fullname for fk in c.foreign_keys] or None,
        )
    elif isinstance(op, ops.DropColumnOp):
        kw = op.kw
        d.update(existing_type=type_sql(kw.get("existing_type"), dialect), existing_nullable=kw.get("existing_nullable"))
    elif isinstance(op, ops.AlterColumnOp):
        d.update(
            nullable=op.modify_nullable,
            existing_nullable=op.existing_nullable,
            type=type_sql(op.modify_type, dialect),
            existing_type=type_sql(op.existing_type, dialect),
            server_default=_default_str(op.modify_server_default) if op.modify_server_default is not False else None,
            server_default_changed=op.modify_server_default is not False,
            existing_server_default=_default_str(op.existing_server_default),
            new_column_name=op.modify_name,
            # how the database takes the type change (widen: catalogue only), so classify agrees with the review
            type_change=classify_type_change(op.existing_type, op.modify_type, dialect) if op.modify_type is not None else None,
        )
    elif isinstance(op, ops.CreateTableOp):
        d.update(columns=[c.name for c in op.columns if hasattr(c, "name") and hasattr(c, "type")])
    elif isinstance(op, ops.CreateIndexOp):
        d.update(
            name=op.index_name, unique=bool(op.unique), columns=[str(getattr(c, "name", c)) for c in op.columns],
            postgresql_concurrently=bool(op.kw.get("postgresql_concurrently")),
        )
    elif isinstance(op, ops.DropIndexOp):
        d.update(name=op.index_name, postgresql_concurrently=bool(op.kw.get("postgresql_concurrently")))
    elif isinstance(op, ops.CreateForeignKeyOp):
        d.update(name=op.constraint_name, referent_table=op.referent_table, columns=list(op.local_cols), remote_columns=list(op.remote_cols))
    elif isinstance(op, (ops.CreateUniqueConstraintOp, ops.CreatePrimaryKeyOp)):
        d.update(name=op.constraint_name, columns=list(op.columns))
    elif isinstance(op, ops.CreateCheckConstraintOp):
        d.update(name=op.constraint_name, condition=str(op.condition))
    elif isinstance(op, ops.DropConstraintOp):
        d.update(name=op.constraint_name, constraint_type=op.constraint_type)
    elif isinstance(op, ops.RenameTableOp):
        d.update(new_table_name=op.new_table_name)
    elif isinstance(op, ops.ExecuteSQLOp):
        text = op.sqltext if isinstance(op.sqltext, str) else "; ".join(rec.sql)
        d.update(sql=text[:2000])
    elif isinstance(op, ops.BulkInsertOp):
        d.update(rows=len(op.rows))
    elif rec.kind == UNKNOWN_OPERATION:
        d.update(operation=f"op.{op.name}")
    d["from_sql"] = rec.from_sql or None  # an alembic operation written as raw SQL in op.execute
    d.update(data_detail(op))  # what preflight asks the data about (enum labels, USING, NOT VALID, WHERE)
    d["in_autocommit_block"] = rec.in_autocommit_block or None
    d["implied"] = rec.implied or None  # run by the operation before it (create_table's CREATE TYPE), not in the file
    d["batch"] = bool(rec.batch_table) or None
    return {k: _plain(v) for k, v in d.items() if v is not None}


def _plain(value: Any) -> Any:
    """``value`` as the plain data an Operation's detail holds: a stand-in for a module that is not installed
    (a column named by the application's own code) becomes its text instead of failing the whole review."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _stated(source: str) -> dict:
    from db_migrate.capture.source import stated_one_way, stated_rows

    found, one_way = stated_rows(source), stated_one_way(source)
    return {**(dict(stated_rows=found[0], stated_rows_where=f"line {found[1]}: {found[2]}") if found else {}),
            **(dict(stated_one_way=f"line {one_way[0]}: {one_way[1]}") if one_way else {})}


_CHECKFIRST = re.compile(r"\bcheckfirst\s*=\s*True\b")


def _summarise(cap: RevisionCapture) -> RevisionReview:
    from db_migrate.capture.source import emptiness_checked, parsed
    from db_migrate.rules._helpers import (
        clears_orphans, copied_out, only_nulls_left, overwrites_nothing_kept, raw_tables_created, tables_dropped_after,
        unknown_to_history,
    )

    operations: list[Operation] = []
    tree = parsed(cap.source)
    for phase in ("upgrade", "downgrade"):
        checked = emptiness_checked(tree, phase) if tree is not None else {}
        stmts: dict[int, list] = {}
        for rec, stmt in cap.statements(phase):  # type: ignore[arg-type]
            stmts.setdefault(rec.index, []).append(stmt)
        created: set[str] = set()
        for rec in cap.ops(phase):  # type: ignore[arg-type]
            detail = _detail(rec, cap.dialect)
            table = rec.table
            if rec.index in stmts:
                parsed = stmts[rec.index]
                detail["sql_kind"] = parsed[0].kind
                tables = [t for s in parsed for t in s.tables]
                detail["tables"] = list(dict.fromkeys(tables))
                if any(s.has_where is False for s in parsed):
                    detail["has_where"] = False
                if all(overwrites_nothing_kept(cap, rec, s) for s in parsed):
                    detail["overwrites_nothing_kept"] = True  # only what the migrations wrote is overwritten
                if all(s.kind.upper() in ("CREATE TYPE", "CREATEENUM", "CREATE ENUM") for s in parsed) \
                        and _CHECKFIRST.search(cap.source_line(rec.line)):
                    detail["checkfirst"] = True  # enum.create(bind, checkfirst=True): a re-upgrade finds it and goes on
                if all(clears_orphans(cap, rec, s) for s in parsed):
                    detail["clears_orphans"] = True  # rows a foreign key made next forbids: nothing to put back
                table = table or (tables[0] if tables else None)
            if table in checked and rec.line and rec.line > checked[table] and "drop" in rec.kind:
                detail["checked_empty_at_line"] = checked[table]  # the revision stops first when it has rows
            if isinstance(rec.op, ops.DropColumnOp) and (emptied := only_nulls_left(cap, rec)):
                detail["only_nulls_after_line"] = emptied  # the rows with a value there were deleted first
            if unknown_to_history(cap, rec):
                detail["unknown_to_history"] = True  # DROP TABLE IF EXISTS of a table no other revision creates
            made = raw_tables_created(cap, rec)
            if table in made and table in tables_dropped_after(cap, rec):
                detail["transient"] = True  # a table this phase makes and drops again (a temporary map)
            if isinstance(rec.op, ops.DropTableOp) and (moved := copied_out(cap, rec)):
                detail["copied_out_at_line"] = moved[0]  # its rows were written into another table first
            operations.append(
                Operation(
                    revision=cap.revision, phase=phase, kind=rec.kind, table=table, column=rec.column,  # type: ignore[arg-type]
                    line=rec.line, detail=detail, sql=rec.sql, table_created_here=table in created,
                )
            )
            if isinstance(rec.op, ops.CreateTableOp):
                created.add(rec.op.table_name)
            created |= made
        for d in (d for d in cap.unrecorded_drops if d.phase == phase):
            # never recorded (the phase stopped at d.after_line), read from the source: it drops what it names
            detail: dict[str, Any] = {"unrecorded_after_line": d.after_line}
            if d.table in checked and d.line > checked[d.table]:
                detail["checked_empty_at_line"] = checked[d.table]
            if d.schema:
                detail["schema"] = d.schema
            if d.sql:
                detail["sql"] = d.sql
            operations.append(Operation(
                revision=cap.revision, phase=phase, kind=d.kind, table=d.table, column=d.column,  # type: ignore[arg-type]
                line=d.line, detail=detail, table_created_here=d.table in created,
            ))
    return RevisionReview(
        revision=cap.revision,
        path=cap.relpath,
        message=cap.message,
        down_revisions=list(cap.down_revisions),
        operations=operations,
        reads_data=bool(cap.facts_of("bind-read") or cap.facts_of("orm-session")),
        stopped=[
            StoppedPhase(phase=phase, line=o.stop_line or o.error_line, reason=o.error or "it stopped early")  # type: ignore[arg-type]
            # (a downgrade that is only ``raise NotImplementedError`` did not stop: it is the whole way back, none)
            for phase in ("upgrade", "downgrade") if not cap.captured(phase) and (o := cap.outcome(phase))  # type: ignore[arg-type]
            and o.body != "not-implemented"
        ],
        **_stated(cap.source),
    )


def review_source(
    source: str, *, dialect: str = "postgresql", root: Path | None = None, context: Any = None,
    files: Sequence[tuple[str, str]] = (),
) -> RevisionOutcome:
    """Review a revision module given as text, in this process. For rule examples and tests only.

    ``context``: a :class:`~db_migrate.capture.context.ProjectContext` standing for the project's env.py.
    ``files``: (relative path, text) of project files beside it (without ``root``), e.g. an application module.
    """
    from db_migrate.capture.recorder import capture_file

    if "revision" not in source.split("def ", 1)[0]:
        source = _EXAMPLE_HEADER + source
    with tempfile.TemporaryDirectory() as tmp:
        for rel, text in files:
            target = Path(tmp, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        path = Path(tmp, "example_revision.py")
        path.write_text(source, encoding="utf-8")
        cap = capture_file(path, root=root or Path(tmp), dialect=dialect, relpath="example_revision.py", context=context)
        return review_capture(cap)


_EXAMPLE_HEADER = '''"""example

Revision ID: 0000000000a1
Revises: 0000000000a0
"""
from alembic import op
import sqlalchemy as sa

revision = "0000000000a1"
down_revision = "0000000000a0"
branch_labels = None
depends_on = None

'''
