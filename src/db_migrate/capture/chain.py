"""Column state along the revision chain, read statically: which columns are already NOT NULL before a revision.

``op.alter_column('user', 'email', type_=..., nullable=False)`` restates a nullability the column may have had since
``op.create_table`` made it: PostgreSQL then skips the check (nothing is scanned, nothing can fail). A rule judging
one revision cannot tell without the revisions before it, so :func:`not_null_before` walks the history's upgrades in
order, from their syntax trees (nothing runs), and keeps for each revision the columns its ancestors left NOT NULL.
Only literal names are followed; what it cannot read (raw SQL other than ``ALTER COLUMN ... DROP NOT NULL``, names
built at run time) is not guessed, and a column made nullable that way is simply not known NOT NULL.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from db_migrate.capture.syntax import call_name, literal, module_values, phase_function

Column = tuple[str, str]

_DROP_NOT_NULL = re.compile(r"ALTER\s+TABLE\s+[\"`]?(\w+)[\"`]?.*?ALTER\s+(?:COLUMN\s+)?[\"`]?(\w+)[\"`]?\s+DROP\s+NOT\s+NULL",
                            re.IGNORECASE | re.DOTALL)


State = dict[Column, tuple[bool, str | None, bool]]
"""(table, column) -> (NOT NULL, the source of its type: ``sa.String(15)`` or None when not read, auto-increment)."""


def not_null_before(sources: Iterable[tuple[Path, str, ast.Module]]) -> dict[str, frozenset[Column]]:
    """{revision: the (table, column) pairs NOT NULL in every parent's state} for a history's files (path, text and
    syntax tree of each)."""
    return column_history(sources)[0]


class History(NamedTuple):
    """What the history's upgrades say together, read statically (:func:`column_history`)."""

    not_null_before: dict[str, frozenset[Column]]
    """{revision: the (table, column) pairs NOT NULL in every parent's state}."""
    types_before: dict[str, dict[Column, str]]
    """{revision: {(table, column): the source of the type its ancestors left it}} for the columns it alters."""
    built_on: frozenset[str]
    """Revisions some other revision names as its parent."""
    tables_created: frozenset[str]
    """Tables some upgrade creates (``op.create_table``, a literal ``CREATE TABLE``, a rename to the name)."""
    auto_increment_before: dict[str, frozenset[Column]]
    """{revision: the columns it alters that its ancestors left auto-increment (a table's one integer key)}."""
    indexes: dict[str, tuple[str, tuple[str, ...], bool]]
    """{index name: (table, columns, unique)} of every literal ``op.create_index`` in the history."""
    added_by_parent: dict[str, frozenset[Column]]
    """{revision: the columns its parents' upgrades add (a column, or a table with its columns)}: what they hold is
    only what was written since, so filling them overwrites nothing the schema before had."""
    set_by_migrations: dict[str, frozenset[Column]]
    """{revision: the columns an ancestor's upgrade set to a literal in every row (``UPDATE infos SET version =
    '26.08'``)}: the value there is one a migration wrote, not one users did."""
    primary_keys: dict[str, tuple[str, ...]]
    """{table: its primary key's columns, as the history's upgrades create it (the last one read)}."""
    table_creators: dict[str, frozenset[str]]
    """{table: the revisions whose upgrades create it (or rename a table to it)}."""


_CREATE_TABLE = re.compile(r"\bCREATE\s+(?:TEMP(?:ORARY)?\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[\"`]?(?:\w+[\"`]?\.[\"`]?)?(\w+)",
                           re.IGNORECASE)


def column_history(sources: Iterable[tuple[Path, str, ast.Module]]) -> History:
    """For each revision: the columns NOT NULL before it, and the type (its source text) that each column its
    upgrade alters had before it, as its ancestors left them (a column must have the same in every parent); the
    revisions that others are built on; and the tables the history's upgrades create."""
    from db_migrate.project.headers import parse_header

    effects: dict[str, tuple[tuple[str, ...], list]] = {}
    created: set[str] = set()
    indexes: dict[str, tuple[str, tuple[str, ...], bool]] = {}
    keys: dict[str, tuple[str, ...]] = {}
    creators: dict[str, set[str]] = {}
    for path, text, tree in sources:
        indexes.update(_indexes(tree))
        keys.update(_primary_keys(tree))
        made = {m.group(1) for m in _CREATE_TABLE.finditer(text)}
        try:
            header = parse_header(path, text, tree=tree)
        except Exception:  # no readable header: it changes nothing known
            created.update(made)
            continue
        if header.revision:
            effects[header.revision] = (header.down_revisions, _steps(tree))
            made.update(t for kind, t, _, _ in effects[header.revision][1] if kind == "create-table")
            made.update(str(new) for kind, _, _, new in effects[header.revision][1] if kind == "rename-table")
            for t in made:
                creators.setdefault(t, set()).add(header.revision)
        created.update(made)
    after: dict[str, State] = {}

    def state_after(rev: str, depth: int = 0) -> State:
        if rev in after or rev not in effects or depth > 5000:
            return after.get(rev, {})
        parents, steps = effects[rev]
        before = _meet([state_after(p, depth + 1) for p in parents if p in effects]) if parents else {}
        after[rev] = _apply(before, steps)
        return after[rev]

    not_null: dict[str, frozenset[Column]] = {}
    types: dict[str, dict[Column, str]] = {}
    auto: dict[str, frozenset[Column]] = {}
    added: dict[str, frozenset[Column]] = {}
    literals: dict[str, frozenset[Column]] = {}

    def literal_after(rev: str, depth: int = 0) -> frozenset[Column]:
        """The columns ``rev`` or an ancestor set to a literal (kept through later revisions' other changes)."""
        if rev in literals or rev not in effects or depth > 5000:
            return literals.get(rev, frozenset())
        parents, steps = effects[rev]
        before = frozenset().union(*(literal_after(p, depth + 1) for p in parents if p in effects))
        literals[rev] = before | {(t, c) for kind, t, c, _ in steps if kind == "literal"}
        return literals[rev]

    for rev, (parents, steps) in effects.items():
        known = [p for p in parents if p in effects]
        before = _meet([state_after(p) for p in known]) if known else {}
        not_null[rev] = frozenset(c for c, (nn, _, _) in before.items() if nn)
        altered = {(t, c) for kind, t, c, _ in steps if kind in ("type", "set", "rename-column")}
        types[rev] = {c: before[c][1] for c in altered if c in before and before[c][1]}  # type: ignore[misc]
        auto[rev] = frozenset(c for c in altered if c in before and before[c][2])  # type: ignore[misc]
        added[rev] = frozenset((t, c) for p in known for kind, t, c, _ in effects[p][1] if kind == "column")
    set_before = {rev: frozenset().union(*(literal_after(p) for p in parents if p in effects)) for rev, (parents, _) in effects.items()}
    return History(not_null, types, frozenset(p for parents, _ in effects.values() for p in parents), frozenset(created), auto,
                   indexes, added, set_before, keys, {t: frozenset(r) for t, r in creators.items()})


def _meet(states: list[State]) -> State:
    """What every parent agrees on (a merge revision): a column NOT NULL only if it is in all, its type if the same."""
    if not states:
        return {}
    first, *rest = states
    out: State = {}
    for col, (nn, typ, auto) in first.items():
        others = [s[col] for s in rest if col in s]
        if len(others) != len(rest):
            continue
        out[col] = (nn and all(o[0] for o in others), typ if all(o[1] == typ for o in others) else None,
                    auto and all(o[2] for o in others))
    return out


def _apply(state: State, steps: list) -> State:
    cols = dict(state)
    for kind, table, column, value in steps:
        if kind == "column":  # created or added: (NOT NULL, type, auto-increment)
            cols[(table, column)] = value
        elif kind == "set":
            nn, typ, auto = cols.get((table, column), (False, None, False))
            cols[(table, column)] = (bool(value), typ, auto)
        elif kind == "type":
            nn, _, auto = cols.get((table, column), (False, None, False))
            cols[(table, column)] = (nn, value, auto)
        elif kind == "drop-column":
            cols.pop((table, column), None)
        elif kind == "rename-column":
            if (table, column) in cols:
                cols[(table, value)] = cols.pop((table, column))
        elif kind == "drop-table":
            cols = {c: v for c, v in cols.items() if c[0] != table}
        elif kind == "rename-table":
            cols = {((value if t == table else t), c): v for (t, c), v in cols.items()}
    return cols


def _steps(tree: ast.Module) -> list[tuple[str, str, str | None, object]]:
    """What ``upgrade()`` does to columns' nullability and types, in source order: (kind, table, column, value)."""
    fn = phase_function(tree, "upgrade")
    if fn is None:
        return []
    # a type held by a module-level name (``new_auth = sa.Enum(...)`` then ``type_=new_auth``): its source is the value's
    module = module_values(tree)

    def source(node: ast.AST) -> str:
        return ast.unparse(module[node.id] if isinstance(node, ast.Name) and node.id in module else node)

    batches: dict[str, str] = {}  # ``with op.batch_alter_table('t') as b`` -> {"b": "t"}
    for node in ast.walk(fn):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and call_name(call) == "batch_alter_table" and isinstance(item.optional_vars, ast.Name):
                    table = literal(call.args[0]) if call.args else None
                    if table:
                        batches[item.optional_vars.id] = table
    out: list[tuple[str, str, str | None, object]] = []
    calls = sorted((n for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)),
                   key=lambda n: (n.lineno, n.col_offset))
    for call in calls:
        owner = call.func.value.id if isinstance(call.func.value, ast.Name) else None
        kind, args = call.func.attr, list(call.args)
        if owner in batches:
            args = [ast.Constant(batches[owner]), *args]
        elif owner not in ("op", "operations"):
            continue
        table = literal(args[0]) if args else None
        if kind == "execute" and args:
            for m in _DROP_NOT_NULL.finditer(literal(args[-1]) or ""):
                out.append(("set", m.group(1), m.group(2), False))
            out += [("literal", t, c, None) for t, c in _set_to_literals(args[-1], tree)]
            continue
        if not table:
            continue
        if kind == "create_table":
            out.append(("create-table", table, None, None))
            keys = [c for c in args[1:] if _column_name(c) and _is_key(c)]
            for col in args[1:]:
                name = _column_name(col)
                if name:
                    auto = _auto_increment(col, alone=len(keys) == 1)
                    out.append(("column", table, name, (_not_null(col), _type_source(col, source), auto)))
        elif kind == "add_column" and len(args) > 1 and _column_name(args[1]):
            col = args[1]
            out.append(("column", table, _column_name(col), (_not_null(col), _type_source(col, source), _auto_increment(col, alone=False))))
        elif kind == "alter_column" and len(args) > 1 and (column := literal(args[1])):
            kw = {k.arg: k.value for k in call.keywords}
            if "nullable" in kw and isinstance(kw["nullable"], ast.Constant):
                out.append(("set", table, column, kw["nullable"].value is False))
            if "type_" in kw:
                out.append(("type", table, column, source(kw["type_"])))
            if "new_column_name" in kw and (new := literal(kw["new_column_name"])):
                out.append(("rename-column", table, column, new))
        elif kind == "drop_column" and len(args) > 1 and (column := literal(args[1])):
            out.append(("drop-column", table, column, None))
        elif kind == "drop_table":
            out.append(("drop-table", table, None, None))
        elif kind == "rename_table" and len(args) > 1 and (new := literal(args[1])):
            out.append(("rename-table", table, None, new))
    return out


