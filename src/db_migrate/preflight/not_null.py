"""NOT NULL: rows that are NULL where the revision sets NOT NULL, rows that exist where it adds a NOT NULL column.

- ``alter_column(..., nullable=False)`` on an existing column fails on every
  engine while one row is NULL (PostgreSQL, SQLite's table copy, MariaDB/MySQL
  in strict mode).
- ``add_column`` of a NOT NULL column without a server default fails on
  PostgreSQL and SQLite as soon as the table has a row; MariaDB/MySQL give
  those rows the type's implicit default ('' or 0) instead.
"""

from __future__ import annotations

from sqlalchemy import true

from db_migrate.preflight.base import Step, answered, count_and_sample, new_check, open_table, rows_text, unchecked
from db_migrate.policy.preflight import DataCheck
from db_migrate.preflight.probe import Probe, ProbeFailed


def run(step: Step, probe: Probe) -> list[DataCheck]:
    op = step.op
    if op.kind == "alter_column" and step.get("nullable") is False and op.column:
        return [_set_not_null(step, probe, op.table, op.column)]
    if op.kind == "add_column" and step.get("nullable") is False and step.get("server_default") is None and op.column:
        return [_add_not_null(step, probe, op.table, op.column)]
    return []


def _set_not_null(step: Step, probe: Probe, table: str, column: str) -> DataCheck:
    filled = _filled_before(step, table, column, probe.dialect)
    if filled is not None:
        return new_check(step, "not-null", "passes", f"The UPDATE at line {filled} gives every row of {table} whose {column} "
                         "is NULL a value before SET NOT NULL: it will pass.", columns=[column])
    info = open_table(step, probe, "not-null", table, [column])
    if isinstance(info, DataCheck):
        return info
    value = step.get("server_default") or step.get("existing_server_default")

    def describe(n: int, at_least: bool) -> str:
        if not n:
            return f"No row of {info.qualified} has {column} NULL: SET NOT NULL will pass."
        said = f"{rows_text(n, at_least)} of {info.qualified} have {column} NULL: SET NOT NULL will fail on them."
        if value:
            return f"{said} The column's server default ({value}) is the value the revision gives for none: fill them with it first."
        return (f"{said} Neither the revision nor the column's default says which value they should get (or whether they "
                "should be deleted): that is the project's choice.")

    if value:
        fix = (f"Fill them with the column's server default before SET NOT NULL (set-not-null's patch does):\n"
               f"op.execute(\"UPDATE {table} SET {column} = {value} WHERE {column} IS NULL\")")
    else:
        fix = ("A human chooses the value these rows get, or deletes them; then, in this revision or one before it:\n"
               f"op.execute(\"UPDATE {table} SET {column} = <the chosen value> WHERE {column} IS NULL\")")
    check = answered(
        step, "not-null", probe, info,
        lambda: count_and_sample(probe, info, lambda s: s.col(column).is_(None), [], [column]),
        bad="will-fail", describe=describe, fix=fix, columns=[column],
    )
    return check.model_copy(update={"needs_choice": True}) if check.outcome == "will-fail" and not value else check


def _filled_before(step: Step, table: str, column: str, dialect: str) -> int | None:
    """The line of an earlier UPDATE of the revision that fills ``column``'s NULL rows, when such fills are the only
    changes of ``table``'s rows before this step (another change makes today's rows not the ones SET NOT NULL meets)."""
    from db_migrate.capture.sql import filled_nulls, parse_sql

    line = None
    for o in step.row_changes_before(table):
        fills = [filled_nulls(s) for s in parse_sql(str((o.detail or {}).get("sql") or ""), dialect)] if o.kind == "execute" else []
        if not fills or any(f is None or f[0] != table for f in fills):
            return None
        if any(f[1] == column for f in fills):
            line = o.line
    return line


def _add_not_null(step: Step, probe: Probe, table: str, column: str) -> DataCheck:
    if step.op.table_created_here or step.created_here(table):
        return unchecked(step, "not-null", f"table {table} is created by this revision, so it has no rows yet", columns=[column])
    info = open_table(step, probe, "not-null", table, [])
    if isinstance(info, DataCheck):
        return info
    try:
        a = count_and_sample(probe, info, lambda s: true(), [], [])
    except ProbeFailed as e:
        return unchecked(step, "not-null", str(e), table=info.qualified, columns=[column])
    rows = a.count
    common = dict(
        table=info.qualified, columns=[column], count=rows, at_least=a.partial, rows_scanned=a.source.scanned,
        samples=a.samples, withheld=a.withheld, queries=[info.count_query, *a.queries[1:]],
    )
    if rows == 0:
        return new_check(step, "not-null", "passes", f"{info.qualified} is empty: the new NOT NULL column {column} meets no row.", **common)
    fix = (
        f"Add the column nullable, backfill, then set NOT NULL (or give it a server_default):\n"
        f"op.add_column({table!r}, sa.Column({column!r}, <type>, nullable=True))\n"
        f"op.execute(\"UPDATE {table} SET {column} = <value> WHERE {column} IS NULL\")\n"
        f"op.alter_column({table!r}, {column!r}, nullable=False)"
    )
    if probe.dialect in ("mysql", "mariadb"):
        return new_check(
            step, "not-null", "affects",
            f"{rows_text(rows, a.partial)} of {info.qualified} will get the type's implicit default ('' or 0) in the new "
            f"NOT NULL column {column}, not a value you chose.", fix=fix, **common,
        )
    return new_check(
        step, "not-null", "will-fail",
        f"{info.qualified} has {rows_text(rows, a.partial)}: adding NOT NULL column {column} without a default fails on them.",
        fix=fix, **common,
    )
