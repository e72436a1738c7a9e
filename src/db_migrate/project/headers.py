"""Read a revision file's header without running it.

Alembic imports every revision file to learn its ``revision`` and
``down_revision``, so a single missing application import stops ``alembic
heads``.  Here the module-level assignments are read from the syntax tree
instead: only the part of the file before the first ``def``/``class`` is
parsed (fast), falling back to the whole file.
"""

from __future__ import annotations

import ast
import threading
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER_NAMES = ("revision", "down_revision", "branch_labels", "depends_on")
_FIRST_DEF = re.compile(r"^(?:async\s+def|def|class)\s", re.MULTILINE)
_NOT_LITERAL = object()


@dataclass(frozen=True)
class RevisionHeader:
    """The identity of one revision file, read statically."""

    path: Path
    revision: str | None
    down_revisions: tuple[str, ...]
    """Parents; empty for a base revision. A tuple ``down_revision`` is a merge."""
    branch_labels: tuple[str, ...]
    depends_on: tuple[str, ...]
    message: str | None
    problems: tuple[str, ...] = ()
    """What is malformed: a non-literal value, ``branch_labels = "None"``, a missing ``revision``..."""
    lines: dict[str, int] = field(default_factory=dict, compare=False)
    """1-based line of each header assignment."""
    upgrade: str = "unknown"
    """What ``upgrade()`` is, read from the syntax tree (see :func:`body_kind`)."""
    downgrade: str = "unknown"
    """What ``downgrade()`` is: ``missing``, ``pass``, ``not-implemented``, ``raise``, ``code`` (:func:`body_kind`)."""
    downgrade_reason: str | None = None
    """The message of a downgrade that only raises (``raise Exception("cannot go back: ...")``)."""

    @property
    def is_merge(self) -> bool:
        return len(self.down_revisions) > 1

    @property
    def is_base(self) -> bool:
        return not self.down_revisions


class HeaderSyntaxError(Exception):
    def __init__(self, path: Path, message: str, line: int | None) -> None:
        super().__init__(message)
        self.path, self.message, self.line = path, message, line


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):  # the usual header value: skip literal_eval's generic walk
        return node.value
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOT_LITERAL


