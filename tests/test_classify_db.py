"""Row counts and column contents read for real from PostgreSQL, MariaDB and SQLite; end to end on the fixture."""

from __future__ import annotations


import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from db_migrate.errors import DatabaseError
from db_migrate.classify import classify_escalation, read_database_facts
from db_migrate.project import load_project
from databases import throwaway_database


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("DB_MIGRATE_ENV", raising=False)


def _scratch(server_url: str, setup: list[str]):
    """Create a throwaway database on the server, run ``setup`` in it, yield its URL, drop it."""
    yield from throwaway_database(server_url, setup, prefix="dbm_policy")


PERSONS = [
    "CREATE TABLE persons (id INTEGER PRIMARY KEY, first_name VARCHAR(50), role VARCHAR(20), "
    "pager_number VARCHAR(20), email_verified BOOLEAN)",
]


@pytest.fixture
def pg_db(pg_url):
    yield from _scratch(
        pg_url,
        PERSONS
        + [
            "INSERT INTO persons (id, first_name, role) SELECT g, 'p' || g, 'attending' FROM generate_series(1, 3000) g",
            "CREATE TABLE big (id INTEGER)",
            "INSERT INTO big SELECT generate_series(1, 5000)",
            "CREATE TABLE empty_t (id INTEGER, note TEXT)",
        ],
    )


@pytest.fixture
def mysql_db(mysql_url):
    yield from _scratch(
        mysql_url,
        PERSONS
        + [
            "INSERT INTO persons (id, first_name, pager_number) VALUES (1, 'a', NULL), (2, 'b', '555-0100'), (3, 'c', NULL)",
            "CREATE TABLE empty_t (id INTEGER, note TEXT)",
        ],
    )


def test_postgres_exact_count_below_threshold_estimate_above(pg_db):
    with create_engine(pg_db).connect() as c:  # give big a catalog estimate; leave persons unanalysed
        c.execute(text("ANALYZE big"))
        c.commit()
    facts = read_database_facts(pg_db, tables=["persons", "big", "empty_t", "nope"], columns=[("persons", "pager_number"), ("persons", "first_name"), ("persons", "gone")], exact_count_below=4000)
    assert facts.dialect == "postgresql"
    assert facts.row_counts["persons"].model_dump() == {"rows": 3000, "estimate": False}
    assert facts.row_counts["big"].estimate is True
    assert 4000 <= facts.row_counts["big"].rows <= 6000
    assert facts.row_counts["empty_t"].rows == 0
    assert facts.column_has_data == {"persons.pager_number": False, "persons.first_name": True}
    assert set(facts.missing) == {"nope", "persons.gone"}


def test_postgres_reads_in_a_read_only_transaction(pg_db):
    from db_migrate.readonly import read_only_connection

    with read_only_connection(pg_db, timeout=5) as conn:
        with pytest.raises(Exception, match="read-only"):
            conn.execute(text("INSERT INTO empty_t VALUES (1, 'x')"))