_SET_LITERALS = re.compile(r"^\s*UPDATE\s+[\"`]?(\w+)[\"`]?\s+SET\s+((?:[\"`]?\w+[\"`]?\s*=\s*(?:'[^']*'|-?\d+(?:\.\d+)?)\s*,?\s*)+);?\s*$",
                           re.IGNORECASE)


def _set_to_literals(node: ast.AST, tree: ast.Module) -> list[tuple[str, str]]:
    """(table, column) pairs an ``op.execute`` argument sets to literals in every row: ``"UPDATE infos SET version =
    '26.08'"``, or ``infos.update().values(version='26.08')`` of an ``sa.table('infos', ...)`` (no ``where``)."""
    text = literal(node)
    if isinstance(text, str):
        m = _SET_LITERALS.match(text)
        return [(m.group(1), c) for c in re.findall(r"[\"`]?(\w+)[\"`]?\s*=", m.group(2))] if m else []
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "values"):
        return []
    update = node.func.value
    if not (isinstance(update, ast.Call) and isinstance(update.func, ast.Attribute) and update.func.attr == "update"
            and isinstance(update.func.value, ast.Name) and not update.args and not node.args):
        return []
    # (the module's names and upgrade()'s: the function is part of the module's tree)
    tables = {t.id: literal(n.value.args[0]) for n in ast.walk(tree) if isinstance(n, ast.Assign)
              and isinstance(n.value, ast.Call) and call_name(n.value) == "table" and n.value.args for t in n.targets
              if isinstance(t, ast.Name)}
    table = tables.get(update.func.value.id)
    if not table or not all(isinstance(k.value, ast.Constant) and k.arg for k in node.keywords):
        return []
    return [(table, str(k.arg)) for k in node.keywords]


