"""The roundtrip job: runs INSIDE a sandbox worker, on a scratch database URL.

``run(config_file, section, url, revisions, rows)`` brings the database to the
parent of ``revisions[0]``, seeds every table, then for each revision:
snapshot → upgrade → snapshot → downgrade → snapshot → upgrade → snapshot,
comparing schema and data.  All of it happens in one env.py run (the steps are
fed to alembic lazily by :meth:`Runtime.run_plan`); after a failing downgrade or
re-upgrade the run restarts at the next revision, so every failing revision is
reported.  Returns a plain dict (see :func:`run`).
"""

from __future__ import annotations

import time
from typing import Any

from db_migrate.roundtrip.seed import seed
from db_migrate.roundtrip.snapshot import Snapshots, diff_data, diff_schema, tables_of, take_schema
from db_migrate.runtime import Runtime, StepFailed, sqlite_hint
from db_migrate.sandbox import report_progress

_FAILED_KIND = {"prepare": "upgrade-failed", "upgrade": "upgrade-failed", "downgrade": "downgrade-failed", "reupgrade": "reupgrade-failed"}


class _State:
    def __init__(self, revisions: list[str], rows: int) -> None:
        self.revisions = revisions
        self.rows = rows
        self.steps: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.seeded: dict[str, int] = {}
        self.seed_skipped: dict[str, str] = {}
        self.upgraded: dict[str, dict] = {}  # revision -> schema after its upgrade
        self.done: list[str] = []
        self.phase = ("prepare", revisions[0])
        self.before_step: dict | None = None  # schema before the step in progress
        self.heads_before: tuple[str, ...] = ()
        self.t0 = 0.0
        self.transactional = False


def run(config_file: str, section: str, url: str, revisions: list[str], rows: int = 20,
        keep_schemas: bool = False) -> dict[str, Any]:
    """Job entry point. ``revisions``: in upgrade order, each a child of the previous.

    Returns ``{runner, runner_reason, steps, failures, seeded, seed_skipped, checked, stopped, schemas}``.
    """
    st = _State(revisions, rows)
    remaining = list(revisions)
    stopped: str | None = None
    with Runtime(config_file, section, url) as rt:
        while remaining:
            try:
                rt.run_plan(lambda heads, ctx: _plan(rt, st, remaining, ctx))
                remaining = []
            except StepFailed as e:
                phase, rev = st.phase
                st.steps.append({"revision": rev, "step": phase, "seconds": round(time.perf_counter() - st.t0, 4), "ok": False})
                failure = {
                    "kind": _FAILED_KIND[phase], "revision": rev, "step": phase, "message": f"{phase} of {rev} failed",
                    "error": e.message, "where": e.where, "error_type": e.error_type, "hint": sqlite_hint(e.message),
                }
                failure.update(_partway(rt, st))
                st.failures.append(failure)
                if phase in ("prepare", "upgrade"):
                    stopped = f"the upgrade of {rev} failed, so later revisions could not be reached"
                    remaining = []
                else:
                    remaining = remaining[remaining.index(rev) + 1:]
    return {
        "runner": rt.runner, "runner_reason": rt.runner_reason, "steps": st.steps, "failures": st.failures,
        "seeded": st.seeded, "seed_skipped": st.seed_skipped, "checked": st.done, "stopped": stopped,
        "schemas": st.upgraded if keep_schemas else {},
    }


def _partway(rt: Runtime, st: _State) -> dict[str, Any]:
    """After a failed step: what it applied anyway (DDL that is not transactional: MySQL, SQLite)."""
    from db_migrate.roundtrip.snapshot import describe_changes

    if st.before_step is None or st.transactional:
        return {}  # transactional DDL (PostgreSQL): a failed step leaves nothing behind
    try:
        if rt.heads() != st.heads_before:
            return {}  # rolled back further than the step (one transaction): nothing to attribute
        after = take_schema(rt.connection, exclude=_version_tables(rt))
        rt.commit()
    except Exception:
        return {}
    applied = describe_changes(st.before_step, after)
    return {"applied_partway": applied, "partial_schema": after} if applied else {}


def _version_tables(rt: Runtime) -> set[str]:
    return {rt.version_table}


def _parent_target(rt: Runtime, rev: str) -> str:
    down = rt.script.get_revision(rev).down_revision
    if not down:
        return "base"
    return down if isinstance(down, str) else down[0]


def _plan(rt: Runtime, st: _State, revisions: list[str], ctx: Any):
    """The generator alembic pulls steps from; everything between yields runs on ``ctx.connection``."""
    conn = ctx.connection
    st.transactional = bool(ctx.impl.transactional_ddl)
    exclude = {getattr(ctx, "version_table", "alembic_version")}
    snap = Snapshots(conn, exclude=exclude)  # reflects and reads only what changed since earlier snapshots
    total = len(st.revisions)

    def steps(kind: str, target: str):
        heads = ctx.get_current_heads()
        st.heads_before = tuple(sorted(heads))
        fn = rt.script._upgrade_revs if kind != "downgrade" else rt.script._downgrade_revs
        return fn(target, heads)

    def timed(phase: str, rev: str, target: str, before: dict | None):
        st.phase, st.before_step = (phase, rev), before
        report_progress(f"{rev}: {phase}", len(st.done), total)
        st.t0 = time.perf_counter()
        yield from steps("downgrade" if phase == "downgrade" else "upgrade", target)
        st.steps.append({"revision": rev, "step": phase, "seconds": round(time.perf_counter() - st.t0, 4), "ok": True})

    first = revisions[0]
    yield from timed("prepare", first, _parent_target(rt, first), None)
    t = time.perf_counter()
    before = snap.schema()
    empty = [tb for tb in tables_of(before) if conn.exec_driver_sql(f"SELECT 1 FROM {_q(conn, tb)}").first() is None]
    _seed(conn, st, empty, exclude)
    before_data = snap.data(before)
    st.steps.append({"revision": first, "step": "seed", "seconds": round(time.perf_counter() - t, 4), "ok": True})

    for i, rev in enumerate(revisions):
        parent = _parent_target(rt, rev)
        yield from timed("upgrade", rev, rev, before)
        after_up = snap.schema()
        st.upgraded[rev] = after_up
        yield from timed("downgrade", rev, parent, after_up)
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
        yield from timed("reupgrade", rev, rev, after_down)
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
