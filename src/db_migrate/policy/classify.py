"""The escalation policy applied to a review: triggers, auto classes, decision.

:func:`classify` is pure: it reads a review (what each revision does), the
policy, and optionally facts read from the database, and returns the verdict.
:func:`facts_needed` says which tables and columns are worth reading first.

Operations are read by attribute (``kind``, ``table``, ``column``, ``phase``,
``line``, ``detail``, ``sql``, ``table_created_here``), so anything shaped
like ``db_migrate.review.model.Operation`` works.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

from db_migrate.approval import ApprovalState, Book, evaluate
from db_migrate.policy.model import ClassifiedOperation, ClassifyResult, DatabaseFacts
from db_migrate.policy.settings import AUTO_CLASSES, Policy
from db_migrate.policy.signals import production_signal
from db_migrate.policy.preflight import Preflight
from db_migrate.verdict import WHOLE_REVISION, Decision, Escalation, Finding, Trigger, Unchecked, decide, sort_findings

#: Review findings that mean the way back is not clear.
ROLLBACK_RULES = ("missing-downgrade", "lossy-downgrade", "downgrade-not-inverse", "irreversible-by-design")
#: Rollback findings that are ``revise`` when the rule could write the downgrade (the finding carries its edit).
WRITABLE_ROLLBACK_RULES = ("missing-downgrade", "downgrade-not-inverse")
#: Statement kinds of op.execute that change rows.
DML_KINDS = ("UPDATE", "DELETE", "INSERT", "MERGE")
#: Statement kinds of op.execute that only read: nothing to undo.
READ_KINDS = ("SELECT", "SET", "ANALYZE", "VACUUM", "COMMENT", "LOCK", "OTHER")
#: Statement kinds a downgrade has nothing to undo for, or conventionally leaves in place (other code may
#: rely on an extension; PostgreSQL cannot remove an enum value): COMMIT/BEGIN, CREATE EXTENSION.
NO_DATABASE = "assumed: no database_url given"
_NO_URL = NO_DATABASE.removeprefix("assumed: ")

REASONS = {
    "drop-with-data": "Dropping a table or column that holds data, or deleting every row of a table, loses it for good; a human must confirm.",
    "primary-key-change": "Changing a primary key rewrites identity and every reference to it.",
    "large-data-migration": "Rewriting or updating a large table locks it and takes long; plan it with a human.",
    "production-database": "This targets a production database.",
    "protected-table": "The revision touches a protected table (policy 'protected_tables').",
    "audit-trail": "The revision touches an audit-trail table (policy 'audit_tables').",
    "unclear-rollback": "The downgrade does not clearly undo the upgrade.",
    "data-loss": "The data in the database says the upgrade would destroy values (rows deleted, values rounded or cut).",
    "value-needed": "Rows in the database need a value (or a deletion) that neither the models nor the revision give: "
    "only the project can choose it, and an invented one would be written into every such row.",
}


@dataclass
class _Op:
    """One operation with where it came from, and the tables it names."""

    op: Any
    revision: str | None
    path: str | None
    tables: list[str] = field(default_factory=list)
    statements: list[Any] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.op, name, None)

    def get(self, key: str) -> Any:
        return (getattr(self.op, "detail", None) or {}).get(key)

    @property
    def where(self) -> str:
        loc = f"{self.path}:{self.line}" if self.path and self.line else (self.path or self.revision or "?")
        what = ".".join(x for x in (self.table, self.column) if x)
        stop = self.get("unrecorded_after_line")  # read from the source: recording of the phase stopped before it
        return f"{loc} {self.phase} {self.kind}" + (f" {what}" if what else "") + (
            f" (line {self.line}, after recording stopped at line {stop})" if stop else "")

    @property
    def sql_kind(self) -> str:
        """UPDATE, DELETE, INSERT, SELECT, DROP TABLE, ... for execute; '' for other operations."""
        kinds = [s.kind for s in self.statements] or [str(self.get("sql_kind") or "")]
        for k in kinds:  # the most consequential statement decides
            if k.upper() in DML_KINDS or k.upper().startswith(("DROP", "TRUNCATE", "ALTER")):
                return k.upper()
        return (kinds[0] if kinds else "").upper()


@lru_cache(maxsize=4096)
def _parsed(text: str, dialect: str) -> tuple[Any, ...]:
    """The statements of one op.execute text (parsed once: every tool of a session asks again)."""
    from db_migrate.capture.sql import parse_sql

    return tuple(parse_sql(text, dialect))


def _operations(review: Any, dialect: str) -> list[_Op]:
    out: list[_Op] = []
    for rev in getattr(review, "reviews", None) or []:
        for op in rev.operations:
            if (op.detail or {}).get("implied"):
                continue  # run by the operation before it (create_table's CREATE TYPE): not in the file
            o = _Op(op=op, revision=getattr(op, "revision", None) or rev.revision, path=getattr(rev, "path", None))
            names = [op.table] if op.table else []
            if op.kind == "execute":
                text = (op.detail or {}).get("sql") or "\n".join(op.sql or [])
                if isinstance(text, str) and text.strip():
                    o.statements = list(_parsed(text, dialect))
                    names += [t for s in o.statements for t in s.tables]
                names += [t for t in (op.detail or {}).get("tables") or [] if isinstance(t, str)]
            for key in ("new_table_name", "referent_table"):
                if isinstance(o.get(key), str):
                    names.append(o.get(key))
            o.tables = list(dict.fromkeys(names))
            out.append(o)
    return out


def _qualified(o: _Op, table: str) -> str:
    schema = o.get("schema")
    return f"{schema}.{table}" if schema and table == o.table else table


def _added_columns(ops: list[_Op], revision: str | None) -> set[tuple[str, str]]:
    return {(o.table, o.column) for o in ops if o.revision == revision and o.phase == "upgrade" and o.kind == "add_column"}


def facts_needed(review: Any, policy: Policy | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """Tables whose rows matter and ``(table, column)`` pairs whose contents matter.

    Tables: every table an upgrade operation touches that the revision did not
    create.  Columns: dropped columns, and the local columns of a new foreign key
    on an existing column.
    """
    ops = [o for o in _operations(review, getattr(review, "dialect", None) or "postgresql") if o.phase == "upgrade"]
    tables: list[str] = []
    columns: list[tuple[str, str]] = []
    for o in ops:
        if o.table_created_here:
            continue
        tables += [_qualified(o, t) for t in o.tables if t != o.get("new_table_name") and t != o.get("referent_table")]
        if o.kind == "drop_column" and o.table and o.column:
            columns.append((_qualified(o, o.table), o.column))
        if o.kind == "create_foreign_key" and o.table:
            added = _added_columns(ops, o.revision)
            columns += [(_qualified(o, o.table), c) for c in o.get("columns") or [] if (o.table, c) not in added]
    return list(dict.fromkeys(tables)), list(dict.fromkeys(columns))


class _Triggers:
    """Collects fired triggers, one per id, merging evidence."""

    def __init__(self) -> None:
        self.fired: dict[str, list[str]] = {}

    def fire(self, trigger: str, evidence: str) -> None:
        ev = self.fired.setdefault(trigger, [])
        if evidence not in ev:
            ev.append(evidence)

    def as_list(self) -> list[Trigger]:
        return [Trigger(trigger=t, reason=REASONS[t], evidence=ev) for t, ev in self.fired.items()]


def _matches(name: str, patterns: Iterable[str]) -> str | None:
    bare = name.rpartition(".")[2].lower()
    for p in patterns:
        if fnmatchcase(bare, p.lower()) or fnmatchcase(name.lower(), p.lower()):
            return p
    return None


@dataclass
class PolicyDecision:
    """What the policy decided for a review: the one decision every tool reports.

    ``findings`` and ``unchecked`` are the review's plus what the policy adds;
    ``operations`` are the upgrade operations with their auto class.
    """

    decision: Decision
    escalation: Escalation
    findings: list[Finding]
    unchecked: list[Unchecked]
    operations: list[ClassifiedOperation]
    approval: ApprovalState | None = None

    @property
    def headline(self) -> str:
        """``escalate: drop-with-data, ... — a human must approve``, ``revise: 2 error(s) to fix`` or ``proceed``.

        Every tool starts its summary with this, so a summary never says
        something other than ``decision`` and ``escalation.required``.
        """
        return headline(self.decision, self.escalation, self.findings, self.approval)


def headline(
    decision: Decision, escalation: Escalation | None, findings: list[Finding], approval: ApprovalState | None = None
) -> str:
    """The start of every summary: the decision, with the triggers or the number of errors behind it.

    With an approval record: the triggers still pending and what changed since the last approval, or
    who approved the escalation and when.
    """
    if decision == "escalate" and escalation is not None:
        pending = approval.pending if approval is not None else []
        ids = ", ".join(dict.fromkeys(t for p in pending for t in p.triggers)) if pending else \
            ", ".join(t.trigger for t in escalation.triggers)
        changed = [c for p in pending if not p.never_approved for c in p.changes]
        return f"escalate: {ids} — a human must approve" + (f" ({'; '.join(changed)})" if changed else "")
    approved = _approved_by(escalation, approval)
    if decision == "revise":
        errors = sum(1 for f in findings if f.severity == "error")
        return f"revise: {errors} error(s) to fix" + (f" ({approved})" if approved else "")
    return f"proceed: {approved}" if approved else "proceed"


def _approved_by(escalation: Escalation | None, approval: ApprovalState | None) -> str:
    """``drop-with-data approved by Ana on 2026-12-07`` when the record approved the whole escalation."""
    if escalation is None or escalation.required or approval is None or not approval.approved or approval.pending:
        return ""
    ids = ", ".join(t.trigger for t in escalation.triggers)
    who = "; ".join(dict.fromkeys(e.by_on for e in approval.approved))
    return f"{ids} {who}"


def _with_approvals(escalation: Escalation, approvals: Book | None) -> tuple[Escalation, ApprovalState | None]:
    """``escalation`` with the record applied: no longer required when every revision's triggers were approved."""
    if approvals is None or not escalation.triggers:
        return escalation, None
    state = evaluate(escalation.triggers, approvals)
    if not state.approved:
        return escalation, state if state.pending else None
    return escalation.model_copy(update={"required": bool(state.pending)}), state


