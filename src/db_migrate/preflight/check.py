"""CHECK: rows that violate a new CHECK constraint.

A row violates ``CHECK (cond)`` when ``cond`` is false (NULL passes), so the
count is ``WHERE NOT (cond)``.  The condition comes from the revision and is
evaluated only when it is a plain expression (:mod:`.expressions`).  Added
``NOT VALID`` (PostgreSQL), existing rows are only checked by a later
``VALIDATE CONSTRAINT``.
"""

from __future__ import annotations

from typing import Any

from db_migrate.preflight.base import Step, answered, count_and_sample, created_constraint, open_table, rows_text, unchecked, validated_later, validations
from db_migrate.preflight.expressions import NotPlain, check_plain, columns_of
from db_migrate.policy.preflight import DataCheck
from db_migrate.preflight.probe import Probe


def run(step: Step, probe: Probe) -> list[DataCheck]:
    op = step.op
    if op.kind == "create_check_constraint":
        validating = not step.get("not_valid") or validated_later(step)
        return [_violations(step, probe, op.table, step.get("condition"), step.get("name"), validating=validating)]
    out = []
    for table, name in validations(step):
        cond = _condition(step, probe, table, name)
        if cond is not None:
            out.append(_violations(step, probe, table, cond, name, validating=True))
    return out


def _condition(step: Step, probe: Probe, table: str, name: str) -> str | None:
    o: Any = created_constraint(step, name, "create_check_constraint")
    if o is not None:
        return (o.detail or {}).get("condition")
    from sqlalchemy import inspect

    try:
        for ck in inspect(probe.conn).get_check_constraints(table):
            if ck.get("name") == name:
                return ck["sqltext"]
    except Exception:
        probe.restart()
    return None


def _violations(step: Step, probe: Probe, table: str | None, condition: Any, name: str | None, *, validating: bool) -> DataCheck:
    from sqlalchemy import text

    if not isinstance(condition, str) or not condition.strip():
        return unchecked(step, "check-constraint", "the condition is unknown", table=table)
    try:
        check_plain(condition, table=table)
    except NotPlain as e:
        return unchecked(step, "check-constraint", f"the condition {condition!r} is not evaluated: {e}", table=table)
    info = open_table(step, probe, "check-constraint", table, [])
    if isinstance(info, DataCheck):
        return info
    name = name or "the CHECK constraint"

    def describe(n: int, at_least: bool) -> str:
        if not n:
            return f"Every row of {info.qualified} satisfies {condition}: {name} will validate."
        if not validating:
            return f"{rows_text(n, at_least)} of {info.qualified} violate {condition}: {name} is added NOT VALID, but validating it fails on them."
        return f"{rows_text(n, at_least)} of {info.qualified} violate {condition}: adding {name} will fail on them."

    fix = (
        f"Fix the violating rows first, e.g.:\n"
        f"op.execute(\"UPDATE {table} SET <column> = <valid value> WHERE NOT ({condition})\")  # or delete them\n"
        f"then add the constraint (on PostgreSQL: NOT VALID, then VALIDATE CONSTRAINT in a separate step)."
    )
    cols = [c for c in columns_of(condition) if c in info.columns]
    return answered(
        step, "check-constraint", probe, info,
        lambda: count_and_sample(probe, info, lambda s: text(f"NOT ({condition})"), cols, list(info.columns)),
        bad="will-fail" if validating else "affects", describe=describe, fix=fix, columns=cols,
    )
