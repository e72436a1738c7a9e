"""Is the downgrade real? Missing, not the inverse of the upgrade, or unable to bring data back."""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from alembic.operations import ops

from db_migrate.capture.sql import needs_no_inverse
from db_migrate.rules import _fixes as fx
from db_migrate.rules._helpers import (
    alters_nothing,
    classify_type_change,
    execute_text,
    foreign_key_name,
    function_line,
    function_span,
    is_new_column,
    is_new_table,
    mentions,
    name_taken_again,
    overwrites_nothing_kept,
    refuses_too_long,
    spell,
)
from db_migrate.rules.base import Example, Rule
from db_migrate.rules.enums import implied_drop_types
from db_migrate.rules.naming import created_name
from db_migrate.verdict import Finding, SourceEdit

_NO_DOWNGRADE = ("missing", "pass", "not-implemented")
#: Statement kinds that drop an object together with its indexes (and constraints, triggers).
_DROPS_WITH_CHILDREN = ("DROP TABLE", "DROP MATVIEW", "DROP MATERIALIZED VIEW", "DROP VIEW")

# What an operation creates or destroys: (object kind, table, name).
_Key = tuple[str, str | None, str | None]


def _object(op: Any, cap: Any = None) -> tuple[str, _Key] | None:
    """("create" | "drop", key) for operations that create or destroy one schema object; with ``cap``, a constraint
    created without a name under the name the project's convention or the database gives it."""
    if isinstance(op, (ops.AddColumnOp, ops.DropColumnOp)):
        name = op.column.name if isinstance(op, ops.AddColumnOp) else op.column_name
        if not isinstance(name, str):
            return None  # drop_column('t', sa.Column(...)): no name to match (the call itself fails when it runs)
        return ("create" if isinstance(op, ops.AddColumnOp) else "drop"), ("column", op.table_name, name)
    if isinstance(op, (ops.CreateTableOp, ops.DropTableOp)):
        return ("create" if isinstance(op, ops.CreateTableOp) else "drop"), ("table", None, op.table_name)
    if isinstance(op, (ops.CreateIndexOp, ops.DropIndexOp)):
        return ("create" if isinstance(op, ops.CreateIndexOp) else "drop"), ("index", None, str(op.index_name))
    if isinstance(op, (ops.AddConstraintOp, ops.DropConstraintOp)) and op.constraint_name:
        table = getattr(op, "table_name", None) or getattr(op, "source_table", None)  # foreign keys: source_table
        return ("create" if isinstance(op, ops.AddConstraintOp) else "drop"), ("constraint", table, str(op.constraint_name))
    if cap is not None and type(op) in _UNNAMED_KEY and not op.constraint_name:
        table = getattr(op, "table_name", None) or getattr(op, "source_table", None)
        cols = list(getattr(op, "local_cols", None) or fx.column_names(getattr(op, "columns", None) or []))
        name = created_name(cap, _UNNAMED_KEY[type(op)], table or "", cols, getattr(op, "referent_table", None))
        return ("create", ("constraint", table, name)) if name else None
    return None


#: The naming-convention key of each constraint alembic creates by itself.
_UNNAMED_KEY = {ops.CreateForeignKeyOp: "fk", ops.CreateUniqueConstraintOp: "uq", ops.CreateCheckConstraintOp: "ck"}


def _columns(op: Any) -> list[str]:
    """Columns an index or constraint is built on, or its expressions' SQL (empty when unknown)."""
    cols = getattr(op, "columns", None) or getattr(op, "local_cols", None) or []
    return [str(getattr(c, "name", c)) for c in cols]


def _describe(key: _Key) -> str:
    kind, table, name = key
    return {"column": f"column {table}.{name}", "table": f"table {name}", "index": f"index {name}"}.get(kind, f"constraint {name} on {table}")


def _expected(op: Any) -> tuple[str, _Key] | None:
    """What the downgrade must do to undo ``op``: alembic's own reverse() when it can build one."""
    obj = _object(op)
    if obj is None:
        return None
    try:
        rev = _object(op.reverse())  # AddColumnOp -> DropColumnOp, CreateIndexOp -> DropIndexOp...
    except Exception:  # DropColumnOp/DropConstraintOp without the original object cannot reverse
        rev = None
    return rev or ("drop" if obj[0] == "create" else "create", obj[1])


def _canonical(cap) -> Callable[[_Key], _Key]:
    """Keys under the names objects had before this revision, so rules follow renames within it.

    The upgrade renames table ``a`` to ``b`` (or column ``x`` to ``y``): an index or key the downgrade re-creates
    on ``a`` after renaming back is the same object the upgrade dropped on ``b``.
    """
    tables: dict[str, str] = {}
    columns: dict[tuple[str | None, str], str] = {}
    # a name given to op.create_*_constraint is wrapped by a naming convention holding %(constraint_name)s
    # (``ck__%(table_name)s__%(constraint_name)s``): the downgrade drops it under the name the database has
    given = {(r.table, str(r.op.constraint_name)) for r in cap.upgrade if isinstance(r.op, ops.AddConstraintOp) and r.op.constraint_name}
    for r in cap.upgrade:
        if isinstance(r.op, ops.RenameTableOp):
            tables[r.op.new_table_name] = tables.get(r.op.table_name, r.op.table_name)
        elif isinstance(r.op, ops.AlterColumnOp) and r.op.modify_name:
            t = tables.get(r.op.table_name, r.op.table_name)
            columns[(t, r.op.modify_name)] = columns.get((t, r.op.column_name), r.op.column_name)

    def canon(key: _Key) -> _Key:
        kind, table, name = key
        if kind == "table":
            return kind, None, tables.get(str(name), name)
        t = tables.get(table, table) if table else table
        if kind == "column":
            name = columns.get((t, str(name)), name)
        elif kind == "constraint" and table and (table, str(name)) not in given:
            name = next((n for gt, n in given if gt == table and str(name).endswith("_" + n) and table in str(name)), name)
        return kind, t, name

    return canon


