"""Which SQL expressions preflight is willing to evaluate against the user's data.

A CHECK condition, a partial index's WHERE or a data statement's WHERE comes
from the revision (untrusted).  It is evaluated only when PostgreSQL's own
parser (pglast) reads it as a *plain* expression: column references, literals,
operators, casts, CASE, IS [NOT] NULL, IN lists and calls of the functions in
:data:`ALLOWED_FUNCTIONS` (pure, read-only functions).  Anything else (a
subquery, an unknown or volatile function, a parameter, ``*``) is refused.
The read-only transaction and the statement timeout stay in force anyway; the
allow-list keeps side effects such as ``nextval`` or advisory locks out, and
keeps the expression meaning what it means in a CHECK.

pglast parses PostgreSQL syntax; for MariaDB/MySQL and SQLite conditions the
common subset parses the same, and what does not parse is refused.
"""

from __future__ import annotations

#: Pure functions a plain expression may call.
ALLOWED_FUNCTIONS = frozenset(
    """abs ceil ceiling floor round trunc mod sign sqrt power greatest least coalesce nullif
    length char_length character_length octet_length bit_length lower upper btrim ltrim rtrim trim
    substr substring left right strpos position replace concat concat_ws lpad rpad reverse split_part
    date_trunc date_part extract to_char to_date to_timestamp make_date age
    array_length cardinality jsonb_typeof json_typeof""".split()
)

#: pglast node types of a plain expression (besides the checked FuncCall and ColumnRef).
_PLAIN_NODES = frozenset(
    """A_Expr BoolExpr A_Const Integer Float String Boolean BitString TypeCast TypeName NullTest BooleanTest
    CaseExpr CaseWhen CoalesceExpr MinMaxExpr A_ArrayExpr SQLValueFunction CollateClause RowExpr List
    NullIfExpr A_Indirection A_Indices""".split()
)


class NotPlain(ValueError):
    """The expression is not one preflight evaluates (why in the message)."""


def check_plain(expr: str, *, table: str | None = None, allow_subqueries: bool = False) -> None:
    """Raise :class:`NotPlain` unless ``expr`` is a plain expression over ``table``'s own columns."""
    import pglast
    from pglast import ast as pgast

    try:
        stmts = pglast.parse_sql(f"SELECT 1 WHERE ({expr})")
    except Exception as e:
        raise NotPlain(f"it does not parse as an SQL expression ({str(e).splitlines()[0]})") from None
    if len(stmts) != 1:
        raise NotPlain("it is more than one expression")
    where = stmts[0].stmt.whereClause
    _walk(where, table, allow_subqueries, pgast)


def _walk(node, table: str | None, allow_subqueries: bool, pgast) -> None:
    if node is None or isinstance(node, (str, int, float, bool)):
        return
    if isinstance(node, tuple):
        for n in node:
            _walk(n, table, allow_subqueries, pgast)
        return
    name = type(node).__name__
    if isinstance(node, pgast.SubLink) or isinstance(node, pgast.SelectStmt):
        if not allow_subqueries:
            raise NotPlain("it contains a subquery")
        _walk_select(node, table, pgast)
        return
    if isinstance(node, pgast.FuncCall):
        fname = node.funcname[-1].sval.lower()
        if fname not in ALLOWED_FUNCTIONS or node.agg_star or node.over is not None:
            raise NotPlain(f"it calls {fname}(), which is not on the allow-list of pure functions")
        _walk(node.args, table, allow_subqueries, pgast)
        return
    if isinstance(node, pgast.ColumnRef):
        fields = [getattr(f, "sval", None) for f in node.fields]
        if any(f is None for f in fields):
            raise NotPlain("it uses '*'")
        if len(fields) > 2 or (len(fields) == 2 and table and fields[0] != table):
            raise NotPlain(f"it refers to {'.'.join(fields)}, outside the table")
        return
    if name not in _PLAIN_NODES:
        raise NotPlain(f"it contains {name}, which is not part of a plain expression")
    for attr in node:  # pglast nodes iterate over their attribute names
        _walk(getattr(node, attr), table, allow_subqueries, pgast)


def _walk_select(node, table: str | None, pgast) -> None:
    """A subquery in a data statement's WHERE: it may read other tables, still through plain expressions."""
    from pglast.visitors import Visitor

    problems: list[str] = []

    class _Calls(Visitor):
        def visit_FuncCall(self, ancestors, n):  # noqa: N802 (pglast's visitor naming)
            fname = n.funcname[-1].sval.lower()
            if fname not in ALLOWED_FUNCTIONS and fname not in ("count", "max", "min", "sum", "avg", "bool_or", "bool_and"):
                problems.append(f"it calls {fname}(), which is not on the allow-list of pure functions")

        def visit_ParamRef(self, ancestors, n):  # noqa: N802
            problems.append("it uses a bound parameter, whose value is only known when the migration runs")

    _Calls()(node)
    if problems:
        raise NotPlain(problems[0])


def columns_of(expr: str) -> list[str]:
    """The column names a (parseable) expression refers to, in order; [] when it does not parse."""
    import pglast
    from pglast.visitors import Visitor

    try:
        tree = pglast.parse_sql(f"SELECT 1 WHERE ({expr})")
    except Exception:
        return []
    names: list[str] = []

    class _Refs(Visitor):
        def visit_ColumnRef(self, ancestors, node):  # noqa: N802 (pglast's visitor naming)
            last = node.fields[-1]
            if getattr(last, "sval", None):
                names.append(last.sval)

    _Refs()(tree)
    return list(dict.fromkeys(names))
