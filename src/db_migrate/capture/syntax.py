"""Small readers of a revision's syntax tree, shared by the static readers of the capture layer (no other import)."""

from __future__ import annotations

import ast


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


def literal(node: ast.AST | None) -> str | None:
    """The string a node writes literally (``'orders'``), or None."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
