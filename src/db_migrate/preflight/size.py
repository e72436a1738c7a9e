"""Table size and lock time for every table the revision rewrites, scans or locks.

Rows come from the probe's bounded count (exact up to the row budget; above
it PostgreSQL's ``reltuples`` estimate, else "more than the budget"); bytes
from ``pg_total_relation_size`` (PostgreSQL) or ``information_schema.tables``
(MariaDB/MySQL).

**How the lock time is estimated.**  Each operation falls in a cost class
(:data:`COST_CLASS`): a full rewrite, a validating scan, an index build, a row
update, or a catalog-only change.  ``bench/bench_preflight.py --rates``
measured, on a 1-million-row PostgreSQL table, the seconds each class takes
relative to a plain ``COUNT(*)`` of the same table (:data:`RELATIVE_COST`).
Preflight times its own bounded count of the user's table (a scan on *their*
server, under *their* load), so::

    lock_seconds = (count seconds per row, measured here) * rows * RELATIVE_COST[class]

When the count read too few rows to time (under 10,000), the benchmark's
absolute COUNT(*) rate (:data:`COUNT_SECONDS_PER_MILLION`) stands in.  It is an
estimate of the order of magnitude, stated with its basis, not a promise.
"""

from __future__ import annotations

from db_migrate.preflight.base import Step, validations
from db_migrate.policy.preflight import TableSize
from db_migrate.preflight.probe import Probe, ProbeFailed, TableInfo

#: Seconds per class, relative to COUNT(*) of the same table: the median of three runs of
#: bench/bench_preflight.py --rates (PostgreSQL 15, 1,000,000 rows of (id bigint pk, id2 bigint, n int,
#: s varchar(40), f numeric, team_id int, status text), a loaded 2-core machine, 2026-12-01). Runs varied by
#: up to 2x (rewrite 20-46x, index 13-29x, scan 0.7-2.8x, UPDATE of every row 79-124x).
RELATIVE_COST = {"rewrite": 20.3, "scan": 1.7, "index": 21.8, "rows": 100.0, "instant": 0.02}
#: Seconds a COUNT(*) of one million such rows took there.
COUNT_SECONDS_PER_MILLION = 0.14
#: Below this many counted rows, the count is too quick to time: use COUNT_SECONDS_PER_MILLION.
MIN_TIMED_ROWS = 10_000

#: PostgreSQL lock strength, weakest first (only the ones migrations take).
_LOCK_ORDER = ["ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"]


def cost(step: Step, dialect: str) -> tuple[str, str, str] | None:
    """(cost class, lock, what) of an operation on an existing table, or None when it takes no table lock worth reporting."""
    op = step.op
    k = op.kind
    if op.table_created_here:
        return None
    if dialect == "sqlite" and (step.get("batch") or k in ("alter_column", "drop_column", "create_foreign_key", "create_check_constraint", "create_unique_constraint")):
        return "rewrite", "the whole database (SQLite writer lock)", f"{k} (batch mode copies the table)"
    if k == "alter_column":
        if step.get("type"):
            return "rewrite", "ACCESS EXCLUSIVE", "column type change (table rewrite)"
        if step.get("nullable") is False:
            return "scan", "ACCESS EXCLUSIVE", "SET NOT NULL (full scan)"
        return "instant", "ACCESS EXCLUSIVE", "alter_column (catalog only)"
    if k == "add_column":
        default = str(step.get("server_default") or "")
        if default and (dialect != "postgresql" or "(" in default):
            return "rewrite", "ACCESS EXCLUSIVE", "new column with a default that fills every row"
        return "instant", "ACCESS EXCLUSIVE", "add_column (catalog only)"
    if k == "create_index":
        if step.get("postgresql_concurrently"):
            return "index", "SHARE UPDATE EXCLUSIVE", "CREATE INDEX CONCURRENTLY (writes go on)"
        return "index", "SHARE", "CREATE INDEX (blocks writes)"
    if k in ("create_unique_constraint", "create_primary_key"):
        return "index", "ACCESS EXCLUSIVE", f"{k} (builds an index)"
    if k == "create_foreign_key":
        if step.get("not_valid"):
            return "instant", "SHARE ROW EXCLUSIVE", "foreign key NOT VALID (no scan)"
        return "scan", "SHARE ROW EXCLUSIVE", "foreign key (validating scan)"
    if k == "create_check_constraint":
        if step.get("not_valid"):
            return "instant", "ACCESS EXCLUSIVE", "CHECK NOT VALID (no scan)"
        return "scan", "ACCESS EXCLUSIVE", "CHECK constraint (validating scan)"
    if k in ("drop_column", "drop_constraint", "rename_table", "drop_index"):
        return "instant", "ACCESS EXCLUSIVE", f"{k} (catalog only)"
    if k == "execute":
        kind = str(step.get("sql_kind") or "").upper()
        if kind in ("UPDATE", "DELETE"):
            return "rows", "ROW EXCLUSIVE", f"{kind} (row locks on every row it touches)"
        if validations(step):
            return "scan", "SHARE UPDATE EXCLUSIVE", "VALIDATE CONSTRAINT (scan, writes go on)"
    return None


