"""Preflight against real data on PostgreSQL, MariaDB and SQLite: seeded violating rows, exact counts and samples,
budgets reported as unchecked, sensitive columns never sampled, and the database unchanged afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from db_migrate.classify import classify_escalation
from db_migrate.policy.settings import Policy
from db_migrate.preflight import run_preflight
from db_migrate.project import load_project
from db_migrate.review import review_migration
from databases import sqlite_database, throwaway_database
from projectfactory import make_project

SCHEMA = [
    "CREATE TABLE teams (id INTEGER PRIMARY KEY, name VARCHAR(50))",
    "CREATE TABLE persons (id INTEGER PRIMARY KEY, email VARCHAR(255), nick VARCHAR(255), bio VARCHAR(255), "
    "team_id INTEGER, score NUMERIC(10, 2), age INTEGER, password VARCHAR(100), api_token VARCHAR(100), status VARCHAR(20))",
    "INSERT INTO teams (id, name) VALUES (1, 'red'), (2, 'blue')",
]


def _person(i: int) -> str:
    email = "NULL" if i in (3, 7, 11) else f"'p{i}@example.org'"
    nick = {1: "ann", 2: "ann", 4: "bob", 5: "bob", 6: "bob"}.get(i, f"n{i}")
    bio = "x" * 40 if i in (16, 17) else "short"
    team = 99 if i in (12, 13) else 1 + i % 2
    score = "1.5" if i == 18 else "2"
    age = {14: -1, 15: -5}.get(i, 30)
    password = "hunter2" if i in (8, 9) else f"secret-{i}"
    status = "retired" if i in (19, 20) else "active"
    return f"({i}, {email}, '{nick}', '{bio}', {team}, {score}, {age}, '{password}', 'tok-{i}', '{status}')"


ROWS = ["INSERT INTO persons (id, email, nick, bio, team_id, score, age, password, api_token, status) VALUES "
        + ", ".join(_person(i) for i in range(1, 21))]

#: One revision, one operation per question (data statements last: what follows a data change is not today's data).
REVISION = '''
def upgrade():
    op.alter_column("persons", "email", existing_type=sa.String(255), nullable=False)
    op.create_unique_constraint("uq_persons_email", "persons", ["email"])
    op.create_index("ix_persons_nick", "persons", ["nick"], unique=True)
    op.create_unique_constraint("uq_persons_password", "persons", ["password"])
    op.create_foreign_key("fk_persons_team", "persons", "teams", ["team_id"], ["id"])
    op.create_check_constraint("ck_persons_age", "persons", "age >= 0")
    op.create_check_constraint("ck_persons_bad", "persons", "age > (SELECT 1)")
    op.alter_column("persons", "bio", existing_type=sa.String(255), type_=sa.String(10))
    op.alter_column("persons", "score", existing_type=sa.Numeric(10, 2), type_=sa.Integer())
    op.alter_column("persons", "status", existing_type=sa.String(20), type_=sa.Enum("active", "away", name="person_status"))
    op.add_column("teams", sa.Column("code", sa.String(10), nullable=False))
    op.execute("UPDATE persons SET age = 0 WHERE age < 0")
    op.execute("DELETE FROM persons WHERE status = 'retired'")


def downgrade():
    pass
'''


def _server_db(server_url: str, setup: list[str]):
    yield from throwaway_database(server_url, setup, prefix="dbm_preflight")


def _sqlite_db(tmp_path: Path, setup: list[str]) -> str:
    return sqlite_database(tmp_path / "app.db", setup)


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def seeded(request, tmp_path):
    """(engine name, URL) of a database holding the seeded violating rows."""
    if request.param == "sqlite":
        yield "sqlite", _sqlite_db(tmp_path, SCHEMA + ROWS)
        return
    server = request.getfixturevalue("pg_url" if request.param == "postgresql" else "mysql_url")
    yield from ((request.param, u) for u in _server_db(server, SCHEMA + ROWS))


def _snapshot(url: str) -> dict:
    """Every table's columns and rows: what 'unchanged' is compared on."""
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            insp = inspect(c)
            out = {}
            for t in sorted(insp.get_table_names()):
                cols = [(col["name"], str(col["type"]), col["nullable"]) for col in insp.get_columns(t)]
                rows = [tuple(map(str, r)) for r in c.execute(text(f"SELECT * FROM {t} ORDER BY 1"))]
                out[t] = {"columns": cols, "rows": rows, "indexes": sorted(i["name"] or "" for i in insp.get_indexes(t))}
            return out
    finally:
        eng.dispose()


