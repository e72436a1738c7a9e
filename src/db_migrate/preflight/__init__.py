"""Preflight: check each change of a revision against the user's data, read-only.

:func:`run_preflight` takes a review (its per-revision ``Operation`` summaries,
the same ones the escalation policy reads) and the user's ``database_url``,
and asks the data one question per operation, one module per kind of question:

==========================  ================================================
module                      question
==========================  ================================================
:mod:`.not_null`            NULL rows under SET NOT NULL; rows meeting a new NOT NULL column
:mod:`.unique`              duplicate groups under a new unique index / constraint
:mod:`.foreign_key`         orphan child rows under a new foreign key or VALIDATE
:mod:`.check`               rows violating a new CHECK
:mod:`.types`               values a narrower / different type cannot hold
:mod:`.enums`               rows holding an enum value that is removed or renamed
:mod:`.dml`                 rows an UPDATE / DELETE would touch
:mod:`.size`                rows, bytes and lock time of every table rewritten or locked
==========================  ================================================

The answers are a :class:`~db_migrate.policy.preflight.Preflight`, which the policy reads
(:func:`db_migrate.policy.preflight.verdict_parts` turns them into what it decides on:
data that makes the upgrade fail -> an error finding (decision ``revise``,
with the rows to fix and a fix); data loss -> the ``data-loss`` trigger
(``escalate``, with the count); no answer -> ``unchecked``).  The checks here are a data
source of the policy: they import it (its list of row-changing kinds), never the other way round.

Nothing is written: the database is opened through :mod:`db_migrate.readonly`,
and every query runs within the policy's row and time budgets (:mod:`.probe`).
"""

from __future__ import annotations

from typing import Any

from db_migrate.policy.preflight import DataCheck, Preflight, TableSize

__all__ = ["DataCheck", "Preflight", "TableSize", "read_data", "run_preflight"]

#: Check modules, in the order their answers are listed.
_MODULES = ("not_null", "unique", "foreign_key", "check", "types", "enums", "dml")


def _steps(review: Any) -> list[Any]:
    from db_migrate.preflight.base import Step

    out = []
    for rev in getattr(review, "reviews", None) or []:
        ups = [o for o in rev.operations if o.phase == "upgrade"]
        for i, op in enumerate(ups):
            out.append(Step(op=op, revision=op.revision or rev.revision, path=rev.path, before=ups[:i], after=ups[i + 1 :]))
    return out


def run_preflight(review: Any, database_url: str, policy: Any, *, timeout: float | None = None) -> Preflight:
    """Ask the database at ``database_url`` (read-only) about every upgrade operation of ``review``.

    ``policy`` supplies the budgets (``preflight_max_rows``, ``preflight_timeout_seconds``,
    capped by ``timeout``), the sample size and the sensitive column patterns.
    Raises :class:`~db_migrate.errors.DatabaseError` only when the database
    cannot be opened at all; everything else is an answer or an unchecked item.
    """
    import importlib

    from db_migrate.errors import DatabaseError, DbMigrateError, brief
    from db_migrate.preflight import size
    from db_migrate.preflight.probe import Probe
    from db_migrate.project import redact_url
    from db_migrate.readonly import read_only_connection
    from db_migrate.verdict import Unchecked

    seconds = policy.preflight_timeout_seconds if timeout is None else min(timeout, policy.preflight_timeout_seconds)
    shown = redact_url(database_url) or ""
    modules = [importlib.import_module(f"db_migrate.preflight.{m}") for m in _MODULES]
    try:
        with read_only_connection(database_url, timeout=seconds) as conn:
            probe = Probe(conn, row_budget=policy.preflight_max_rows, seconds_budget=seconds,
                          sample_limit=policy.preflight_samples, sensitive=list(policy.sensitive_columns))
            pf = Preflight(database=shown, dialect=conn.dialect.name, sample_limit=probe.sample_limit,
                           row_budget=probe.row_budget, seconds_budget=seconds, small_table_rows=policy.small_table_rows)
            work: dict[tuple[str | None, str], list[tuple[str, str, str, int | None]]] = {}
            for step in _steps(review):
                answers: list[DataCheck] = []
                for m in modules:
                    try:
                        answers.extend(m.run(step, probe))
                    except Exception as e:  # a check's bug must not hide the other answers
                        probe.restart()
                        pf.unchecked.append(Unchecked(what=f"preflight {m.__name__.rpartition('.')[2]} of {step.describe()}",
                                                      reason=f"the check failed: {type(e).__name__}: {e}", revision=step.revision,
                                                      path=step.path, line=step.op.line))
                pf.checks.extend(answers)
                c = size.cost(step, pf.dialect)
                if c:
                    # a data statement locks the rows it touches: their count, when preflight knows it
                    touched = {a.table: a.count for a in answers if a.check == "data-statement" and a.count is not None}
                    for t in size.tables_touched(step):
                        work.setdefault((step.schema, t), []).append((*c, touched.get(t)))
            for (schema, table), items in work.items():
                measured = size.measure(probe, table, schema, items)
                if measured is not None:
                    pf.table_sizes.append(measured)
    except DbMigrateError:
        raise
    except Exception as e:
        raise DatabaseError(f"Cannot read the database {shown}: {brief(e)}",
                            hint="Check database_url (it is only read, never written) and that the server is reachable.") from None
    for c in pf.checks:
        if c.outcome == "unchecked":
            pf.unchecked.append(Unchecked(what=f"preflight {c.check}: {c.operation}", reason=c.reason or c.message,
                                          revision=c.revision, path=c.path, line=c.line))
    return pf


def read_data(review: Any, database_url: str, policy: Any, timeout: float | None) -> tuple[Any, Preflight]:
    """What the policy reads from the user's database for ``review`` (read-only): row counts and column contents
    (:func:`db_migrate.preflight.database.read_database_facts`), and each change asked of the data
    (:func:`run_preflight`). classify_escalation and review_migration both read it, so both decide from the same facts."""
    from db_migrate.policy.classify import facts_needed
    from db_migrate.preflight.database import read_database_facts
    from db_migrate.sandbox import progress

    progress("reading row counts (read-only)", 1, 4)
    tables, columns = facts_needed(review, policy)
    limit = policy.database_timeout_seconds if timeout is None else min(timeout, policy.database_timeout_seconds)
    facts = read_database_facts(
        database_url, tables=tables, columns=columns, exact_count_below=policy.exact_count_below, timeout=limit
    )
    progress("checking the changes against the data (read-only)", 2, 4)
    return facts, run_preflight(review, database_url, policy, timeout=timeout)
