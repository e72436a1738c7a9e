"""UNIQUE: duplicate groups a new unique index or constraint would meet.

Rows whose key has a NULL are left out: every engine here treats NULLs as
distinct in a unique index.  A partial index's WHERE is applied when it is a
plain expression (:mod:`.expressions`).
"""

from __future__ import annotations

from db_migrate.preflight.base import Answer, Step, answered, open_table, rows_text, unchecked
from db_migrate.preflight.expressions import NotPlain, check_plain
from db_migrate.policy.preflight import DataCheck
from db_migrate.preflight.probe import Probe, plain


def run(step: Step, probe: Probe) -> list[DataCheck]:
    op = step.op
    unique_index = op.kind == "create_index" and step.get("unique")
    if not (unique_index or op.kind == "create_unique_constraint"):
        return []
    columns = [c for c in step.get("columns") or [] if isinstance(c, str)]
    if not columns:
        return [unchecked(step, "unique", "the key's columns are unknown")]
    info = open_table(step, probe, "unique", op.table, columns)
    if isinstance(info, DataCheck):
        return [info]
    where = step.get("where")
    if where:
        try:
            check_plain(where, table=op.table)
        except NotPlain as e:
            return [unchecked(step, "unique", f"the partial index's WHERE is not evaluated: {e}", table=info.qualified, columns=columns)]
    keep, hide = probe.shown(info, columns)
    name = step.get("name") or "the unique key"

    def ask() -> Answer:
        from sqlalchemy import and_, func, select, text

        src = probe.source(info, columns)
        conds = [src.col(c).is_not(None) for c in columns] + ([text(f"({where})")] if where else [])
        keys = [src.col(c) for c in columns]
        groups = select(*keys, func.count().label("copies")).where(and_(*conds)).group_by(*keys).having(func.count() > 1)
        g = groups.subquery("dup_groups")
        q = select(func.count(), func.coalesce(func.sum(g.c.copies), 0)).select_from(g)
        n, rows = probe.run(q)[0]
        queries = [probe.sql(q)]
        samples = []
        if n and probe.sample_limit:
            sq = select(*(g.c[c] for c in keep), g.c.copies).order_by(g.c.copies.desc(), *(g.c[c] for c in keep)).limit(probe.sample_limit)
            samples = [{**{c: plain(v) for c, v in zip(keep, r[:-1])}, "copies": int(r[-1])} for r in probe.run(sq)]
            queries.append(probe.sql(sq))
        ask.rows = int(rows or 0)  # type: ignore[attr-defined]
        return Answer(int(n or 0), samples, hide, queries, src)

    def describe(n: int, at_least: bool) -> str:
        key = f"{info.qualified} ({', '.join(columns)})"
        if not n:
            return f"No duplicate values in {key}: {name} will build."
        return (
            f"{rows_text(n, at_least, 'duplicate group')} in {key} ({getattr(ask, 'rows', 0):,} rows): "
            f"creating {name} will fail on them."
        )

    cols = ", ".join(columns)
    pk = info.primary_key[0] if len(info.primary_key) == 1 else "<pk>"
    fix = (
        f"Remove or merge the duplicates first (keep one row per key), e.g. on PostgreSQL:\n"
        f"op.execute(\"DELETE FROM {op.table} a USING {op.table} b WHERE a.{pk} > b.{pk} AND "
        + " AND ".join(f"a.{c} = b.{c}" for c in columns)
        + f"\")  # or update them to distinct values\nthen create the unique index on ({cols})."
    )
    return [answered(step, "unique", probe, info, ask, bad="will-fail", describe=describe, fix=fix, columns=columns)]
