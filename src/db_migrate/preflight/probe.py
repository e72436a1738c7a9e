"""Asking the user's database questions within a budget, read-only.

A :class:`Probe` wraps one connection from :func:`db_migrate.readonly.read_only_connection`
(read-only URL, read-only transaction, always rolled back).  Every query it
runs is bounded twice:

- **rows**: a table with more rows than ``row_budget`` is read only that far
  (``SELECT ... FROM (SELECT ... FROM t LIMIT budget)``), and the check says so;
- **time**: a statement timeout of ``seconds_budget`` (PostgreSQL
  ``statement_timeout`` and ``lock_timeout``, MariaDB ``max_statement_time``,
  MySQL ``MAX_EXECUTION_TIME``, SQLite a progress handler that interrupts the
  statement).  A query that runs out raises :class:`OutOfBudget`, which checks
  turn into *unchecked*, never into "no violations".

Sample rows never carry a column matching the policy's ``sensitive_columns``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from db_migrate.errors import brief
from db_migrate.readonly import begin_read_only

#: Driver messages that mean the statement ran out of its time (or lock-wait) budget.
_TIMEOUT_MARKERS = (
    "statement timeout",
    "lock timeout",
    "canceling statement",
    "max_statement_time",
    "maximum statement execution time",
    "query execution was interrupted",
    "interrupted",
    "timed out",
    "lost connection",
)


class ProbeFailed(Exception):
    """A query could not answer: the database refused it or it does not apply (why in the message)."""


class OutOfBudget(ProbeFailed):
    """A query ran out of its time budget (or waited too long for a lock)."""


@dataclass
class TableInfo:
    """What the database says about one table: its columns (name -> type) and primary key."""

    name: str
    schema: str | None
    columns: dict[str, Any]
    primary_key: list[str]
    rows: int
    """Rows counted, capped at row_budget + 1 (so ``rows > row_budget`` means "more than the budget")."""
    count_seconds: float
    """How long that bounded count took: this database's measured scan rate."""
    count_query: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass
class Source:
    """The relation a check reads: the whole table, or its first ``row_budget`` rows."""

    table: TableInfo
    relation: Any
    partial: bool
    scanned: int

    def col(self, name: str):
        return self.relation.c[name]


