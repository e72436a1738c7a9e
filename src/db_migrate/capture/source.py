"""Facts from a revision's syntax tree: what recording operations cannot see.

- SQL built by interpolation (f-string, ``%``, ``.format``, ``+``) passed to
  ``op.execute`` or ``sa.text``: by the time alembic sees it, it is a plain
  string.
- Imports of application code (models change later; the migration then breaks
  or silently does something else), and modules that are not installed.
- ORM sessions and reads through ``op.get_bind()``: offline recording cannot
  see what a data migration does with rows.
- The shape of ``upgrade``/``downgrade``: missing, ``pass``, ``raise NotImplementedError``.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
import sys
from pathlib import Path

from db_migrate.capture.syntax import call_name, literal, module_values, phase_function
from db_migrate.capture.model import SourceFact, UnrecordedDrop
from db_migrate.project.headers import body_kind

#: Libraries a migration may legitimately import.
MIGRATION_LIBRARIES = frozenset(
    {
        "alembic", "sqlalchemy", "sqlalchemy_utils", "geoalchemy2", "sqlmodel", "alembic_utils",
        "alembic_postgresql_enum", "sqlalchemy_json", "citext", "typing_extensions", "__future__",
        "psycopg", "psycopg2", "pymysql", "mysqlclient", "MySQLdb",
    }
)
_SQL_SINKS = {"execute", "text"}  # op.execute(...), sa.text(...), conn.execute(...)
_READ_METHODS = {"fetchall", "fetchone", "fetchmany", "scalar", "scalars", "scalar_one", "first", "one", "all", "mappings"}


def _interpolation(node: ast.AST) -> str | None:
    """How ``node`` builds a string by interpolation, or None."""
    if isinstance(node, ast.JoinedStr) and any(isinstance(v, ast.FormattedValue) for v in node.values):
        return "an f-string"
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Mod) and isinstance(node.left, (ast.Constant, ast.JoinedStr)):
            return "% formatting"
        if isinstance(node.op, ast.Add) and (_is_str(node.left) or _is_str(node.right) or _interpolation(node.left)):
            return "string concatenation (+)"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return ".format()"
    if isinstance(node, ast.Call) and call_name(node) == "text" and node.args:
        return _interpolation(node.args[0])
    return None


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) or isinstance(node, ast.JoinedStr)


def _module_origin(name: str, root: Path) -> str:
    """``app`` (under the project root), ``library`` (installed or stdlib) or ``missing``."""
    top = name.split(".")[0]
    if top in MIGRATION_LIBRARIES:
        return "migration-library"
    if top in sys.stdlib_module_names:
        return "library"
    for base in (root, root / "src"):
        if (base / top).is_dir() or (base / f"{top}.py").is_file():
            return "app"
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "missing"
    origin = spec.origin or ""
    if "site-packages" in origin or "dist-packages" in origin or spec.origin in (None, "built-in", "frozen"):
        return "library"
    return "app"


def function_body_kind(tree: ast.Module, name: str) -> str:
    """``missing``, ``pass`` (only pass/docstring/...), ``not-implemented`` or ``code`` (a lone raise of another
    exception is code here: it runs and stops; :func:`db_migrate.project.headers.body_kind` tells it apart)."""
    kind = body_kind(tree, name)[0]
    return "code" if kind == "raise" else kind


def refusal(tree: ast.Module, name: str) -> str | None:
    """The message when function ``name`` starts with an unconditional ``raise SomeError("...")``.

    Nothing after such a raise ever runs, and nobody writes one first by accident: the project declares that
    this step refuses to run (a history cut off below a release, an upgrade that must go through another
    tool). NotImplementedError is a placeholder, not a refusal.
    """
    fn = next((st for st in tree.body if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)) and st.name == name), None)
    body = [s for s in (fn.body if fn else []) if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    first = body[0] if body else None
    if not isinstance(first, ast.Raise) or not isinstance(first.exc, ast.Call):
        return None
    target = first.exc.func
    kind = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    words = " ".join(a.value for a in first.exc.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return words.strip() or None if kind != "NotImplementedError" else None


_IRREVERSIBLE = re.compile(r"#\s*db-migrate:\s*irreversible\b[:\s]*(.*)$", re.IGNORECASE)


def irreversible_marker(tree: ast.Module, source: str) -> str | None:
    """The reason of a ``# db-migrate: irreversible <reason>`` comment inside ``downgrade()`` or on the line above it.

    The marker declares a deliberate one-way step; the reason is what a reviewer is shown. None without a marker;
    ``"no reason given"`` for a bare marker. A downgrade whose whole body raises an exception (not
    NotImplementedError) with a message is declared the same way: the message is the reason.
    """
    lines = source.splitlines()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "downgrade":
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            for text in lines[max(0, first - 2): node.end_lineno or node.lineno]:
                m = _IRREVERSIBLE.search(text)
                if m:
                    return m.group(1).strip() or "no reason given"
    kind, message = body_kind(tree, "downgrade")
    if kind == "raise" and message:
        # `raise SomeError("downgrade unsupported: ...")` alone is a declaration too: nobody raises by accident
        return f"the downgrade raises on purpose: {message}"
    if kind in ("pass", "not-implemented"):
        said = _explained(tree, lines)
        if said:
            return f"the downgrade says: {said}"
    return None


_NOT_AN_EXPLANATION = re.compile(r"auto\s*generated|please adjust|\bTODO\b|\bFIXME\b|\bXXX\b|end Alembic commands|"
                                 r"^(up|down)grade schema\.?$", re.IGNORECASE)  # alembic's template docstring


def _explained(tree: ast.Module, lines: list[str]) -> str | None:
    """The author's own comment or docstring in an empty downgrade() or one that only raises NotImplementedError
    ("# Purely a data migration. No downgrade necessary."): a considered one-way step, not a forgotten one.
    Autogenerate's comments and TODOs are not."""
    fn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "downgrade"), None)
    if fn is None:
        return None
    words = [ln.strip().lstrip("#").strip() for ln in lines[fn.lineno: fn.end_lineno or fn.lineno] if ln.strip().startswith("#")]
    doc = ast.get_docstring(fn)  # """No-op: there was only one scheme before.""" says the same as a comment
    text = " ".join(w for w in [*words, *(doc.split() if doc else [])] if w)
    if not text or _NOT_AN_EXPLANATION.search(text):
        return None
    return text[:200]