def _looped_calls(cap, phase: str) -> set[str]:
    """The operations (``drop_constraint``, ``create_index``...) called in the bodies of ``phase``'s loops over values
    not here (``for c in inspector.get_check_constraints('t')``): recording made no pass of them, so what they do to
    an object of that kind is unknown, not absent."""
    from db_migrate.capture.source import parsed

    tree = parsed(cap.source)
    lines = {line for p, line, said in cap.assumed_branches if p == phase and said.startswith("it loops over")}
    loops = [n for n in ast.walk(tree) if isinstance(n, (ast.For, ast.comprehension)) and getattr(n, "lineno", None) in lines
             or isinstance(n, ast.For) and n.iter and getattr(n.iter, "lineno", None) in lines] if tree is not None and lines else []
    return {c.func.attr for loop in loops for c in ast.walk(loop) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)}


def _touched_after_stop(cap, name: str | None) -> bool:
    """The upgrade stopped early (offline) and its unrecorded rest names this object in a string (an operation's
    argument, not an ORM attribute): it may rename or drop it."""
    o = cap.upgrade_outcome
    at = o.stop_line or o.error_line  # upgrade()'s own statement that was running (the error may be in a helper)
    if cap.captured("upgrade") or not at or not name:
        return False
    end = (function_span(cap, "upgrade") or (0, 0))[1]
    rest = "\n".join(cap.source.splitlines()[at:end])
    return re.search(r"['\"]" + re.escape(str(name)) + r"['\"]", rest) is not None


def _superseded(cap, canon) -> set[int]:
    """Upgrade operations a later one on the same object undoes: ``drop_index(if_exists=True)`` then
    ``create_index`` rebuilds the index (a common guard against an INVALID leftover of a concurrent build);
    the net effect, which the downgrade must undo, is the create alone.  An object created and dropped within
    the upgrade (a CHECK that lets SET NOT NULL skip its scan) leaves nothing to undo: both are superseded."""
    last: dict[_Key, tuple[int, str]] = {}
    out: set[int] = set()
    for r in cap.upgrade:
        obj = _object(r.op)
        if obj is None:
            continue
        key = canon(obj[1])
        if key in last:
            out.add(last[key][0])
            if last[key][1] == "create" and obj[0] == "drop":
                out.add(r.index)
                del last[key]
                continue
        last[key] = (r.index, obj[0])
    return out


_USING_INDEX = re.compile(
    r"\bADD\s+CONSTRAINT\s+([\w\"]+)\s+(?:UNIQUE|PRIMARY\s+KEY)\s+USING\s+INDEX\s+([\w\"]+)", re.IGNORECASE
)


def _indexes_dropped_with_constraints(cap, done: set, raw_down: str) -> set:
    """Indexes the downgrade drops implicitly: a constraint created ``USING INDEX`` takes its index with it."""
    out = set()
    for _, stmt in cap.statements("upgrade"):
        for m in _USING_INDEX.finditer(stmt.text):
            constraint, index = m.group(1).strip('"'), m.group(2).strip('"')
            if mentions(raw_down, constraint) or any(v == "drop" and k[0] == "constraint" and k[2] == constraint for v, k in done):
                out.add(("drop", ("index", None, index)))
    return out


def _helper_drops(cap, name: str) -> bool:
    """downgrade() calls a function named like a drop with ``name`` as a string argument: the project's own
    helper (not recorded when it is a stand-in) drops the object."""
    span = function_span(cap, "downgrade")
    if not span or not name:
        return False
    body = "\n".join(cap.source.splitlines()[span[0] - 1:span[1]])
    return re.search(r"\w*drop\w*\s*\(\s*['\"]" + re.escape(name) + r"['\"]", body, re.IGNORECASE) is not None


def _json_round_trip(old, new) -> bool:
    """Text or JSON stored as JSON/JSONB: the documents come back on the way down (only their spacing and key
    order are normalised, which no reader of JSON relies on)."""
    old = sa.types.to_instance(old) if old is not None else None
    return isinstance(sa.types.to_instance(new), sa.JSON) and isinstance(old, (sa.JSON, sa.String))


def _alters(phase_ops) -> dict[tuple[str, str], list[ops.AlterColumnOp]]:
    out: dict[tuple[str, str], list[ops.AlterColumnOp]] = {}
    for r in phase_ops:
        if isinstance(r.op, ops.AlterColumnOp):
            out.setdefault((r.op.table_name, r.op.column_name), []).append(r.op)
    return out