def _type_source(column: ast.Call, source: Callable[[ast.AST], str] = ast.unparse) -> str | None:
    """The source of ``sa.Column('name', <type>, ...)``'s type (its second argument or ``type_=``); ``source`` reads
    a name as the value it holds."""
    node = column.args[1] if len(column.args) > 1 else next((k.value for k in column.keywords if k.arg == "type_"), None)
    return source(node) if isinstance(node, (ast.Call, ast.Attribute, ast.Name)) else None


def type_from_source(text: str) -> object | None:
    """The SQLAlchemy type a type's source names (``sa.String(length=15)``, ``mysql.VARCHAR(45)``, ``sa.Text``), built
    from SQLAlchemy's own classes with literal arguments only (nothing of the project runs), or None."""
    import sqlalchemy.types as sqltypes
    from sqlalchemy.dialects import mysql, postgresql

    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return None
    call = node if isinstance(node, ast.Call) else None
    target = call.func if call else node
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
    cls = next((getattr(m, name) for m in (sqltypes, mysql, postgresql) if name and hasattr(m, name)), None)
    if not (isinstance(cls, type) and issubclass(cls, sqltypes.TypeEngine)):
        return None
    try:
        args = [ast.literal_eval(a) for a in call.args] if call else []
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg} if call else {}
        return cls(*args, **kwargs)
    except Exception:  # an argument that is not a literal, or one the class does not take
        return None


