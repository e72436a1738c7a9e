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
"unreached": [...], "seconds": s}``.  Runs project code in this process: use it
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
    out: dict[str, Any] = {"tested": [], "failures": [], "unreached": []}
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

    def fresh(target: str | None):
        nonlocal stack, cfg
        if stack is not None:
            stack.__exit__(None, None, None)
        stack = _database(server_url)
        cfg = config(stack.__enter__())
        if target is not None:
            command.upgrade(cfg, target)

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
        first = script.get_revision(order[0]).down_revision if order else None
        fresh(first if isinstance(first, str) else None)
        for rev in order:
            if ancestors(rev) & dead:
                out["unreached"].append(rev)
                continue
            sc = script.get_revision(rev)
            parents = sc._all_down_revisions
            if not step(rev, "upgrade", lambda: command.upgrade(cfg, rev)):
                dead.add(rev)
                fresh(None)
                continue
            down = parents[0] if len(parents) == 1 else ("base" if not parents else None)
            if down is None:  # a merge: its downgrade would leave several heads; stepped up only
                out["tested"].append(rev)
                continue
            if not step(rev, "downgrade", lambda: command.downgrade(cfg, f"{rev}-1" if down != "base" else "base")):
                fresh(rev)
                out["tested"].append(rev)
                continue
            if not step(rev, "reupgrade", lambda: command.upgrade(cfg, rev)):
                fresh(rev)
            out["tested"].append(rev)
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
    not show and that do not pass on an empty database (``populated_only``:
    the seeded rows prove those).  Schema and data comparisons
    (``schema-mismatch``, ``data-loss``) are not steps; they are not compared.
    """
    shown = {(rev, step) for rev, step, _ in oracle["failures"]}
    reported = {(f["revision"], _KIND_STEP[f["kind"]]) for f in verdict["failures"] if f["kind"] in _KIND_STEP}
    named = {u.get("revision") for u in verdict["unchecked"] if u.get("revision")}
    missed = sorted(s for s in shown if s not in reported and s[0] not in named)
    false = sorted((f["revision"], _KIND_STEP[f["kind"]], f.get("error")) for f in verdict["failures"]
                   if f["kind"] in _KIND_STEP and (f["revision"], _KIND_STEP[f["kind"]]) not in shown
                   and not f.get("populated_only"))
    return {"missed": missed, "false": false}


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