def source_facts(tree: ast.Module, root: Path) -> list[SourceFact]:
    """Every :class:`SourceFact` of a parsed revision module."""
    facts: list[SourceFact] = []
    bind_names: set[str] = set()
    # SQL built into a local first (``sql = f"..."; op.execute(sql)``): reported where it is built
    built = {t.id: node for node in ast.walk(tree) if isinstance(node, ast.Assign) and _interpolation(node.value)
             for t in node.targets if isinstance(t, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.ImportFrom):
                imported = tuple(a.name for a in node.names)
                if node.level:  # relative import inside versions/: application code
                    facts.append(SourceFact("app-import", node.lineno, "." * node.level + (node.module or ""), imported))
                    continue
                names = [node.module or ""]
            else:
                names, imported = [a.name for a in node.names], ()
            for name in names:
                origin = _module_origin(name, root)
                if origin == "app":
                    facts.append(SourceFact("app-import", node.lineno, name, imported))
                elif origin == "missing":
                    facts.append(SourceFact("missing-import", node.lineno, name))
        elif isinstance(node, ast.Call):
            name = call_name(node)
            if name in _SQL_SINKS and node.args:
                if name == "execute" and call_name(node.args[0]) == "text":
                    continue  # execute(sa.text(f"...")): reported once, at the text() call
                sql, line = node.args[0], node.lineno
                if isinstance(sql, ast.Name) and sql.id in built:
                    sql, line = built[sql.id].value, built[sql.id].lineno
                how = _interpolation(sql)
                if how:
                    facts.append(SourceFact("interpolated-sql", line, how))
            elif name in ("Session", "sessionmaker", "scoped_session"):
                facts.append(SourceFact("orm-session", node.lineno, name))
            elif name in ("exit", "_exit") and isinstance(node.func, ast.Attribute) and getattr(node.func.value, "id", "") in ("sys", "os"):
                facts.append(SourceFact("sys-exit", node.lineno, f"{node.func.value.id}.{name}"))  # type: ignore[attr-defined]
            elif name in _READ_METHODS:
                facts.append(SourceFact("bind-read", node.lineno, name))
        elif isinstance(node, ast.Assign) and call_name(node.value) == "get_bind":
            for t in node.targets:
                if isinstance(t, ast.Name):
                    bind_names.add(t.id)
        elif isinstance(node, ast.For) and isinstance(node.iter, ast.Call) and call_name(node.iter) == "execute":
            facts.append(SourceFact("bind-read", node.lineno, "iterates over query results"))
    # session.query(...) is a read too
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and call_name(node) == "query":
            facts.append(SourceFact("bind-read", node.lineno, "query"))
    # De-duplicate while keeping order.
    seen: set[tuple[str, int, str]] = set()
    out = []
    for f in facts:
        key = (f.kind, f.line, f.detail)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


_COUNT_FROM = re.compile(r"\bcount\s*\(\s*(?:\*|1|[\w.\"`]+)\s*\)\s+from\s+[\"`]?(\w+)", re.IGNORECASE)


def emptiness_checked(tree: ast.Module, phase: str) -> dict[str, int]:
    """{table: line} for each table whose row count ``phase`` reads and then stops on when it is not zero
    (``n = conn.execute(text("SELECT COUNT(*) FROM t")).scalar()`` then ``if n > 0: raise/return``): what the
    function does after that line meets the table empty (or does not run)."""
    fn = phase_function(tree, phase)
    counted: dict[str, str] = {}  # variable -> table
    out: dict[str, int] = {}
    for st in fn.body if fn else []:
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
            m = _COUNT_FROM.search(ast.unparse(st.value))
            if m:
                counted[st.targets[0].id] = m.group(1)
        if not (isinstance(st, ast.If) and st.body and isinstance(st.body[-1], (ast.Return, ast.Raise))):
            continue
        table = _nonzero_count(st.test, counted)
        if table:
            out.setdefault(table, st.lineno)
    return out


def _nonzero_count(test: ast.expr, counted: dict[str, str]) -> str | None:
    """The table whose row count ``test`` is true for when it is not zero (``n``, ``n > 0``, ``n != 0``, ``n >= 1``)."""
    def table_of(e: ast.expr) -> str | None:
        if isinstance(e, ast.Name):
            return counted.get(e.id)
        m = _COUNT_FROM.search(ast.unparse(e))
        return m.group(1) if m else None

    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.comparators[0], ast.Constant):
        op, bound = test.ops[0], test.comparators[0].value
        if (isinstance(op, (ast.Gt, ast.NotEq)) and bound == 0) or (isinstance(op, ast.GtE) and bound == 1):
            return table_of(test.left)
        return None
    return table_of(test) if isinstance(test, (ast.Name, ast.Call, ast.Attribute)) else None


