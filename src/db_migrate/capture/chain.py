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
from collections.abc import Iterable
from pathlib import Path

Column = tuple[str, str]

_DROP_NOT_NULL = re.compile(r"ALTER\s+TABLE\s+[\"`]?(\w+)[\"`]?.*?ALTER\s+(?:COLUMN\s+)?[\"`]?(\w+)[\"`]?\s+DROP\s+NOT\s+NULL",
                            re.IGNORECASE | re.DOTALL)


def not_null_before(sources: Iterable[tuple[Path, str, ast.Module]]) -> dict[str, frozenset[Column]]:
    """{revision: the (table, column) pairs NOT NULL in every parent's state} for a history's files (path, text and
    syntax tree of each)."""
    from db_migrate.project.headers import parse_header

    effects: dict[str, tuple[tuple[str, ...], list]] = {}
    for path, text, tree in sources:
        try:
            header = parse_header(path, text, tree=tree)
        except Exception:  # no readable header: it changes nothing known
            continue
        if header.revision:
            effects[header.revision] = (header.down_revisions, _steps(tree))
    after: dict[str, frozenset[Column]] = {}

    def state_after(rev: str, depth: int = 0) -> frozenset[Column]:
        if rev in after or rev not in effects or depth > 5000:
            return after.get(rev, frozenset())
        parents, steps = effects[rev]
        before = _meet([state_after(p, depth + 1) for p in parents if p in effects]) if parents else frozenset()
        after[rev] = _apply(before, steps)
        return after[rev]

    out = {}
    for rev, (parents, _) in effects.items():
        known = [p for p in parents if p in effects]
        out[rev] = _meet([state_after(p) for p in known]) if known else frozenset()
    return out


def _meet(states: list[frozenset[Column]]) -> frozenset[Column]:
    return frozenset.intersection(*states) if states else frozenset()


def _apply(state: frozenset[Column], steps: list) -> frozenset[Column]:
    cols = set(state)
    for kind, table, column, value in steps:
        if kind == "set":
            (cols.add if value else cols.discard)((table, column))
        elif kind == "rename-column":
            if (table, column) in cols:
                cols.discard((table, column))
                cols.add((table, value))
        elif kind == "drop-table":
            cols = {c for c in cols if c[0] != table}
        elif kind == "rename-table":
            cols = {(value if t == table else t, c) for t, c in cols}
    return frozenset(cols)


def _steps(tree: ast.Module) -> list[tuple[str, str, str | None, object]]:
    """What ``upgrade()`` does to column nullability, in source order: (kind, table, column, value)."""
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"), None)
    if fn is None:
        return []
    batches: dict[str, str] = {}  # ``with op.batch_alter_table('t') as b`` -> {"b": "t"}
    for node in ast.walk(fn):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and _name(call) == "batch_alter_table" and isinstance(item.optional_vars, ast.Name):
                    table = _literal(call.args[0]) if call.args else None
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
        table = _literal(args[0]) if args else None
        if kind == "execute" and args:
            for m in _DROP_NOT_NULL.finditer(_literal(args[-1]) or ""):
                out.append(("set", m.group(1), m.group(2), False))
            continue
        if not table:
            continue
        if kind == "create_table":
            for col in args[1:]:
                name = _column_name(col)
                if name:
                    out.append(("set", table, name, _not_null(col)))
        elif kind == "add_column" and len(args) > 1 and _column_name(args[1]):
            out.append(("set", table, _column_name(args[1]), _not_null(args[1])))
        elif kind == "alter_column" and len(args) > 1 and (column := _literal(args[1])):
            kw = {k.arg: k.value for k in call.keywords}
            if "nullable" in kw and isinstance(kw["nullable"], ast.Constant):
                out.append(("set", table, column, kw["nullable"].value is False))
            if "new_column_name" in kw and (new := _literal(kw["new_column_name"])):
                out.append(("rename-column", table, column, new))
        elif kind == "drop_column" and len(args) > 1 and (column := _literal(args[1])):
            out.append(("set", table, column, False))
        elif kind == "drop_table":
            out.append(("drop-table", table, None, None))
        elif kind == "rename_table" and len(args) > 1 and (new := _literal(args[1])):
            out.append(("rename-table", table, None, new))
    return out


def _name(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _column_name(node: ast.AST) -> str | None:
    """The literal name of ``sa.Column('name', ...)``."""
    return _literal(node.args[0]) if isinstance(node, ast.Call) and _name(node) == "Column" and node.args else None


def _not_null(column: ast.Call) -> bool:
    kw = {k.arg: k.value for k in column.keywords}
    nullable = kw.get("nullable")
    if isinstance(nullable, ast.Constant):
        return nullable.value is False
    primary = kw.get("primary_key")
    return isinstance(primary, ast.Constant) and primary.value is True