def _column_name(node: ast.AST) -> str | None:
    """The literal name of ``sa.Column('name', ...)``."""
    return literal(node.args[0]) if isinstance(node, ast.Call) and call_name(node) == "Column" and node.args else None


def _indexes(tree: ast.Module) -> dict[str, tuple[str, tuple[str, ...], bool]]:
    """The indexes a file's upgrade creates with literal names and columns: ``op.create_index('ix', 't', ['a'])``."""
    fn = phase_function(tree, "upgrade")
    out: dict[str, tuple[str, tuple[str, ...], bool]] = {}
    for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)) if fn else ():
        if call_name(call) != "create_index" or len(call.args) < 3:
            continue
        first = call.args[0]
        if isinstance(first, ast.Call) and call_name(first) == "f" and first.args:  # op.f("ix_..."): the name as written
            first = first.args[0]
        name, table, cols = literal(first), literal(call.args[1]), call.args[2]
        columns = [literal(c) for c in cols.elts] if isinstance(cols, (ast.List, ast.Tuple)) else []
        unique = next((k.value.value for k in call.keywords if k.arg == "unique" and isinstance(k.value, ast.Constant)), False)
        plain = all(k.arg in ("unique", "postgresql_concurrently", "if_not_exists") for k in call.keywords)  # no WHERE, USING
        if name and table and columns and all(columns) and plain:
            out[name] = (table, tuple(columns), bool(unique))  # type: ignore[arg-type]
    return out


def _primary_keys(tree: ast.Module) -> dict[str, tuple[str, ...]]:
    """The primary keys a file's upgrade gives tables, by literal names: ``sa.Column('agent_id', ..., primary_key=True)``
    in ``op.create_table('agents', ...)``, or ``op.create_primary_key('pk', 'agents', ['agent_id'])``."""
    fn = phase_function(tree, "upgrade")
    out: dict[str, tuple[str, ...]] = {}
    for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)) if fn else ():
        name = call_name(call)
        if name == "create_table" and call.args and (table := literal(call.args[0])):
            keys = tuple(c for col in call.args[1:] if (c := _column_name(col)) and _is_key(col))
            # autogenerate's spelling: sa.PrimaryKeyConstraint('user_id', 'time_frame') among the columns
            keys += tuple(literal(a) for c in call.args[1:] if isinstance(c, ast.Call) and call_name(c) == "PrimaryKeyConstraint"
                          for a in c.args if literal(a))
            if keys:
                out[table] = keys  # type: ignore[assignment]
        elif name == "create_primary_key" and len(call.args) >= 3 and (table := literal(call.args[1])):
            cols = call.args[2]
            keys = tuple(literal(c) for c in cols.elts) if isinstance(cols, (ast.List, ast.Tuple)) else ()
            if keys and all(keys):
                out[table] = keys  # type: ignore[assignment]
    return out


def _is_key(column: ast.Call) -> bool:
    primary = {k.arg: k.value for k in column.keywords}.get("primary_key")
    return isinstance(primary, ast.Constant) and primary.value is True


_INTEGER = re.compile(r"(?:^|\.)(?:Integer|BigInteger|SmallInteger|INTEGER|BIGINT|SMALLINT|INT|MEDIUMINT|TINYINT)\b")


def _auto_increment(column: ast.Call, *, alone: bool) -> bool:
    """The column counts itself: ``autoincrement=True``, or a table's one integer primary key (SQLAlchemy's default,
    which MySQL renders AUTO_INCREMENT) unless ``autoincrement=False``."""
    said = {k.arg: k.value for k in column.keywords}.get("autoincrement")
    if isinstance(said, ast.Constant) and isinstance(said.value, bool):
        return said.value
    return alone and _is_key(column) and bool(_INTEGER.search(_type_source(column) or ""))


def _not_null(column: ast.Call) -> bool:
    kw = {k.arg: k.value for k in column.keywords}
    nullable = kw.get("nullable")
    if isinstance(nullable, ast.Constant):
        return nullable.value is False
    primary = kw.get("primary_key")
    return isinstance(primary, ast.Constant) and primary.value is True
