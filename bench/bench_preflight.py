"""Benchmark preflight on a 1-million-row PostgreSQL table, per check kind, beside a plain COUNT(*).

    .venv/bin/python bench/bench_preflight.py [--rows 1000000] [--repeat 3] [--rates]

Creates a database ``dbm_bench_<hex>`` on the server at ``DB_MIGRATE_BENCH_PG`` (default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres), fills ``big`` (id bigint pk, n int, s varchar(40),
f numeric, team_id int, status text) with ``--rows`` rows, ANALYZEs it, and drops the database at the end.

For each check kind a one-operation revision is reviewed once (not timed), then ``run_preflight`` is timed
(best of ``--repeat``).  Every preflight run includes its bounded row count of the table (one pass) plus the
check's own query, so about 2x COUNT(*) is the expected cost of a full-table check.

``--rates`` also times the real DDL/DML of each lock-time cost class (inside a transaction that is rolled
back) relative to COUNT(*): the figures behind ``db_migrate.preflight.size.RELATIVE_COST``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from projectfactory import make_project  # noqa: E402

SERVER = os.environ.get("DB_MIGRATE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

CHECKS = {
    "not-null": 'op.alter_column("big", "n", existing_type=sa.Integer(), nullable=False)',
    "unique": 'op.create_index("ix_big_s", "big", ["s"], unique=True)',
    "foreign-key": 'op.create_foreign_key("fk_big_team", "big", "teams", ["team_id"], ["id"])',
    "check-constraint": 'op.create_check_constraint("ck_big_f", "big", "f >= 0")',
    "type-change (varchar 40->10)": 'op.alter_column("big", "s", existing_type=sa.String(40), type_=sa.String(10))',
    "type-change (numeric->int)": 'op.alter_column("big", "f", existing_type=sa.Numeric(), type_=sa.Integer())',
    "enum-values": 'op.alter_column("big", "status", existing_type=sa.Enum("a", "b", "c", name="st"), type_=sa.Enum("a", "b", name="st"))',
    "data-statement (DELETE)": 'op.execute("DELETE FROM big WHERE n = 5")',
    "table-size only": 'op.add_column("big", sa.Column("extra", sa.Integer(), nullable=True))',
}

#: Real statements per lock-time cost class, timed against COUNT(*) with --rates.
RATE_STATEMENTS = {
    "rewrite": "ALTER TABLE big ALTER COLUMN n TYPE bigint",
    "scan": "ALTER TABLE big ALTER COLUMN id2 SET NOT NULL",
    "index": "CREATE INDEX ix_rate ON big (s)",
    "rows": "UPDATE big SET n = n + 1",
    "instant": "ALTER TABLE big ADD COLUMN rate_extra int",
}


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rates", action="store_true")
    args = ap.parse_args()

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from db_migrate.policy.settings import Policy
    from db_migrate.preflight import run_preflight
    from db_migrate.project import load_project
    from db_migrate.review import review_migration

    name = f"dbm_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    try:
        eng = create_engine(url)
        with eng.begin() as c:
            c.execute(text("CREATE TABLE teams (id int PRIMARY KEY)"))
            c.execute(text("INSERT INTO teams SELECT generate_series(1, 10)"))
            c.execute(text("CREATE TABLE big (id bigint PRIMARY KEY, id2 bigint, n int, s varchar(40), f numeric, team_id int, status text)"))
            c.execute(text(
                "INSERT INTO big SELECT g, g, CASE WHEN g % 100000 = 0 THEN NULL ELSE g % 1000 END, 'name-' || g, g * 1.5, "
                "1 + g % 11, CASE WHEN g % 3 = 0 THEN 'c' ELSE 'a' END FROM generate_series(1, :n) g"
            ), {"n": args.rows})
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE big"))

        def count() -> None:
            with eng.connect() as c:
                c.execute(text("SELECT count(*) FROM big")).scalar()

        count()  # warm the cache, as preflight's own passes will be
        base = _best(count, args.repeat)
        print(f"PostgreSQL, {args.rows:,} rows; COUNT(*) best of {args.repeat}: {base * 1000:.0f} ms\n")
        print(f"{'check':32} {'preflight ms':>12} {'x COUNT(*)':>10}  outcome")
        policy = Policy(preflight_timeout_seconds=300)
        with tempfile.TemporaryDirectory() as tmp:
            for i, (kind, op) in enumerate(CHECKS.items()):
                body = f"def upgrade():\n    {op}\n\n\ndef downgrade():\n    pass\n"
                project = load_project(make_project(Path(tmp) / str(i), [body]))
                review = review_migration(project, "head", dialect="postgresql")
                result = []
                t = _best(lambda: result.append(run_preflight(review, url, policy)), args.repeat)
                pf = result[-1]
                outcome = ", ".join(f"{c.outcome}({c.count})" for c in pf.checks) or "-"
                lock = "; ".join(f"{s.lock} ~{s.lock_seconds}s" for s in pf.table_sizes)
                print(f"{kind:32} {t * 1000:12.0f} {t / base:10.2f}  {outcome}  [{lock}]")
        if args.rates:
            print(f"\n{'cost class':12} {'ms':>8} {'x COUNT(*)':>10}  statement (rolled back)")
            for cls, stmt in RATE_STATEMENTS.items():
                def run(stmt=stmt) -> None:
                    with eng.connect() as c:
                        c.execute(text(stmt))
                        c.rollback()
                t = _best(run, args.repeat)
                print(f"{cls:12} {t * 1000:8.0f} {t / base:10.2f}  {stmt}")
        eng.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


if __name__ == "__main__":
    main()