def _as_ids(value: Any, name: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if value is _NOT_LITERAL:
        problems.append(f"{name} is not a literal value; it cannot be read without running the file")
        return ()
    if isinstance(value, str):
        if value in ("None", "none", ""):
            problems.append(f"{name} is the string {value!r}, not None")
            return ()
        return (value,)
    if isinstance(value, (tuple, list)):
        if all(isinstance(v, str) for v in value):
            return tuple(value)
    problems.append(f"{name} has an unexpected value {value!r}")
    return ()


def _scan(tree: ast.Module) -> tuple[dict[str, Any], dict[str, int], dict[str, ast.expr]]:
    raw: dict[str, Any] = {}
    lines: dict[str, int] = {}
    nodes: dict[str, ast.expr] = {}
    for stmt in tree.body:
        targets: list[ast.expr]
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        for t in targets:
            if isinstance(t, ast.Name) and t.id in HEADER_NAMES:
                raw[t.id] = _literal(value)
                lines[t.id] = stmt.lineno
                nodes[t.id] = value
    return raw, lines, nodes


def _module_file(path: Path, dotted: str) -> Path | None:
    """The file of module ``dotted`` in a folder above ``path`` (how the project's own package is laid out)."""
    parts = dotted.split(".")
    for folder in path.resolve().parents:
        for candidate in (folder.joinpath(*parts).with_suffix(".py"), folder.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    return None


def _module_constants(file: Path) -> dict[str, str]:
    """Module-level ``NAME = "literal"`` assignments of ``file`` (nothing on any error)."""
    try:
        return _constants(ast.parse(file.read_text(encoding="utf-8", errors="replace")))
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return {}


def _imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted module or ``module:attribute`` for the module's top-level imports."""
    out: dict[str, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
            for a in stmt.names:
                # `from pkg import mod` may name a module or an attribute: both are tried
                out[a.asname or a.name] = f"{stmt.module}:{a.name}"
    return out


def static_labels(node: ast.expr, tree: ast.Module, path: Path) -> tuple[str, ...] | None:
    """``branch_labels`` built from constants, resolved without running anything, or None if it cannot be.

    ``(cli.EXPAND_BRANCH,)`` with ``from pkg.migration import cli``: the constant is read from
    ``pkg/migration/cli.py`` found in a folder above the revision (the project's own package); a
    module-level constant of the revision itself works too.
    """
    items = node.elts if isinstance(node, (ast.Tuple, ast.List)) else [node]
    local = _constants(tree)
    imports = _imports(tree)
    out = []
    for item in items:
        value = None
        if isinstance(item, ast.Constant) and isinstance(item.value, str):
            value = item.value
        elif isinstance(item, ast.Name):
            value = local.get(item.id)
            if value is None and ":" in imports.get(item.id, ""):
                module, attr = imports[item.id].split(":")
                file = _module_file(path, module)
                value = _module_constants(file).get(attr) if file else None
        elif isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name) and item.value.id in imports:
            target = imports[item.value.id]
            module = target.replace(":", ".")
            file = _module_file(path, module)
            value = _module_constants(file).get(item.attr) if file else None
        if value is None:
            return None
        out.append(value)
    return tuple(out)


def _named_labels(node: ast.expr) -> tuple[str, ...] | None:
    """Labels given by names whose module is not here (``(cli.EXPAND_BRANCH,)`` without ``cli.py``): the names
    themselves stand for them, so the branch still counts as labelled (alembic would import the real values)."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List)) else [node]
    literal = [isinstance(i, ast.Constant) and isinstance(i.value, str) for i in items]
    if items and all(lit or isinstance(i, (ast.Name, ast.Attribute)) for lit, i in zip(literal, items)):
        return tuple(i.value if lit else ast.unparse(i) for lit, i in zip(literal, items))
    return None


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "literal"`` assignments of a parsed module."""
    out = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            out.update({t.id: stmt.value.value for t in stmt.targets if isinstance(t, ast.Name)})
    return out


def body_kind(tree: ast.Module | None, name: str) -> tuple[str, str | None]:
    """What module-level function ``name`` is, and the message of a lone raise.

    ``missing`` (no such function), ``pass`` (only pass, a docstring or ``...``), ``not-implemented`` (it raises
    NotImplementedError first), ``raise`` (it raises another exception first: a deliberate stop), ``code``;
    ``unknown`` when there is no tree.
    """
    if tree is None:
        return "unknown", None
    fn = next((st for st in tree.body if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)) and st.name == name), None)
    if fn is None:
        return "missing", None
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) and not isinstance(s, ast.Pass)]
    if not body:
        return "pass", None
    # a raise first is the whole function: what follows it never runs (autogenerate's inverse left below it)
    if isinstance(body[0], ast.Raise) and body[0].exc is not None:
        exc = body[0].exc
        target = exc.func if isinstance(exc, ast.Call) else exc
        kind = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        args = exc.args if isinstance(exc, ast.Call) else []
        message = next((a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)), None)
        return ("not-implemented" if kind == "NotImplementedError" else "raise"), message or kind or None
    return "code", None


_PARSE_LOCK = threading.Lock()


def parse_python(source: str | bytes, filename: str = "<unknown>") -> ast.Module:
    """:func:`ast.parse`, one thread at a time.

    CPython 3.11 keeps the AST converter's recursion depth in interpreter-wide state: two threads parsing
    at once (the MCP server runs calls in threads) fail with "AST constructor recursion depth mismatch".
    """
    with _PARSE_LOCK:
        return ast.parse(source, filename=filename)


