"""Enum values removed or renamed: rows holding the value.

- ``alter_column`` from ``sa.Enum(a, b, c)`` to ``sa.Enum(a, b)``: rows holding
  ``c`` make the change fail (PostgreSQL's cast, MariaDB/MySQL strict mode).
- raw PostgreSQL, the usual "recreate the type" pattern: ``CREATE TYPE e AS
  ENUM (...)`` then ``ALTER TABLE t ALTER COLUMN c TYPE e USING ...`` (which
  the capture turns into an ``alter_column``): rows whose value is not a label
  of the new type fail.
- ``ALTER TYPE e RENAME VALUE 'a' TO 'b'``: the rows follow the rename; their
  number says how much data (and code writing 'a') the rename affects.
"""

from __future__ import annotations


from db_migrate.preflight.base import Step, answered, count_and_sample, open_table, rows_text
from db_migrate.policy.preflight import DataCheck
from db_migrate.preflight.probe import Probe, ProbeFailed


def run(step: Step, probe: Probe) -> list[DataCheck]:
    op = step.op
    if op.kind == "alter_column" and step.get("type_values") and step.get("existing_type_values") and op.column:
        removed = [v for v in step.get("existing_type_values") if v not in step.get("type_values")]
        if removed:
            return [_holding(step, probe, op.table, op.column, removed, bad="will-fail", what="removed")]
        return []
    labels = new_enum_labels(step) if probe.dialect == "postgresql" else None
    if labels is not None:
        return [_holding(step, probe, op.table, op.column, [], bad="will-fail", what="", allowed=labels)]
    if op.kind == "execute" and probe.dialect == "postgresql":
        return _raw(step, probe)
    return []


def new_enum_labels(step: Step) -> list[str] | None:
    """The labels a column changes to when ``alter_column`` moves it to an enum type the revision creates in raw SQL.

    Values the revision renames first (``ALTER TYPE ... RENAME VALUE``) count under their new name.
    """
    if step.op.kind != "alter_column" or not step.op.column or not isinstance(step.get("type"), str):
        return None
    labels = _enum_created_before(step, step.get("type").strip('"'))
    if labels is None:
        return None
    return labels + [old for old, new in _renamed_before(step).items() if new in labels]


def _holding(step: Step, probe: Probe, table: str | None, column: str, values: list[str], *, bad, what: str, allowed: list[str] | None = None) -> DataCheck:
    from sqlalchemy import String, and_, cast

    info = open_table(step, probe, "enum-values", table, [column])
    if isinstance(info, DataCheck):
        return info
    key = f"{info.qualified}.{column}"
    shown = ", ".join(repr(v) for v in (values if allowed is None else allowed))

    def cond(s):
        as_text = cast(s.col(column), String)
        if allowed is not None:
            return and_(s.col(column).is_not(None), as_text.not_in(allowed))
        return as_text.in_(values)

    def describe(n: int, at_least: bool) -> str:
        if allowed is not None:
            return (f"{rows_text(n, at_least)} of {key} hold a value that is not one of {shown}: the change fails on them." if n
                    else f"Every value of {key} is one of {shown}.")
        if what == "renamed":
            return (f"{rows_text(n, at_least)} of {key} hold {shown}, which is renamed: they follow the rename, code writing the old value breaks."
                    if n else f"No row of {key} holds {shown}.")
        return (f"{rows_text(n, at_least)} of {key} hold the {what} value(s) {shown}: the change fails on them." if n
                else f"No row of {key} holds the {what} value(s) {shown}.")

    fix = (f"Move those rows to a remaining value first:\nop.execute(\"UPDATE {table} SET {column} = '<remaining value>' "
           f"WHERE {column} IN ({', '.join(repr(v) for v in values)})\")") if allowed is None else (
           f"Map the other values onto the new labels first (UPDATE {table} SET {column} = ... WHERE {column}::text NOT IN ({shown})).")
    return answered(step, "enum-values", probe, info, lambda: count_and_sample(probe, info, cond, [column], [column]),
                    bad=bad, describe=describe, fix=fix, columns=[column])


def _raw(step: Step, probe: Probe) -> list[DataCheck]:
    """PostgreSQL statements of an op.execute: ALTER TYPE ... RENAME VALUE."""
    import pglast
    from pglast import ast as pgast

    try:
        stmts = [s.stmt for s in pglast.parse_sql(str(step.get("sql") or ""))]
    except Exception:
        return []
    out: list[DataCheck] = []
    for st in stmts:
        if isinstance(st, pgast.AlterEnumStmt) and st.oldVal:
            type_name = st.typeName[-1].sval
            for table, column in _columns_of_type(probe, type_name):
                out.append(_holding(step, probe, table, column, [st.oldVal], bad="affects", what="renamed"))
    return out


def _parsed_before(step: Step):
    """Every PostgreSQL statement the revision runs through op.execute up to and including this operation."""
    import pglast

    for o in [*step.before, step.op]:
        if o.kind != "execute":
            continue
        try:
            yield from (s.stmt for s in pglast.parse_sql(str((o.detail or {}).get("sql") or "")))
        except Exception:
            continue


def _renamed_before(step: Step) -> dict[str, str]:
    """old -> new for each ``ALTER TYPE ... RENAME VALUE`` the revision runs up to this operation."""
    from pglast import ast as pgast

    return {st.oldVal: st.newVal for st in _parsed_before(step) if isinstance(st, pgast.AlterEnumStmt) and st.oldVal}


def _enum_created_before(step: Step, type_name: str) -> list[str] | None:
    """Labels of ``CREATE TYPE type_name AS ENUM (...)`` run earlier by the revision (or by this same execute)."""
    from pglast import ast as pgast

    for st in _parsed_before(step):
        if isinstance(st, pgast.CreateEnumStmt) and st.typeName[-1].sval == type_name:
            return [v.sval for v in st.vals or ()]
    return None


def _columns_of_type(probe: Probe, type_name: str) -> list[tuple[str, str]]:
    from sqlalchemy import text

    q = text("SELECT table_name, column_name FROM information_schema.columns WHERE udt_name = :t ORDER BY 1, 2").bindparams(t=type_name)
    try:
        return [(r[0], r[1]) for r in probe.run(q)]
    except ProbeFailed:
        return []


