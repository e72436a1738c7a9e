"""The plain baseline: a stepwise alembic up/down/up replay of a history, without db-migrate.

    python bench/alembic_replay.py ALEMBIC_INI SERVER_URL [--name SECTION]

For each revision, parents first, on a database of ``SERVER_URL`` (a
PostgreSQL server; the database is created here and dropped afterwards):
``alembic upgrade REV``, ``alembic downgrade`` to its parent, ``alembic
upgrade REV`` again, through alembic's own command API and the project's own
env.py (``sqlalchemy.url`` set to the scratch database), no rows added.

A failed step is recorded (revision, step, error) and the replay goes on from
a fresh database upgraded to that revision (a failed downgrade or re-upgrade),
or stops below it (a failed upgrade: its descendants cannot be reached); the
revisions it could not reach are listed.  This is the oracle the roundtrip's
tests and bench compare against: every failure it finds must be reported, and
every failure reported must be one it shows or one seeded rows prove.

Prints JSON: ``{"tested": [...], "failures": [[rev, step, error], ...],
"unreached": [...], "stamp_lost": [[rev, heads], ...], "seconds": s}``:
``stamp_lost`` lists upgrades after which alembic's version table did not
name the revision (a revision that commits the connection itself leaves stock
alembic an inactive transaction, so its stamp is lost); the replay stamps it
and goes on.  Those are not step failures.  Runs project code in this process: use it
on histories you would run alembic on anyway.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from contextlib import chdir, contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def _database(server_url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = f"dbm_replay_{secrets.token_hex(4)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _order(script) -> list[str]:
    """Every revision, parents first."""
    return [s.revision for s in reversed(list(script.walk_revisions("base", "heads")))]


def replay(ini: str, server_url: str, *, section: str = "alembic", revisions: list[str] | None = None) -> dict[str, Any]:
    """The replay of the module docstring; ``revisions`` narrows which ones are stepped (default: all)."""
    import importlib

    ini = str(Path(ini).resolve())
    folder = str(Path(ini).parent)
    # as alembic runs from the project folder (prepend_sys_path = . means that folder); the import
    # system caches its finder for ".", so the folder goes in by its absolute path too
    sys.path.insert(0, folder)
    importlib.invalidate_caches()
    try:
        with chdir(folder):
            return _replay(ini, server_url, section, revisions)
    finally:
        sys.path.remove(folder)


def _replay(ini: str, server_url: str, section: str, revisions: list[str] | None) -> dict[str, Any]:
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    t0 = time.perf_counter()
    base = Config(ini, ini_section=section)
    script = ScriptDirectory.from_config(base)
    order = revisions or _order(script)
    out: dict[str, Any] = {"tested": [], "failures": [], "unreached": [], "stamp_lost": []}
    dead: set[str] = set()  # revisions whose upgrade failed: their descendants cannot be reached

    def ancestors(rev: str) -> set[str]:
        seen: set[str] = set()
        stack = list(script.get_revision(rev)._all_down_revisions)
        while stack:
            r = stack.pop()
            if r not in seen:
                seen.add(r)
                stack.extend(script.get_revision(r)._all_down_revisions)
        return seen

    def config(url: str) -> Config:
        cfg = Config(ini, ini_section=section)
        cfg.set_section_option(section, "sqlalchemy.url", url.replace("%", "%%"))
        return cfg

    stack = None
    cfg = None
    applied: set[str] = set()  # what the current database holds

    def fresh(targets: list[str] | tuple[str, ...]) -> None:
        """A new database holding ``targets`` and their ancestors, nothing else."""
        nonlocal stack, cfg, applied
        if stack is not None:
            stack.__exit__(None, None, None)
        stack = _database(server_url)
        cfg = config(stack.__enter__())
        applied = set()
        for target in targets:
            upgrade_to(target)
            applied |= ancestors(target) | {target}

    def heads() -> set[str]:
        from sqlalchemy import create_engine

        from alembic.runtime.migration import MigrationContext

        eng = create_engine(cfg.get_section_option(section, "sqlalchemy.url"))
        try:
            with eng.connect() as conn:
                return set(MigrationContext.configure(conn).get_current_heads())
        finally:
            eng.dispose()

    def upgrade_to(target: str) -> None:
        """``alembic upgrade target``, then make sure it is stamped.

        A revision that commits the connection itself (``op.get_bind().commit()``)
        leaves stock alembic an inactive transaction: its own stamp, and all that
        later revisions of the same command do, are never committed.  Such a
        revision (the first above the stamped heads) is stamped here and the
        upgrade runs again from it, so the replay goes on (``stamp_lost``).
        """
        for _ in range(len(order) + 1):
            command.upgrade(cfg, target)
            now = heads()
            if target in now:
                return
            done = set(now).union(*(ancestors(h) for h in now))
            above = [r for r in order if r in (ancestors(target) | {target}) - done
                     and set(script.get_revision(r)._all_down_revisions) <= done]
            out["stamp_lost"].append([above[0] if above else target, sorted(now)])
            command.stamp(cfg, above[0] if above else target, purge=True)

    def step(rev: str, name: str, fn) -> bool:
        try:
            fn()
            return True
        except BaseException as e:  # noqa: BLE001 - a step's failure is data here
            if isinstance(e, KeyboardInterrupt):
                raise
            out["failures"].append([rev, name, f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"])
            return False

    try:
        fresh(script.get_revision(order[0])._all_down_revisions if order else ())
        for rev in order:
            need = ancestors(rev)
            if need & dead:
                out["unreached"].append(rev)
                continue
            parents = script.get_revision(rev)._all_down_revisions
            if not applied <= need:  # a sibling branch is applied: start again from the revision's ancestors
                fresh(parents)
            if not step(rev, "upgrade", lambda: upgrade_to(rev)):
                dead.add(rev)
                fresh(())
                continue
            applied = need | {rev}
            out["tested"].append(rev)
            if len(parents) > 1:  # a merge: its downgrade would leave several heads; stepped up only
                continue
            # to the parent by id: only the revision itself is above it here
            if not step(rev, "downgrade", lambda: command.downgrade(cfg, parents[0] if parents else "base")):
                fresh([rev])
                continue
            applied = set(need)
            if not step(rev, "reupgrade", lambda: upgrade_to(rev)):
                fresh([rev])
            applied = need | {rev}
    finally:
        if stack is not None:
            stack.__exit__(None, None, None)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


_KIND_STEP = {"upgrade-failed": "upgrade", "downgrade-failed": "downgrade", "reupgrade-failed": "reupgrade"}


def compare(verdict: dict[str, Any], oracle: dict[str, Any]) -> dict[str, list]:
    """A roundtrip verdict (``model_dump(mode="json")``) against :func:`replay`'s answer.

    ``missed``: failures the replay shows that the verdict neither reports
    nor names in ``unchecked`` (an engine limit, a revision it could not
    test).  ``false``: step failures the verdict reports that the replay does
    not show, on a revision it tested, and that do not pass on an empty
    database (``populated_only``: the seeded rows prove those).
    ``unverified``: revisions with a reported failure that the replay never
    reached (below an upgrade that failed there).  Schema and data comparisons
    (``schema-mismatch``, ``data-loss``) are not steps; they are not compared.
    """
    shown = {(rev, step) for rev, step, _ in oracle["failures"]}
    replayed = set(oracle["tested"]) | {rev for rev, _, _ in oracle["failures"]}
    reported = {(f["revision"], _KIND_STEP[f["kind"]]) for f in verdict["failures"] if f["kind"] in _KIND_STEP}
    named = {u.get("revision") for u in verdict["unchecked"] if u.get("revision")}
    missed = sorted(s for s in shown if s not in reported and s[0] not in named)
    false = sorted((f["revision"], _KIND_STEP[f["kind"]], f.get("error")) for f in verdict["failures"]
                   if f["kind"] in _KIND_STEP and (f["revision"], _KIND_STEP[f["kind"]]) not in shown
                   and not f.get("populated_only") and f["revision"] in replayed)
    unverified = sorted({f["revision"] for f in verdict["failures"] if f["revision"] not in replayed})
    return {"missed": missed, "false": false, "unverified": unverified}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ini")
    ap.add_argument("server_url")
    ap.add_argument("--name", default="alembic")
    args = ap.parse_args(argv)
    print(json.dumps(replay(args.ini, args.server_url, section=args.name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
