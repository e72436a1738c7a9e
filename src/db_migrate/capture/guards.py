"""Guards: ``if not settings.database_url: return`` at the top of a phase, and what a history says they test.

A revision may skip itself on some environments by testing a value that is not here when it is recorded (the
project's settings). The value the project's own history gives such an expression, by majority of its guards,
is the environment the history runs in (:func:`guard_values`); the recorder answers those tests with it.
Read from the syntax tree only: nothing runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator


def guard_tests(tree: ast.Module) -> Iterator[tuple[ast.If, ast.expr, bool]]:
    """(if, tested expression, the value it must have to go on) for each ``if X: return`` / ``if not X: return`` at
    the top of ``upgrade()`` or ``downgrade()``: a guard that skips the phase on some environments."""
    for fn in tree.body:
        if not (isinstance(fn, ast.FunctionDef) and fn.name in ("upgrade", "downgrade")):
            continue
        for st in fn.body:
            if not (isinstance(st, ast.If) and not st.orelse and isinstance(st.body[-1], ast.Return)):
                continue
            test, negated = st.test, False
            if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
                test, negated = test.operand, True
            if isinstance(test, (ast.Name, ast.Attribute, ast.Call)):
                yield st, test, negated


def guard_values(trees: Iterable[ast.Module]) -> dict[str, bool]:
    """What each guard expression of a history is in the environment the history runs in, by majority.

    ``if not settings.pg_uri: return`` in 105 revisions and ``if settings.pg_uri: return`` in one: the project runs
    where ``settings.pg_uri`` is set, so the one revision that skips then does nothing there. Only an expression
    guarded at least three times, two thirds of them the same way, gets a value.
    """
    votes: dict[str, list[bool]] = {}
    for tree in trees:
        for _, test, go_on in guard_tests(tree):
            votes.setdefault(ast.unparse(test), []).append(go_on)
    out = {}
    for text, values in votes.items():
        yes = sum(values)
        if len(values) >= 3 and max(yes, len(values) - yes) * 3 >= len(values) * 2:
            out[text] = yes * 2 > len(values)
    return out