def _project(tmp_path: Path, body: str = REVISION) -> object:
    return load_project(make_project(tmp_path / "proj", [body]))


def _preflight(project, url: str, **policy):
    from db_migrate.project.config import dialect_of

    review = review_migration(project, "head", dialect=dialect_of(url))
    return run_preflight(review, url, Policy(**policy))


def _by_operation(pf) -> dict[str, list]:
    out: dict[str, list] = {}
    for c in pf.checks:
        out.setdefault(c.operation, []).append(c)
    return out


def test_counts_and_samples_of_seeded_violations(seeded, tmp_path):
    engine, url = seeded
    before = _snapshot(url)
    pf = _preflight(_project(tmp_path), url)
    checks = _by_operation(pf)
    ids = lambda c: [s["id"] for s in c.samples]  # noqa: E731

    (email,) = checks["alter_column persons.email"]
    assert (email.check, email.outcome, email.count, ids(email)) == ("not-null", "will-fail", 3, [3, 7, 11])
    assert email.queries and "IS NULL" in email.queries[0]

    uq_email, uq_nick, uq_password = (c for c in pf.checks if c.check == "unique")
    assert (uq_email.outcome, uq_email.count) == ("passes", 0)
    assert (uq_nick.outcome, uq_nick.count) == ("will-fail", 2)
    assert uq_nick.samples == [{"nick": "bob", "copies": 3}, {"nick": "ann", "copies": 2}]
    assert (uq_password.outcome, uq_password.count, uq_password.samples, uq_password.withheld) == (
        "will-fail", 1, [{"copies": 2}], ["password"])

    (fk,) = checks["create_foreign_key persons"]
    assert (fk.count, fk.samples) == (2, [{"id": 12, "team_id": 99}, {"id": 13, "team_id": 99}])
    assert fk.outcome == ("affects" if engine == "sqlite" else "will-fail")

    age, bad = checks["create_check_constraint persons"]
    assert (age.outcome, age.count, age.samples) == ("will-fail", 2, [{"id": 14, "age": -1}, {"id": 15, "age": -5}])
    assert bad.outcome == "unchecked" and "subquery" in bad.reason

    (bio,) = checks["alter_column persons.bio"]
    assert (bio.count, ids(bio)) == (2, [16, 17])
    assert bio.outcome == ("affects" if engine == "sqlite" else "will-fail")
    assert bio.samples[0]["bio"] == "x" * 40

    out_of_range, rounded = checks["alter_column persons.score"]
    assert (out_of_range.outcome, out_of_range.count) == ("passes", 0)
    assert (rounded.outcome, rounded.count, ids(rounded)) == ("loses-data", 1, [18])

    (status,) = checks["alter_column persons.status"]
    assert (status.count, ids(status)) == (2, [19, 20])
    assert status.outcome == ("affects" if engine == "sqlite" else "will-fail")

    (code,) = checks["add_column teams.code"]
    assert code.count == 2 and code.outcome == ("affects" if engine == "mariadb" else "will-fail")

    update, delete = (c for c in pf.checks if c.check == "data-statement")
    assert (update.outcome, update.count, ids(update)) == ("affects", 2, [14, 15])
    assert (delete.outcome, delete.count, ids(delete)) == ("loses-data", 2, [19, 20])

    dumped = json.dumps(pf.model_dump(mode="json"))
    assert "hunter2" not in dumped and "secret-" not in dumped and "tok-" not in dumped
    sizes = {t.table: t for t in pf.table_sizes}
    assert sizes["persons"].rows == 20 and sizes["teams"].rows == 2
    if engine == "postgresql":
        assert sizes["persons"].lock == "ACCESS EXCLUSIVE" and sizes["persons"].bytes > 0
    assert _snapshot(url) == before