def decide_for(
    review: Any,
    policy: Policy,
    facts: DatabaseFacts | None = None,
    *,
    environment: str | None = None,
    database_url: str | None = None,
    project_url: str | None = None,
    history: Iterable[str] = (),
    preflight: Preflight | None = None,
    approvals: Book | None = None,
) -> PolicyDecision:
    """The policy applied to ``review`` (a ReviewResult): the decision of every tool that returns one.

    Without ``facts`` this applies every trigger that needs no database:
    dropped tables and columns are assumed to hold data, primary-key changes,
    protected and audit tables, unclear rollback, and production signalled by
    ``environment``, ``DB_MIGRATE_ENV``, ``database_url`` or ``project_url`` (the
    project's ``sqlalchemy.url``).  ``facts`` (read from the user's database)
    replace the assumptions with row counts and column contents and add
    ``large-data-migration``.  review_migration, generate_migration and
    test_roundtrip call it without facts, classify_escalation with them when a
    database was named, so review is never less strict than classify without a
    database.

    ``history`` names revisions at or before the project's ``baseline``: their
    findings stay, but they fire no trigger and are said to be history.
    ``preflight`` (answers from the data, :mod:`db_migrate.preflight`) adds its
    findings, its ``data-loss`` triggers and what it could not check.
    ``approvals`` (the record, :func:`db_migrate.approval.book_for`) lifts the
    escalation when a human approved this exact content of every escalating
    revision with these triggers; else ``approval`` says what is pending and why.
    """
    dialect = (facts.dialect if facts else None) or getattr(review, "dialect", None) or "postgresql"
    old = set(history)
    ops = [o for o in _operations(review, dialect) if o.revision not in old]
    upgrade = [o for o in ops if o.phase == "upgrade"]
    findings: list[Finding] = list(getattr(review, "findings", None) or [])
    current = [f for f in findings if f.revision not in old]
    unchecked: list[Unchecked] = list(getattr(review, "unchecked", None) or [])
    if facts is not None:  # what a pass without the database could not read, this one reads
        unchecked = [u for u in unchecked if u.reason != _NO_URL]
    for rev in dict.fromkeys(r.revision for r in getattr(review, "reviews", None) or [] if r.revision in old):
        unchecked.append(Unchecked(
            what=f"escalation policy for {rev}", revision=rev,
            reason=f"{rev} is at or before the baseline revision {policy.baseline!r}: it is history, not a change to approve",
        ))
    triggers = _Triggers()

    _production(triggers, policy, facts, environment, database_url, project_url)
    _tables_by_pattern(triggers, ops, policy, getattr(review, "conventions", None))
    _drops(triggers, upgrade, facts, policy.derived_tables)
    _primary_keys(triggers, upgrade, current, ops)
    _large(triggers, upgrade, policy, facts, dialect, unchecked, _stated(review, old), _touched(preflight))
    _rollback(triggers, ops, current, getattr(review, "conventions", None), _stopped(review, old), unchecked)
    _said_one_way(triggers, review, old, ops)
    if preflight is not None:
        _preflight(triggers, findings, unchecked, preflight)

    classified = [_auto_class(o, upgrade, policy, facts) for o in upgrade]
    if facts is not None:
        for name in facts.missing:
            unchecked.append(Unchecked(what=f"database contents of {name}", reason=f"{facts.database} has no {name}"))
        for name, why in facts.failed.items():
            unchecked.append(Unchecked(what=f"database contents of {name}", reason=why))

    fired = triggers.as_list()
    escalation, approval = _with_approvals(Escalation(
        required=bool(fired),
        triggers=fired,
        auto_classes=sorted({c.auto_class for c in classified if c.auto_class}),
    ), approvals)
    # a review decided here once already (classify, review with a database): say each thing once
    unchecked = list({(u.what, u.reason, u.revision, u.path, u.line): u for u in unchecked}.values())
    return PolicyDecision(
        decision=decide(findings, escalation), escalation=escalation, findings=findings, unchecked=unchecked,
        operations=classified, approval=approval,
    )


