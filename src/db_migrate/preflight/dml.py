"""Data statements (UPDATE / DELETE in op.execute): how many rows they would touch.

The statement's table and WHERE clause are taken from the parse (pglast on
PostgreSQL; a strict pattern elsewhere, refusing anything it does not fully
understand) and counted with ``SELECT count(*) FROM table WHERE <where>`` in the
read-only transaction.  The WHERE may hold subqueries (they only read) but
only functions on the allow-list (:mod:`.expressions`).  A DELETE that
removes rows loses data (escalate with the count); an UPDATE's count is
information, and says how long its row locks last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from db_migrate.preflight.base import Step, _sort_key, new_check, rows_text, unchecked
from db_migrate.preflight.expressions import NotPlain, check_plain
from db_migrate.policy.preflight import DataCheck
from db_migrate.preflight.probe import Probe, ProbeFailed, plain

_UPDATE = re.compile(r"^\s*UPDATE\s+([\w.`\"]+)(?:\s+(?:AS\s+)?(?!SET\b)(\w+))?\s+SET\s+.*?(?:\s+WHERE\s+(.*))?$", re.IGNORECASE | re.DOTALL)
_DELETE = re.compile(r"^\s*DELETE\s+FROM\s+([\w.`\"]+)(?:\s+(?:AS\s+)?(?!WHERE\b)(\w+))?(?:\s+WHERE\s+(.*))?$", re.IGNORECASE | re.DOTALL)


@dataclass
class DataStatement:
    verb: str
    table: str
    alias: str | None
    where: str | None
    text: str


def run(step: Step, probe: Probe) -> list[DataCheck]:
    if step.op.kind != "execute" or str(step.get("sql_kind") or "").upper() not in ("UPDATE", "DELETE"):
        return []
    text = str(step.get("sql") or "\n".join(step.op.sql or []))
    try:
        statements = _parse(text, probe.dialect)
    except NotPlain as e:
        return [unchecked(step, "data-statement", f"the statement is not counted: {e}")]
    return [_count(step, probe, s) for s in statements]


def _parse(text: str, dialect: str) -> list[DataStatement]:
    if dialect == "postgresql":
        return _parse_pg(text)
    out = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        pat = _UPDATE if part.upper().lstrip().startswith("UPDATE") else _DELETE if part.upper().lstrip().startswith("DELETE") else None
        if pat is None:
            continue
        if len(re.findall(r"\bWHERE\b", part, re.IGNORECASE)) > 1 or re.search(r"\b(LIMIT|ORDER\s+BY|JOIN)\b", part, re.IGNORECASE):
            raise NotPlain("it has joins, several WHERE clauses, ORDER BY or LIMIT, which are not read here")
        m = pat.match(part)
        if not m:
            raise NotPlain("its shape is not UPDATE t SET ... WHERE ... / DELETE FROM t WHERE ...")
        verb = "UPDATE" if pat is _UPDATE else "DELETE"
        out.append(DataStatement(verb, m.group(1).strip('`"'), m.group(2), m.group(3), part))
    return out


def _parse_pg(text: str) -> list[DataStatement]:
    import pglast
    from pglast import ast as pgast
    from pglast.stream import RawStream

    out = []
    for raw in pglast.parse_sql(text):
        st = raw.stmt
        if not isinstance(st, (pgast.UpdateStmt, pgast.DeleteStmt)):
            continue
        if getattr(st, "fromClause", None) or getattr(st, "usingClause", None) or st.withClause is not None:
            raise NotPlain("it reads other tables through FROM / USING / WITH, which is not counted here")
        rel = st.relation
        table = f"{rel.schemaname}.{rel.relname}" if rel.schemaname else rel.relname
        where = RawStream()(st.whereClause) if st.whereClause is not None else None
        verb = "UPDATE" if isinstance(st, pgast.UpdateStmt) else "DELETE"
        out.append(DataStatement(verb, table, rel.alias.aliasname if rel.alias else None, where, RawStream()(st)))
    return out


def _count(step: Step, probe: Probe, s: DataStatement) -> DataCheck:
    from sqlalchemy import text

    schema, _, name = s.table.rpartition(".")
    if step.created_here(name):
        return unchecked(step, "data-statement", f"table {name} is created by this revision", table=name)
    if s.where:
        if re.search(r"(?<![:\w]):\w+|%\(\w+\)s|%s|\?", s.where):
            return unchecked(step, "data-statement", "its WHERE uses bound parameters, whose values are only known when it runs", table=name)
        try:
            check_plain(s.where, table=s.alias or name, allow_subqueries=True)
        except NotPlain as e:
            return unchecked(step, "data-statement", f"its WHERE is not evaluated: {e}", table=name)
    try:
        info = probe.table(name, schema or None)
    except ProbeFailed as e:
        return unchecked(step, "data-statement", str(e), table=name)
    if info is None:
        return unchecked(step, "data-statement", f"the database has no table {s.table}", table=name)
    prep = probe.conn.dialect.identifier_preparer
    quoted = (prep.quote_schema(info.schema) + "." if info.schema else "") + prep.quote(info.name)
    alias = prep.quote(s.alias or info.name)
    partial = info.rows > probe.row_budget
    relation = f"(SELECT * FROM {quoted} LIMIT {probe.row_budget}) AS {alias}" if partial else f"{quoted} AS {alias}"
    where = f" WHERE {s.where}" if s.where else ""
    count_sql = f"SELECT count(*) FROM {relation}{where}"
    keep, hide = probe.shown(info, info.primary_key)
    queries = [count_sql]
    try:
        n = int(probe.scalar(text(count_sql)) or 0)
        samples = []
        if n and keep and probe.sample_limit:
            cols = ", ".join(f"{alias}.{prep.quote(c)}" for c in keep)
            sample_sql = f"SELECT {cols} FROM {relation}{where} LIMIT {probe.sample_limit}"
            samples = [{c: plain(v) for c, v in zip(keep, r)} for r in sorted(probe.run(text(sample_sql)), key=_sort_key)]
            queries.append(sample_sql)
    except ProbeFailed as e:
        return unchecked(step, "data-statement", str(e), table=info.qualified)
    common = dict(table=info.qualified, columns=[], count=n, at_least=partial and n > 0,
                  rows_scanned=min(info.rows, probe.row_budget), samples=samples, withheld=hide, queries=queries)
    if partial and not n:
        return new_check(step, "data-statement", "unchecked", f"Not checked beyond the first {probe.row_budget:,} rows of {info.qualified}.",
                         reason=f"{info.qualified} has more than {probe.row_budget:,} rows (policy preflight_max_rows)", **common)
    touched = rows_text(n, partial)
    if s.verb == "DELETE":
        if not n:
            return new_check(step, "data-statement", "passes", f"The DELETE on {info.qualified} matches no row today.", **common)
        return new_check(
            step, "data-statement", "loses-data", f"The DELETE on {info.qualified} would remove {touched} today.",
            fix=f"Back the rows up first (CREATE TABLE {info.name}_backup AS SELECT * FROM {info.name}{where}) and have a human confirm.",
            **common,
        )
    return new_check(step, "data-statement", "affects", f"The UPDATE on {info.qualified} would change {touched} today.", **common)