@functools.lru_cache(maxsize=64)
def parsed(source: str) -> ast.Module | None:
    """The syntax tree of a revision's source, parsed once for every rule that reads it (None: not Python).
    Callers only read it."""
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


_STATED_ROWS = re.compile(
    r"(?<![\w.])(\d{1,3}(?:[,_]\d{3})+|\d+(?:\.\d+)?)\s*(k|m|mm|bn|thousand|million|billion)?\s+(?:rows|records|entries)\b",
    re.IGNORECASE,
)
_SCALE = {"k": 10**3, "thousand": 10**3, "m": 10**6, "mm": 10**6, "million": 10**6, "bn": 10**9, "billion": 10**9}


def _words(source: str) -> list[tuple[int, str]]:
    """(line, text) of the revision's own words: docstrings of the module and its functions, and comments. Code and
    SQL strings are not words."""
    import io
    import tokenize

    texts: list[tuple[int, str]] = []
    tree = parsed(source)
    if tree is None:
        return texts
    for node in [tree, *(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]:
        doc = ast.get_docstring(node, clean=False)
        if doc and node.body:
            texts.append((node.body[0].lineno, doc))
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                texts.append((tok.start[0], tok.string))
    except (tokenize.TokenError, SyntaxError):
        pass
    return texts


_ONE_WAY = re.compile(
    r"\b(?:not|never|cannot|can ?not|can't|isn't|is not|no way to)\s+(?:be\s+)?(?:reversible|reversed|undone|rolled back)\b"
    r"|\birreversible\b|\bone[- ]way\b", re.IGNORECASE)


def stated_one_way(source: str) -> tuple[int, str] | None:
    """Where the revision's own words say it cannot be undone ("Unfortunately this process is not reversible"):
    (line, the sentence), or None. A downgrade that runs is then no proof of a way back."""
    for line, text in _words(source):
        if "db-migrate:" in text:
            continue  # the marker is read by irreversible_marker, with its own meaning
        m = _ONE_WAY.search(text)
        if m:
            start = max(text.rfind(".", 0, m.start()), text.rfind("\n", 0, m.start())) + 1
            end = text.find(".", m.end())
            return line, " ".join(text[start: end + 1 if end >= 0 else len(text)].lstrip("#").split())[:200]
    return None


def stated_rows(source: str) -> tuple[int, int, str] | None:
    """The largest row count the revision's own words state (``~2.4M rows`` in its docstring or a comment):
    (rows, line, the words), or None. Code and SQL strings are not read: ``LIMIT 1000`` is not a size."""
    texts = _words(source)
    best: tuple[int, int, str] | None = None
    for line, text in texts:
        for m in _STATED_ROWS.finditer(text):
            number = float(m.group(1).replace(",", "").replace("_", ""))
            rows = int(number * _SCALE.get((m.group(2) or "").lower(), 1))
            if best is None or rows > best[0]:
                best = (rows, line, m.group(0))
    return best


def _argument(call: ast.Call, position: int, name: str) -> ast.AST | None:
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == name), None)


