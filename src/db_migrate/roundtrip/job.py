"""The roundtrip job: runs INSIDE a sandbox worker, on a scratch database URL.

``run(config_file, section, url, revisions, rows)`` tests each revision of
``revisions`` (parents before children) from its parent's schema:

1. bring in what the revision needs: every ancestor not yet applied is
   upgraded one revision at a time (step ``prepare``, so a failure there names
   the ancestor that failed); tables that appeared are seeded;
2. commit (so the revision starts its own transaction: its locks are its own,
   and a failure on PostgreSQL rolls back to exactly the parent's schema);
3. snapshot → upgrade of the revision alone → snapshot → downgrade of the
   revision alone → snapshot → upgrade again → snapshot, comparing schema and
   data.

Upgrade and downgrade are single alembic ``RevisionStep`` s of the revision
itself, never "down to the parent id": on a branched history that would also
unapply the sibling branch (alembic downgrades everything that is not an
ancestor of the target).  A merge revision is downgraded to all of its
parents, which stay applied.  The downgrade and the second upgrade run a
freshly loaded copy of the revision's module, with alembic's DDL memo
cleared: module-level ``sa.Enum`` objects keep create/drop state between
calls in one process, and alembic's impl remembers which named types it
created for the whole env.py run, neither of which stock alembic (a new
context per command) ever sees.

After a failed step the job goes on: on a database whose DDL is transactional
(PostgreSQL) and where nothing committed inside the failed step, the rollback
left the parent's schema, so the next revisions continue here; the revisions
that need the failed upgrade (its descendants), and everything on a
non-transactional database (MySQL/MariaDB, SQLite), are handed back in
``resume`` for a fresh database.  A revision whose ancestor fails even there
is ``blocked`` with the reason.  All of it happens in few env.py runs (the
steps are fed to alembic lazily by :meth:`Runtime.run_plan`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from db_migrate.roundtrip.seed import seed
from db_migrate.roundtrip.snapshot import Snapshots, diff_data, diff_schema, tables_of, take_schema
from db_migrate.runtime import Runtime, StepFailed, sqlite_hint
from db_migrate.sandbox import report_progress

_FAILED_KIND = {"prepare": "upgrade-failed", "upgrade": "upgrade-failed", "downgrade": "downgrade-failed", "reupgrade": "reupgrade-failed"}


class _State:
    def __init__(self, revisions: list[str], rows: int, known_failed: set[str]) -> None:
        self.revisions = revisions
        self.rows = rows
        self.known_failed = known_failed  # revisions whose seeded upgrade already failed in an earlier job
        self.steps: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.seeded: dict[str, int] = {}
        self.seed_skipped: dict[str, str] = {}
        self.upgraded: dict[str, dict] = {}  # revision -> schema after its upgrade
        self.done: list[str] = []
        self.prepared: list[str] = []  # revisions applied by a prepare step (on unseeded tables)
        self.blocked: dict[str, str] = {}
        self.fails_empty: list[str] = []  # known failures whose upgrade fails on unseeded tables too
        self.phase = ("prepare", revisions[0])
        self.before_step: dict | None = None  # schema before the step in progress
        self.heads_before: tuple[str, ...] = ()
        self.t0 = time.perf_counter()
        self.transactional = False
        self.commits_at_step = 0
        self.commits_at_revision = 0  # commits seen when the tested revision's own upgrade began


def run(config_file: str, section: str, url: str, revisions: list[str], rows: int = 20,
        keep_schemas: bool = False, measure_locks: bool = True, known_failed: list[str] | None = None) -> dict[str, Any]:
    """Job entry point. ``revisions``: in upgrade order (parents before children).

    Returns ``{runner, runner_reason, steps, failures, seeded, seed_skipped,
    checked, prepared, blocked, fails_empty, resume, locks, schemas}``: ``resume`` lists the
    revisions to test on a fresh database, ``blocked`` the revisions that
    cannot be tested (revision -> why), ``locks`` the measured per-statement
    locks and rewrites (PostgreSQL).
    """
    from db_migrate.roundtrip.locks import LockTracer

    st = _State(revisions, rows, set(known_failed or ()))
    remaining = list(revisions)
    resume: list[str] = []
    with Runtime(config_file, section, url) as rt:
        tracer = LockTracer(rt.version_table) if measure_locks and rt.connection.dialect.name == "postgresql" else None
        if tracer is not None:
            tracer.install()
        try:
            while remaining:
                st.t0 = time.perf_counter()  # a failure before the first step is timed from here
                try:
                    rt.run_plan(lambda heads, ctx: _plan(rt, st, remaining, ctx, tracer))
                    remaining = []
                except StepFailed as e:
                    if tracer is not None:
                        tracer.stop()
                    remaining, more = _after_failure(rt, st, e, remaining, tracer)
                    resume += more
        finally:
            if tracer is not None:
                tracer.remove()
    return {
        "runner": rt.runner, "runner_reason": rt.runner_reason, "steps": st.steps, "failures": st.failures,
        "seeded": st.seeded, "seed_skipped": st.seed_skipped, "checked": st.done, "prepared": st.prepared,
        "blocked": st.blocked, "fails_empty": st.fails_empty, "resume": [r for r in revisions if r in set(resume)],
        "locks": [t.model_dump() for t in tracer.traces] if tracer is not None else [],
        "schemas": st.upgraded if keep_schemas else {},
    }


def _after_failure(rt: Runtime, st: _State, e: StepFailed, remaining: list[str], tracer) -> tuple[list[str], list[str]]:
    """Record the failed step; return (revisions to go on with here, revisions for a fresh database)."""
    phase, rev = st.phase
    st.steps.append({"revision": rev, "step": phase, "seconds": round(time.perf_counter() - st.t0, 4), "ok": False})
    # A commit since the revision's upgrade began (autocommit_block, an explicit COMMIT) means the rollback
    # restored neither the parent's state nor the step's start: the database holds part of the revision, and
    # running anything here again (its upgrade as a prepare step, say) would fail on that leftover, not on
    # the migration. Everything left goes to a fresh database, rebuilt from the template.
    since = st.commits_at_step if phase == "prepare" else st.commits_at_revision
    committed = tracer is not None and tracer.commits > since
    clean = st.transactional and not committed  # the rollback restored the state before the revision
    if phase == "prepare":
        # ``rev`` is an ancestor brought in to reach a later revision: what descends from it cannot be reached here
        needs = {r for r in remaining if r == rev or rev in _ancestors(rt, r)}
        # "even on an empty database" only when it was: no row was seeded yet on this fresh database
        # (templates hold no seeded rows)
        empty = not st.seeded
        why = (f"its ancestor {rev} fails to upgrade even on an empty database: {e.message}"
               if empty else f"its ancestor {rev} fails to upgrade here: {e.message}")
        for r in needs:
            if r != rev:
                st.blocked[r] = why
        if rev not in st.known_failed:
            st.failures.append(_failure(rt, st, e, phase, rev))
        elif empty:
            st.fails_empty.append(rev)  # its earlier failure is not the seeded rows' doing
        rest = [r for r in remaining if r not in needs]
        return (rest, []) if clean else ([], rest)
    st.failures.append(_failure(rt, st, e, phase, rev))
    after = remaining[remaining.index(rev) + 1:]
    if phase == "upgrade":
        needs = [r for r in after if rev in _ancestors(rt, r)]  # they need the failed upgrade: a fresh database
        rest = [r for r in after if r not in needs]
        return (rest, needs) if clean else ([], after)
    return (after, []) if clean else ([], after)


def _failure(rt: Runtime, st: _State, e: StepFailed, phase: str, rev: str) -> dict[str, Any]:
    failure = {
        "kind": _FAILED_KIND[phase], "revision": rev, "step": phase, "message": f"{phase} of {rev} failed",
        "error": e.message, "where": e.where, "error_type": e.error_type, "sqlstate": e.sqlstate,
        "hint": sqlite_hint(e.message),
    }
    failure.update(_partway(rt, st))
    if e.sqlstate == "23514" and st.transactional:
        row = _violating_row(rt, e.message)
        if row:
            failure["error"] = f"{e.message} (a seeded row it refuses: {row})"
    return failure


_ADD_CHECK = re.compile(r"\[SQL: ALTER TABLE (\S+) ADD CONSTRAINT \S+ CHECK \((.*)\)\s*(?:NOT VALID\s*)?\]", re.I)


def _violating_row(rt: Runtime, message: str) -> str | None:
    """PostgreSQL says only "violated by some row" when a CHECK is added: the row, read back (rolled back already)."""
    m = _ADD_CHECK.search(message)
    if m is None:
        return None
    try:
        row = rt.connection.exec_driver_sql(f"SELECT * FROM {m.group(1)} WHERE NOT ({m.group(2)}) LIMIT 1").first()
        rt.connection.rollback()
    except Exception:
        rt.rollback()
        return None
    return None if row is None else ", ".join(f"{k}={v!r}" for k, v in row._mapping.items())


def _partway(rt: Runtime, st: _State) -> dict[str, Any]:
    """After a failed step: what it applied anyway (DDL that is not transactional: MySQL, SQLite)."""
    from db_migrate.roundtrip.snapshot import describe_changes

    if st.before_step is None or st.transactional:
        return {}  # transactional DDL (PostgreSQL): a failed step leaves nothing behind
    try:
        if rt.heads() != st.heads_before:
            return {}  # rolled back further than the step (one transaction): nothing to attribute
        after = take_schema(rt.connection, exclude={rt.version_table})
        rt.commit()
    except Exception:
        return {}
    applied = describe_changes(st.before_step, after)
    return {"applied_partway": applied, "partial_schema": after} if applied else {}


def _ancestors(rt: Runtime, rev: str) -> set[str]:
    """Every revision ``rev`` needs applied first (parents and depends_on, transitively)."""
    cache = rt.__dict__.setdefault("_ancestor_cache", {})
    if rev in cache:
        return cache[rev]
    out: set[str] = set()
    stack = list(rt.script.get_revision(rev)._all_down_revisions)
    while stack:
        r = stack.pop()
        if r in out:
            continue
        out.add(r)
        stack.extend(rt.script.get_revision(r)._all_down_revisions)
    cache[rev] = out
    return out


def _applied(rt: Runtime, heads: tuple[str, ...]) -> set[str]:
    out = set(heads)
    for h in heads:
        out |= _ancestors(rt, h)
    return out


def _topological(rt: Runtime, revs: set[str]) -> list[str]:
    """``revs`` parents first (by ancestor count: an ancestor always has fewer ancestors)."""
    return sorted(revs, key=lambda r: (len(_ancestors(rt, r)), r))


def _fresh_script(rt: Runtime, rev: str):
    """The revision's Script with a freshly executed module (as a new alembic process would load it)."""
    from alembic.util import load_python_file

    sc = rt.script.get_revision(rev)
    path = Path(sc.path)
    try:
        sc.module = load_python_file(path.parent, path.name)
    except Exception:
        pass  # it loaded once already; a second load failing leaves the first copy (the step then reports)
    return sc