def classify(
    review: Any,
    policy: Policy,
    facts: DatabaseFacts | None = None,
    environment: str | None = None,
    *,
    database_url: str | None = None,
    project_url: str | None = None,
    history: Iterable[str] = (),
    preflight: Preflight | None = None,
    approvals: Book | None = None,
) -> ClassifyResult:
    """Apply ``policy`` to ``review`` (a ReviewResult); ``facts`` from the database when one was read.

    :func:`decide_for` decides; this adds the auto classes and the summary.
    ``database_url`` (when no facts were read) and ``project_url`` (the
    project's configured ``sqlalchemy.url``) are checked for production
    signals along with ``environment`` and ``DB_MIGRATE_ENV``.
    """
    d = decide_for(
        review, policy, facts, environment=environment, database_url=database_url, project_url=project_url, history=history,
        preflight=preflight, approvals=approvals,
    )
    manual = [c for c in d.operations if not c.auto_class]
    fired = d.escalation.triggers
    revisions = list(getattr(review, "revisions", None) or [r.revision for r in getattr(review, "reviews", [])])
    return ClassifyResult(
        decision=d.decision,
        summary=_summary(d, manual, _partly_recorded(review)),
        revisions=revisions,
        findings=d.findings,
        escalation=d.escalation,
        unchecked=d.unchecked,
        policy_settings=deciding_settings(policy, d, facts),
        database=facts.database if facts else None,
        row_counts=dict(facts.row_counts) if facts else {},
        operations=d.operations,
        all_automatic=bool(d.operations) and not manual and not fired,
        preflight=preflight,
        approval=d.approval,
        conventions=getattr(review, "conventions", None),
    )


#: The policy settings behind each trigger.
_TRIGGER_SETTINGS: dict[str, tuple[str, ...]] = {
    "protected-table": ("protected_tables",),
    "audit-trail": ("audit_tables",),
    "large-data-migration": ("large_table_rows",),
    "production-database": ("production_url_patterns", "production_environments"),
}


def deciding_settings(policy: Policy, decision: PolicyDecision, facts: DatabaseFacts | None) -> dict[str, Any]:
    """The settings of ``policy`` that decided ``decision``, by key: a verdict names these, not the whole policy.

    Those behind each fired trigger; ``large_table_rows`` whenever row counts were
    read (the threshold then decided, fired or not); ``auto_classes`` when the
    project narrowed them and an operation was classified; and the keys a project
    set that shaped the findings (rule switches and severities, ``baseline``,
    ``target_version``).
    """
    keys = [k for t in decision.escalation.triggers for k in _TRIGGER_SETTINGS.get(t.trigger, ())]
    if facts is not None:
        keys.append("large_table_rows")
    if decision.operations and set(policy.auto_classes) != set(AUTO_CLASSES):
        keys.append("auto_classes")
    keys.extend(k for k in ("disable", "enable", "severity", "baseline", "target_version") if getattr(policy, k))
    values = policy.model_dump(mode="json")
    return {k: values[k] for k in dict.fromkeys(keys)}


def _preflight(triggers, findings: list[Finding], unchecked: list[Unchecked], preflight: Preflight) -> None:
    from db_migrate.policy.preflight import relax_small_tables, verdict_parts

    findings[:] = relax_small_tables(findings, preflight)
    found, fired, missed = verdict_parts(preflight)
    findings.extend(_settled_by_edits(found, findings))
    for trigger, evidence in fired:
        triggers.fire(trigger, evidence)
    unchecked.extend(u for u in missed if u not in unchecked)


def _settled_by_edits(found: list[Finding], findings: list[Finding]) -> list[Finding]:
    """The data's findings, each carrying the edit of a rule's finding on the same line that settles it (a SET NOT
    NULL rewritten to fill the NULL rows with the column's default first), when that finding no longer asks for
    it (relaxed to info on a small table): one patch per problem, on the finding the agent acts on."""
    out = []
    for f in found:
        at = next((i for i, r in enumerate(findings) if r.edit is not None and f.rule in r.edit.settles and r.path == f.path
                   and r.line == f.line and r.severity == "info"), None) if f.severity in ("error", "warning") else None
        if at is None:
            out.append(f)
            continue
        out.append(f.model_copy(update={"edit": findings[at].edit}))
        findings[at] = findings[at].model_copy(update={"edit": None})  # the patch is offered once, where it is acted on
    return out


