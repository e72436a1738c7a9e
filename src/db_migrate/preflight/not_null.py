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
    info = open_table(step, probe, "not-null", table, [column])
    if isinstance(info, DataCheck):
        return info

    def describe(n: int, at_least: bool) -> str:
        if not n:
            return f"No row of {info.qualified} has {column} NULL: SET NOT NULL will pass."
        return f"{rows_text(n, at_least)} of {info.qualified} have {column} NULL: SET NOT NULL will fail on them."

    fix = (
        f"Backfill before setting NOT NULL, in this revision or one before it:\n"
        f"op.execute(\"UPDATE {table} SET {column} = <value> WHERE {column} IS NULL\")  # or delete those rows\n"
        f"op.alter_column({table!r}, {column!r}, nullable=False)"
    )
    return answered(
        step, "not-null", probe, info,
        lambda: count_and_sample(probe, info, lambda s: s.col(column).is_(None), [], [column]),
        bad="will-fail", describe=describe, fix=fix, columns=[column],
    )


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