@dataclass
class Probe:
    """One read-only connection, the budgets, and what has been learnt about tables so far."""

    conn: Any
    row_budget: int
    seconds_budget: float
    sample_limit: int
    sensitive: list[str] = field(default_factory=list)
    _tables: dict[tuple[str | None, str], TableInfo | ProbeFailed | None] = field(default_factory=dict)
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        if self.dialect == "sqlite":
            raw = self.conn.connection.dbapi_connection
            raw.set_progress_handler(self._interrupt_when_late, 1000)
        self._limit_time()

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    # -- budgets -----------------------------------------------------------------------------------------

    def _interrupt_when_late(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def _limit_time(self) -> None:
        if self.dialect == "postgresql":
            ms = max(1, int(self.seconds_budget * 1000))
            self.conn.exec_driver_sql(f"SET statement_timeout = {ms}")
            self.conn.exec_driver_sql(f"SET lock_timeout = {ms}")

    def restart(self) -> None:
        """A fresh read-only transaction after a failed query (PostgreSQL aborts the transaction)."""
        begin_read_only(self.conn, timeout=self.seconds_budget)
        self._limit_time()

    def run(self, stmt: Any) -> list[tuple]:
        """Execute ``stmt`` within the budget; :class:`OutOfBudget` or :class:`ProbeFailed` when it cannot."""
        self._deadline = time.monotonic() + self.seconds_budget
        try:
            return [tuple(r) for r in self.conn.execute(stmt).fetchall()]
        except Exception as e:
            why = brief(e)
            try:
                self.restart()
            except Exception as again:  # the connection itself is gone (a client-side read timeout closes it)
                raise OutOfBudget(f"the query ran out of its time budget ({self.seconds_budget:g} s) and the connection "
                                  f"was lost: {why} / {brief(again)}") from None
            if any(m in why.lower() for m in _TIMEOUT_MARKERS):
                raise OutOfBudget(f"the query ran out of its time budget ({self.seconds_budget:g} s): {why}") from None
            raise ProbeFailed(why) from None

    def scalar(self, stmt: Any) -> Any:
        rows = self.run(stmt)
        return rows[0][0] if rows else None

    def sql(self, stmt: Any) -> str:
        """The query as run, with its values inlined, for the evidence."""
        try:
            return str(stmt.compile(dialect=self.conn.dialect, compile_kwargs={"literal_binds": True}))
        except Exception:
            return str(stmt.compile(dialect=self.conn.dialect))

    # -- tables ------------------------------------------------------------------------------------------

    def table(self, name: str, schema: str | None = None) -> TableInfo | None:
        """The table as it is in the database now (None when it does not exist)."""
        key = (schema, name)
        if key not in self._tables:
            try:
                self._tables[key] = self._read_table(name, schema)
            except ProbeFailed as e:  # remembered: the next check on this table should not wait out the budget again
                self._tables[key] = e
        found = self._tables[key]
        if isinstance(found, ProbeFailed):
            raise found
        return found

    def _read_table(self, name: str, schema: str | None) -> TableInfo | None:
        from sqlalchemy import func, inspect, literal, select
        from sqlalchemy import table as sa_table

        try:
            insp = inspect(self.conn)
            if not insp.has_table(name, schema=schema):
                return None
            columns = {c["name"]: c["type"] for c in insp.get_columns(name, schema=schema)}
            pk = list(insp.get_pk_constraint(name, schema=schema).get("constrained_columns") or [])
        except Exception as e:
            self.restart()
            raise ProbeFailed(f"cannot read the catalog of {name}: {brief(e)}") from None
        t = sa_table(name, schema=schema)
        if self._estimate(name, schema) < self.row_budget // 2:
            q = select(func.count()).select_from(t)  # well under the budget: a plain count (PostgreSQL scans it in parallel)
        else:
            q = select(func.count()).select_from(select(literal(1).label("one")).select_from(t).limit(self.row_budget + 1).subquery("capped"))
        start = time.perf_counter()
        rows = int(self.scalar(q) or 0)
        return TableInfo(name, schema, columns, pk, rows, time.perf_counter() - start, self.sql(q))

    def _estimate(self, name: str, schema: str | None) -> float:
        """PostgreSQL's row estimate for the table (infinite where there is none: count within the budget)."""
        from sqlalchemy import text

        if self.dialect != "postgresql":
            return float("inf")
        prep = self.conn.dialect.identifier_preparer
        quoted = (prep.quote_schema(schema) + "." if schema else "") + prep.quote(name)
        val = self.scalar(text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)").bindparams(t=quoted))
        return float(val) if val is not None and val >= 0 else float("inf")

    def source(self, info: TableInfo, columns: list[str] | None = None) -> Source:
        """The table, or (over the row budget) its first ``row_budget`` rows, with ``columns`` (default: all)."""
        from sqlalchemy import column as sa_column
        from sqlalchemy import select
        from sqlalchemy import table as sa_table

        names = list(dict.fromkeys(columns or list(info.columns)))
        t = sa_table(info.name, *(sa_column(c) for c in names), schema=info.schema)
        if info.rows <= self.row_budget:
            return Source(info, t, partial=False, scanned=info.rows)
        capped = select(*(t.c[c] for c in names)).limit(self.row_budget).subquery("capped")
        return Source(info, capped, partial=True, scanned=self.row_budget)

    # -- samples -----------------------------------------------------------------------------------------

    def is_sensitive(self, table: str, column: str) -> bool:
        names = (column.lower(), f"{table}.{column}".lower())
        return any(fnmatchcase(n, p.lower()) for p in self.sensitive for n in names)

    def shown(self, info: TableInfo, columns: list[str]) -> tuple[list[str], list[str]]:
        """(columns that may appear in samples, columns withheld because they are sensitive)."""
        keep, hide = [], []
        for c in dict.fromkeys(columns):
            (hide if self.is_sensitive(info.name, c) else keep).append(c)
        return keep, hide


def plain(value: Any) -> Any:
    """A sample value as JSON can carry it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)