def tables_touched(step: Step) -> list[str]:
    """The existing tables an operation locks: its own, and a foreign key's parent."""
    names = [step.op.table] if step.op.table else []
    if step.op.kind == "execute":
        names += [t for t in step.get("tables") or [] if isinstance(t, str)]
        names += [t for t, _ in validations(step)]
    if step.op.kind == "create_foreign_key" and isinstance(step.get("referent_table"), str):
        names.append(step.get("referent_table"))
    return [n for n in dict.fromkeys(names) if not step.created_here(n)]


def measure(probe: Probe, table: str, schema: str | None, work: list[tuple[str, str, str, int | None]]) -> TableSize | None:
    """The size of ``table`` and the lock its operations ``work`` hold.

    ``work``: (cost class, lock, what, rows it touches or None for every row), one per operation.
    """
    try:
        info = probe.table(table, schema)
    except ProbeFailed:
        return None
    if info is None:
        return None
    rows, estimate, queries = info.rows, False, [info.count_query]
    if info.rows > probe.row_budget:
        estimate = True
        rows = _pg_estimate(probe, info, queries) or info.rows
    size = _bytes(probe, info, queries)
    lock = max((w[1] for w in work), key=lambda lk: _LOCK_ORDER.index(lk) if lk in _LOCK_ORDER else len(_LOCK_ORDER))
    seconds, basis = _lock_seconds(info, rows, work)
    return TableSize(
        table=info.qualified, rows=rows, estimate=estimate, bytes=size, operations=list(dict.fromkeys(w[2] for w in work)), lock=lock,
        lock_seconds=seconds, basis=basis, queries=queries,
    )


def _lock_seconds(info: TableInfo, rows: int, work: list[tuple[str, str, str, int | None]]) -> tuple[float | None, str]:
    # row-weighted cost: each operation's class factor times the rows it works on (a DELETE: only its rows)
    weighted = sum(RELATIVE_COST.get(w[0], 0.0) * (rows if w[3] is None else w[3]) for w in work)
    counted = min(info.rows, 10**12)
    if counted >= MIN_TIMED_ROWS and info.count_seconds > 0:
        per_row = info.count_seconds / counted
        how = f"this database counted {counted:,} rows in {info.count_seconds:.3f} s"
    else:
        per_row = COUNT_SECONDS_PER_MILLION / 1e6
        how = f"the benchmark's COUNT(*) rate ({COUNT_SECONDS_PER_MILLION:.3f} s per million rows)"
    classes = " + ".join(f"{w[0]} x{RELATIVE_COST.get(w[0], 0.0):g}" + ("" if w[3] is None else f" on {w[3]:,} rows") for w in work)
    return round(per_row * weighted, 3), f"{how}; cost relative to COUNT(*): {classes} (bench/bench_preflight.py --rates)"


def _pg_estimate(probe: Probe, info: TableInfo, queries: list[str]) -> int | None:
    from sqlalchemy import text

    if probe.dialect != "postgresql":
        return None
    q = text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:t)").bindparams(t=_quoted(probe, info))
    try:
        val = probe.scalar(q)
    except ProbeFailed:
        return None
    queries.append(probe.sql(q))
    return int(val) if val is not None and val > 0 else None


def _bytes(probe: Probe, info: TableInfo, queries: list[str]) -> int | None:
    from sqlalchemy import text

    if probe.dialect == "postgresql":
        q = text("SELECT pg_total_relation_size(to_regclass(:t))").bindparams(t=_quoted(probe, info))
    elif probe.dialect in ("mysql", "mariadb"):
        q = text(
            "SELECT data_length + index_length FROM information_schema.tables "
            "WHERE table_schema = COALESCE(:s, DATABASE()) AND table_name = :t"
        ).bindparams(s=info.schema, t=info.name)
    else:
        return None
    try:
        val = probe.scalar(q)
    except ProbeFailed:
        return None
    queries.append(probe.sql(q))
    return int(val) if val is not None else None


def _quoted(probe: Probe, info: TableInfo) -> str:
    prep = probe.conn.dialect.identifier_preparer
    return (prep.quote_schema(info.schema) + "." if info.schema else "") + prep.quote(info.name)
