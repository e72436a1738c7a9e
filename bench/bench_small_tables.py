"""How long the locks behind the relaxed findings last, by table size: the basis of ``small_table_rows``.

    .venv/bin/python bench/bench_small_tables.py [--url postgresql://postgres@127.0.0.1:5432/postgres] [--repeat 3]

On a throwaway database of the server at ``--url`` (created and dropped here), for tables of 1,000, 10,000 and
100,000 rows (an integer key, an indexed integer, a text, a timestamp and a numeric column), it times the
statements whose findings the policy relaxes on a small table, each under the ACCESS EXCLUSIVE (or SHARE) lock
it holds:

* ``ALTER COLUMN ... TYPE bigint`` (a rewrite of the table and its indexes);
* ``CREATE INDEX`` without CONCURRENTLY (writes blocked for the build);
* ``SET NOT NULL`` (a scan under ACCESS EXCLUSIVE).

Printed beside each other: the old threshold (1,000 rows) and the current default (10,000 rows), with the
median milliseconds of ``--repeat`` runs.  The claim the default rests on is that every statement on a table
just under the threshold holds its lock for well under a second on a loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import sqlalchemy as sa

SIZES = (1_000, 10_000, 100_000)
STATEMENTS = {
    "rewrite (INTEGER -> BIGINT)": "ALTER TABLE t ALTER COLUMN a TYPE bigint",
    "CREATE INDEX (blocking)": "CREATE INDEX t_b ON t (b)",
    "SET NOT NULL (scan)": "ALTER TABLE t ALTER COLUMN d SET NOT NULL",
}


def _time_once(engine: sa.Engine, rows: int, sql: str) -> float:
    with engine.begin() as c:
        c.exec_driver_sql("DROP TABLE IF EXISTS t")
        c.exec_driver_sql("CREATE TABLE t (id int PRIMARY KEY, a int, b text, c timestamp DEFAULT now(), d numeric(10, 2))")
        c.exec_driver_sql(f"INSERT INTO t SELECT g, g, 'row ' || g, now(), g FROM generate_series(1, {rows}) g")
        c.exec_driver_sql("CREATE INDEX t_a ON t (a)")
        c.exec_driver_sql("ANALYZE t")
    with engine.begin() as c:
        start = time.perf_counter()
        c.exec_driver_sql(sql)
        return (time.perf_counter() - start) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    admin = sa.create_engine(args.url, isolation_level="AUTOCOMMIT")
    name = f"dbm_bench_small_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {name}")
    engine = sa.create_engine(sa.engine.make_url(args.url).set(database=name))
    try:
        print(f"{'statement':32}" + "".join(f"{n:>12,} rows" for n in SIZES))
        for label, sql in STATEMENTS.items():
            cells = [statistics.median(_time_once(engine, n, sql) for _ in range(args.repeat)) for n in SIZES]
            print(f"{label:32}" + "".join(f"{ms:>14.1f} ms" for ms in cells))
        print("\nthresholds: baseline small_table_rows = 1,000 (before); default now 10,000 (the middle column)")
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


if __name__ == "__main__":
    main()