def parse_module(source: str | bytes, filename: str = "<revision>") -> tuple[ast.Module | None, tuple[str, int | None] | None]:
    """The whole file's syntax tree, or None and why it is not valid Python (message, line).

    The header is read from the top of the file only, so a syntax error below it is found here;
    it breaks alembic too, which imports the whole file.
    """
    try:
        return parse_python(source, filename=filename), None
    except SyntaxError as e:
        return None, (f"{e.msg} (line {e.lineno})" if e.lineno else e.msg, e.lineno)
    except (ValueError, MemoryError, RecursionError) as e:  # NUL bytes, pathological nesting
        return None, (f"{type(e).__name__}: {e}", None)


def parse_header(path: Path, text: str | None = None, *, tree: ast.Module | None = None) -> RevisionHeader:
    """Parse the header of the revision file at ``path``.

    ``tree``: the whole file, already parsed (then only the statements before the first
    ``def``/``class`` are read first, as from the text).
    Raises :class:`HeaderSyntaxError` when the file is not valid Python.
    """
    full = tree
    if full is not None:
        cut = next((i for i, st in enumerate(full.body)
                    if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))), len(full.body))
        tree = ast.Module(body=full.body[:cut], type_ignores=[])
    else:
        if text is None:
            text = path.read_text(encoding="utf-8", errors="replace")
        m = _FIRST_DEF.search(text)
        if m is not None:
            try:
                tree = parse_python(text[: m.start()])
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                tree = None
    scanned = _scan(tree) if tree is not None else None
    if full is not None and (scanned is None or "revision" not in scanned[0]):
        tree, scanned = full, _scan(full)
    elif scanned is None or "revision" not in scanned[0]:
        try:
            tree = parse_python(text)
        except SyntaxError as e:
            where = f" (line {e.lineno})" if e.lineno else ""
            raise HeaderSyntaxError(path, f"{e.msg}{where}", e.lineno) from None
        except (RecursionError, MemoryError) as e:
            # a pathological expression (200,000 nested unary minus) exhausts the parser: one bad
            # file, reported as such, while the rest of the history is still read
            raise HeaderSyntaxError(path, f"too deeply nested for Python's parser ({type(e).__name__})", None) from None
        except ValueError as e:  # null bytes in the source
            raise HeaderSyntaxError(path, str(e), None) from None
        scanned = _scan(tree)
    raw, lines, nodes = scanned
    problems: list[str] = []
    rev = raw.get("revision")
    if "revision" not in raw:
        problems.append("no module-level `revision = ...` assignment")
        rev = None
    elif not isinstance(rev, str) or not rev:
        problems.append(f"revision has an unexpected value {rev!r}")
        rev = None
    down = _as_ids(raw.get("down_revision"), "down_revision", problems) if "down_revision" in raw else ()
    if "down_revision" not in raw and rev is not None:
        problems.append("no module-level `down_revision = ...` assignment")
    labels: tuple[str, ...] | None = None
    if raw.get("branch_labels") is _NOT_LITERAL and tree is not None:
        labels = static_labels(nodes["branch_labels"], full or tree, path) or _named_labels(nodes["branch_labels"])
    if labels is None:
        labels = _as_ids(raw.get("branch_labels"), "branch_labels", problems)
    deps = _as_ids(raw.get("depends_on"), "depends_on", problems)
    # only the first line is kept, so the (costly) indentation cleanup is not needed
    doc = ast.get_docstring(tree, clean=False) if tree is not None else None
    message = doc.strip().splitlines()[0].strip() if doc and doc.strip() else None
    down_kind, down_reason = body_kind(full, "downgrade")
    return RevisionHeader(
        path=path,
        revision=rev,
        down_revisions=down,
        branch_labels=labels,
        depends_on=deps,
        message=message,
        problems=tuple(problems),
        lines=lines,
        upgrade=body_kind(full, "upgrade")[0],
        downgrade=down_kind,
        downgrade_reason=down_reason,
    )
