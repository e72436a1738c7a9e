"""Benchmark test_roundtrip against pytest-alembic on generated histories.

    python bench/bench_roundtrip.py [--pg URL] [--newest N] [--all N] [--repeat K]

1. Roundtrip of the newest revision of an N-revision history (default 300) on
   PostgreSQL: first call (builds the parent template) and repeat calls.
2. Every revision of an N-revision history (default 200) on PostgreSQL, stepping
   up/down/up with schema and data checks, side by side with pytest-alembic's
   ``test_up_down_consistency`` and ``test_downgrade_leaves_no_trace`` on the
   same history (each on its own scratch database).

Prints a table.  Needs the PostgreSQL server of tests/conftest.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from make_history import make_history  # noqa: E402

PG = os.environ.get("DB_MIGRATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def for_pytest_alembic(project_dir: Path) -> Path:
    """A copy of the generated project whose env.py follows pytest-alembic's convention.

    pytest-alembic hands env.py an Engine (or its own connection wrapper) in
    ``attributes["connection"]`` and expects ``.connect()`` to be called on it;
    the generated env.py expects a Connection.  Same revisions, same models.
    """
    import shutil

    dest = project_dir.with_name(project_dir.name + "_pytest_alembic")
    shutil.copytree(project_dir, dest)
    env = dest / "alembic" / "env.py"
    env.write_text(env.read_text().replace(
        "        do_run_migrations(connectable)",
        "        with connectable.connect() as connection:\n            do_run_migrations(connection)",
    ))
    return dest


def pytest_alembic_check(project_dir: Path, server: str, test_name: str) -> float:
    """Run one of pytest-alembic's built-in tests programmatically on a scratch database; seconds."""
    import pytest_alembic
    from pytest_alembic.config import Config
    from sqlalchemy import create_engine, pool

    from db_migrate.scratch import scratch_database

    if test_name == "test_up_down_consistency":
        from pytest_alembic.tests.default import test_up_down_consistency as test
    else:
        from pytest_alembic.tests.experimental.downgrade_leaves_no_trace import test_downgrade_leaves_no_trace as test

    cwd = os.getcwd()
    os.chdir(project_dir)
    try:
        with scratch_database(server, purpose="bench") as db:
            engine = create_engine(db.url, poolclass=pool.NullPool)
            cfg = Config(config_options={"file": str(project_dir / "alembic.ini"), "sqlalchemy.url": db.url})
            t = time.perf_counter()
            with pytest_alembic.runner(config=cfg, engine=engine) as runner:
                test(runner)
            elapsed = time.perf_counter() - t
            engine.dispose()
            return elapsed
    finally:
        os.chdir(cwd)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default=PG)
    ap.add_argument("--newest", type=int, default=300)
    ap.add_argument("--all", dest="all_n", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-no-trace", action="store_true",
                    help="skip pytest-alembic's test_downgrade_leaves_no_trace (minutes on a loaded machine)")
    args = ap.parse_args(argv)

    from db_migrate.project import load_project
    from db_migrate.roundtrip import test_roundtrip
    from db_migrate.sandbox import prewarm

    rows: list[tuple[str, float, str]] = []
    prewarm()
    with tempfile.TemporaryDirectory() as tmp:
        big = make_history(Path(tmp) / f"h{args.newest}", args.newest)
        project = load_project(big)
        t, r = timed(lambda: test_roundtrip(project, database_url=args.pg))
        rows.append((f"newest of {args.newest}, first call (builds template)", t, r.status))
        for i in range(args.repeat):
            t, r = timed(lambda: test_roundtrip(project, database_url=args.pg))
            rows.append((f"newest of {args.newest}, repeat {i + 1}", t, f"{r.status}, template={r.template}"))

        hist = make_history(Path(tmp) / f"h{args.all_n}", args.all_n)
        project = load_project(hist)
        t, r = timed(lambda: test_roundtrip(project, database_url=args.pg, all_revisions=True))
        ours = t
        rows.append((f"all {args.all_n} revisions: db-migrate (schema + data, 20 rows/table)", t,
                     f"{r.status}, {len(r.failures)} failures"))
        peer = for_pytest_alembic(hist)
        t = pytest_alembic_check(peer, args.pg, "test_up_down_consistency")
        rows.append((f"all {args.all_n}: pytest-alembic test_up_down_consistency (no checks)", t, "-"))
        if not args.skip_no_trace:
            t = pytest_alembic_check(peer, args.pg, "test_downgrade_leaves_no_trace")
            rows.append((f"all {args.all_n}: pytest-alembic test_downgrade_leaves_no_trace (schema)", t,
                         f"db-migrate is {t / ours:.1f}x faster"))

    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'seconds':>8}  result")
    for name, secs, note in rows:
        print(f"{name:<{width}}  {secs:8.2f}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
