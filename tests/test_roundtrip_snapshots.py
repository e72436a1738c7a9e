"""Repeated snapshots (``Snapshots``) reuse earlier reflection only when nothing changed.

The incremental snapshots of PostgreSQL must equal full reflection after any
change, including changes a migration makes behind alembic's back (raw SQL on
a table the revision does not otherwise touch).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).parent))
from projectfactory import make_project  # noqa: E402

from db_migrate.project import load_project  # noqa: E402
from db_migrate.roundtrip import test_roundtrip  # noqa: E402
from db_migrate.roundtrip.snapshot import Snapshots, take_data, take_schema  # noqa: E402
from db_migrate.scratch import scratch_database  # noqa: E402

TWO_TABLES = (
    "def upgrade():\n"
    "    op.create_table('persons', sa.Column('id', sa.Integer, primary_key=True),\n"
    "                    sa.Column('name', sa.String(100), nullable=False))\n"
    "    op.create_table('other', sa.Column('id', sa.Integer, primary_key=True),\n"
    "                    sa.Column('label', sa.String(40), nullable=True))\n"
    "def downgrade():\n    op.drop_table('other')\n    op.drop_table('persons')\n"
)


def _sneaky(statement: str) -> str:
    """A revision adding a column to persons whose downgrade also changes ``other`` with raw SQL."""
    return (
        "def upgrade():\n    op.add_column('persons', sa.Column('nick', sa.String(30), nullable=True))\n"
        "def downgrade():\n"
        "    op.drop_column('persons', 'nick')\n"
        f"    op.execute({statement!r})\n"
    )


@pytest.mark.parametrize(("statement", "expected"), [
    ("ALTER TABLE other ALTER COLUMN label TYPE varchar(80)", "column other.label type VARCHAR(40) -> VARCHAR(80)"),
    ("ALTER TABLE other ALTER COLUMN label SET DEFAULT 'x'", "column other.label default none -> 'x'::character varying"),
    ("ALTER TABLE other ADD CONSTRAINT ck_label CHECK (label <> '')", "check constraint other.ck_label"),
    ("CREATE INDEX ix_other_label ON other (label)", "index other.ix_other_label (label) was not removed"),
    ("ALTER TABLE other RENAME COLUMN label TO title", "column other.title (VARCHAR(40)) was not removed"),
])
def test_raw_sql_on_an_untouched_table_in_a_downgrade_is_a_schema_mismatch(
        tmp_path: Path, pg_url: str, statement: str, expected: str) -> None:
    project = load_project(make_project(tmp_path / "p", [TWO_TABLES, _sneaky(statement)]))
    r = test_roundtrip(project, database_url=pg_url, all_revisions=True, rows=3)
    mismatches = [f for f in r.failures if f.kind == "schema-mismatch" and f.step == "downgrade"]
    assert [f.revision for f in mismatches] and {f.revision for f in mismatches} == {"000000000002"}
    assert any(expected in f.message for f in mismatches), [f.message for f in mismatches]


def test_raw_sql_changing_rows_of_an_untouched_table_is_data_loss(tmp_path: Path, pg_url: str) -> None:
    project = load_project(make_project(tmp_path / "p", [TWO_TABLES, _sneaky("UPDATE other SET label = NULL")]))
    r = test_roundtrip(project, database_url=pg_url, all_revisions=True, rows=4)
    losses = [(f.revision, f.table, f.column) for f in r.failures if f.kind == "data-loss"]
    assert losses == [("000000000002", "other", "label")]


# each step changes what a cache could miss; after each, incremental == full reflection
STEPS = [
    "CREATE TYPE mood AS ENUM ('sad', 'ok')",
    "CREATE DOMAIN short_text AS varchar(10)",
    "CREATE TABLE a (id serial PRIMARY KEY, v varchar(20), m mood, s short_text)",
    "CREATE TABLE b (id serial PRIMARY KEY, a_id int REFERENCES a (id), w int DEFAULT 1)",
    "INSERT INTO a (v, m, s) VALUES ('x', 'ok', 'q'), ('y', 'sad', 'r')",
    "INSERT INTO b (a_id, w) VALUES (1, 5), (2, 7)",
    "UPDATE b SET w = 6 WHERE w = 5",
    "ALTER TABLE a ALTER COLUMN v TYPE varchar(30)",
    "ALTER TABLE a ALTER COLUMN v SET NOT NULL",
    "ALTER TABLE b ALTER COLUMN w SET DEFAULT 2",
    "ALTER TABLE a ALTER COLUMN v TYPE varchar(30) COLLATE \"C\"",
    "ALTER TYPE mood ADD VALUE 'glad'",
    "ALTER DOMAIN short_text SET NOT NULL",
    "ALTER DOMAIN short_text ADD CONSTRAINT nonempty CHECK (VALUE <> '')",
    "ALTER TABLE b DROP CONSTRAINT b_a_id_fkey",
    "ALTER TABLE b ADD CONSTRAINT b_a_id_fkey FOREIGN KEY (a_id) REFERENCES a (id) ON DELETE CASCADE",
    "CREATE UNIQUE INDEX ix_b_w ON b (w)",
    "ALTER INDEX ix_b_w RENAME TO ix_b_w2",
    "ALTER TABLE a RENAME COLUMN v TO v2",
    "ALTER TABLE a RENAME COLUMN v2 TO v",
    "ALTER TABLE a RENAME TO a2",
    "ALTER TABLE a2 RENAME TO a",
    "ALTER TABLE b ADD COLUMN x int, ADD COLUMN y int",
    "UPDATE b SET x = 1, y = 2",
    "UPDATE b SET x = 2, y = 1",  # values swapped between same-typed columns
    "ALTER TABLE b DROP COLUMN x, DROP COLUMN y",
    "CREATE SEQUENCE loose_seq",
    "DROP TABLE b",
    "CREATE TABLE b (id serial PRIMARY KEY, a_id int REFERENCES a (id), w int DEFAULT 1)",  # as it was
    "CREATE SCHEMA side; CREATE TABLE side.c (id int)",  # not on the search path: invisible
    "SET search_path TO side, public",  # now it is
]


def _unordered(data: dict) -> dict:
    """Data snapshots up to row order (the order of ``SELECT *`` is the server's business)."""
    return {t: {**d, "rows": sorted(d["rows"], key=repr), "keys": sorted(d["keys"] or [], key=repr)} for t, d in data.items()}


def test_incremental_snapshots_equal_full_reflection(pg_url: str) -> None:
    with scratch_database(pg_url, purpose="snapshots") as db:
        engine = create_engine(db.url)
        try:
            with engine.begin() as conn:
                snaps = Snapshots(conn, exclude={"alembic_version"})
                assert snaps.incremental
                for statement in STEPS:
                    conn.exec_driver_sql(statement)
                    schema = snaps.schema()
                    assert schema == take_schema(conn, exclude={"alembic_version"}), statement
                    assert _unordered(snaps.data(schema)) == _unordered(take_data(conn, schema)), statement
                assert "table c" in schema and "enum mood" in schema
        finally:
            engine.dispose()