def with_data(verdict: Any, policy: Policy, facts: DatabaseFacts, preflight: Preflight, *, approvals: Book | None = None,
              **context: Any) -> Any:
    """``verdict`` (a review, decided without a database) decided again with what the database said.

    :func:`decide_for` with ``facts``, ``preflight`` and ``approvals``, as classify_escalation applies it,
    so the two tools read the data the same way (a ``data-loss`` the approval did not cover makes it
    pending); ``context`` is decide_for's keywords (database_url, project_url, history).  The summary's
    headline is restated so that it still says what ``decision`` says.
    """
    d = decide_for(verdict, policy, facts, preflight=preflight, approvals=approvals, **context)
    findings, escalation, decision, unchecked, approval = d.findings, d.escalation, d.decision, d.unchecked, d.approval
    before = headline(verdict.decision, verdict.escalation, verdict.findings, verdict.approval)
    summary = verdict.summary.replace(before, headline(decision, escalation, findings, approval), 1)
    found = [f for f in findings if f.rule.startswith("preflight-") and f.severity != "info"]
    if found or any(t.trigger == "data-loss" for t in escalation.triggers):
        summary += f"; preflight against {preflight.database}: {len(preflight.failing())} check(s) fail, " \
                   f"{len(preflight.losing())} lose data"
    return verdict.model_copy(update=dict(
        findings=sort_findings(findings), unchecked=unchecked, escalation=escalation, decision=decision, summary=summary,
        preflight=preflight, approval=approval,
    ))


def _production(triggers, policy, facts, environment, database_url, project_url) -> None:
    url = facts.database if facts else database_url
    seen = set()
    for label, u in (("database_url", url), ("project sqlalchemy.url", project_url)):
        reason = production_signal(u, policy, environment)
        if reason and reason not in seen:
            seen.add(reason)
            triggers.fire("production-database", reason if "pattern" not in reason else f"{label}: {reason}")


def _tables_by_pattern(triggers, ops: list[_Op], policy: Policy, conventions: Any = None) -> None:
    # the downgrade usually mirrors the upgrade: cite it only for tables the upgrade leaves alone
    in_upgrade = {(o.revision, t) for o in ops if o.phase == "upgrade" for t in o.tables}
    for trigger, patterns in (("protected-table", policy.protected_tables), ("audit-trail", policy.audit_tables)):
        for o in ops:
            for t in o.tables:
                if o.phase == "downgrade" and (o.revision, t) in in_upgrade:
                    continue
                if trigger == "audit-trail" and not _touches_records(o, t):
                    continue  # an index, a nullable column, NULL allowed: the recorded history stays as it was
                p = _matches(t, patterns)
                if p:
                    triggers.fire(trigger, f"{o.where}: table {t} matches {p!r}")
            for fn, t in _trigger_tables(o, conventions):
                p = _matches(t, patterns)
                if p and o.phase == "upgrade":
                    triggers.fire(trigger, f"{o.where}: replaces function {fn}, which the triggers of table {t} "
                                  f"execute (matches {p!r})")


#: Operations on an audit-trail table that leave every recorded row as it was and its meaning intact.
_RECORDS_KEPT = ("create_index", "drop_index", "create_foreign_key", "create_unique_constraint", "create_check_constraint",
                 "drop_constraint")
_UPSERT = re.compile(r"\bON\s+(?:CONFLICT\b.*\bDO\s+UPDATE|DUPLICATE\s+KEY\s+UPDATE)\b", re.IGNORECASE | re.DOTALL)


def _touches_records(o: _Op, table: str) -> bool:
    """Whether ``o`` can change, remove or reinterpret the recorded rows of audit table ``table``: statements that
    update, delete or alter it, drops, renames, type changes.  Creating a new trail (it holds no record yet), adding
    a nullable column, allowing NULL, an index or a constraint, appending rows (a plain INSERT), reading it (a view
    over it) or validating changes no record."""
    if o.kind in _RECORDS_KEPT or o.kind == "create_table" or o.table_created_here:
        return False
    if o.kind == "execute" and o.statements:
        def changes(s: Any) -> bool:
            kind = s.kind.upper()
            if kind in ("UPDATE", "DELETE", "MERGE") or (kind == "INSERT" and _UPSERT.search(s.text)):
                return s.tables[:1] == [table]  # its target; the other tables it names are read
            return kind.startswith(("TRUNCATE", "DROP", "ALTER")) and table in s.tables

        return any(changes(s) for s in o.statements)
    if o.kind == "add_column":
        return o.get("nullable") is False and o.get("server_default") is None
    if o.kind == "alter_column":
        changes = {k for k in ("type", "server_default", "new_column_name") if o.get(k) is not None}
        return bool(changes) or o.get("nullable") is False
    return True


def _trigger_tables(o: _Op, conventions: Any) -> list[tuple[str, str]]:
    """(function, table) for each function this op.execute (re)defines that a table's trigger executes."""
    known = getattr(conventions, "trigger_functions", None)
    if not known or o.kind != "execute":
        return []
    from db_migrate.policy.conventions import functions_defined

    text = " ".join(s.text for s in o.statements) or str(o.get("sql") or "")
    return [(fn, t) for fn in functions_defined(text) for t in known.get(fn, [])]


def _replaced(upgrade: list[_Op]) -> set[tuple[str | None, str]]:
    """(revision, table) of each table an upgrade re-creates by hand: copied, dropped, the copy renamed to it."""
    from db_migrate.capture.sql import replaced_tables

    out: set[tuple[str | None, str]] = set()
    for rev, mine in _by_revision(upgrade).items():
        steps = []
        for o in mine:
            if o.kind == "rename_table":
                steps.append(("rename_table", o.table, o.get("new_table_name"), []))
            elif o.kind == "drop_table" or (o.kind == "execute" and o.sql_kind.startswith("DROP TABLE")):
                steps += [("drop_table", t, None, []) for t in ([o.table] if o.kind == "drop_table" else o.tables)]
            elif o.kind == "execute" and o.sql_kind == "INSERT":
                steps.append(("insert", None, None, list(o.tables)))
        out |= {(rev, t) for t in replaced_tables(steps)}
    return out