def test_row_budget_exhausted_is_unchecked_never_clean(seeded, tmp_path):
    engine, url = seeded
    pf = _preflight(_project(tmp_path), url, preflight_max_rows=10)
    on_persons = [c for c in pf.checks if c.table == "persons" and c.count]
    assert on_persons, "violations inside the first 10 rows are still reported"
    assert all(c.at_least and c.rows_scanned == 10 for c in on_persons)
    assert not [c for c in pf.checks if c.table == "persons" and c.outcome == "passes"]
    uq_email = next(c for c in pf.checks if c.check == "unique" and c.columns == ["email"])
    assert uq_email.outcome == "unchecked" and "preflight_max_rows" in uq_email.reason
    assert any(u.what.startswith("preflight unique") and "preflight_max_rows" in u.reason for u in pf.unchecked)
    (code,) = [c for c in pf.checks if c.operation == "add_column teams.code"]
    assert (code.count, code.at_least) == (2, False)  # teams is under the budget: exact


BIG = ["CREATE TABLE big (id INTEGER PRIMARY KEY, n INTEGER)"]
BIG_REVISION = 'def upgrade():\n    op.alter_column("big", "n", existing_type=sa.Integer(), nullable=False)\n\n\ndef downgrade():\n    pass\n'


def test_time_budget_exhausted_is_unchecked_sqlite(tmp_path):
    rows = ["WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 20000) INSERT INTO big SELECT i, NULL FROM g"]
    url = _sqlite_db(tmp_path, BIG + rows)
    # a budget far below what scanning 20,000 rows takes: the progress handler interrupts the statement
    pf = _preflight(_project(tmp_path, BIG_REVISION), url, preflight_timeout_seconds=1e-9)
    (check,) = pf.checks
    assert check.outcome == "unchecked" and "time budget" in check.reason and check.count is None
    assert pf.unchecked and "time budget" in pf.unchecked[0].reason
    generous = _preflight(_project(tmp_path / "again", BIG_REVISION), url)
    assert (generous.checks[0].outcome, generous.checks[0].count) == ("will-fail", 20000)


@pytest.mark.parametrize("server", ["pg_url", "mysql_url"])
def test_time_budget_exhausted_while_a_lock_is_held(server, request, tmp_path):
    """Another session holds the table locked: the check waits out its budget and says unchecked."""
    server_url = request.getfixturevalue(server)
    for url in _server_db(server_url, BIG + ["INSERT INTO big VALUES (1, NULL), (2, 5)"]):
        holder = create_engine(url).connect()
        try:
            if server == "pg_url":
                holder.execute(text("BEGIN"))
                holder.execute(text("LOCK TABLE big IN ACCESS EXCLUSIVE MODE"))
            else:
                holder.execute(text("LOCK TABLES big WRITE"))
            pf = _preflight(_project(tmp_path, BIG_REVISION), url, preflight_timeout_seconds=1)
        finally:
            holder.rollback()
            if server == "mysql_url":
                holder.execute(text("UNLOCK TABLES"))
            holder.close()
        (check,) = pf.checks
        assert check.outcome == "unchecked" and "time budget" in check.reason
        pf = _preflight(_project(tmp_path / "free", BIG_REVISION), url, preflight_timeout_seconds=1)
        assert (pf.checks[0].outcome, pf.checks[0].count, pf.checks[0].samples) == ("will-fail", 1, [{"id": 1}])


def test_classify_and_review_carry_the_preflight_and_decide_on_it(seeded, tmp_path):
    engine, url = seeded
    project = _project(tmp_path)
    before = _snapshot(url)
    classified = classify_escalation(project, "head", database_url=url)
    assert classified.preflight is not None and classified.preflight.dialect == ("mysql" if engine == "mariadb" else engine)
    assert classified.decision == "escalate"
    data_loss = next(t for t in classified.escalation.triggers if t.trigger == "data-loss")
    assert any("remove 2 rows" in ev for ev in data_loss.evidence)
    assert any("fractional part" in ev for ev in data_loss.evidence)
    errors = {f.rule for f in classified.findings if f.severity == "error"}
    assert {"preflight-not-null", "preflight-unique", "preflight-check-constraint"} <= errors

    reviewed = review_migration(project, "head", database_url=url)
    assert reviewed.preflight is not None and reviewed.decision == "escalate"
    assert [c.model_dump() for c in reviewed.preflight.checks] == [c.model_dump() for c in classified.preflight.checks]
    assert review_migration(project, "head").preflight is None
    assert _snapshot(url) == before


