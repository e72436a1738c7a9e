"""Small readers of a revision's syntax tree, shared by the static readers of the capture layer (no other import)."""

from __future__ import annotations

import ast
import functools
import re


def phase_function(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    """The module-level ``def <name>():`` of a revision's syntax tree (``upgrade``, ``downgrade``, a helper), or None."""
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def call_name(node: ast.AST) -> str | None:
    """The name a call calls: ``op.drop_table(...)`` -> ``drop_table``, ``uuid4()`` -> ``uuid4``; None for other nodes."""
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Attribute):
            return f.attr
        if isinstance(f, ast.Name):
            return f.id
    return None


def module_values(tree: ast.Module) -> dict[str, ast.AST]:
    """The values the module binds to plain names at its top level (``tables = ['a', 'b']``), the last one for a name
    bound twice."""
    return {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}


def literal(node: ast.AST | None) -> str | None:
    """The string a node writes literally (``'orders'``), or None."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


@functools.lru_cache(maxsize=32)
def _lines(source: str) -> tuple[str, ...]:
    # the line ends the parser counts (str.splitlines also splits at a form feed and other separators)
    return tuple(re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", source))


def segment(source: str, node: ast.AST) -> str | None:
    """The source text of ``node``, as :func:`ast.get_source_segment` gives it, with the source's lines split once
    (a rule reading many parts of one revision split it again for each: seconds on a long one)."""
    try:
        lineno, end, col, end_col = node.lineno - 1, node.end_lineno - 1, node.col_offset, node.end_col_offset  # type: ignore[attr-defined,operator]
    except (AttributeError, TypeError):
        return None
    lines = _lines(source)
    if end >= len(lines):
        return None
    if lineno == end:
        return lines[lineno].encode()[col:end_col].decode(errors="replace")
    first, last = lines[lineno].encode()[col:].decode(errors="replace"), lines[end].encode()[:end_col].decode(errors="replace")
    return "".join([first, *lines[lineno + 1:end], last])