def _batch_tables(fn: ast.AST, op_names: set[str]) -> dict[str, str]:
    """``with op.batch_alter_table('t') as b``: the name bound (``b``) -> its literal table name."""
    out: dict[str, str] = {}
    for node in ast.walk(fn):
        if not isinstance(node, (ast.With, ast.AsyncWith)):
            continue
        for item in node.items:
            call = item.context_expr
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "batch_alter_table"
                    and isinstance(call.func.value, ast.Name) and call.func.value.id in op_names
                    and isinstance(item.optional_vars, ast.Name) and (t := literal(_argument(call, 0, "table_name")))):
                out[item.optional_vars.id] = t
    return out


_COPY = re.compile(r"\bINSERT\s+INTO\s+[\w\"`.]+.*?\bSELECT\b.*?\bFROM\s+[\"`]?(\w+)", re.IGNORECASE | re.DOTALL)


def copied_from(fn: ast.AST, line: int) -> set[str]:
    """Tables whose rows a SQL string after ``line`` copies into another (``INSERT INTO new SELECT ... FROM old``)."""
    texts = [n.value for n in ast.walk(fn) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and getattr(n, "lineno", 0) > line]
    return {m.group(1) for t in texts for m in _COPY.finditer(t)}


def created_after(tree: ast.Module, phase: str, line: int) -> set[str]:
    """Tables ``phase``'s function creates with a literal ``op.create_table('t', ...)`` after ``line``."""
    fn = phase_function(tree, phase)
    return {t for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == "create_table" and n.lineno > line and (t := literal(_argument(n, 0, "table_name")))} if fn else set()