def test_postgres_read_only_url_holds_for_any_connection(pg_db):
    """A connection opened from the read-only URL (as a project's env.py would) cannot write, even in autocommit."""
    from db_migrate.readonly import read_only_url

    eng = create_engine(read_only_url(pg_db), isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn, pytest.raises(Exception, match="read-only"):
            conn.execute(text("INSERT INTO empty_t VALUES (1, 'x')"))
    finally:
        eng.dispose()


def test_mariadb_counts_exactly(mysql_db):
    facts = read_database_facts(mysql_db, tables=["persons", "empty_t"], columns=[("persons", "pager_number"), ("empty_t", "note")])
    assert facts.row_counts["persons"].model_dump() == {"rows": 3, "estimate": False}
    assert facts.row_counts["empty_t"].rows == 0
    assert facts.column_has_data == {"persons.pager_number": True, "empty_t.note": False}


def test_mariadb_read_only_transaction(mysql_db):
    from db_migrate.readonly import read_only_connection

    with read_only_connection(mysql_db, timeout=5) as conn:
        with pytest.raises(Exception, match="(?i)read only"):
            conn.execute(text("INSERT INTO empty_t VALUES (1, 'x')"))


def test_sqlite_file_is_opened_read_only(tmp_path):
    path = tmp_path / "app.db"
    eng = create_engine(f"sqlite:///{path}")
    with eng.begin() as c:
        c.execute(text("CREATE TABLE persons (id INTEGER, pager_number TEXT)"))
        c.execute(text("INSERT INTO persons VALUES (1, NULL), (2, NULL)"))
    eng.dispose()
    before = path.read_bytes()
    facts = read_database_facts(f"sqlite:///{path}", tables=["persons"], columns=[("persons", "pager_number")])
    assert facts.row_counts["persons"].rows == 2
    assert facts.column_has_data["persons.pager_number"] is False
    assert path.read_bytes() == before
    # a missing file is not created
    with pytest.raises(DatabaseError):
        read_database_facts(f"sqlite:///{tmp_path / 'missing.db'}", tables=["persons"])
    assert not (tmp_path / "missing.db").exists()


def test_unreachable_database_is_a_clear_error():
    with pytest.raises(DatabaseError) as exc:
        read_database_facts("postgresql+psycopg://u:hunter2@127.0.0.1:1/x", tables=["t"], timeout=2)
    assert "hunter2" not in exc.value.message
    assert exc.value.code == "database-error"


# --- end to end on the fixture project ---------------------------------------------------------------


def test_fixture_drop_pager_number_without_database_escalates(residency):
    r = classify_escalation(load_project(residency), "9692142c98f0")
    assert r.decision == "escalate"
    [t] = [t for t in r.escalation.triggers if t.trigger == "drop-with-data"]
    assert "assumed: no database_url given" in t.evidence[0]
    assert "9692142c98f0_drop_pager_number_from_persons.py:22" in t.evidence[0]


def test_fixture_drop_pager_number_against_postgres(residency, pg_db):
    project = load_project(residency)
    empty = classify_escalation(project, "9692142c98f0", database_url=pg_db)
    assert "drop-with-data" not in {t.trigger for t in empty.escalation.triggers}
    assert empty.row_counts["persons"].rows == 3000
    assert empty.database == make_url(pg_db).render_as_string(hide_password=True)
    with create_engine(pg_db).begin() as c:
        c.execute(text("UPDATE persons SET pager_number = '555' WHERE id = 7"))
    full = classify_escalation(project, "9692142c98f0", database_url=pg_db)
    assert full.decision == "escalate"
    assert "holds non-NULL values" in full.escalation.triggers[0].evidence[0]


def test_fixture_role_update_is_large_with_low_threshold(residency, pg_db):
    toml = residency / "pyproject.toml"
    toml.write_text(toml.read_text().replace("large_table_rows = 100000", "large_table_rows = 2000"))
    r = classify_escalation(load_project(residency), "aa60e7cdaf87", database_url=pg_db)
    t = {t.trigger: t for t in r.escalation.triggers}
    assert "3,000 rows" in t["large-data-migration"].evidence[0]
    assert r.policy_settings == {"large_table_rows": 2000}  # only what decided, the rest is db-migrate://policy


def test_fixture_acgme_table_is_protected(residency):
    r = classify_escalation(load_project(residency), "7bfbb393b25f")
    assert r.decision == "escalate"
    assert "protected-table" in {t.trigger for t in r.escalation.triggers}
    assert r.escalation.auto_classes == ["create-table"]


def test_fixture_nullable_middle_name_proceeds(residency):
    r = classify_escalation(load_project(residency), "46f760feb10b")
    assert r.decision == "proceed", r.escalation
    assert r.escalation.auto_classes == ["add-nullable-column"]
    assert r.all_automatic


def test_fixture_production_environment(residency, monkeypatch):
    r = classify_escalation(load_project(residency), "46f760feb10b", environment="production")
    assert r.decision == "escalate"
    assert [t.trigger for t in r.escalation.triggers] == ["production-database"]


def test_an_unparseable_url_is_a_usage_error_said_once():
    from db_migrate.errors import UsageError

    with pytest.raises(UsageError) as err:
        read_database_facts("notaurl", tables=["persons"])
    assert err.value.message.count("not a SQLAlchemy URL") == 1 and "Cannot read the database" not in err.value.message


def test_a_data_statement_is_weighed_by_the_rows_it_matches_not_the_table(tmp_path, pg_url):
    from projectfactory import make_project

    gen = throwaway_database(pg_url, [
        "CREATE TABLE invoices (id integer PRIMARY KEY, state varchar(10))",
        "INSERT INTO invoices SELECT g, CASE WHEN g <= 40 THEN 'old' ELSE 'paid' END FROM generate_series(1, 3000) g",
    ])
    url = next(gen)
    try:
        def large(where: str) -> list[str]:
            body = (f"def upgrade():\n    op.execute(\"UPDATE invoices SET state = 'closed' WHERE {where}\")\n\n\n"
                    f"def downgrade():\n    op.execute(\"UPDATE invoices SET state = 'old' WHERE state = 'closed'\")\n")
            root = make_project(tmp_path / where.replace(" ", "_").replace("'", ""), [{"body": body}], url=url)
            (root / "pyproject.toml").write_text("[tool.db-migrate]\nlarge_table_rows = 1000\n")
            r = classify_escalation(load_project(root), "000000000001", database_url=url)
            return [e for t in r.escalation.triggers if t.trigger == "large-data-migration" for e in t.evidence]

        assert large("state = 'old'") == []  # 40 rows of a 3,000-row table: a small data step
        (evidence,) = large("state = 'paid'")
        assert "touching 2,960 rows of invoices" in evidence
    finally:
        next(gen, None)