def _by_revision(ops: list[_Op]) -> dict[str | None, list[_Op]]:
    """``ops`` grouped by revision, each group in order."""
    out: dict[str | None, list[_Op]] = {}
    for o in ops:
        out.setdefault(o.revision, []).append(o)
    return out


def _drops(triggers, upgrade: list[_Op], facts: DatabaseFacts | None, derived: Iterable[str] = ()) -> None:
    replaced, carried = _replaced(upgrade), _carried(upgrade)
    # where each revision first adds a column: dropped after that, it held nothing from before the revision
    added_at: dict[tuple[str | None, str | None, str | None], int] = {}
    for i, o in enumerate(upgrade):
        if o.kind == "add_column":
            added_at.setdefault((o.revision, o.table, o.column), i)
    for i, o in enumerate(upgrade):
        if o.table_created_here:
            continue
        # a column whose values were written into another first (a type change by copy, two folded into one) is kept;
        # one the revision added itself held nothing before it
        if o.kind == "drop_column" and o.table and o.column and id(o) not in carried and not o.get("only_nulls_after_line") \
                and added_at.get((o.revision, o.table, o.column), i) >= i:
            key = f"{_qualified(o, o.table)}.{o.column}"
            has = _known(facts, key, facts.column_has_data if facts else {})
            if has is None:
                triggers.fire("drop-with-data", f"{o.where}: {_assumed(facts, key)}")
            elif has:
                triggers.fire("drop-with-data", f"{o.where}: column {key} holds non-NULL values in {facts.database}")
        dropped = [o.table] if o.kind == "drop_table" and o.table and not o.get("checked_empty_at_line") \
            and not o.get("copied_out_at_line") and not o.get("unknown_to_history") else []
        if o.kind == "execute" and o.sql_kind.startswith(("DROP TABLE", "TRUNCATE")):
            dropped += o.tables
        elif o.kind == "execute" and o.sql_kind == "DELETE":
            # every row deleted is the table's data gone, as a TRUNCATE would
            dropped += [t for st in o.statements if st.kind.upper() == "DELETE" and st.has_where is False for t in st.tables[:1]]
        for t in dropped:
            if (o.revision, t) in replaced:
                continue  # re-created by hand: its rows went into the copy that takes its name
            if _matches(t, derived):
                continue  # a cache: what it holds is derived from other tables, and rebuilt
            key = _qualified(o, t)
            count = _known(facts, key, facts.row_counts if facts else {})
            if count is None:
                triggers.fire("drop-with-data", f"{o.where}: {_assumed(facts, key)}")
            elif count.rows > 0:
                triggers.fire("drop-with-data", f"{o.where}: table {key} has {_rows(count)}")


def _carried(upgrade: list[_Op]) -> set[int]:
    """ids of the drop_column operations whose column an earlier UPDATE or INSERT ... SELECT of their revision wrote
    elsewhere (:func:`~db_migrate.capture.sql.copies_column`)."""
    from db_migrate.capture.sql import copies_column

    out: set[int] = set()
    for mine in _by_revision(upgrade).values():
        updates: list[Any] = []
        for o in mine:
            if o.kind == "execute":
                updates += [s for s in o.statements if s.kind.upper() in ("UPDATE", "INSERT")]
            elif o.kind == "drop_column" and o.table and o.column and any(copies_column(s, o.table, o.column) for s in updates):
                out.add(id(o))
    return out


def _known(facts: DatabaseFacts | None, key: str, table: dict) -> Any:
    return table.get(key) if facts is not None else None


def _unknown(facts: DatabaseFacts | None, key: str) -> str:
    """Why nothing is known about ``key``."""
    if facts is None:
        return NO_DATABASE
    return f"{key} could not be read: {facts.failed.get(key) or f'not found in {facts.database}'}"


def _assumed(facts: DatabaseFacts | None, key: str) -> str:
    return f"{_unknown(facts, key)}; treated as holding data"


def _rows(count) -> str:
    return f"{'~' if count.estimate else ''}{count.rows:,} rows" + (" (catalog estimate)" if count.estimate else "")


def _primary_keys(triggers, upgrade: list[_Op], findings: list[Finding], ops: list[_Op] | None = None) -> None:
    for f in findings:
        if f.rule == "change-primary-key":
            triggers.fire("primary-key-change", f"{f.path or f.revision}:{f.line}: {f.message}")
    same = _same_keys(ops or upgrade)
    for o in upgrade:
        if o.table_created_here or (o.revision, o.table) in same:
            continue
        if o.kind == "create_primary_key" or (o.kind == "drop_constraint" and str(o.get("constraint_type") or "").startswith("primary")) \
                or (o.kind == "add_column" and o.get("primary_key")):
            triggers.fire("primary-key-change", f"{o.where}")


def _same_keys(ops: list[_Op]) -> set[tuple[str | None, str | None]]:
    """(revision, table) whose upgrade drops the primary key and creates it again on the columns the downgrade
    restores it with: the key is renamed or rebuilt, not changed (rules' change-primary-key says the same)."""
    def created(phase: str) -> dict[tuple[str | None, str | None], tuple]:
        return {(o.revision, o.table): tuple(o.get("columns") or ()) for o in ops
                if o.phase == phase and o.kind == "create_primary_key" and o.get("columns")}

    up, down = created("upgrade"), created("downgrade")
    return {k for k, cols in up.items() if down.get(k) == cols}


def _stated(review: Any, old: set[str]) -> dict[str | None, Any]:
    """Revision -> its review, for revisions whose own words state a row count (docstring, comments)."""
    return {r.revision: r for r in getattr(review, "reviews", None) or []
            if getattr(r, "stated_rows", None) is not None and r.revision not in old}