def fills_column(tree: ast.Module, phase: str, after: int, before: int, table: str, column: str) -> int | None:
    """The line of a write of ``table.column`` that ``phase``'s function holds between ``after`` and ``before``
    (``t.update().values(column=...)``, ``update(t).values({'column': ...})``, ``UPDATE t SET column = ...``), or
    None: the fill the code shows where recording could not follow it (a loop over rows read offline)."""
    fn = phase_function(tree, phase)
    if fn is None:
        return None
    set_sql = re.compile(rf"\bUPDATE\s+[\w\"`.]*?\b{re.escape(table)}\b[\"`]?\s.*?\bSET\b.*?[\s,\"`]{re.escape(column)}[\"`]?\s*=",
                         re.IGNORECASE | re.DOTALL)
    for st in fn.body:
        if not (after <= st.lineno < before):
            continue
        names = {n.id for n in ast.walk(st) if isinstance(n, ast.Name)} | {
            n.attr for n in ast.walk(st) if isinstance(n, ast.Attribute)} | {
            n.value for n in ast.walk(st) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        for node in ast.walk(st):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "values" \
                    and table in names and (any(k.arg == column for k in node.keywords) or any(
                        isinstance(a, ast.Dict) and any(literal(k) == column for k in a.keys) for a in node.args)):
                return node.lineno
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and set_sql.search(node.value):
                return node.lineno
    return None


def drops_after(tree: ast.Module, phase: str, line: int, *, within_statement: bool = False) -> list[UnrecordedDrop]:
    """The drops with literal names ``phase``'s function holds after ``line``, where its recording stopped.

    ``op.drop_table('t')``, ``op.drop_column('t', 'c')`` and ``batch_op.drop_column('c')`` inside ``with
    op.batch_alter_table('t') as batch_op``: what would run once the phase got past ``line`` (a data read offline
    recording cannot do, say).  Literal SQL that deletes rows (``DELETE FROM t``, ``TRUNCATE t``; in a string or a
    module-level constant) counts too, and so do the module's own functions those lines call (a helper that
    clears a table). Names built at run time are not guessed. ``within_statement``: only those inside the
    function's top-level statement that holds ``line`` (recording went on past it: what follows was recorded).
    """
    # upgrade(engine_name) runs upgrade_<engine>(): the stop is in the engine's function, and the drops after it too
    fn = next((f for f in tree.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name.startswith(f"{phase}_")
               and f.lineno <= line <= (f.end_lineno or f.lineno)), None) or phase_function(tree, phase)
    if fn is None:
        return []
    end = None
    if within_statement:
        end = next((st.end_lineno for st in fn.body if st.lineno <= line <= (st.end_lineno or st.lineno)), line)
    after = [n for n in ast.walk(fn) if getattr(n, "lineno", 0) >= line and (end is None or n.lineno <= end)]
    nodes = [n for n in after if n.lineno > line] + _called_helpers(tree, after)
    op_names = {"op", "operations"}
    batches = _batch_tables(fn, op_names)
    copied = copied_from(fn, line)
    out: list[UnrecordedDrop] = []
    for node in nodes:
        if isinstance(node, (ast.Constant, ast.Name)) and (sql := _sql_text(tree, node)):
            for m in _DELETES_ROWS.finditer(sql):
                out.append(UnrecordedDrop(phase, "execute", m.group(2).replace('"', ""), None, node.lineno, line,  # type: ignore[arg-type]
                                          sql=" ".join(m.group(0).split())))
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        kind, schema = node.func.attr, literal(next((k.value for k in node.keywords if k.arg == "schema"), None))
        if owner in op_names and kind == "drop_table" and (table := literal(_argument(node, 0, "table_name"))):
            if table in copied:
                continue  # its rows were copied out first (INSERT INTO ... SELECT ... FROM it): a rebuild, not a loss
            out.append(UnrecordedDrop(phase, "drop_table", table, None, node.lineno, line, schema))  # type: ignore[arg-type]
        elif owner in op_names and kind == "drop_column":
            column, table = literal(_argument(node, 1, "column_name")), literal(_argument(node, 0, "table_name"))
            # a table by its literal name, or the loop's name over a literal list (``for table in tables:``)
            for t in ([table] if table else _loop_items(tree, fn, node, _argument(node, 0, "table_name"))) if column else []:
                out.append(UnrecordedDrop(phase, "drop_column", t, column, node.lineno, line, schema))  # type: ignore[arg-type]
        elif owner in batches and kind == "drop_column" and (column := literal(_argument(node, 0, "column_name"))):
            out.append(UnrecordedDrop(phase, "drop_column", batches[owner], column, node.lineno, line, schema))  # type: ignore[arg-type]
    return sorted(out, key=lambda d: d.line)


def _loop_items(tree: ast.Module, fn: ast.AST, node: ast.AST, name: ast.AST | None) -> list[str]:
    """The literal strings a ``for <name> in <list>`` around ``node`` gives ``name``: the list written in place, or a
    module-level name bound to one (``tables = ['a', 'b']``). Empty when it is anything else."""
    if not isinstance(name, ast.Name):
        return []
    module = module_values(tree)
    for loop in (n for n in ast.walk(fn) if isinstance(n, ast.For) and isinstance(n.target, ast.Name) and n.target.id == name.id):
        if not (loop.lineno <= node.lineno <= (loop.end_lineno or loop.lineno)):  # type: ignore[attr-defined]
            continue
        items = module.get(loop.iter.id) if isinstance(loop.iter, ast.Name) else loop.iter
        if isinstance(items, (ast.List, ast.Tuple)) and all(literal(e) for e in items.elts):
            return [literal(e) for e in items.elts]  # type: ignore[misc]
    return []


#: A statement that deletes rows of a table, up to its end (a WHERE is kept: the policy weighs it).
_DELETES_ROWS = re.compile(r"\b(DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?)\s+(?:ONLY\s+)?([\w\".]+)[^;]*", re.IGNORECASE)


def _sql_text(tree: ast.Module, node: ast.AST) -> str | None:
    """The SQL a string literal holds, or a name bound at module level to one (``text(DELETE_QUERY)``)."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        for st in tree.body:
            if isinstance(st, ast.Assign) and any(isinstance(t, ast.Name) and t.id == node.id for t in st.targets):
                return literal(st.value)
    return None


def _called_helpers(tree: ast.Module, nodes: list[ast.AST]) -> list[ast.AST]:
    """Every node of the module's own functions that ``nodes`` call by name, and of those they call in turn."""
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    todo = [n.func.id for n in nodes if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    seen: set[str] = {"upgrade", "downgrade"}
    out: list[ast.AST] = []
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        body = [n for st in defs[name].body for n in ast.walk(st)]
        out += body
        todo += [n.func.id for n in body if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return out