def test_null_rows_that_need_a_value_nobody_stated_go_to_a_human_with_the_rows(tmp_path):
    url = _sqlite_db(tmp_path, SCHEMA + ROWS)
    body = ('def upgrade():\n    op.alter_column("persons", "email", existing_type=sa.String(255), nullable=False)\n\n\n'
            'def downgrade():\n    op.alter_column("persons", "email", existing_type=sa.String(255), nullable=True)\n')
    result = review_migration(_project(tmp_path, body), "head", database_url=url)
    assert result.decision == "escalate"  # which email those persons get is not the agent's to invent
    assert [t.trigger for t in result.escalation.triggers] == ["value-needed"]
    (f,) = [f for f in result.findings if f.rule == "preflight-not-null"]
    assert f.severity == "error" and "3 rows" in f.message and "{'id': 3}" in f.message
    assert "UPDATE persons SET email = <the chosen value>" in f.fix and f.line


def test_null_rows_with_a_stated_default_are_filled_with_it_revise(tmp_path):
    url = _sqlite_db(tmp_path, SCHEMA + ROWS)
    body = ('def upgrade():\n    op.alter_column("persons", "email", existing_type=sa.String(255), nullable=False, '
            'existing_server_default="nobody@example.org")\n\n\n'
            'def downgrade():\n    op.alter_column("persons", "email", existing_type=sa.String(255), nullable=True)\n')
    result = review_migration(_project(tmp_path, body), "head", database_url=url)
    assert result.decision == "revise" and not result.escalation.triggers
    (f,) = [f for f in result.findings if f.rule == "preflight-not-null"]
    assert "nobody@example.org" in f.fix


PG_ONLY = '''
def upgrade():
    op.create_foreign_key("fk_persons_team", "persons", "teams", ["team_id"], ["id"], postgresql_not_valid=True)
    op.execute("ALTER TABLE persons VALIDATE CONSTRAINT fk_persons_team")
    op.create_check_constraint("ck_age", "persons", "age >= 0", postgresql_not_valid=True)
    op.alter_column("persons", "nick", existing_type=sa.String(255), type_=sa.Integer(), postgresql_using="nick::integer")
    op.alter_column("persons", "email", existing_type=sa.String(255), type_=sa.String(255),
                    postgresql_using="NULLIF(email, 'p1@example.org')")
    op.execute("ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'")
    op.execute("CREATE TYPE mood2 AS ENUM ('happy', 'blue')")
    op.execute("ALTER TABLE persons ALTER COLUMN mood TYPE mood2 USING mood::text::mood2")


def downgrade():
    pass
'''


def test_postgresql_not_valid_validate_using_casts_and_raw_enums(pg_url, tmp_path):
    setup = SCHEMA + ROWS + [
        "CREATE TYPE mood AS ENUM ('happy', 'sad', 'angry')",
        "ALTER TABLE persons ADD COLUMN mood mood",
        "UPDATE persons SET mood = CASE WHEN id IN (2, 4) THEN 'sad'::mood WHEN id = 6 THEN 'angry'::mood ELSE 'happy'::mood END",
    ]
    for url in _server_db(pg_url, setup):
        before = _snapshot(url)
        pf = _preflight(_project(tmp_path, PG_ONLY), url)
        fk_add, fk_validate = (c for c in pf.checks if c.check == "foreign-key")
        assert (fk_add.outcome, fk_add.count) == ("will-fail", 2)  # NOT VALID, but validated later in the revision
        assert (fk_validate.outcome, fk_validate.count, fk_validate.line) == ("will-fail", 2, fk_add.line + 1)
        (ck,) = [c for c in pf.checks if c.check == "check-constraint"]
        assert (ck.outcome, ck.count) == ("affects", 2) and "validating it fails" in ck.message
        nick, email = (c for c in pf.checks if c.check == "type-change")
        assert nick.outcome == "will-fail" and "invalid input syntax" in nick.message and nick.count is None
        assert (email.outcome, email.count, email.samples) == ("loses-data", 1, [{"id": 1, "email": "p1@example.org"}])
        renamed, recreated = (c for c in pf.checks if c.check == "enum-values")
        assert (renamed.outcome, renamed.count, [s["id"] for s in renamed.samples]) == ("affects", 2, [2, 4])
        assert (recreated.outcome, recreated.count, recreated.samples) == ("will-fail", 1, [{"id": 6, "mood": "angry"}])
        assert _snapshot(url) == before