def _touched(preflight: Preflight | None) -> dict[tuple[str | None, str], tuple[int, set[int | None]]]:
    """(path, table) -> (rows the revision's data statements there touch, as the preflight counted them exactly;
    the lines of those statements)."""
    out: dict[tuple[str | None, str], tuple[int, set[int | None]]] = {}
    for c in preflight.checks if preflight is not None else []:
        if c.check == "data-statement" and c.outcome == "affects" and c.count is not None and not c.at_least and c.table:
            key = (c.path, c.table.rpartition(".")[2])
            rows, lines = out.get(key, (0, set()))
            out[key] = (rows + c.count, lines | {c.line})
    return out


def _large(triggers, upgrade: list[_Op], policy: Policy, facts, dialect: str, unchecked: list[Unchecked],
           stated: dict[str | None, Any] | None = None,
           touched: dict[tuple[str | None, str], tuple[int, set[int | None]]] | None = None) -> None:
    stated = stated or {}
    # a revision's data statements with a WHERE move the rows they match, not the table: where the preflight
    # counted every one of them on a table, their sum is what is weighed
    counted: dict[tuple[str | None, str], int] = {}
    for key, (rows, lines) in (touched or {}).items():
        mine = [o for o in upgrade if o.kind == "execute" and o.path == key[0] and key[1] in o.tables and _heavy(o, dialect, policy)]
        if mine and all(o.line in lines and len(o.tables) == 1 for o in mine):
            counted[key] = rows
    fired: set[tuple[str | None, str]] = set()
    seen = {(u.what, u.revision, u.line) for u in unchecked}  # a set: a long history has thousands
    for rev, r in stated.items():
        # rows moved through the connection or a session are not recorded offline: the revision's words count
        if r.reads_data and r.stated_rows >= policy.large_table_rows and not any(o.revision == rev and _heavy(o, dialect, policy) for o in upgrade):
            triggers.fire("large-data-migration", f"{r.path}: a data migration that says {r.stated_rows_where} "
                          f"(threshold {policy.large_table_rows:,})")
    for o in upgrade:
        if o.table_created_here:
            continue
        what = _heavy(o, dialect, policy)
        if not what:
            continue
        key = (o.path, o.tables[0]) if o.kind == "execute" and o.tables else None
        if key in counted:
            if counted[key] >= policy.large_table_rows and key not in fired:
                fired.add(key)
                triggers.fire("large-data-migration", f"{o.where}: {what} touching {counted[key]:,} rows of {key[1]} "
                              f"(threshold {policy.large_table_rows:,})")
            continue
        for t in o.tables:
            if t == o.get("new_table_name") or t == o.get("referent_table"):
                continue
            key = _qualified(o, t)
            count = _known(facts, key, facts.row_counts if facts else {})
            said = stated.get(o.revision)
            if count is None and said is not None and said.stated_rows >= policy.large_table_rows:
                triggers.fire("large-data-migration", f"{o.where}: {what} on {key}; the revision says {said.stated_rows_where} "
                              f"(threshold {policy.large_table_rows:,})")
            elif count is None:
                item = Unchecked(
                    what=f"large-data-migration: rows of {key} ({what})",
                    reason=_unknown(facts, key).removeprefix("assumed: "),
                    revision=o.revision,
                    path=o.path,
                    line=o.line,
                )
                if (item.what, item.revision, item.line) not in seen:
                    seen.add((item.what, item.revision, item.line))
                    unchecked.append(item)
            elif count.rows >= policy.large_table_rows:
                triggers.fire(
                    "large-data-migration",
                    f"{o.where}: {what} on {key} with {_rows(count)} (threshold {policy.large_table_rows:,})",
                )


def _heavy(o: _Op, dialect: str, policy: Policy) -> str | None:
    """What makes this operation touch every row: a data migration, a rewrite or a backfill."""
    if o.kind == "execute":
        kind = o.sql_kind
        if kind in ("UPDATE", "DELETE", "MERGE"):
            return f"data migration ({kind})"
        if kind == "INSERT" and any("SELECT" in s.text.upper() for s in o.statements):
            return "data migration (INSERT ... SELECT)"
        return None
    if o.kind == "bulk_insert":
        return None  # rows listed in the migration itself: their number is visible in review
    if o.kind == "alter_column" and o.get("type") is not None and o.get("type_change") not in ("same", "widen"):
        return "table rewrite (column type change)"  # a widening (varchar(50) -> (100)) changes only the catalogue
    if o.kind == "add_column" and o.get("server_default") is not None and (dialect != "postgresql" or _before_pg11(policy)):
        # PostgreSQL 11+ stores a constant default without touching rows; other engines may fill every row
        return "backfill (new column with a default)"
    return None


def _before_pg11(policy: Policy) -> bool:
    target = policy.target
    return target is not None and target[0] == "postgresql" and target[1] < (11,)


def writable_rollback(f: Finding) -> bool:
    """A rollback finding whose way back db-migrate can write (the inverse of the upgrade's operations): an error
    for the agent to fix with its patch (``revise``), not a question for a human."""
    return f.rule in WRITABLE_ROLLBACK_RULES and f.edit is not None


def _stopped(review: Any, old: set[str]) -> dict[tuple[str | None, str], Any]:
    """(revision, phase) -> where and why recording of that phase stopped early (``RevisionReview.stopped``)."""
    return {
        (r.revision, s.phase): (r, s)
        for r in getattr(review, "reviews", None) or [] if r.revision not in old
        for s in getattr(r, "stopped", None) or []
    }


def _unrecorded(unchecked: list[Unchecked], stopped: tuple[Any, Any], what: str) -> None:
    """Say that ``what`` was not checked because recording of the phase stopped: never that the phase does nothing."""
    rev, s = stopped
    unchecked.append(Unchecked(
        what=what, revision=rev.revision, path=rev.path, line=s.line,
        reason=f"recording of {s.phase}() stopped at line {s.line or '?'} ({s.reason}): what it does after that line "
        "was not recorded, which is not the same as doing nothing",
    ))