def _only_kept(cap) -> bool:
    """The upgrade only runs statements a downgrade leaves in place (enum values, extensions, COMMIT), and that is
    all it does: a phase whose recording stopped (a read of rows, then writes in a loop) did more than its reads."""
    if not cap.upgrade_outcome.completed:
        return False
    return bool(cap.upgrade) and all(isinstance(r.op, ops.ExecuteSQLOp) for r in cap.upgrade) and all(
        needs_no_inverse(stmt) for _, stmt in cap.statements("upgrade")
    )


def _undo(cap, rec) -> str | None:
    """Python that undoes one upgrade operation (None when alembic cannot tell what would)."""
    rev = fx.inverse(rec.op) or _created_before(cap, rec)
    if rev is None:
        return None
    code = fx.op_code(rev, batch=cap.dialect == "sqlite")
    if cap.dialect in ("mysql", "mariadb") and isinstance(rec.op, ops.AddColumnOp):
        # MySQL/MariaDB refuse to drop a column a foreign key uses (drop-column-in-foreign-key): the key goes first
        keys = [foreign_key_name(fk) for fk in rec.op.column.foreign_keys]
        if any(k is None for k in keys):
            return None  # an unnamed key cannot be dropped by name here
        code = "\n".join([*(fx.op_code(ops.DropConstraintOp(k, rec.op.table_name, type_="foreignkey", schema=rec.op.schema))
                             for k in keys), code])
    if cap.dialect == "postgresql":  # drop_table leaves the enum types create_table made
        code = "\n".join([code, *implied_drop_types(cap, rec)])
    return fx.autocommit(code) if rec.in_autocommit_block else code


def _created_before(cap, rec) -> ops.MigrateOperation | None:
    """A dropped index as the revision that created it wrote it (``op.create_index`` with literal arguments in the
    history): what re-creates it, where the drop alone does not say (a raw ``DROP INDEX``, ``op.drop_index``)."""
    op = rec.op
    known = cap.context.indexes.get(op.index_name) if isinstance(op, ops.DropIndexOp) and op.index_name else None
    if known is None or (op.table_name and op.table_name != known[0]):
        return None
    table, columns, unique = known
    return ops.CreateIndexOp(op.index_name, table, list(columns), unique=unique, schema=op.schema)


def _leaves_nothing(cap, rec) -> bool:
    """An op.execute whose statements leave nothing a downgrade must undo: settings, transaction control,
    statements a downgrade rightly keeps (:func:`needs_no_inverse`)."""
    if not isinstance(rec.op, ops.ExecuteSQLOp):
        return False
    stmts = cap.statements_of(rec)
    return bool(stmts) and all(s.kind.upper() in ("SET", "SELECT") or needs_no_inverse(s) for s in stmts)


def _undo_lines(cap) -> tuple[list[str], bool]:
    """The undo of each upgrade operation in reverse order, and whether every one could be written."""
    lines, whole = [], True
    kept = {id(r) for r in cap.upgrade if _leaves_nothing(cap, r)}
    for rec in reversed(cap.upgrade):
        if rec.implied or id(rec) in kept:
            continue  # undone with the operation that ran it; or nothing to undo (SET, COMMIT, ADD VALUE...)
        code = _undo(cap, rec)
        if code is None:
            where = f" on {rec.table}" if rec.table else ""
            lines.append(f"# {rec.kind}{where} (line {rec.line}): undo by hand, or keep the raise if it cannot be undone")
            whole = False
        else:
            lines.append(code)
    return lines, whole


@fx.tailored
def _downgrade_body(cap) -> str | None:
    """``def downgrade():`` undoing the upgrade's operations in reverse order; None if none can be undone."""
    lines, whole = _undo_lines(cap)
    if not lines or (not whole and all(line.startswith("# ") for line in lines)):
        return None
    return "def downgrade():\n" + textwrap.indent("\n".join(lines), "    ")


def _downgrade_edit(cap) -> SourceEdit | None:
    """The downgrade's body replaced by the undo of every upgrade operation, when each one can be written."""
    lines, whole = _undo_lines(cap)
    if not lines or not whole or not fx.parses("\n".join(lines)):
        return None
    return SourceEdit(mode="replace-body", function="downgrade", code="\n".join(lines))


@fx.tailored
def _add_to_downgrade(cap, rec) -> str:
    code = _undo(cap, rec)
    return f"# in downgrade() (undoing line {rec.line}):\n{code}" if code else None


def _add_edit(cap, rec) -> SourceEdit | None:
    """The undo of ``rec`` put first in downgrade() (undoing the latest change first), when it can be written."""
    code = _undo(cap, rec)
    return SourceEdit(mode="prepend", function="downgrade", code=code) if code and fx.parses(code) else None


def _text_holds_it(old, new) -> bool:
    """A number, date, UUID or boolean turned into text long enough for it: every value keeps its exact text form."""
    old, new = sa.types.to_instance(old), sa.types.to_instance(new)
    if not isinstance(new, sa.String) or isinstance(new, sa.Enum) or isinstance(old, sa.String):
        return False
    return isinstance(old, (sa.Integer, sa.Numeric, sa.Boolean, sa.Date, sa.DateTime, sa.Uuid)) and (
        new.length is None or new.length >= 40)


