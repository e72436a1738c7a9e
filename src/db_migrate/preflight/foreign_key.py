"""FOREIGN KEY: child rows whose key has no parent row (orphans).

A validated foreign key fails on the first orphan (PostgreSQL, MariaDB/MySQL
with ``foreign_key_checks`` on).  Added ``NOT VALID`` (PostgreSQL), it does not
look at existing rows, but a ``VALIDATE CONSTRAINT`` (later in the revision,
or in a later one) fails on them.  SQLite never checks existing rows when a
table is rebuilt: the orphans simply stay.
"""

from __future__ import annotations

from typing import Any

from db_migrate.preflight.base import Step, answered, count_and_sample, created_constraint, open_table, rows_text, unchecked, validated_later, validations
from db_migrate.policy.preflight import DataCheck
from db_migrate.preflight.probe import Probe, ProbeFailed


def run(step: Step, probe: Probe) -> list[DataCheck]:
    op = step.op
    if op.kind == "create_foreign_key":
        not_valid = bool(step.get("not_valid"))
        return [_orphans(step, probe, op.table, step.get("columns") or [], step.get("referent_table"),
                         step.get("remote_columns") or [], step.get("name"), validating=not not_valid or validated_later(step))]
    out = []
    for table, name in validations(step):
        spec = _constraint(step, probe, table, name)
        if spec is not None:
            out.append(_orphans(step, probe, table, *spec, name, validating=True))
    return out


def _constraint(step: Step, probe: Probe, table: str, name: str) -> tuple[list[str], str, list[str]] | None:
    """(columns, parent table, parent columns) of foreign key ``name``: from the revision, else from the database."""
    o: Any = created_constraint(step, name, "create_foreign_key")
    if o is not None:
        d = o.detail or {}
        return list(d.get("columns") or []), d.get("referent_table"), list(d.get("remote_columns") or [])
    from sqlalchemy import inspect

    try:
        for fk in inspect(probe.conn).get_foreign_keys(table):
            if fk.get("name") == name:
                return list(fk["constrained_columns"]), fk["referred_table"], list(fk["referred_columns"])
    except Exception:
        probe.restart()
    return None


def _orphans(step: Step, probe: Probe, table: str | None, columns: list[str], parent: str | None, parent_columns: list[str],
             name: str | None, *, validating: bool) -> DataCheck:
    columns = [c for c in columns if isinstance(c, str)]
    if not columns or not parent or len(parent_columns) != len(columns):
        return unchecked(step, "foreign-key", "the foreign key's columns or parent table are unknown", table=table)
    info = open_table(step, probe, "foreign-key", table, columns)
    if isinstance(info, DataCheck):
        return info
    name = name or "the foreign key"
    if step.created_here(parent):
        parent_info = None  # a parent created by this revision is empty when the key is added
    else:
        try:
            parent_info = probe.table(parent, step.schema)
        except ProbeFailed as e:
            return unchecked(step, "foreign-key", str(e), table=info.qualified, columns=columns)
        if parent_info is None:
            return unchecked(step, "foreign-key", f"the database has no parent table {parent}", table=info.qualified, columns=columns)
        if any(c not in parent_info.columns for c in parent_columns):
            return unchecked(step, "foreign-key", f"{parent} has no column {', '.join(parent_columns)}", table=info.qualified, columns=columns)

    def orphan(src):
        from sqlalchemy import and_, column, exists, literal, select, table as sa_table

        has_key = and_(*(src.col(c).is_not(None) for c in columns))
        if parent_info is None:
            return has_key
        p = sa_table(parent_info.name, *(column(c) for c in parent_columns), schema=parent_info.schema).alias("parent")
        match = and_(*(p.c[pc] == src.col(c) for c, pc in zip(columns, parent_columns)))
        return and_(has_key, ~exists(select(literal(1)).select_from(p).where(match)))

    key = f"{info.qualified} ({', '.join(columns)})"

    def describe(n: int, at_least: bool) -> str:
        if not n:
            return f"Every row of {key} has a parent in {parent}: {name} will validate."
        what = f"{rows_text(n, at_least)} of {key} point to no row of {parent}"
        if probe.dialect == "sqlite":
            return f"{what}: SQLite does not check existing rows, so they stay orphaned under {name}."
        if not validating:
            return f"{what}: {name} is added NOT VALID, but validating it later fails on them."
        return f"{what}: {name} will fail to validate on them."

    fix = (
        f"Clean up the orphans first (or add the key NOT VALID and fix the rows before VALIDATE):\n"
        f"op.execute(\"UPDATE {table} SET {', '.join(f'{c} = NULL' for c in columns)} WHERE NOT EXISTS "
        f"(SELECT 1 FROM {parent} p WHERE {' AND '.join(f'p.{pc} = {table}.{c}' for c, pc in zip(columns, parent_columns))})"
        f"\")  # or DELETE them, or insert the missing parents"
    )
    bad = "will-fail" if validating and probe.dialect != "sqlite" else "affects"
    return answered(
        step, "foreign-key", probe, info, lambda: count_and_sample(probe, info, orphan, columns, columns),
        bad=bad, describe=describe, fix=fix, columns=columns,
    )