def _rollback(triggers, ops: list[_Op], findings: list[Finding], conventions: Any = None,
              stopped: dict[tuple[str | None, str], Any] | None = None, unchecked: list[Unchecked] | None = None) -> None:
    # A project that never writes downgrades (or makes them raise by design) rolls back by restoring a backup:
    # an absent downgrade is its convention, not a question for a human, unless the upgrade destroys data
    # that only that restore could bring back.
    stopped = stopped or {}
    unchecked = unchecked if unchecked is not None else []
    by_revision = _by_revision(ops)
    relaxed = conventions is not None and conventions.downgrades in ("never", "raise")
    losing = _losing(ops) if relaxed else {}
    # values merged into one, its author declaring why (europe and eu are one region), is the one-way step declared
    destroying = _losing(ops, merges=False)
    # every revision reviewed counts, those that recorded no operation too (a marker, an upgrade that stopped)
    reviewed = set(by_revision) | {f.revision for f in findings}
    exempt = {rev for rev in reviewed if relaxed and rev not in losing
              and not any(o.phase == "downgrade" for o in by_revision.get(rev, []))}
    for f in findings:
        if f.rule not in ROLLBACK_RULES or writable_rollback(f):
            continue  # not about the way back, or a way back db-migrate writes: revise with its patch
        if f.rule == "irreversible-by-design" and f.revision not in destroying and (f.revision, "upgrade") not in stopped:
            continue  # a one-way step its author declared, that destroys nothing: the way back is clear (a restore)
        # (declared one-way, with an upgrade whose rest was not recorded: what it destroys is unknown, a human looks)
        if f.severity == "info" and f.rule != "irreversible-by-design":
            continue  # a note on the way back (the base revision's, a table made outside the migrations): no question
        if not (f.revision in exempt and f.rule in ("missing-downgrade", "irreversible-by-design")):
            triggers.fire("unclear-rollback", f"{f.path or f.revision}:{f.line}: {f.rule}: {f.message}")
    flagged = {f.revision for f in findings if f.rule in ROLLBACK_RULES}
    for rev in by_revision.keys() - flagged - exempt:
        # the review's own rollback rules may be off or suppressed; an empty downgrade is still unclear
        mine = [o for o in by_revision[rev] if not _nothing_to_undo(o)]
        if any(o.phase == "upgrade" for o in mine) and not any(o.phase == "downgrade" for o in mine):
            first = next(o for o in mine if o.phase == "upgrade")
            if (rev, "downgrade") in stopped:
                _unrecorded(unchecked, stopped[(rev, "downgrade")], f"whether downgrade() of {rev} undoes its upgrade")
            elif rev in losing:
                triggers.fire("unclear-rollback", f"{losing[rev].where}: the project writes no downgrades and this "
                              "upgrade destroys data: only a restore brings it back")
            else:
                triggers.fire("unclear-rollback", f"{first.path or rev}: downgrade() performs no operation")
    declared = {f.revision for f in findings if f.rule == "irreversible-by-design"}
    for o in ops:
        if o.phase != "upgrade" or o.kind != "execute" or o.sql_kind in READ_KINDS or _nothing_to_undo(o) or o.revision in exempt:
            continue
        if o.revision in declared:
            continue  # its author declared the step one-way: irreversible-by-design says so (and escalates what destroys)
        if not _inverted(o, by_revision[o.revision]) and (o.revision, "downgrade") in stopped:
            _unrecorded(unchecked, stopped[(o.revision, "downgrade")], f"an inverse in downgrade() of {o.where}")
        elif not _inverted(o, by_revision[o.revision]):
            triggers.fire("unclear-rollback", f"{o.where}: op.execute ({o.sql_kind or 'SQL'}) has no inverse in downgrade()")


def _said_one_way(triggers, review: Any, old: set[str], ops: list[_Op]) -> None:
    """The revision's own words say it cannot be undone, and its upgrade changes data: a downgrade that runs is no
    way back (it may apply another function to the rows), so a human decides."""
    changing: dict[str | None, _Op] = {}
    for o in _changing(ops):
        changing.setdefault(o.revision, o)
    for r in getattr(review, "reviews", None) or []:
        said = getattr(r, "stated_one_way", None)
        if said and r.revision not in old and r.revision in changing:
            triggers.fire("unclear-rollback", f"{r.path}: the revision says it cannot be undone ({said}), and "
                          f"{changing[r.revision].where} changes data")


def _changing(ops: list[_Op]) -> list[_Op]:
    """Upgrade operations that change or remove data that existed (a dropped table or column, rows deleted or
    overwritten); filling a column this revision adds, or only NULLs, overwrites nothing that existed."""
    from db_migrate.policy.conventions import loses_data

    widened = {(o.revision, o.table) for o in ops if o.phase == "upgrade" and o.kind == "add_column"}
    return [o for o in ops if o.phase == "upgrade" and loses_data(o.kind, o.sql_kind, bool(o.table_created_here))
            and not _nothing_to_undo(o) and not (o.sql_kind == "UPDATE" and any((o.revision, t) in widened for t in o.tables))]


def _losing(ops: list[_Op], merges: bool = True) -> dict[str | None, _Op]:
    """Revision -> its first upgrade operation that destroys data (a dropped table or column, rows deleted, and with
    ``merges`` values merged into one)."""
    from db_migrate.capture.sql import merged_values

    out: dict[str | None, _Op] = {}
    for o in _changing(ops):
        if o.sql_kind == "UPDATE" and all(s.has_where is not False and not (merges and merged_values(s)) for s in o.statements):
            continue  # a data fix of the rows it selects, as such projects make them; a blanket overwrite or values
            # merged into one (which rows held the other is lost) still count
        out.setdefault(o.revision, o)
    return out


def _nothing_to_undo(o: _Op) -> bool:
    """An op.execute whose statements a downgrade rightly leaves alone (COMMIT, enum ADD VALUE...)."""
    from db_migrate.capture.sql import needs_no_inverse

    # (or fills columns added just before, by the revision or its parent: their drop is the way back; or deletes the
    # rows a foreign key made next forbids: put back, they would break it)
    # (or creates a type only where it is missing: left by the downgrade, the re-upgrade goes on)
    return o.kind == "execute" and (bool(o.get("overwrites_nothing_kept") or o.get("clears_orphans") or o.get("checkfirst")
                                         or o.get("transient"))
                                    or bool(o.statements) and all(needs_no_inverse(s) for s in o.statements))


