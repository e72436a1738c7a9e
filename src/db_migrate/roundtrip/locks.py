"""Locks and table rewrites measured while a revision upgrades (PostgreSQL).

The review predicts from the operations which locks a revision takes and
whether it rewrites a table; this module *measures* it, the way Eugene's
``trace`` does for SQL files, but on the revision's own alembic run:

- before each statement the migration sends, the ``relfilenode`` of every
  table and index in the scratch database is read on the same connection;
- after it (before anything commits), ``pg_locks`` is read for the
  migration's own backend (``pid = pg_backend_pid()``, so other sessions of a
  shared server never show up), and the ``relfilenode`` again.

A lock is attributed to the first statement after which it is held (locks
accumulate until the transaction ends, and the roundtrip commits right before
each revision's upgrade, so a revision starts with none).  A table whose
``relfilenode`` changed was rewritten (ALTER TYPE, a volatile default,
VACUUM FULL, TRUNCATE); a table created by the statement is not a rewrite.

The catalogue queries go through the DBAPI cursor's own connection, not
SQLAlchemy, so they do not trigger these hooks again and stay inside the
migration's transaction.  :class:`LockTracer` is installed on the
:class:`sqlalchemy.engine.Engine` class, so it also sees an env.py that opened
its own (redirected) connection.

:func:`confirm_findings` then compares the measurements with the review's
lock and rewrite findings for the same revision.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

# Relations of the user's schemas: tables, partitioned tables, materialized views, indexes, sequences.
_RELFILENODES = (
    "SELECT c.oid, c.relname, c.relkind, c.relfilenode FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'm', 'i') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%'"
)
_DML = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.I)
_LOCKS = (
    "SELECT l.relation, l.mode FROM pg_locks l "
    "WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)

#: PostgreSQL's lock modes, weakest first (the order of their conflict sets).
LOCK_ORDER = [
    "AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock",
    "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock",
]
#: Modes that block plain reads or writes of the table while held.
BLOCKING = {"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}


class TableLock(BaseModel):
    table: str = Field(description="Table (or index) name.")
    mode: str = Field(description="PostgreSQL lock mode, e.g. AccessExclusiveLock.")
    kind: str = Field(default="table", description="table or index.")


class StatementTrace(BaseModel):
    """What one statement of a revision's upgrade did to locks and table files."""

    revision: str
    statement: str = Field(description="The statement, shortened to one line.")
    locks: list[TableLock] = Field(default_factory=list, description="Locks first held after this statement.")
    rewritten: list[str] = Field(default_factory=list, description="Tables (and indexes) whose relfilenode changed.")


class LockCheck(BaseModel):
    """A review finding about locks or rewrites, confirmed or cleared by the measurement."""

    rule: str
    revision: str
    table: str | None = None
    outcome: str = Field(description="'confirmed' or 'cleared'.")
    evidence: str = Field(description="What was measured, e.g. 'AccessExclusiveLock on persons; persons rewritten'.")
    line: int | None = None


def _short(statement: str) -> str:
    one = " ".join(statement.split())
    return one if len(one) <= 240 else one[:237] + "..."


def _query(dbapi_conn: Any, sql: str) -> list[tuple]:
    cur = dbapi_conn.cursor()
    try:
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        cur.close()