def test_cli_review_with_database_url_prints_the_preflight(tmp_path, capsys):
    from db_migrate.cli import main

    url = _sqlite_db(tmp_path, SCHEMA + ROWS)
    body = ('def upgrade():\n    op.create_index("ix_persons_nick", "persons", ["nick"], unique=True)\n\n\n'
            'def downgrade():\n    op.drop_index("ix_persons_nick", "persons")\n')
    root = make_project(tmp_path / "proj", [body])
    code = main(["review", "--config", str(root), "--database-url", url, "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["decision"] == "revise"
    (check,) = out["preflight"]["checks"]
    assert (check["check"], check["count"], check["samples"][0]) == ("unique", 2, {"nick": "bob", "copies": 3})
    assert main(["review", "--config", str(root), "--database-url", url]) == 1
    text_out = capsys.readouterr().out
    assert "preflight-unique" in text_out and "Tables locked or rewritten" in text_out and "persons: 20 rows" in text_out


RAW = {
    "postgresql": ["ALTER TABLE persons ALTER COLUMN email SET NOT NULL", "CREATE UNIQUE INDEX ix_nick ON persons (nick)",
                   "ALTER TABLE persons ADD CONSTRAINT ck_age CHECK (age >= 0)"],
    # MariaDB's MODIFY ... NOT NULL is not translated with nullable=False (yet): not asserted here
    "mariadb": ["CREATE UNIQUE INDEX ix_nick ON persons (nick)", "ALTER TABLE persons ADD CONSTRAINT ck_age CHECK (age >= 0)"],
    "sqlite": ["CREATE UNIQUE INDEX ix_nick ON persons (nick)"],
}


def test_raw_sql_ddl_is_checked_like_the_alembic_operation(seeded, tmp_path):
    """op.execute DDL reaches preflight as the alembic operation the capture translates it into."""
    engine, url = seeded
    body = "def upgrade():\n" + "".join(f"    op.execute({s!r})\n" for s in RAW[engine]) + "\n\ndef downgrade():\n    pass\n"
    pf = _preflight(_project(tmp_path, body), url)
    got = {c.check: (c.outcome, c.count) for c in pf.checks}
    assert got["unique"] == ("will-fail", 2)
    if engine != "sqlite":
        assert got["check-constraint"] == ("will-fail", 2)
    if engine == "postgresql":
        assert got["not-null"] == ("will-fail", 3)


def test_project_settings_choose_sensitive_columns_and_sample_size(tmp_path):
    from db_migrate.errors import ConfigInvalid

    url = _sqlite_db(tmp_path, SCHEMA + ROWS)
    root = make_project(tmp_path / "proj", [REVISION])
    (root / "pyproject.toml").write_text('[tool.db-migrate]\nsensitive_columns = ["persons.nick", "bio"]\npreflight_samples = 1\n')
    result = classify_escalation(load_project(root), "head", database_url=url)
    pf = result.preflight
    nick = next(c for c in pf.checks if c.check == "unique" and c.columns == ["nick"])
    assert (nick.count, nick.samples, nick.withheld) == (2, [{"copies": 3}], ["nick"])
    bio = next(c for c in pf.checks if c.operation == "alter_column persons.bio")
    assert bio.samples == [{"id": 16}] and bio.withheld == ["bio"]
    assert all(len(c.samples) <= 1 for c in pf.checks)
    email = next(c for c in pf.checks if c.check == "not-null" and c.columns == ["email"])
    assert (email.count, email.samples) == (3, [{"id": 3}])  # the count is never cut by the sample size
    (root / "pyproject.toml").write_text('[tool.db-migrate]\nsensitive_colums = ["nick"]\n')
    with pytest.raises(ConfigInvalid, match="sensitive_columns"):
        classify_escalation(load_project(root), "head", database_url=url)