def _inverted(o: _Op, ops: list[_Op]) -> bool:
    """Whether the downgrade plausibly undoes this upgrade op.execute (``ops``: at least its revision's).

    It does when the downgrade runs SQL on one of the same tables, drops the
    table, or drops a column, constraint or index of the table that the SQL names
    (``ADD CONSTRAINT c ... USING INDEX c`` undone by ``op.drop_constraint('c', ...)``).
    """
    down = [d for d in ops if d.revision == o.revision and d.phase == "downgrade"]
    tables = set(o.tables)
    created = any(u.table_created_here and u.table in tables for u in ops if u.revision == o.revision and u.phase == "upgrade")
    if o.sql_kind in ("DELETE", "TRUNCATE"):
        # deleted rows come back only by being put back: an INSERT (from a copy the upgrade kept) or bulk_insert into
        # that table; setting columns to NULL or deleting elsewhere is no way back
        targets = {t for st in o.statements if st.kind.upper() in ("DELETE", "TRUNCATE") for t in st.tables[:1]} or tables
        return created or any(
            (d.kind == "bulk_insert" and d.table in targets)
            or (d.kind == "execute" and any(st.kind.upper() == "INSERT" and set(st.tables[:1]) & targets for st in d.statements))
            for d in down)
    from db_migrate.capture.sql import blanks_every_row

    sql = " ".join(s.text for s in o.statements).lower()
    # every row set to NULL or a literal: only a statement reading a copy of the old values (another table) undoes it
    blanked = any(blanks_every_row(s) for s in o.statements)
    for d in down:
        if d.kind == "execute" and (tables & set(d.tables) or not tables) and (
                not blanked or any(len(st.tables) > 1 for st in d.statements)):
            return True
        if d.kind == "drop_table" and d.table in tables:
            return True
        if d.kind == "drop_column" and d.table in tables and d.column and d.column.lower() in sql:
            return True
        named = str(d.get("name") or "").lower()
        if d.kind in ("drop_constraint", "drop_index") and d.table in tables and named and re.search(rf"\b{re.escape(named)}\b", sql):
            return True
    return created


def _auto_class(o: _Op, upgrade: list[_Op], policy: Policy, facts: DatabaseFacts | None) -> ClassifiedOperation:
    cls, note = _fit(o, upgrade, facts)
    if cls and cls not in policy.auto_classes:
        cls, note = None, f"would be {cls}, but the policy's auto_classes leave it out"
    return ClassifiedOperation(
        revision=o.revision, path=o.path, line=o.line, kind=o.kind, table=o.table, column=o.column, auto_class=cls, note=note
    )


def _fit(o: _Op, upgrade: list[_Op], facts: DatabaseFacts | None) -> tuple[str | None, str]:
    kind = o.kind
    if kind == "create_table":
        return "create-table", "creates a new table"
    if o.table_created_here:
        return "create-table", "part of creating a table in this revision"
    if kind == "add_column":
        if o.get("nullable") is False:
            return None, "adds a NOT NULL column to an existing table"
        return "add-nullable-column", "adds a nullable column"
    if kind == "create_index":
        return "add-index", "adds an index"
    if kind == "create_foreign_key":
        return _fit_foreign_key(o, upgrade, facts)
    if kind == "alter_column":
        new = o.get("new_column_name")
        changes = [k for k in ("type", "nullable", "server_default", "comment") if o.get(k) is not None]
        if new and not changes:
            return "rename-column", f"renames {o.column} to {new}: verify with test_roundtrip and update the code using it"
        if new:
            return None, f"renames {o.column} to {new} and also changes {', '.join(changes)}"
        return None, f"alters {', '.join(changes) or 'the column'} of an existing column"
    return None, f"{kind} is not in any auto class"


def _fit_foreign_key(o: _Op, upgrade: list[_Op], facts: DatabaseFacts | None) -> tuple[str | None, str]:
    cols = [c for c in o.get("columns") or [] if isinstance(c, str)]
    if not cols:
        return None, "adds a foreign key whose columns are unknown"
    added = _added_columns(upgrade, o.revision)
    for c in cols:
        if (o.table, c) in added:
            continue
        key = f"{_qualified(o, o.table)}.{c}"
        if facts is None:
            return None, f"adds a foreign key on existing column {key}; whether it is empty is unknown (no database_url given)"
        has = facts.column_has_data.get(key)
        if has is None:
            return None, f"adds a foreign key on {key}, which could not be read"
        if has:
            return None, f"adds a foreign key on {key}, which holds data in {facts.database}"
    return "add-foreign-key-empty-column", f"adds a foreign key on empty column(s) {', '.join(cols)}"


def _partly_recorded(review: Any) -> bool:
    """Some of an upgrade was not recorded offline: it stopped, looped over values that are not here, or the
    revision could not be loaded at all."""
    unchecked = getattr(review, "unchecked", None) or []
    return any(s.phase == "upgrade" for r in getattr(review, "reviews", None) or [] for s in getattr(r, "stopped", None) or []) \
        or any(u.what.startswith("upgrade()") and "loops over" in u.reason for u in unchecked) \
        or any(u.what == WHOLE_REVISION for u in unchecked)


def _summary(d: PolicyDecision, manual: list[ClassifiedOperation], partly: bool = False) -> str:
    if d.decision != "proceed" or d.escalation.triggers:
        return f"{d.headline}."
    auto = d.escalation.auto_classes
    if partly:
        # never "no operations" for what could not be seen: the human or the roundtrip has to look
        return ("proceed: no escalation trigger among the operations recorded; part of the upgrade could not be recorded "
                "offline (see unchecked): run test_roundtrip to see it run.")
    if not d.operations:
        return "proceed: no escalation trigger; the revision has no upgrade operations."
    if manual:
        kinds = ", ".join(sorted({m.kind for m in manual}))
        return f"proceed: no escalation trigger; {len(manual)} operation(s) ({kinds}) fit no auto class — check them carefully."
    extra = " (verify the rename with test_roundtrip)" if "rename-column" in auto else ""
    return f"proceed: all operations are automatic ({', '.join(auto)}){extra}."