def _net_changes(cap) -> list:
    """The upgrade's operations less each constraint dropped and created again under its name on the same table
    (dropped to rewrite the keys, say): the schema ends as it began there, so there is nothing of it to undo."""
    recreated = {(r.table, str(r.op.constraint_name)) for r in cap.upgrade
                 if isinstance(r.op, ops.AddConstraintOp) and r.op.constraint_name} & {
        (r.table, str(r.op.constraint_name)) for r in cap.upgrade if isinstance(r.op, ops.DropConstraintOp) and r.op.constraint_name}
    return [r for r in cap.upgrade if not (isinstance(r.op, (ops.AddConstraintOp, ops.DropConstraintOp))
                                            and (r.table, str(r.op.constraint_name)) in recreated) and not alters_nothing(r.op)]


def _only_deletes(cap) -> bool:
    """The upgrade's statements only delete rows (DELETE, TRUNCATE) or need no inverse: no downgrade body can bring
    the rows back, so asking for one says nothing destructive-sql's finding (and its backup fix) does not."""
    from db_migrate.capture.sql import needs_no_inverse

    statements = cap.statements("upgrade")
    return bool(statements) and cap.upgrade_outcome.completed and all(isinstance(r.op, ops.ExecuteSQLOp) for r in cap.upgrade) \
        and any(s.kind in ("DELETE", "TRUNCATE") for _, s in statements) \
        and all(s.kind in ("DELETE", "TRUNCATE") or needs_no_inverse(s) for _, s in statements)


def _skipped_on_this_engine(cap) -> bool:
    """The upgrade ran to the end, recorded nothing and read no rows, and returns early from a guard
    (``if op.get_bind().dialect.name != "postgresql": return``): on this engine it does nothing."""
    import ast

    from db_migrate.capture.source import parsed
    from db_migrate.capture.syntax import phase_function

    if cap.upgrade or not cap.upgrade_outcome.completed or cap.facts_of("bind-read") or cap.facts_of("orm-session"):
        return False
    tree = parsed(cap.source)
    if tree is None:
        return False
    fn = phase_function(tree, "upgrade")
    return fn is not None and any(
        isinstance(st, ast.If) and any(isinstance(x, ast.Return) for x in st.body) for st in fn.body
    )


def _only_fills(cap) -> bool:
    """Every change of the upgrade is an UPDATE of columns that hold only what the migrations wrote
    (:func:`~db_migrate.rules._helpers.overwrites_nothing_kept`)."""
    stmts = list(cap.statements("upgrade"))
    return bool(stmts) and cap.upgrade_outcome.completed and len({r.index for r, _ in stmts}) == len(cap.upgrade) \
        and all(overwrites_nothing_kept(cap, r, s) for r, s in stmts)


