"""check_heads with database_url: which operations of a revision that failed partway are already applied.

The database is stamped at revision 1 but already has the first operation of revision 2 (what MariaDB leaves
behind when revision 2 fails halfway: no transactional DDL).  Real PostgreSQL, MariaDB and SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from databases import sqlite_database, throwaway_database
from db_migrate.heads import check_heads
from db_migrate.project import load_project
from projectfactory import make_project

REV1 = ('def upgrade():\n    op.create_table("persons", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)))\n\n\n'
        'def downgrade():\n    op.drop_table("persons")\n')
REV2 = ('def upgrade():\n    op.add_column("persons", sa.Column("badge", sa.Integer(), nullable=True))\n'
        '    op.create_index("ix_persons_badge", "persons", ["badge"])\n\n\n'
        'def downgrade():\n    op.drop_index("ix_persons_badge", "persons")\n    op.drop_column("persons", "badge")\n')
STAMPED_AT_1 = [
    "CREATE TABLE persons (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(50))",
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
    "INSERT INTO alembic_version VALUES ('000000000001')",
]
HALF_OF_2 = ["ALTER TABLE persons ADD COLUMN badge INTEGER"]


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def engine(request):
    return request.param


def _database(engine: str, request, tmp_path: Path, setup: list[str]):
    if engine == "sqlite":
        yield sqlite_database(tmp_path / "app.db", setup), None
        return
    server = request.getfixturevalue("pg_url" if engine == "postgresql" else "mysql_url")
    for url in throwaway_database(server, setup, prefix="dbm_partway"):
        yield url, server


def _rows(url: str) -> list:
    eng = create_engine(url)
    with eng.connect() as c:
        out = [tuple(r) for r in c.execute(text("SELECT version_num FROM alembic_version"))]
    eng.dispose()
    return out


def test_failed_partway_names_the_applied_and_the_missing_operations(engine, request, tmp_path):
    project = load_project(make_project(tmp_path / "proj", [REV1, REV2]))
    for url, server in _database(engine, request, tmp_path, STAMPED_AT_1 + HALF_OF_2):
        result = check_heads(project, database_url=url, scratch_url=server, drift=False)
        assert result.current == ["000000000001"] and result.pending == ["000000000002"]
        (partly,) = [f for f in result.findings if f.rule == "database-partly-migrated"]
        assert partly.severity == "error" and partly.revision == "000000000002"
        assert "1 of the 2 operation(s)" in partly.message
        assert "add_column persons.badge" in partly.message.split("Not applied")[0]
        assert "create_index persons.ix_persons_badge" in partly.message.split("Not applied")[1]
        assert not [f for f in result.findings if f.rule == "database-schema-differs"]
        assert result.decision == "revise" and result.schema_matches_stamp is False
        assert _rows(url) == [("000000000001",)]  # nothing written


def test_schema_matching_its_stamp_says_so(engine, request, tmp_path):
    project = load_project(make_project(tmp_path / "proj", [REV1, REV2]))
    for url, server in _database(engine, request, tmp_path, STAMPED_AT_1):
        result = check_heads(project, database_url=url, scratch_url=server, drift=False)
        assert result.schema_matches_stamp is True and "schema matches its stamped revision" in result.summary
        assert [f.rule for f in result.findings if f.phase == "database"] == ["database-behind-head"]


def test_mariadb_without_scratch_url_is_unchecked(mysql_url, tmp_path):
    project = load_project(make_project(tmp_path / "proj", [REV1, REV2]))
    for url in throwaway_database(mysql_url, STAMPED_AT_1, prefix="dbm_partway"):
        result = check_heads(project, database_url=url, drift=False)
        assert any(u.what.startswith("schema of the database") and "scratch_url" in u.reason for u in result.unchecked)
        assert result.schema_matches_stamp is None


def test_postgresql_without_scratch_url_builds_on_the_embedded_server(pg_url, tmp_path):
    project = load_project(make_project(tmp_path / "proj", [REV1, REV2]))
    for url in throwaway_database(pg_url, STAMPED_AT_1 + HALF_OF_2, prefix="dbm_partway"):
        result = check_heads(project, database_url=url, drift=False)
        assert result.schema_matches_stamp is False
        assert [f.rule for f in result.findings if f.rule.startswith("database-partly")] == ["database-partly-migrated"]
