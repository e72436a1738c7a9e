"""Raw SQL in op.execute: destructive statements, interpolated SQL, backfills inside the DDL transaction."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator

from alembic.operations import ops

from db_migrate.capture.sql import blanks_every_row, merged_values
from db_migrate.capture.syntax import call_name, segment
from db_migrate.rules import _fixes as fx
from db_migrate.rules._helpers import (
    TRANSACTION_CONTROL, clears_orphans, locked_earlier, overwrites_rows, phase_at, tables_created_before, updated_columns,
)
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding

_RUNTIME_INPUT = re.compile(r"\bos\.environ\b|\bgetenv\(|\bget_x_argument\(|\bget_main_option\(|\bget_section\(|\binput\(")


# Drops of objects that hold rows. A raw DROP TABLE that parses is a DropTableOp (drop-table's business);
# it stays here when it does not parse. Triggers, functions, views and indexes hold no data.
_DATA_DROPS = ("DROP TABLE", "DROP SCHEMA", "DROP SEQUENCE", "DROP DATABASE")


class DestructiveSql(Rule):
    id = "destructive-sql"
    title = "DELETE, TRUNCATE, DROP or a blanket UPDATE in raw SQL"
    severity = "warning"
    why = (
        "Raw SQL that deletes or overwrites rows cannot be undone by a downgrade, and reviewers skim string "
        "literals. A DELETE without WHERE or a TRUNCATE empties the table; an UPDATE without WHERE overwrites "
        "every row's old values. DROP in raw SQL also hides the drop from autogenerate and from reviews."
    )
    fix = (
        "# restrict it, and keep what you delete\n"
        "op.execute(\"CREATE TABLE sessions_expired_backup AS SELECT * FROM sessions WHERE expires_at < now() - interval '90 days'\")\n"
        "op.execute(\"DELETE FROM sessions WHERE expires_at < now() - interval '90 days'\")"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.execute('DELETE FROM sessions')\n\ndef downgrade():\n    pass\n",
            good="def upgrade():\n    op.execute(\"INSERT INTO plans (code) VALUES ('free')\")\n\n"
            "def downgrade():\n    op.execute(\"DELETE FROM plans WHERE code = 'free'\")\n",
        ),
        Example(
            bad="def upgrade():\n    op.execute('UPDATE users SET status = NULL')\n\ndef downgrade():\n    pass\n",
            good="def upgrade():\n    op.add_column('users', sa.Column('tier', sa.String(10), nullable=True))\n"
            "    op.execute(\"UPDATE users SET tier = 'free'\")\n\n"
            "def downgrade():\n    op.drop_column('users', 'tier')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec, stmt in cap.statements("upgrade"):
            created = tables_created_before(cap, rec)
            tables = [t for t in stmt.tables if t not in created]
            if not tables:
                continue
            kind = stmt.kind
            # a DELETE or UPDATE changes its target only; the other tables it names are read (USING, subqueries)
            where, table = (tables[0] if kind in ("DELETE", "UPDATE") else ", ".join(tables)), tables[0]
            keep = functools.partial(fx.keep_and_restore_rows, cap, rec, stmt, table)
            # emptying a table loses what its rows hold, like dropping it: whether that is data someone needs is the
            # fact the tool lacks (a warning, as drop-table), and a human decides it (the policy escalates)
            if (key := clears_orphans(cap, rec, stmt)):
                yield self.finding(cap, f"DELETE from {where} of the rows the foreign key created on line {key} forbids "
                                   f"(references to rows that no longer exist): they are removed so the key can be made.",
                                   rec=rec, table=table, severity="info")
                continue
            put_back = _inserted_back(cap, table) if kind == "DELETE" else None
            if put_back:
                yield self.finding(cap, f"DELETE from {where}; the downgrade inserts rows into {table} again (line {put_back}): "
                                   "check they are the ones deleted.", rec=rec, table=table, severity="info")
                continue
            if kind == "DELETE":
                if stmt.has_where is False:
                    yield self.finding(cap, f"DELETE without WHERE empties {where}: every row is gone and no downgrade brings it back.", rec=rec, table=table, fix=keep())
                else:
                    yield self.finding(cap, f"DELETE from {where}: the deleted rows cannot be restored by a downgrade.", rec=rec, table=table, fix=keep())
            elif kind == "TRUNCATE":
                yield self.finding(cap, f"TRUNCATE empties {where}: every row is gone and no downgrade brings it back.", rec=rec, table=table, fix=keep())
            elif kind == "UPDATE" and overwrites_rows(cap, rec, stmt) and not _updated_back(cap, stmt):
                cols = ", ".join(sorted(updated_columns(stmt) or [])) or "columns"
                yield self.finding(
                    cap,
                    f"UPDATE without WHERE overwrites {cols} in every row of {where}; the old values cannot be "
                    f"restored by a downgrade.",
                    rec=rec,
                    table=table,
                    fix=keep(),
                )
            elif kind == "UPDATE" and (merged := merged_values(stmt)) and not _updated_back(cap, stmt):
                yield self.finding(
                    cap, f"UPDATE gives {merged[1]} the value {merged[2]} in the rows of {where} that held another: the "
                    f"values are merged into one, and which rows held the other is lost to a downgrade.",
                    rec=rec, table=table, fix=keep(),
                )
            elif kind in _DATA_DROPS:
                fix = _deprecate(table) if kind == "DROP TABLE" else None
                lost = "its position is lost, and a column default using it fails" if kind == "DROP SEQUENCE" else \
                    "the data is deleted for good"
                hidden = ", and the drop is hidden in a string" if isinstance(getattr(rec.op, "sqltext", None), str) else ""
                yield self.finding(cap, f"{kind} {where} in raw SQL: {lost}{hidden}.", rec=rec, table=table, fix=fix)


@fx.tailored
def _deprecate(table: str) -> str:
    return fx.render(
        f"# keep {table} under another name for a release, drop it later once nothing uses it",
        ops.RenameTableOp(table, f"{table}_deprecated"),
    )


def _inserted_back(cap, table: str) -> int | None:
    """The line of a downgrade INSERT into ``table`` (the rows a DELETE removed, put back: the policy's inverse)."""
    return next((r.line for r, d in cap.statements("downgrade") if d.kind == "INSERT" and d.tables[:1] == [table]), None)


def _updated_back(cap, stmt) -> bool:
    """The downgrade UPDATEs the same columns of the same table (``amount * 100`` undone by ``amount / 100``; a value
    mapped back, ``'faculty'`` to ``'attending'``, on its author's word that the new value was not there before)."""
    cols = updated_columns(stmt)
    blanked = blanks_every_row(stmt)  # then only a statement reading a copy (another table) puts the values back
    return bool(cols) and any(
        d.kind == "UPDATE" and d.tables[:1] == stmt.tables[:1] and cols <= (updated_columns(d) or set())
        and (not blanked or len(d.tables) > 1)
        for _, d in cap.statements("downgrade")
    )


class RawSqlInterpolation(Rule):
    id = "raw-sql-interpolation"
    title = "SQL built by string interpolation"
    severity = "error"
    phases = ("upgrade", "downgrade")
    why = (
        "SQL assembled with f-strings, %, .format() or + breaks on quotes in values and is an injection path "
        "when any part comes from configuration or data; the rendered SQL also changes silently with its inputs, "
        "so the migration is no longer a fixed, reviewable script."
    )
    fix = (
        "op.execute(sa.text('UPDATE users SET plan = :plan WHERE plan IS NULL').bindparams(plan=default_plan))\n"
        "# identifiers cannot be bound: write them literally, or use sa.table()/sa.column() constructs\n"
        "users = sa.table('users', sa.column('plan'))\n"
        "op.execute(users.update().where(users.c.plan.is_(None)).values(plan=default_plan))"
    )
    examples = (
        Example(
            bad="PLAN = 'free'\n\ndef upgrade():\n    op.execute(f\"UPDATE users SET plan = '{PLAN}' WHERE plan IS NULL\")\n\n"
            "def downgrade():\n    pass\n",
            good="PLAN = 'free'\n\ndef upgrade():\n    op.execute(sa.text('UPDATE users SET plan = :p WHERE plan IS NULL').bindparams(p=PLAN))\n\n"
            "def downgrade():\n    pass\n",
        ),
        Example(
            bad="def upgrade():\n    op.execute('DELETE FROM t WHERE id = %d' % 5)\n\ndef downgrade():\n    pass\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        # Values read at run time (rows, environment, alembic -x arguments) make the SQL unreviewable and
        # injectable; names from the migration's own constants (a loop over table names) only risk quoting.
        runtime = cap.facts_of("bind-read") or cap.facts_of("orm-session") or _RUNTIME_INPUT.search(cap.source)
        for fact in cap.facts_of("interpolated-sql"):
            parts = _spliced(cap.source, fact.line)
            # a bare name may hold a value read at run time (a table name from a query); an attribute of the code's
            # own objects (Model.__tablename__, schema.PREFIX) does not
            literals = _fixed_names(cap.source)
            fixed = [p for p in parts if _is_constant(p, literals) or (_is_identifier(cap.source, p) and (not runtime or isinstance(p, ast.Attribute)))]
            if parts and len(fixed) == len(parts) and all(_is_identifier(cap.source, p) for p in parts):
                continue  # a schema prefix or a table name of its own: identifiers cannot be bound, and one is not a value
            if parts and len(fixed) == len(parts):
                yield self.finding(
                    cap, f"SQL passed to execute() is built with {fact.detail} from constants only: nothing read at run "
                    "time reaches it, so it is as fixed as a literal; a literal or bindparams() reads better.",
                    phase=phase_at(cap, fact.line), line=fact.line, severity="info", fix=_bound(cap.source, fact.line),
                )
                continue
            loose = [p for p in parts if p not in fixed]
            if runtime and loose and all(id(p) in _value_slots(cap.source, fact.line) for p in loose):
                yield self.finding(
                    cap, f"SQL passed to execute() is built with {fact.detail}, splicing values read at run time "
                    "unquoted where the SQL expects a value (= {row.id}): text there would fail on the first run, so "
                    "they are numbers, and a number carries no quote; bindparams() reads better.",
                    phase=phase_at(cap, fact.line), line=fact.line, severity="info", fix=_bound(cap.source, fact.line),
                )
                continue
            if runtime and loose and all(id(p) in _name_slots(cap.source, fact.line) for p in loose):
                yield self.finding(
                    cap, f"SQL passed to execute() is built with {fact.detail}, splicing names read at run time where the "
                    "SQL takes a name (a constraint found in the catalogue, say): no bind parameter can stand there, so "
                    "this is how such SQL is written; check the names come from the database, not from input.",
                    phase=phase_at(cap, fact.line), line=fact.line, severity="info",
                )
                continue
            if runtime and (marker := _marked_reviewed(cap.source, fact.line)):
                yield self.finding(
                    cap, f"SQL passed to execute() is built with {fact.detail} from values read at run time; the project "
                    f"marks it checked for injection ({marker}), so it is taken as reviewed. bindparams() would still "
                    "read better and survive a quote.",
                    phase=phase_at(cap, fact.line), line=fact.line, severity="info", fix=_bound(cap.source, fact.line),
                )
                continue
            if runtime:
                msg = (
                    f"SQL passed to execute() is built with {fact.detail} in a migration that reads values at run "
                    f"time: quoting breaks on odd values and it is an injection path."
                )
            else:
                msg = (
                    f"SQL passed to execute() is built with {fact.detail}: the values come from the migration's own "
                    f"code here, but the statement is no longer a fixed, reviewable string and breaks on quotes."
                )
            yield self.finding(
                cap,
                msg + " Use sa.text() with bindparams() or sa.table() constructs.",
                phase=phase_at(cap, fact.line),
                line=fact.line,
                severity=None if runtime else "warning",
                fix=_bound(cap.source, fact.line),
            )


# Names that hold identifiers (a schema prefix, a table name from a loop), which no bind parameter can replace.
_IDENTIFIER_NAME = re.compile(r"schema|prefix|table|tbl|column|col|index|idx|constraint|name|seq|database", re.IGNORECASE)


def _interpolated(node: ast.AST) -> list[ast.AST]:
    """The expressions spliced into the SQL string ``node`` builds (f-string parts, % operands, + operands)."""
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [x for side in (node.left, node.right) for x in (_interpolated(side) if isinstance(side, (ast.BinOp, ast.JoinedStr)) else
                ([] if isinstance(side, ast.Constant) else [side]))]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        right = node.right
        return list(right.elts) if isinstance(right, ast.Tuple) else [right]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return [*node.args, *(k.value for k in node.keywords)]
    return []


def _spliced(source: str, line: int) -> list[ast.AST]:
    """The expressions spliced into the SQL string built on ``line`` (empty when it cannot be told)."""
    from db_migrate.capture.source import parsed

    tree = parsed(source)
    if tree is None:
        return []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) != line or not isinstance(node, (ast.JoinedStr, ast.BinOp, ast.Call)):
            continue
        parts = _interpolated(node)
        while not parts and isinstance(node, ast.Call) and node.args:  # op.execute(<sql>), sa.text(<sql>)
            node = node.args[0]
            parts = _interpolated(node)
        if parts:
            return parts
    return []


def _value_slots(source: str, line: int) -> set[int]:
    """``id()`` of the names, attributes and subscripts an f-string on ``line`` splices unquoted after ``=``, ``<``,
    ``IN (`` or ``,`` (``WHERE id = {row.id}``): a value there that is text is read as a name and fails at once."""
    return _slots(source, line)[0]


def _name_slots(source: str, line: int) -> set[int]:
    """``id()`` of what an f-string on ``line`` splices where SQL takes the name of an object of a table: after
    CONSTRAINT, INDEX, KEY, COLUMN... (``DROP FOREIGN KEY `{name}```): no bind parameter can stand there."""
    return _slots(source, line)[1]


@functools.lru_cache(maxsize=256)
def _slots(source: str, line: int) -> tuple[frozenset[int], frozenset[int]]:
    from db_migrate.capture.source import parsed

    tree = parsed(source)
    slots: set[int] = set()
    names: set[int] = set()
    # the f-string may start on a line of its own inside the call that starts on ``line``
    starting = [n for n in ast.walk(tree) if getattr(n, "lineno", None) == line] if tree is not None else []
    joined = _joined_names(source)
    for node in {id(j): j for n in starting for j in ast.walk(n) if isinstance(j, ast.JoinedStr)}.values():
        before, sql = "", ""
        for i, part in enumerate(node.values):
            if isinstance(part, ast.Constant):
                before = str(part.value)
                sql += before
                continue
            after = node.values[i + 1] if i + 1 < len(node.values) else None
            quoted = before.rstrip().endswith(("'", '"')) or (isinstance(after, ast.Constant) and str(after.value).startswith(("'", '"')))
            # in a VALUES list, after ( or , stands a value; elsewhere ( and , may open a list of column names
            slot = _COMPARED.search(before) or (_LISTED.search(before) and _VALUES.search(sql))
            if not quoted and slot and isinstance(part.value, (ast.Name, ast.Attribute, ast.Subscript)) \
                    and getattr(part.value, "id", None) not in joined and part.conversion == -1 and part.format_spec is None:
                slots.add(id(part.value))
            if _NAMED_BY.search(before):
                names.add(id(part.value))
            before, sql = "", sql + "?"
    return frozenset(slots), frozenset(names)


@functools.lru_cache(maxsize=64)
def _joined_names(source: str) -> frozenset[str]:
    """Names assigned from ``"sep".join(...)``: a list of values made text, which may carry its own quotes."""
    from db_migrate.capture.source import parsed

    tree = parsed(source)
    return frozenset(t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                     and call_name(n.value) == "join" for t in n.targets if isinstance(t, ast.Name)) if tree is not None else frozenset()


def _marked_reviewed(source: str, line: int) -> str | None:
    """The project's own marker that a person checked this SQL for injection (bandit's ``# nosec`` or
    ``# nosec B608``, ruff's ``# noqa: S608``) on a line of the statement starting on ``line``."""
    from db_migrate.capture.source import parsed

    tree = parsed(source)
    spans = [(n.lineno, n.end_lineno or n.lineno) for n in ast.walk(tree) if isinstance(n, ast.stmt) and n.lineno == line] \
        if tree is not None else []
    first, last = max(spans, key=lambda s: s[1] - s[0], default=(line, line))
    lines = source.splitlines()
    for text in lines[first - 1:last]:
        if m := _REVIEWED.search(text):
            return m.group(0).lstrip("# ").strip()
    return None


def _is_identifier(source: str, part: ast.AST) -> bool:
    """Named like an identifier (``schema``, ``table_prefix``, ``Model.__tablename__``): bind parameters could not
    replace it, and it is not a value."""
    name = segment(source, part) or ""
    return bool(_IDENTIFIER_NAME.search(name.rpartition(".")[2]))


def _is_constant(part: ast.AST, names: frozenset[str] = frozenset()) -> bool:
    """A value fixed in the code: a literal, an UPPER_CASE constant, a library's constant (``datetime.min``), an enum
    member's value (``Kind.CORE.value``), a name of ``names`` (assigned once, from such a value), or an expression of
    those only (``",".join(f"'{n}'" for n in BASE_TOOLS)``)."""
    if isinstance(part, ast.Constant):
        return True
    if isinstance(part, ast.Name):
        return part.id.isupper() or part.id in names
    if isinstance(part, ast.Attribute):
        return part.attr.isupper() or (isinstance(part.value, ast.Name) and part.value.id in _CONSTANT_MODULES) or (
            part.attr in ("value", "name") and _is_constant(part.value, names))
    if isinstance(part, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_constant(e, names) for e in part.elts)
    if isinstance(part, ast.IfExp):  # 'CONCURRENTLY ' if concurrently else '': one of two fixed texts
        return _is_constant(part.body, names) and _is_constant(part.orelse, names)
    if isinstance(part, ast.JoinedStr):
        return all(_is_constant(v.value, names) for v in part.values if isinstance(v, ast.FormattedValue))
    if isinstance(part, (ast.GeneratorExp, ast.ListComp, ast.SetComp)):
        bound = names | {n.id for g in part.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        return all(_is_constant(g.iter, names) and all(_is_constant(i, frozenset(bound)) for i in g.ifs)
                   for g in part.generators) and _is_constant(part.elt, frozenset(bound))
    if isinstance(part, ast.Compare):  # a filter of fixed items by fixed values: ``if action != TAG``
        return all(_is_constant(e, names) for e in (part.left, *part.comparators))
    if isinstance(part, ast.BoolOp):
        return all(_is_constant(e, names) for e in part.values)
    if isinstance(part, ast.Call) and call_name(part) in _NO_QUOTE_CALLS:
        return True  # uuid4(), int(...), now(): a value that cannot carry a quote, whatever it is
    if isinstance(part, ast.Call) and isinstance(part.func, ast.Name) and part.func.id == "str" and len(part.args) == 1 \
            and isinstance(part.args[0], ast.Call) and call_name(part.args[0]) in _NO_QUOTE_CALLS:
        return True  # str(uuid.uuid4())
    if isinstance(part, ast.Call) and isinstance(part.func, ast.Name) and part.func.id in _ORDERING:
        return not part.keywords and all(_is_constant(a, names) for a in part.args)  # reversed(RENAMES)
    if isinstance(part, ast.Call) and isinstance(part.func, ast.Attribute) and part.func.attr in ("items", "keys", "values"):
        return not part.args and _is_constant(part.func.value, names)  # RENAMES.items()
    if isinstance(part, ast.Dict):
        return all(k is not None and _is_constant(k, names) for k in part.keys) and all(_is_constant(v, names) for v in part.values)
    if isinstance(part, ast.Call) and isinstance(part.func, ast.Attribute) and isinstance(part.func.value, ast.Constant):
        return not part.keywords and all(_is_constant(a, names) for a in part.args)  # "sep".join(...), "x{}".format(...)
    return False


@functools.lru_cache(maxsize=64)
def _fixed_names(source: str) -> frozenset[str]:
    """Names the revision assigns only plainly (``name = value``) and only from values :func:`_is_constant` calls
    fixed (a local holding a literal, ``value = "external"``, or one of two on two branches): spliced into SQL, they
    are as fixed as the literal."""
    from db_migrate.capture.source import parsed

    tree = parsed(source)
    if tree is None:
        return frozenset()
    # per scope (the module, each function): upgrade() and downgrade() may each hold their own ``value = "..."``;
    # a name assigned on two branches (``kind = 'a'`` / ``kind = 'b'``) is fixed when every value it gets is
    values: dict[tuple[int, str], list[ast.AST | None]] = {}
    scopes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]
    for scope in scopes:
        body = scope.body if scope is not tree else [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for node in (n for st in body for n in ast.walk(st)):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For)) else []
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        # a plain ``name = value`` keeps its value, a loop's name an item of what it loops over
                        # (fixed when that is: ``for old, new in RENAMES``); any other binding makes it unknown (None)
                        plain = isinstance(node, ast.Assign) and t is n
                        bound = node.value if plain else node.iter if isinstance(node, ast.For) else None
                        values.setdefault((id(scope), n.id), []).append(bound)
    known: frozenset[str] = frozenset()
    for _ in range(3):  # a name from a name: a few rounds settle it
        ok = {key: all(v is not None and _is_constant(v, known) for v in vs) for key, vs in values.items()}
        known = frozenset(name for (_, name) in ok if all(v for (sc, n), v in ok.items() if n == name))
    return known


#: Calls whose value has no quote in it, whatever it is (a UUID, a number, a timestamp).
_NO_QUOTE_CALLS = {"uuid4", "uuid1", "int", "float", "now", "utcnow", "today"}


#: Builtins that order or pair fixed items and keep them fixed.
_ORDERING = {"reversed", "sorted", "list", "tuple", "enumerate", "zip"}

#: Modules whose attributes are constants of the language or library (datetime.min, uuid.NAMESPACE_DNS).
_CONSTANT_MODULES = {"datetime", "date", "uuid", "math", "decimal", "sys"}


#: The end of SQL text after which a value is compared (a column list's ``(`` or ``,`` may take a name).
_LISTED = re.compile(r"[(,]\s*$")
#: Where SQL takes the name of one object of a table it names itself (a table or schema found at run time is
#: another matter: which tables a statement changes is then decided by the data, not the revision).
_NAMED_BY = re.compile(r"\b(?:CONSTRAINT|INDEX|KEY|COLUMN|SEQUENCE|TRIGGER|TYPE)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?`?$",
                       re.IGNORECASE)
_VALUES = re.compile(r"\bVALUES\b", re.IGNORECASE)
#: bandit's and ruff's markers that the SQL was checked for injection by a person (a bare ``# nosec`` or one naming
#: B608; ``# nosec B101`` is about something else).
_REVIEWED = re.compile(r"#\s*(?:nosec(?!\s*:?\s*B(?!608))(?:\s*:?\s*B608)?|noqa\s*:\s*[\w, ]*S608)", re.IGNORECASE)
_COMPARED = re.compile(r"(=|<>|!=|<|>|\bIN\s*\()\s*$", re.IGNORECASE)
_VALUE_BEFORE = re.compile(r"(=|<>|!=|<|>|\bIN\s*\(|\bLIKE|,|\()\s*$", re.IGNORECASE)


@fx.tailored
def _bound(source: str, line: int) -> str | None:
    """The f-string SQL on ``line`` as ``sa.text(...)`` with bind parameters for its values.

    Only when every placeholder is a value (quoted, or after = < > IN ( LIKE ,): identifiers cannot be bound.
    """
    from db_migrate.capture.source import parsed

    tree = parsed(source)
    if tree is None:
        return None
    # the execute() whose SQL this is (an f-string elsewhere on the line, a server_default, is no statement)
    call = next((n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno == line and call_name(n) == "execute"
                 and n.args), None)
    node = call.args[0] if call is not None else None
    if isinstance(node, ast.Call) and call_name(node) == "text" and node.args:
        node = node.args[0]
    if not isinstance(node, ast.JoinedStr):
        return None
    # a list joined into the text (IN ({names}), ENUM({labels})) is several values: one parameter cannot hold it
    joined = _joined_names(source)
    sql, params, quoted = "", {}, False
    for part in node.values:
        if isinstance(part, ast.Constant):
            text = str(part.value)
            sql += text[1:] if quoted and text.startswith("'") else text  # the closing quote of '{value}'
            quoted = False
            continue
        if part.conversion != -1 or part.format_spec is not None:
            return None
        expr = segment(source, part.value) or ""
        if ".join(" in expr or (isinstance(part.value, ast.Name) and part.value.id in joined):
            return None
        if expr not in params:
            name = re.sub(r"\W+", "_", expr).strip("_").lower() or "p"
            params[expr] = name if name not in params.values() else f"{name}_{len(params)}"
        if sql.endswith("'"):
            sql, quoted = sql[:-1], True
        elif not _VALUE_BEFORE.search(sql):
            return None
        sql += f":{params[expr]}"
    binds = ", ".join(f"{n}={e}" for e, n in params.items())
    callee = segment(source, call.func) or "op.execute"  # session.execute keeps returning its rows
    return f"{callee}(sa.text({sql!r}).bindparams({binds}))"


class BackfillInSchemaMigration(Rule):
    id = "backfill-in-schema-migration"
    title = "Data backfill in the same transaction as schema changes"
    severity = "info"
    dialects = ("postgresql",)
    why = (
        "PostgreSQL runs the whole revision in one transaction: an UPDATE of an existing table holds row locks on "
        "every row it touches, and the DDL locks taken before it (often ACCESS EXCLUSIVE) are held until the "
        "UPDATE finishes. On a large table that is a long outage and a large WAL burst."
    )
    fix = (
        "# put the backfill in its own revision, in batches, outside the DDL transaction\n"
        "with op.get_context().autocommit_block():\n"
        "    op.execute('UPDATE users SET tier = \\'free\\' WHERE tier IS NULL AND id BETWEEN 1 AND 10000')\n"
        "# (or run it from a script with progress and resumability)"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.add_column('users', sa.Column('tier', sa.String(10), nullable=True))\n"
            "    op.execute(\"UPDATE users SET tier = 'free'\")\n\n"
            "def downgrade():\n    op.drop_column('users', 'tier')\n",
            good="def upgrade():\n    op.add_column('users', sa.Column('tier', sa.String(10), nullable=True))\n"
            "    with op.get_context().autocommit_block():\n"
            "        op.execute(\"UPDATE users SET tier = 'free' WHERE tier IS NULL\")\n\n"
            "def downgrade():\n    op.drop_column('users', 'tier')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        ddl = [r for r in cap.ops("upgrade") if not isinstance(r.op, ops.ExecuteSQLOp) and not r.in_autocommit_block]
        if not ddl:
            return
        for rec, stmt in cap.statements("upgrade"):
            if rec.in_autocommit_block or stmt.kind not in ("UPDATE", "DELETE", "INSERT"):
                continue
            if stmt.kind == "INSERT" and "SELECT" not in stmt.text.upper():
                continue  # a few literal rows (reference data) are not a backfill
            table = next((t for t in stmt.tables if t not in tables_created_before(cap, rec)), None)
            if table:
                held = locked_earlier(cap, rec, table) if stmt.has_where is False else None
                if held:
                    # every row rewritten while reads and writes on the table wait, and a safe form exists (its own
                    # transaction, in batches): on PostgreSQL an error by the severity principle (without data the
                    # table is assumed large; a small table measured by the preflight relaxes it). MySQL's DDL
                    # commits on its own, so no lock is held there: the harm is the size, a warning
                    yield self.finding(
                        cap, f"{stmt.kind} of every row of {table} runs while this transaction holds ACCESS EXCLUSIVE on "
                        f"it (since line {held}): reads and writes on {table} wait until every row is written. Backfill "
                        "in its own transaction, in batches.", rec=rec, table=table, fix=_own_transaction(stmt.text),
                        severity="error" if cap.dialect == "postgresql" else "warning",
                    )
                    return
                yield self.finding(
                    cap,
                    f"{stmt.kind} on {table} runs in the same transaction as this revision's schema changes: on a "
                    f"large table the locks taken by the DDL are held until every row is written.",
                    rec=rec,
                    table=table,
                    fix=_own_transaction(stmt.text),
                )
                return  # once per revision


@fx.tailored
def _own_transaction(sql: str) -> str:
    return "# better: its own revision, in batches\n" + fx.autocommit(fx.execute(sql.strip().rstrip(";")))


class CommitInMigration(Rule):
    id = "commit-in-migration"
    title = "COMMIT or BEGIN issued through op.execute"
    severity = "warning"
    phases = ("upgrade", "downgrade")
    why = (
        "Alembic runs a migration, and the update of alembic_version, inside its own transaction. "
        "op.execute('COMMIT') ends that transaction behind Alembic's back: what ran before is committed even if "
        "a later statement fails, so a failed upgrade leaves a half-applied schema with the old version recorded, "
        "and the next statements run in a transaction Alembic does not know about. It is an old workaround for "
        "ALTER TYPE ... ADD VALUE and CREATE INDEX CONCURRENTLY; autocommit_block() does this properly."
    )
    fix = (
        "with op.get_context().autocommit_block():\n"
        "    op.execute(\"ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'refunded'\")"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.add_column('orders', sa.Column('refund_note', sa.Text()))\n    op.execute('COMMIT')\n"
            "    op.execute(\"ALTER TYPE order_status ADD VALUE 'refunded'\")\n\n"
            "def downgrade():\n    op.drop_column('orders', 'refund_note')\n",
            good="def upgrade():\n    with op.get_context().autocommit_block():\n"
            "        op.execute(\"ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'refunded'\")\n\n"
            "def downgrade():\n    pass\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for phase in self.phases:
            found = [(rec, m) for rec, stmt in cap.statements(phase)
                     if (m := TRANSACTION_CONTROL.match(stmt.text)) and not rec.in_autocommit_block]
            if not found:
                continue
            # one finding per phase: the hand-made transaction boundaries are one way of working, not several faults
            rec, m = found[0]
            more = f" (and on line(s) {', '.join(str(r.line) for r, _ in found[1:])})" if len(found) > 1 else ""
            if m.group(1).upper() in ("COMMIT", "END") and not _changed_before(cap, phase, rec.index):
                yield self.finding(
                    cap,
                    f"op.execute('{m.group(1).upper()}'){more} comes before anything of this {phase} is changed, so "
                    f"nothing is committed early: it works as autocommit_block() does. Unlike that block it leaves the "
                    f"statements after it, and revisions run after it in the same alembic command, outside any "
                    f"transaction; autocommit_block() says the same thing plainly.",
                    rec=rec, severity="info",
                )
                continue
            yield self.finding(
                cap,
                f"op.execute('{m.group(1).upper()}'){more} ends or starts a transaction behind Alembic's back: a "
                f"failure after it leaves the schema half-changed with the old version recorded. Use "
                f"op.get_context().autocommit_block() for statements that cannot run in a transaction.",
                rec=rec,
            )


def _changed_before(cap, phase: str, index: int) -> bool:
    """Whether ``phase`` changes anything before its operation ``index`` (reads and SET are no change)."""
    reads = {r.index for r, stmt in cap.statements(phase) if stmt.kind in ("SELECT", "SET", "SHOW")}
    return any(r.index < index and r.index not in reads for r in cap.ops(phase))


RULES = (DestructiveSql, RawSqlInterpolation, BackfillInSchemaMigration, CommitInMigration)