class MissingDowngrade(Rule):
    id = "missing-downgrade"
    title = "The upgrade changes something and the downgrade does nothing"
    severity = "error"
    phases = ("downgrade",)
    why = (
        "With an empty downgrade (pass, raise NotImplementedError, or no function) `alembic downgrade` either "
        "fails or silently records the revision as undone while the schema keeps the change; the next upgrade "
        "then fails on objects that already exist. Rolling back a bad deploy becomes a manual repair."
    )
    fix = (
        "def downgrade():\n"
        "    op.drop_index('ix_users_email', table_name='users')\n"
        "    op.drop_column('users', 'email')\n"
        "# truly irreversible (data deleted)? keep the raise, say why in its message, and escalate"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.add_column('users', sa.Column('email', sa.String(200), nullable=True))\n\n"
            "def downgrade():\n    pass\n",
            good="def upgrade():\n    op.add_column('users', sa.Column('email', sa.String(200), nullable=True))\n\n"
            "def downgrade():\n    op.drop_column('users', 'email')\n",
        ),
        Example(
            bad="def upgrade():\n    op.add_column('users', sa.Column('email', sa.String(200), nullable=True))\n\n"
            "def downgrade():\n    raise NotImplementedError('no way back')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        body = cap.downgrade_outcome.body
        if body not in _NO_DOWNGRADE or not (cap.upgrade or cap.upgrade_outcome.body == "code"):
            return
        if cap.irreversible is not None:
            return  # declared one-way: irreversible-by-design says so
        if _skipped_on_this_engine(cap) or cap.upgrade_refusal:
            return  # the upgrade returned early (or refuses to run) and did nothing here: nothing to undo
        if body != "not-implemented" and _only_kept(cap):
            return  # enum values and extensions stay on downgrade: PostgreSQL cannot drop an enum value
        if _only_deletes(cap):
            return  # rows deleted: destructive-sql reports them, with the backup that makes them restorable
        if _only_fills(cap):
            return  # columns added just before are filled, or a migration's own marker is set again: nothing to undo
        if cap.upgrade and cap.upgrade_outcome.completed and all(_only_widens(r.op, cap.dialect) for r in cap.upgrade):
            yield self.finding(
                cap, "The upgrade only widens columns and the downgrade leaves them wide: the old code reads and writes "
                "them as before, though the schema after a rollback is not the parent's (a drift check will say so).",
                phase="downgrade", line=function_line(cap, "downgrade") or function_line(cap, "upgrade"), severity="info",
                fix=_downgrade_body(cap),
            )
            return
        what = {"missing": "has no downgrade()", "pass": "has a downgrade() that does nothing", "not-implemented": "has a downgrade() that raises NotImplementedError"}[body]
        # reads (the SELECT that stopped recording) change nothing: what follows them is the data migration
        net = [r for r in _net_changes(cap) if not (
            (kinds := [s.kind for s in cap.statements_of(r)]) and all(k == "SELECT" for k in kinds))]
        changes = ", ".join(sorted({f"{r.kind} on {r.table}" if r.table else r.kind for r in net})[:4])
        # Data-only upgrades (UPDATE/INSERT, ALTER TYPE ... ADD VALUE, rows written through a session) often
        # have nothing to undo in the schema: still worth saying, but not a blocker.
        data_only = all(isinstance(r.op, (ops.ExecuteSQLOp, ops.BulkInsertOp)) for r in net) and all(
            s.kind in ("UPDATE", "INSERT", "ALTER TYPE", "SET", "SELECT", "TRANSACTION", "COMMIT", "BEGIN")
            for _, s in cap.statements("upgrade")
        ) and bool(cap.upgrade or cap.facts_of("orm-session") or cap.facts_of("bind-read"))
        unseen = not changes and cap.upgrade_outcome.completed
        if not changes:  # nothing recorded offline: the upgrade works on rows through a connection or session
            changes = "a data migration that offline recording cannot follow" if data_only else "code that could not be recorded"
        if not cap.down_revisions and not data_only and cap.revision in cap.context.built_on:
            # a base the history builds on made the schema from nothing: rolling back past it is dropping the database
            yield self.finding(
                cap, f"The base revision {what}; later revisions build on it, and rolling back past it means dropping the database, which its "
                f"downgrade would do table by table.", phase="downgrade",
                line=function_line(cap, "downgrade") or function_line(cap, "upgrade"), severity="info", fix=_downgrade_body(cap),
            )
            return
        yield self.finding(
            cap,
            f"The revision {what}, but its upgrade runs {changes}: a rollback cannot undo it."
            + (" If there is truly nothing to undo, say so in a comment and suppress this." if data_only else ""),
            phase="downgrade",
            line=function_line(cap, "downgrade") or function_line(cap, "upgrade"),
            # code that ran to the end without one recordable operation may change nothing in the database at all
            # (a cache, a queue): what it changes is the fact the tool lacks
            severity="warning" if data_only or unseen else None,
            fix=_downgrade_body(cap),
            edit=None if data_only else _downgrade_edit(cap),
        )


class DowngradeNotInverse(Rule):
    id = "downgrade-not-inverse"
    title = "The downgrade does not undo what the upgrade does"
    severity = "error"
    phases = ("downgrade",)
    why = (
        "A downgrade that leaves an index, column or constraint behind makes the next upgrade fail "
        "('already exists'), and one that drops objects the upgrade did not create destroys data on rollback. "
        "pytest-alembic's up/down test only checks that nothing raises, so these slip through."
    )
    fix = (
        "# undo every upgrade operation, in reverse order\n"
        "def upgrade():\n"
        "    op.add_column('users', sa.Column('email', sa.String(200)))\n"
        "    op.create_index('ix_users_email', 'users', ['email'])\n"
        "def downgrade():\n"
        "    op.drop_index('ix_users_email', table_name='users')\n"
        "    op.drop_column('users', 'email')"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.add_column('users', sa.Column('email', sa.String(200), nullable=True))\n"
            "    op.create_index('ix_users_name', 'users', ['name'])\n\n"
            "def downgrade():\n    op.drop_column('users', 'email')\n",
            good="def upgrade():\n    op.add_column('users', sa.Column('email', sa.String(200), nullable=True))\n"
            "    op.create_index('ix_users_name', 'users', ['name'])\n\n"
            "def downgrade():\n    op.drop_index('ix_users_name', table_name='users')\n    op.drop_column('users', 'email')\n",
        ),
        Example(
            bad="def upgrade():\n    op.alter_column('users', 'name', existing_type=sa.String(50), type_=sa.String(200))\n\n"
            "def downgrade():\n    op.drop_table('audit_log')\n",
            good="def upgrade():\n    op.alter_column('users', 'name', existing_type=sa.String(50), type_=sa.String(200))\n\n"
            "def downgrade():\n    op.alter_column('users', 'name', existing_type=sa.String(200), type_=sa.String(50))\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        if cap.downgrade_outcome.body in _NO_DOWNGRADE or not cap.downgrade_outcome.completed:
            return  # missing-downgrade / migration-raises report those
        canon = _canonical(cap)
        raw = execute_text(cap, "downgrade")
        done = {(verb, canon(key)) for r in cap.downgrade if (obj := _object(r.op, cap)) for verb, key in [obj]}
        done |= _indexes_dropped_with_constraints(cap, done, raw)
        dropped_tables = {key[2] for verb, key in done if verb == "drop" and key[0] == "table"}
        # a table or view dropped in raw SQL takes its indexes, constraints and triggers with it
        dropped_tables |= {t for _, st in cap.statements("downgrade") if st.kind.upper() in _DROPS_WITH_CHILDREN for t in st.tables}
        dropped_columns = {(key[1], key[2]) for verb, key in done if verb == "drop" and key[0] == "column"}
        line = function_line(cap, "downgrade")
        created_here = cap.tables_created("upgrade")
        renamed = {r.op.table_name: r.op.new_table_name for r in cap.upgrade if isinstance(r.op, ops.RenameTableOp)}
        superseded = _superseded(cap, canon)
        unseen = _looped_calls(cap, "downgrade")
        for rec in cap.upgrade:
            exp = _expected(rec.op)
            if exp is None:
                if isinstance(rec.op, ops.RenameTableOp) and rec.op.table_name not in created_here:
                    yield from self._rename(cap, rec, raw, line)
                continue
            if rec.index in superseded or _touched_after_stop(cap, exp[1][2]):
                continue  # dropped and re-created (or the reverse) within the upgrade: only the last one counts
            verb, key = exp[0], canon(exp[1])
            table = canon(("table", None, rec.table))[2] if rec.table else None
            if (verb, key) in done or key[1] in dropped_tables or mentions(raw, key[2]) or mentions(raw, exp[1][2]):
                continue
            if verb == "drop" and _helper_drops(cap, str(exp[1][2])):
                continue  # the project's own helper (try_drop_constraint('X', ...)) drops it
            if f"{verb}_{key[0]}" in unseen:
                continue  # a loop over what the database holds (its items unknown offline) does that kind of step
            if verb == "drop" and key[0] != "table" and (
                rec.table in created_here or table in dropped_tables
                or any(t == table and mentions(c, col) for c in _columns(rec.op) for t, col in dropped_columns)
            ):
                continue  # dropping the table or column drops what was built on it
            undo = "drop it" if verb == "drop" else "re-create it"
            did = "creates" if verb == "drop" else "drops"
            yield self.finding(
                cap, f"The upgrade {did} {_describe(exp[1])} (line {rec.line}); the downgrade does not {undo}.",
                phase="downgrade", line=line, table=rec.table, fix=_add_to_downgrade(cap, rec), edit=_add_edit(cap, rec),
            )
        yield from self._alters(cap, line, raw, dropped_tables, dropped_columns)
        if not cap.captured("upgrade"):
            # What the upgrade does after it stopped is unknown (migration-raises / unchecked say so): what it
            # did until then must still be undone, but a downgrade drop may well undo what came after.
            return
        # The downgrade destroying objects the upgrade never created loses data on rollback.
        upgrade_objects = {(verb, canon(key)) for r in cap.upgrade if (obj := _object(r.op)) for verb, key in [obj]}
        # the columns of the tables the upgrade creates (re-creates, after dropping the old one) are its own too
        upgrade_objects |= {("create", canon(("column", r.op.table_name, c.name))) for r in cap.upgrade
                            if isinstance(r.op, ops.CreateTableOp) for c in r.op.columns if isinstance(c, sa.Column)}
        upgrade_raw = execute_text(cap, "upgrade")
        for rec in cap.downgrade:
            obj = _object(rec.op)
            if not obj or obj[0] != "drop" or obj[1][0] not in ("table", "column") or ("create", canon(obj[1])) in upgrade_objects:
                continue
            if is_new_table(cap, rec) or is_new_column(cap, rec) or mentions(upgrade_raw, obj[1][2]) or obj[1][2] in renamed.values():
                continue
            made = cap.context.tables_created
            if obj[1][0] == "table" and made is not None and obj[1][2] not in made:
                # no revision creates it: the project makes it outside its migrations (metadata.create_all at
                # start-up), and its downgrades drop it on purpose; the rows it holds are what a rollback costs
                yield self.finding(
                    cap, f"The downgrade drops {_describe(obj[1])}, which no revision of the history creates (the "
                    "project makes it outside its migrations): a rollback destroys it with its rows.",
                    rec=rec, severity="info",
                )
                continue
            yield self.finding(
                cap, f"The downgrade drops {_describe(obj[1])}, which this upgrade does not create: a rollback would destroy it.",
                rec=rec, fix=f"# remove this {rec.kind} from downgrade() (line {rec.line}): the upgrade does not create {_describe(obj[1])}",
            )

    def _rename(self, cap, rec, raw, line) -> Iterator[Finding]:
        old, new = rec.op.table_name, rec.op.new_table_name
        if any(isinstance(r.op, ops.RenameTableOp) and r.op.table_name == new and r.op.new_table_name == old for r in cap.downgrade):
            return
        if name_taken_again(cap, rec):
            return  # moved aside to rebuild the table under its name: the name is back by the end of the upgrade
        if not mentions(raw, new):
            yield self.finding(
                cap, f"The upgrade renames table {old} to {new} (line {rec.line}); the downgrade does not rename it back.",
                phase="downgrade", line=line, table=old, fix=_add_to_downgrade(cap, rec), edit=_add_edit(cap, rec),
            )

    def _alters(self, cap, line, raw, dropped_tables, dropped_columns) -> Iterator[Finding]:
        down = _alters(cap.downgrade)
        # the names a column has in this revision (renamed after its type changed, the downgrade changes the type
        # back under the new name before renaming it back)
        names: dict[tuple[str, str], set[str]] = {}
        for r in cap.upgrade:
            if isinstance(r.op, ops.AlterColumnOp) and r.op.modify_name:
                t, old_name = r.op.table_name, r.op.column_name
                group = names.get((t, old_name), {old_name}) | {r.op.modify_name}
                for n in group:
                    names[(t, n)] = group
        for rec in cap.upgrade:
            op = rec.op
            if not isinstance(op, ops.AlterColumnOp) or op.table_name in dropped_tables:
                continue
            col = op.modify_name or op.column_name
            if (op.table_name, col) in dropped_columns:
                continue  # the downgrade drops the column (added by this upgrade): nothing to restore
            undo = [d for n in names.get((op.table_name, col), {col}) for d in down.get((op.table_name, n), [])]
            if mentions(raw, col) and mentions(raw, op.table_name):
                continue
            expected = op.reverse()
            missing = []
            if op.modify_name and not any(d.modify_name == op.column_name for d in undo):
                missing.append(f"rename {col} back to {op.column_name}")
            if op.modify_type is not None and not any(
                d.modify_type is not None
                and (expected.modify_type is None or classify_type_change(expected.modify_type, d.modify_type, cap.dialect) == "same")
                for d in undo
            ):
                back = f" to {spell(expected.modify_type, cap.dialect)}" if expected.modify_type is not None else ""
                missing.append(f"change its type back{back}")
            # Restating the same nullability on both sides with the old state unknown (no existing_nullable) is
            # what hand-edited autogenerate output looks like: the upgrade may not have changed it at all.
            restated = op.existing_nullable is None and any(d.modify_nullable == op.modify_nullable for d in undo)
            if op.modify_nullable is not None and not restated and not any(
                d.modify_nullable is not None and d.modify_nullable != op.modify_nullable for d in undo
            ):
                missing.append("restore its nullability")
            if op.modify_server_default is not False and not any(d.modify_server_default is not False for d in undo):
                missing.append("restore its server default")
            if missing and len(missing) == 1 and missing[0].startswith("change its type back") and _wider(op, cap.dialect):
                # a wider type left by a rollback: the old code reads and writes the column as before
                yield self.finding(
                    cap, f"The upgrade widens {op.table_name}.{op.column_name} (line {rec.line}) and the downgrade leaves "
                    "it wide: the old code reads and writes it as before, though the schema after a rollback is not the "
                    "parent's (a drift check will say so).", phase="downgrade", line=line, table=op.table_name,
                    column=op.column_name, severity="info", fix=_add_to_downgrade(cap, rec),
                )
            elif missing == ["restore its server default"]:
                # a default left by a rollback changes no stored value; the old code gets the new default only for a
                # row it inserts without the column
                yield self.finding(
                    cap, f"The upgrade changes the server default of {op.table_name}.{op.column_name} (line {rec.line}) "
                    "and the downgrade leaves it: no stored value changes, though rows the old code inserts without the "
                    "column get the new default.", phase="downgrade", line=line, table=op.table_name,
                    column=op.column_name, severity="info", fix=_add_to_downgrade(cap, rec),
                )
            elif missing:
                yield self.finding(
                    cap,
                    f"The upgrade alters {op.table_name}.{op.column_name} (line {rec.line}); the downgrade does not "
                    + ", ".join(missing) + ".",
                    phase="downgrade",
                    line=line,
                    table=op.table_name,
                    column=op.column_name,
                    fix=_add_to_downgrade(cap, rec),
                    edit=_add_edit(cap, rec),
                )


def _only_widens(op: Any, dialect: str) -> bool:
    """An alter_column that changes nothing but its type, to a wider one."""
    return isinstance(op, ops.AlterColumnOp) and op.modify_type is not None and not op.modify_name \
        and op.modify_nullable is None and op.modify_server_default is False and _wider(op, dialect)


def _wider(op: ops.AlterColumnOp, dialect: str) -> bool:
    """The type change only widens: a longer string, more digits, a larger integer (every old value fits as it was)."""
    change = classify_type_change(op.existing_type, op.modify_type, dialect)
    old, new = (sa.types.to_instance(t) if t is not None else None for t in (op.existing_type, op.modify_type))
    return change == "widen" or (change == "rewrite" and isinstance(old, sa.Integer) and isinstance(new, sa.Integer))


@fx.tailored
def _keep_and_restore(cap, rec) -> str:
    """Copy what the upgrade destroys (a column, a table, values a type change loses), restore it in the downgrade."""
    op = rec.op
    column = None if isinstance(op, ops.DropTableOp) else op.column_name
    name, keep, restore = fx.backup(op.table_name, op.schema, cap.dialect, [column] if column else None,
                                    key=fx.key_of(cap, op.table_name))
    return fx.render(
        f"# upgrade(), before line {rec.line}:",
        keep,
        "# downgrade(), after re-creating it:",
        restore,
        ops.DropTableOp(name, schema=op.schema),
    )


class LossyDowngrade(Rule):
    id = "lossy-downgrade"
    title = "The downgrade restores a column's type but not the values the upgrade converted"
    severity = "warning"
    phases = ("upgrade", "downgrade")
    why = (
        "When the upgrade narrows a type or converts it to another family (NUMERIC to INTEGER, TEXT to a date), values "
        "are rounded, cut or converted on the way; the downgrade changes the type back, but not the values: a rollback "
        "'succeeds' and the data is still changed. (A dropped column or table re-created empty is drop-column's and "
        "drop-table's finding: the data is gone for good.)"
    )
    fix = (
        "# keep a copy in the upgrade and restore it in the downgrade (or escalate as irreversible)\n"
        "def upgrade():\n"
        "    op.execute('CREATE TABLE users_score_backup AS SELECT id, score FROM users')\n"
        "    op.alter_column('users', 'score', existing_type=sa.Numeric(10, 2), type_=sa.Integer())\n"
        "def downgrade():\n"
        "    op.alter_column('users', 'score', existing_type=sa.Integer(), type_=sa.Numeric(10, 2))\n"
        "    op.execute('UPDATE users SET score = b.score FROM users_score_backup b WHERE b.id = users.id')"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.alter_column('users', 'score', existing_type=sa.Numeric(10, 2), type_=sa.Integer())\n\n"
            "def downgrade():\n    op.alter_column('users', 'score', existing_type=sa.Integer(), type_=sa.Numeric(10, 2))\n",
            good="def upgrade():\n    op.execute('CREATE TABLE users_score_backup AS SELECT id, score FROM users')\n"
            "    op.alter_column('users', 'score', existing_type=sa.Numeric(10, 2), type_=sa.Integer())\n\n"
            "def downgrade():\n    op.alter_column('users', 'score', existing_type=sa.Integer(), type_=sa.Numeric(10, 2))\n"
            "    op.execute('UPDATE users SET score = b.score FROM users_score_backup b WHERE b.id = users.id')\n"
            "    op.drop_table('users_score_backup')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        if cap.downgrade_outcome.body in _NO_DOWNGRADE or not cap.captured("downgrade"):
            return  # (a partial upgrade is fine: what it destroyed until it stopped is still lost)
        restored = self._restored_tables(cap)
        down_creates = {obj[1] for r in cap.downgrade if (obj := _object(r.op)) and obj[0] == "create"}
        down_alters = _alters(cap.downgrade)
        for rec in cap.upgrade:
            op, table = rec.op, rec.table
            if table in restored:
                continue
            # a dropped column or table re-created empty is the drop's own fact: drop-column / drop-table say the data
            # is gone for good (with the backup fix), and the policy escalates it as drop-with-data; one fact, one finding
            if (

                isinstance(op, ops.AlterColumnOp)
                and op.modify_type is not None
                and not is_new_column(cap, rec)
                and classify_type_change(op.existing_type, op.modify_type, cap.dialect) in ("narrow", "change")
                and not _json_round_trip(op.existing_type, op.modify_type)
                and not _text_holds_it(op.existing_type, op.modify_type)
                and not refuses_too_long(op.modify_type)  # the upgrade fails; nothing is left changed
                and (table, op.column_name) in down_alters
            ):
                msg = (
                    f"The upgrade converts {table}.{op.column_name} from {spell(op.existing_type, cap.dialect)} to "
                    f"{spell(op.modify_type, cap.dialect)}; values rounded, truncated or converted on the way are not "
                    f"restored by changing the type back."
                )
            else:
                continue
            yield self.finding(cap, msg, rec=rec, fix=_keep_and_restore(cap, rec))
        # rows deleted or overwritten by raw SQL are destructive-sql's finding (with the same backup fix): one fact,
        # one finding

    @staticmethod
    def _restored_tables(cap) -> set[str]:
        """Tables the downgrade writes data into (UPDATE/INSERT/bulk_insert): assumed to restore what was lost."""
        out = {r.op.table.name for r in cap.downgrade if isinstance(r.op, ops.BulkInsertOp)}
        for _, stmt in cap.statements("downgrade"):
            if stmt.kind in ("UPDATE", "INSERT"):
                out.update(stmt.tables[:1])
        return out


class IrreversibleByDesign(Rule):
    id = "irreversible-by-design"
    title = "A deliberate one-way step, declared with # db-migrate: irreversible <reason>"
    severity = "info"
    phases = ("downgrade",)
    why = (
        "Some steps cannot be undone by a downgrade (a data fix, a backfill from an external source, values merged "
        "together). Saying so explicitly, with the reason, beats a bare `pass` that looks like a forgotten downgrade: "
        "the review does not report missing-downgrade, and the escalation policy still asks a human because a "
        "rollback past this revision needs a restore or a manual step. Put the marker inside downgrade() or on the "
        "line right above it. A downgrade that only raises an exception with a message, or an empty one with the "
        "author's own comment saying why (not autogenerate's, not a TODO), declares the same."
    )
    fix = (
        "def downgrade():\n"
        "    # db-migrate: irreversible merged duplicate accounts; the originals are in the accounts_merged_backup table\n"
        "    pass\n"
        "# or, where the old values can be kept: copy them in upgrade() with op.execute(...) and restore them here"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.execute(\"UPDATE accounts SET plan = 'free' WHERE plan IS NULL\")\n\n"
            "def downgrade():\n    # db-migrate: irreversible which rows had no plan is not kept\n    pass\n",
            good="def upgrade():\n    op.execute(\"UPDATE prices SET cents = cents * 100\")\n\n"
            "def downgrade():\n    op.execute(\"UPDATE prices SET cents = cents / 100\")\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        if cap.irreversible is None or (cap.downgrade_outcome.body not in _NO_DOWNGRADE and not cap.downgrade_raises):
            return
        yield self.finding(
            cap,
            f"Declared irreversible: {cap.irreversible}. The downgrade does not undo the upgrade on purpose, so rolling back past "
            f"this revision needs a restore or a manual step.",
            phase="downgrade",
            line=function_line(cap, "downgrade"),
            fix=None,
        )


RULES = (MissingDowngrade, DowngradeNotInverse, LossyDowngrade, IrreversibleByDesign)