class LockTracer:
    """Per-statement locks and rewrites while :attr:`revision` is set (None: not tracing)."""

    def __init__(self, version_table: str = "alembic_version") -> None:
        self.revision: str | None = None
        self.traces: list[StatementTrace] = []
        self.commits = 0  # commits seen on any connection while installed (a revision that commits)
        # alembic's own reads and writes of its version table are not the revision's
        self._version_re = re.compile(rf"\b{re.escape(version_table)}\b", re.I)
        self._before: dict[int, tuple[str, str, int]] = {}
        self._held: set[tuple[int, str]] = set()
        self._installed = False

    # -- lifecycle
    def install(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self._before_execute)
        event.listen(Engine, "after_cursor_execute", self._after_execute)
        event.listen(Engine, "commit", self._on_commit)
        self._installed = True

    def remove(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        if self._installed:
            event.remove(Engine, "before_cursor_execute", self._before_execute)
            event.remove(Engine, "after_cursor_execute", self._after_execute)
            event.remove(Engine, "commit", self._on_commit)
            self._installed = False

    def start(self, revision: str) -> None:
        """Trace the statements of ``revision`` from now on (its transaction has just begun: no locks held)."""
        self.revision = revision
        self._held = set()

    def stop(self) -> None:
        self.revision = None

    # -- hooks
    def _on_commit(self, conn: Any) -> None:
        self.commits += 1
        self._held = set()

    def _wanted(self, conn: Any, statement: str) -> bool:
        return self.revision is not None and conn.dialect.name == "postgresql" and not self._version_re.search(statement)

    def _before_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if not self._wanted(conn, statement):
            return
        if re.match(r"^\s*(COMMIT|END)\b", statement, re.I):
            self.commits += 1
        if _DML.match(statement):
            self._before = {}  # plain DML never swaps a table's file: spare the catalogue query
            return
        try:
            self._before = {oid: (name, kind, node) for oid, name, kind, node in _query(cursor.connection, _RELFILENODES)}
        except Exception:
            self._before = {}

    def _after_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if not self._wanted(conn, statement):
            return
        try:
            locks = _query(cursor.connection, _LOCKS)
            fresh = [(oid, mode) for oid, mode in locks if (oid, mode) not in self._held]
            if not fresh and _DML.match(statement):
                return  # nothing new to name, and DML rewrites nothing
            now = {oid: (name, kind, node) for oid, name, kind, node in _query(cursor.connection, _RELFILENODES)}
        except Exception:
            return  # the catalogue could not be read (an aborted transaction): nothing to attribute
        names = {**self._before, **now}  # a dropped table is named from before the statement
        new_locks = []
        for oid, mode in fresh:
            if oid not in names:
                continue  # a catalogue relation of our own query
            self._held.add((oid, mode))
            name, kind, _ = names[oid]
            new_locks.append(TableLock(table=name, mode=mode, kind="index" if kind == "i" else "table"))
        rewritten = [
            name for oid, (name, kind, node) in now.items()
            if oid in self._before and self._before[oid][2] != node
        ]
        if new_locks or rewritten:
            new_locks.sort(key=lambda t: (t.table, LOCK_ORDER.index(t.mode) if t.mode in LOCK_ORDER else 99))
            self.traces.append(StatementTrace(revision=self.revision, statement=_short(statement),
                                              locks=new_locks, rewritten=sorted(rewritten)))


def strongest(traces: list[StatementTrace], table: str) -> str | None:
    """The strongest lock mode measured on ``table`` over ``traces``."""
    modes = [lk.mode for t in traces for lk in t.locks if lk.table == table and lk.mode in LOCK_ORDER]
    return max(modes, key=LOCK_ORDER.index) if modes else None


def rewritten_tables(traces: list[StatementTrace]) -> set[str]:
    return {name for t in traces for name in t.rewritten}


#: Review rules whose finding is a claim about a table rewrite.
REWRITE_RULES = {"add-column-volatile-default", "add-serial-column", "add-stored-generated-column", "alter-column-type"}
#: Review rules whose finding is a claim about a lock that blocks the table, with the mode they predict at least.
LOCK_RULES = {
    "set-not-null": "AccessExclusiveLock",
    "add-foreign-key-validating": "ShareRowExclusiveLock",
    "add-check-constraint-validating": "AccessExclusiveLock",
    "add-unique-constraint": "ShareLock",
    "create-index-non-concurrent": "ShareLock",
    "drop-index-non-concurrent": "AccessExclusiveLock",
    "change-primary-key": "AccessExclusiveLock",
}


def confirm_findings(findings: list[Any], traces: list[StatementTrace]) -> list[LockCheck]:
    """Compare the review's lock/rewrite findings of one revision with what its upgrade measured.

    A rewrite finding is confirmed when the table's relfilenode changed and
    cleared when it did not (e.g. a varchar widening PostgreSQL does in place);
    a lock finding is confirmed when a lock at least as strong as the rule
    predicts was held on the table, cleared otherwise.  Findings without a
    table, or of other rules, are left out.
    """
    out: list[LockCheck] = []
    rewritten = rewritten_tables(traces)
    for f in findings:
        if not f.table or f.rule not in REWRITE_RULES and f.rule not in LOCK_RULES:
            continue
        mode = strongest(traces, f.table)
        held = f"{mode} on {f.table}" if mode else f"no lock on {f.table}"
        if f.rule in REWRITE_RULES:
            hit = f.table in rewritten
            evidence = f"{held}; {f.table} {'rewritten (relfilenode changed)' if hit else 'not rewritten (relfilenode unchanged)'}"
        else:
            want = LOCK_RULES[f.rule]
            hit = mode is not None and LOCK_ORDER.index(mode) >= LOCK_ORDER.index(want)
            evidence = f"{held} (the rule predicts {want} or stronger)"
        out.append(LockCheck(rule=f.rule, revision=f.revision or "", table=f.table, line=f.line,
                             outcome="confirmed" if hit else "cleared", evidence=evidence))
    return out
