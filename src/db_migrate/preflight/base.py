"""What every preflight check shares: the operation in its revision, counting and sampling within budget.

A check module exposes ``run(step, probe) -> list[DataCheck]``; :mod:`db_migrate.preflight`
calls every module for every upgrade operation of the reviewed revisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from db_migrate.policy.preflight import CheckKind, DataCheck, Outcome
from db_migrate.preflight.probe import OutOfBudget, Probe, ProbeFailed, Source, TableInfo, plain


@dataclass
class Step:
    """One upgrade operation (a review ``Operation``) and the operations of its revision before it."""

    op: Any
    revision: str | None
    path: str | None
    before: list[Any] = field(default_factory=list)
    after: list[Any] = field(default_factory=list)

    def get(self, key: str) -> Any:
        return (self.op.detail or {}).get(key)

    @property
    def table(self) -> str | None:
        return self.op.table

    @property
    def schema(self) -> str | None:
        s = self.get("schema")
        return s if isinstance(s, str) else None

    def describe(self) -> str:
        what = ".".join(x for x in (self.op.table, self.op.column) if x)
        return f"{self.op.kind} {what}".strip()

    def created_here(self, table: str) -> bool:
        """The revision creates ``table`` before this operation."""
        return self.op.table_created_here and table == self.op.table or any(
            o.kind == "create_table" and o.table == table for o in self.before
        )

    def added_here(self, table: str, column: str) -> bool:
        return any(o.kind == "add_column" and o.table == table and o.column == column for o in self.before)

    def rows_changed_before(self, table: str) -> Any:
        """An earlier operation of the revision that changes rows of ``table`` (its data is not today's then)."""
        return next(iter(self.row_changes_before(table)), None)

    def row_changes_before(self, table: str) -> list[Any]:
        """Every earlier operation of the revision that changes rows of ``table``, in order."""
        from db_migrate.policy.classify import DML_KINDS  # the policy's list; here, not at import: classify imports preflight

        out = []
        for o in self.before:
            d = o.detail or {}
            if (o.kind == "bulk_insert" and o.table == table) or (
                    o.kind == "execute" and str(d.get("sql_kind") or "").upper() in DML_KINDS and table in (d.get("tables") or [o.table])):
                out.append(o)
        return out


def new_check(step: Step, kind: CheckKind, outcome: Outcome, message: str, **kw: Any) -> DataCheck:
    return DataCheck(
        check=kind, outcome=outcome, revision=step.revision, path=step.path, line=step.op.line,
        operation=step.describe(), table=kw.pop("table", step.table), message=message, **kw,
    )


def unchecked(step: Step, kind: CheckKind, reason: str, **kw: Any) -> DataCheck:
    return new_check(step, kind, "unchecked", f"Not checked: {reason}.", reason=reason, **kw)


def open_table(step: Step, probe: Probe, kind: CheckKind, table: str | None, columns: list[str]) -> TableInfo | DataCheck:
    """The table and columns as the database has them now, or the unchecked answer saying why not."""
    if not table:
        return unchecked(step, kind, "the operation names no table")
    if step.created_here(table):
        return unchecked(step, kind, f"table {table} is created by this revision, so it has no rows to check yet", table=table)
    changed = step.rows_changed_before(table)
    if changed is not None:
        return unchecked(
            step, kind,
            f"the revision changes rows of {table} before this operation (line {changed.line}), so today's rows are not "
            "the rows this operation will meet; run test_roundtrip", table=table, columns=columns,
        )
    for c in columns:
        if step.added_here(table, c):
            return unchecked(step, kind, f"column {table}.{c} is added by this revision; its values come from the revision itself", table=table, columns=columns)
    try:
        info = probe.table(table, step.schema)
    except ProbeFailed as e:
        return unchecked(step, kind, str(e), table=table, columns=columns)
    if info is None:
        return unchecked(step, kind, f"the database has no table {table}", table=table, columns=columns)
    missing = [c for c in columns if c not in info.columns]
    if missing:
        return unchecked(step, kind, f"{table} has no column {', '.join(missing)} (or it is an expression)", table=table, columns=columns)
    return info


@dataclass
class Answer:
    """A count and its samples, with the queries that produced them."""

    count: int
    samples: list[dict[str, Any]]
    withheld: list[str]
    queries: list[str]
    source: Source

    @property
    def partial(self) -> bool:
        return self.source.partial


def count_and_sample(probe: Probe, info: TableInfo, where_of, shown_columns: list[str], needed: list[str]) -> Answer:
    """Rows of ``info`` where ``where_of(source)`` holds: their number and up to ``sample_limit`` of them.

    The samples carry the primary key and ``shown_columns``, minus sensitive ones.
    Raises :class:`OutOfBudget` / :class:`ProbeFailed`.
    """
    from sqlalchemy import func, select

    keep, hide = probe.shown(info, [*info.primary_key, *shown_columns])
    src = probe.source(info, [*info.primary_key, *needed, *shown_columns])
    cond = where_of(src)
    q = select(func.count()).select_from(src.relation).where(cond)
    n = int(probe.scalar(q) or 0)
    queries = [probe.sql(q)]
    samples: list[dict[str, Any]] = []
    if n and probe.sample_limit and keep:
        # no ORDER BY: on a large table the planner would walk the primary key index over every row;
        # any few rows will do, sorted here so that the same rows always read the same
        sq = select(*(src.col(c) for c in keep)).where(cond).limit(probe.sample_limit)
        samples = [{c: plain(v) for c, v in zip(keep, row)} for row in sorted(probe.run(sq), key=_sort_key)]
        queries.append(probe.sql(sq))
    return Answer(n, samples, hide, queries, src)


def _sort_key(row: tuple) -> tuple:
    return tuple((v is None, str(type(v)), v if isinstance(v, (int, float, str)) else str(v)) for v in row)


def answered(step: Step, kind: CheckKind, probe: Probe, info: TableInfo, ask, *, bad: Outcome, describe, fix: str | None, columns: list[str]) -> DataCheck:
    """Run ``ask()`` (an :class:`Answer`) and turn it into a check: ``bad`` when rows are in the way.

    ``describe(n, at_least)`` words the finding.  A partial scan that found
    nothing is unchecked; so is a query that ran out of budget.
    """
    try:
        a = ask()
    except ProbeFailed as e:
        return unchecked(step, kind, str(e), table=info.qualified, columns=columns)
    common = dict(
        table=info.qualified, columns=columns, count=a.count, at_least=a.partial and a.count > 0, rows_scanned=a.source.scanned,
        samples=a.samples, withheld=a.withheld, queries=a.queries,
    )
    if a.count == 0 and a.partial:
        common.update(count=None)
        return new_check(
            step, kind, "unchecked",
            f"Not checked: none found in the first {probe.row_budget:,} rows of {info.qualified}, which has more (row budget).",
            reason=f"{info.qualified} has more than {probe.row_budget:,} rows (policy preflight_max_rows)", **common,
        )
    if a.count == 0:
        return new_check(step, kind, "passes", describe(0, False), **common)
    return new_check(step, kind, bad, describe(a.count, a.partial), fix=fix, **common)


def rows_text(n: int, at_least: bool, noun: str = "row") -> str:
    return f"{'at least ' if at_least else ''}{n:,} {noun}{'' if n == 1 else 's'}"


__all__ = [
    "Answer", "OutOfBudget", "ProbeFailed", "Step", "answered", "count_and_sample", "new_check", "open_table", "rows_text", "unchecked",
]


_VALIDATE = __import__("re").compile(
    r"ALTER\s+TABLE\s+(?:ONLY\s+)?(?:IF\s+EXISTS\s+)?([\w.\"]+)\s+VALIDATE\s+CONSTRAINT\s+([\w\"]+)", __import__("re").IGNORECASE
)


def validations(step: Step) -> list[tuple[str, str]]:
    """``(table, constraint)`` for each ``ALTER TABLE t VALIDATE CONSTRAINT c`` this operation runs."""
    if step.op.kind != "execute":
        return []
    text = str(step.get("sql") or "\n".join(step.op.sql or []))
    return [(t.strip('"').rpartition(".")[2], c.strip('"')) for t, c in _VALIDATE.findall(text)]


def created_constraint(step: Step, name: str, kind: str) -> Any:
    """The earlier operation of the revision that created constraint ``name`` (``kind``: alembic op name)."""
    for o in reversed(step.before):
        if o.kind == kind and (o.detail or {}).get("name") == name:
            return o
    return None


def validated_later(step: Step) -> bool:
    """A later ``VALIDATE CONSTRAINT`` in the revision validates the constraint this operation adds NOT VALID."""
    name = step.get("name")
    later = Step(op=None, revision=step.revision, path=step.path)
    for o in step.after:
        later.op = o
        if any(c == name for _, c in validations(later)):
            return True
    return False