def _plan(rt: Runtime, st: _State, revisions: list[str], ctx: Any, tracer):
    """The generator alembic pulls steps from; everything between yields runs on ``ctx.connection``."""
    from alembic.runtime.migration import RevisionStep

    conn = ctx.connection
    st.transactional = bool(ctx.impl.transactional_ddl)
    exclude = {getattr(ctx, "version_table", "alembic_version")}
    snap = Snapshots(conn, exclude=exclude)  # reflects and reads only what changed since earlier snapshots
    rmap = rt.script.revision_map
    total = len(st.revisions)

    def step(phase: str, rev: str, is_upgrade: bool, before: dict | None, *, fresh: bool):
        st.phase, st.before_step = (phase, rev), before
        st.heads_before = tuple(sorted(ctx.get_current_heads()))
        st.commits_at_step = tracer.commits if tracer is not None else 0
        report_progress(f"{rev}: {phase}", len(st.done), total)
        sc = _fresh_script(rt, rev) if fresh else rt.script.get_revision(rev)
        # alembic's impl is SQLAlchemy's DDL runner: its memo of named types already created (a PostgreSQL
        # ENUM) lasts for the whole env.py run, so a second upgrade would skip CREATE TYPE; stock alembic
        # runs each command in a new context
        getattr(ctx.impl, "memo", {}).clear()
        st.t0 = time.perf_counter()
        yield RevisionStep(rmap, sc, is_upgrade)
        st.steps.append({"revision": rev, "step": phase, "seconds": round(time.perf_counter() - st.t0, 4), "ok": True})

    def commit_point() -> None:
        """Commit what came before the revision, through alembic's own transaction when it holds one.

        alembic keeps the transaction it began (``ctx._transaction``) and commits
        it itself, e.g. on entering ``autocommit_block()``; committing the
        connection behind its back would leave it an inactive one ("This
        transaction is inactive").  A revision that committed the connection
        itself leaves alembic such an inactive transaction: it is replaced, so
        the next revisions' steps still work.
        """
        if not st.transactional:
            return
        trans = getattr(ctx, "_transaction", None)
        if trans is not None and trans.is_active:
            trans.commit()
        elif conn.in_transaction():
            conn.commit()
        if trans is not None:
            ctx._transaction = conn.begin()

    before = before_data = None
    for i, rev in enumerate(revisions):
        if rev in st.blocked:
            continue
        applied = _applied(rt, tuple(ctx.get_current_heads()))
        missing = _topological(rt, _ancestors(rt, rev) - applied)
        for anc in missing:
            yield from step("prepare", anc, True, None, fresh=False)
            st.prepared.append(anc)
        if missing or before is None:
            t = time.perf_counter()
            schema = snap.schema()
            empty = [tb for tb in tables_of(schema)
                     if conn.exec_driver_sql(f"SELECT 1 FROM {_q(conn, tb)}").first() is None]
            _seed(conn, st, empty, exclude)
            before = snap.schema()
            before_data = snap.data(before)
            st.steps.append({"revision": rev, "step": "seed", "seconds": round(time.perf_counter() - t, 4), "ok": True})
        commit_point()
        st.commits_at_revision = tracer.commits if tracer is not None else 0
        if tracer is not None:
            tracer.start(rev)
        yield from step("upgrade", rev, True, before, fresh=False)
        if tracer is not None:
            tracer.stop()
        after_up = snap.schema()
        st.upgraded[rev] = after_up
        yield from step("downgrade", rev, False, after_up, fresh=True)
        after_down = snap.schema()
        data_down = snap.data(after_down)
        for line in diff_schema(before, after_down, extra="was not removed by the downgrade",
                                missing="was not restored by the downgrade"):
            st.failures.append({"kind": "schema-mismatch", "revision": rev, "step": "downgrade",
                                "message": f"after the downgrade: {line}"})
        for loss in diff_data(before_data, data_down):
            st.failures.append({"kind": "data-loss", "revision": rev, "step": "downgrade",
                                "message": f"after the downgrade: {loss['message']}", "table": loss["table"],
                                "column": loss["column"], "rows": loss["rows"]})
        yield from step("reupgrade", rev, True, after_down, fresh=True)
        after_re = snap.schema()
        for line in diff_schema(after_up, after_re, extra="appears only after the second upgrade",
                                missing="is missing after the second upgrade"):
            st.failures.append({"kind": "schema-mismatch", "revision": rev, "step": "reupgrade",
                                "message": f"after upgrade, downgrade, upgrade: {line}"})
        st.done.append(rev)
        if i + 1 < len(revisions):
            t = time.perf_counter()
            new_tables = sorted(set(tables_of(after_re)) - set(tables_of(before)))
            if new_tables:
                _seed(conn, st, new_tables, exclude)
            before, before_data = after_re, snap.data(after_re)
            st.steps.append({"revision": rev, "step": "snapshot", "seconds": round(time.perf_counter() - t, 4), "ok": True})


def _seed(conn: Any, st: _State, tables: list[str], exclude: set[str]) -> None:
    if not tables or st.rows <= 0:
        return
    out = seed(conn, st.rows, tables=tables, exclude=exclude)
    st.seeded.update(out["seeded"])
    st.seed_skipped.update(out["skipped"])


def _q(conn: Any, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)
