"""One severity principle: errors fail everywhere, lose data, or block a pre-existing table when a safe form
exists (assumed large without data); warnings name the facts the tool lacks. With data, small tables relax."""

from __future__ import annotations

import pytest
from databases import throwaway_database
from projectfactory import make_project

from db_migrate.project import load_project
from db_migrate.review import review_migration
from db_migrate.review.engine import review_source
from db_migrate.rules import SEVERITY_PRINCIPLE, all_rules
from db_migrate.rules.rewrites import is_online_ddl


def _source(up: str, down: str = "pass") -> str:
    def fn(name: str, body: str) -> str:
        return f"def {name}():\n" + "".join(f"    {line}\n" for line in body.strip().splitlines()) + "\n\n"

    return ('"""r"""\nfrom alembic import op\nimport sqlalchemy as sa\n\nrevision = "s1"\ndown_revision = "s0"\n'
            "branch_labels = None\ndepends_on = None\n\n\n" + fn("upgrade", up) + fn("downgrade", down))


def _severity(source: str, rule: str, dialect: str = "postgresql") -> str | None:
    found = [f.severity for f in review_source(source, dialect=dialect).findings if f.rule == rule]
    return max(found, key=("info", "warning", "error").index) if found else None


def test_the_principle_is_written_once_and_published():
    from pathlib import Path

    readme = Path(__file__).resolve().parent.parent / "README.md"
    text = " ".join(line.removeprefix("> ") for line in readme.read_text().splitlines())
    assert SEVERITY_PRINCIPLE in " ".join(text.split())
    from db_migrate.tools.render import render_rules

    assert render_rules([], principle=SEVERITY_PRINCIPLE).startswith("Severities")
    assert all(r.severity in ("error", "warning", "info") for r in all_rules())


def test_an_enum_value_used_in_the_transaction_that_adds_it_is_an_error():
    add = "op.execute(\"ALTER TYPE order_status ADD VALUE 'archived'\")"
    use = "op.execute(\"UPDATE orders SET status = 'archived' WHERE closed_at < now() - interval '1 year'\")"
    assert _severity(_source(f"{add}\n{use}"), "enum-value-change") == "error"
    assert _severity(_source(add), "enum-value-change") == "warning"  # only added: fails before PostgreSQL 12
    autocommit = f"with op.get_context().autocommit_block():\n    {add}\n{use}"
    assert _severity(_source(autocommit), "enum-value-change") is None  # committed before it is used


@pytest.mark.parametrize(("up", "rule"), [
    ("op.create_foreign_key('fk_orders_user', 'orders', 'users', ['user_id'], ['id'])", "add-foreign-key-validating"),
    ("op.create_check_constraint('ck_orders_total', 'orders', 'total >= 0')", "add-check-constraint-validating"),
    ("op.create_index('ix_orders_user', 'orders', ['user_id'])", "create-index-non-concurrent"),
    ("op.alter_column('orders', 'note', existing_type=sa.Text(), nullable=False)", "set-not-null"),
    ("op.create_unique_constraint('uq_orders_code', 'orders', ['code'])", "add-unique-constraint"),
    ("with op.get_context().autocommit_block():\n    op.execute('VACUUM FULL orders')", "table-rewrite-sql"),
])
def test_blocking_a_pre_existing_table_when_a_safe_form_exists_is_an_error(up, rule):
    assert _severity(_source(up), rule) == "error"


def test_the_same_change_on_a_table_created_here_is_not_flagged():
    create = "op.create_table('orders', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('user_id', sa.Integer()))"
    assert _severity(_source(f"{create}\nop.create_index('ix_orders_user', 'orders', ['user_id'])", "op.drop_table('orders')"),
                     "create-index-non-concurrent") is None


def test_mysql_rewrites_and_their_online_forms():
    convert = "op.execute('ALTER TABLE orders CONVERT TO CHARACTER SET utf8mb4')"
    assert _severity(_source(convert), "table-rewrite-sql", "mysql") == "error"
    online = "op.execute('ALTER TABLE orders CONVERT TO CHARACTER SET utf8mb4, ALGORITHM=INPLACE, LOCK=NONE')"
    assert _severity(_source(online), "table-rewrite-sql", "mysql") is None
    assert is_online_ddl("ALTER TABLE t ADD COLUMN c INT, ALGORITHM=INSTANT") and not is_online_ddl("ALTER TABLE t ADD COLUMN c INT")
    # a widening type change with an explicit existing type is a copy on MySQL: an error (it blocks writes)
    widen = "op.alter_column('orders', 'note', existing_type=sa.String(200), type_=sa.Text())"
    assert _severity(_source(widen, "pass"), "alter-column-type", "mysql") == "error"
    # a VARCHAR widened in place while its length prefix keeps its size (utf8mb4: up to 63 characters), else copied
    in_place = "op.alter_column('orders', 'code', existing_type=sa.String(40), type_=sa.String(63))"
    assert _severity(_source(in_place, "pass"), "alter-column-type", "mariadb") is None
    crossing = "op.alter_column('orders', 'code', existing_type=sa.String(60), type_=sa.String(64))"
    assert _severity(_source(crossing, "pass"), "alter-column-type", "mariadb") == "error"
    assert _severity(_source(crossing, "pass"), "alter-column-type") is None  # PostgreSQL: catalogue only
    # MySQL builds a unique index in place: whether it fails depends on duplicates, which the finding names
    unique = [f for f in review_source(_source("op.create_unique_constraint('uq_orders_code', 'orders', ['code'])"), dialect="mysql").findings
              if f.rule == "add-unique-constraint"]
    assert unique[0].severity == "warning" and "database_url" in unique[0].message


@pytest.mark.parametrize(("up", "rule", "fact"), [
    ("op.execute('ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&)')",
     "exclusion-constraint", "size"),
    ("op.execute(\"ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')\")",
     "attach-partition", "DEFAULT partition"),
])
def test_harm_that_depends_on_the_data_is_a_warning_naming_the_facts(up, rule, fact):
    (f,) = [f for f in review_source(_source(up)).findings if f.rule == rule]
    assert f.severity == "warning" and fact in f.message and "database_url" in f.message


def test_with_the_data_a_small_table_relaxes_the_lock_finding_and_says_why(tmp_path, pg_url):
    gen = throwaway_database(pg_url, [
        "CREATE TABLE tiny (id integer PRIMARY KEY, code text)",
        "INSERT INTO tiny SELECT g, 'c' || g FROM generate_series(1, 5) g",
        "CREATE TABLE big (id integer PRIMARY KEY, code text)",
        "INSERT INTO big SELECT g, 'c' || g FROM generate_series(1, 15000) g",
    ])
    url = next(gen)
    try:
        body = ("def upgrade():\n    op.create_index('ix_tiny_code', 'tiny', ['code'])\n    op.create_index('ix_big_code', 'big', ['code'])\n\n\n"
                "def downgrade():\n    op.drop_index('ix_big_code', table_name='big')\n    op.drop_index('ix_tiny_code', table_name='tiny')\n")
        project = load_project(make_project(tmp_path, [{"body": body}], url=url))
        without = review_migration(project, "000000000001")
        assert {f.table: f.severity for f in without.findings if f.rule == "create-index-non-concurrent"} == {"tiny": "error", "big": "error"}
        r = review_migration(project, "000000000001", database_url=url)
        found = {f.table: f for f in r.findings if f.rule == "create-index-non-concurrent"}
        assert found["big"].severity == "error"
        assert found["tiny"].severity == "info" and "5 row(s)" in found["tiny"].message and "small_table_rows" in found["tiny"].message
    finally:
        next(gen, None)


def test_mysql_fills_a_new_not_null_column_with_its_implicit_value():
    flag = "op.add_column('members', sa.Column('backup', sa.Boolean(), nullable=False, default=False))"
    assert _severity(_source(flag, "op.drop_column('members', 'backup')"), "add-column-not-null-no-default", "mysql") is None
    ident = "op.add_column('stats', sa.Column('owner_id', sa.String(36), nullable=False))"
    (f,) = [f for f in review_source(_source(ident, "op.drop_column('stats', 'owner_id')"), dialect="mysql").findings
            if f.rule == "add-column-not-null-no-default"]
    assert f.severity == "warning" and "implicit value" in f.message  # '' may be wrong: the rows decide
    # PostgreSQL refuses it on the first existing row: an error
    assert _severity(_source(flag, "op.drop_column('members', 'backup')"), "add-column-not-null-no-default") == "error"


def test_mysql_modify_restating_not_null_with_a_type_change_is_not_set_not_null():
    widen = "op.alter_column('sni', 'container_id', type_=sa.String(128), existing_type=sa.String(36), nullable=False)"
    assert _severity(_source(widen), "set-not-null", "mysql") is None
    assert _severity(_source(widen), "set-not-null") == "error"  # PostgreSQL: a real SET NOT NULL


def test_more_fractional_seconds_lose_nothing():
    from sqlalchemy.dialects import mysql

    from db_migrate.rules._helpers import classify_type_change

    assert classify_type_change(sa_datetime(), mysql.DATETIME(fsp=6), "mysql") == "rewrite"  # a copy, nothing lost
    assert classify_type_change(mysql.DATETIME(fsp=6), sa_datetime(), "mysql") == "narrow"


def sa_datetime():
    import sqlalchemy as sa

    return sa.DateTime()


def test_a_loop_over_tables_is_one_finding():
    loop = ("for table in ('shares', 'snapshots', 'quotas', 'messages'):\n"
            "    op.alter_column(table, 'created_at', existing_type=sa.DateTime(), type_=sa.dialects.mysql.DATETIME(fsp=6))")
    back = ("for table in ('shares', 'snapshots', 'quotas', 'messages'):\n"
            "    op.alter_column(table, 'created_at', existing_type=sa.dialects.mysql.DATETIME(fsp=6), type_=sa.DateTime())")
    found = [f for f in review_source(_source("import sqlalchemy.dialects.mysql\n" + loop, back), dialect="mysql").findings
             if f.rule in ("alter-column-type", "lossy-downgrade") and f.phase == "upgrade"]
    (f,) = found
    assert f.rule == "alter-column-type" and "4 tables in a loop" in f.message and "no data is lost" in f.message


def test_json_documents_survive_a_round_trip_through_jsonb():
    up = "op.alter_column('queries', 'options', existing_type=sa.Text(), type_=sa.dialects.postgresql.JSONB(), postgresql_using='options::jsonb')"
    down = "op.alter_column('queries', 'options', existing_type=sa.dialects.postgresql.JSONB(), type_=sa.Text(), postgresql_using='options::text')"
    found = {f.rule: f for f in review_source(_source("import sqlalchemy.dialects.postgresql\n" + up, down)).findings}
    assert "lossy-downgrade" not in found
    assert found["alter-column-type"].severity == "error"  # still a rewrite under ACCESS EXCLUSIVE


def test_findings_at_the_downgrades_def_line_are_not_a_loop():
    ups = "\n".join(f"op.alter_column('t{i}', 'c', existing_type=sa.Integer(), nullable=True)" for i in range(4))
    found = [f for f in review_source(_source(ups, "op.execute('SELECT 1')")).findings if f.rule == "downgrade-not-inverse"]
    assert len(found) == 4 and not any("loop" in f.message for f in found)


def test_code_that_records_nothing_and_reads_nothing_is_a_warning_without_a_downgrade():
    src = _source("prune_cache('done')", "pass").replace("def upgrade", "def prune_cache(name):\n    return name\n\n\ndef upgrade")
    assert _severity(src, "missing-downgrade") == "warning"


_CASCADE_CHILD = ("op.create_table('posts', sa.Column('id', sa.Integer(), primary_key=True),\n"
                  "                sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE')))")
_BATCH_PARENT = ("with op.batch_alter_table('users') as b:\n"
                 "    b.alter_column('name', existing_type=sa.String(20), type_=sa.String(50))")


def test_sqlite_batch_on_a_cascade_parent_deletes_the_children():
    on = _source("op.execute('PRAGMA foreign_keys=ON')\n" + _CASCADE_CHILD + "\n" + _BATCH_PARENT, "op.drop_table('posts')")
    (f,) = [f for f in review_source(on, dialect="sqlite").findings if f.rule == "sqlite-batch-cascade"]
    assert f.severity == "error" and "posts" in f.message and f.table == "users"
    off = _source(_CASCADE_CHILD + "\n" + _BATCH_PARENT, "op.drop_table('posts')")
    (f,) = [f for f in review_source(off, dialect="sqlite").findings if f.rule == "sqlite-batch-cascade"]
    assert f.severity == "warning" and "PRAGMA foreign_keys=ON" in f.message  # the fact it lacks, named


def test_the_cascade_child_can_come_from_an_earlier_revision_on_real_sqlite(tmp_path):
    """The history says posts cascade from users; env.py turns foreign keys on: the batch is an error. On a real
    SQLite file the same batch, run by alembic with foreign keys on, does delete the child rows."""
    import sqlite3

    env = ("from sqlalchemy import event\nfrom sqlalchemy.engine import Engine\n\n\n"
           "@event.listens_for(Engine, 'connect')\ndef _foreign_keys(dbapi_connection, record):\n"
           "    dbapi_connection.execute('PRAGMA foreign_keys=ON')\n\n\n")
    first = "def upgrade():\n    " + _CASCADE_CHILD.replace("\n", "\n    ") + "\n\n\ndef downgrade():\n    op.drop_table('posts')\n"
    second = "def upgrade():\n    " + _BATCH_PARENT.replace("\n", "\n    ") + "\n\n\ndef downgrade():\n    pass\n"
    db = tmp_path / "app.db"
    root = make_project(tmp_path, [{"body": first}, {"body": second}], url=f"sqlite:///{db}")
    env_py = root / "migrations" / "env.py"
    env_py.write_text(env + env_py.read_text())
    r = review_migration(load_project(root), "000000000002")
    (f,) = [f for f in r.findings if f.rule == "sqlite-batch-cascade"]
    assert f.severity == "error" and "posts" in f.message and r.conventions.cascade_children == {"users": ["posts"]}
    # what the finding says, measured: SQLite with foreign keys on, the copy-drop-rename batch mode does
    con = sqlite3.connect(db)
    con.executescript("PRAGMA foreign_keys=ON; CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(20));"
                      "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users (id) ON DELETE CASCADE);"
                      "INSERT INTO users VALUES (1, 'a'); INSERT INTO posts VALUES (1, 1);"
                      "CREATE TABLE _alembic_tmp_users (id INTEGER PRIMARY KEY, name VARCHAR(50));"
                      "INSERT INTO _alembic_tmp_users SELECT id, name FROM users; DROP TABLE users;"
                      "ALTER TABLE _alembic_tmp_users RENAME TO users;")
    assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == 0
    con.close()


def test_a_revision_that_turns_foreign_keys_off_around_its_batch_is_guarded():
    guarded = _source("op.execute('PRAGMA foreign_keys=ON')\n" + _CASCADE_CHILD + "\nop.execute('PRAGMA foreign_keys=OFF')\n"
                      + _BATCH_PARENT + "\nop.execute('PRAGMA foreign_keys=ON')", "op.drop_table('posts')")
    assert not [f for f in review_source(guarded, dialect="sqlite").findings if f.rule == "sqlite-batch-cascade"]


def test_env_py_turning_foreign_keys_off_guards_every_batch(tmp_path):
    first = "def upgrade():\n    " + _CASCADE_CHILD.replace("\n", "\n    ") + "\n\n\ndef downgrade():\n    op.drop_table('posts')\n"
    second = "def upgrade():\n    " + _BATCH_PARENT.replace("\n", "\n    ") + "\n\n\ndef downgrade():\n    pass\n"
    root = make_project(tmp_path, [{"body": first}, {"body": second}], url=f"sqlite:///{tmp_path / 'app.db'}")
    env_py = root / "migrations" / "env.py"
    env_py.write_text(env_py.read_text() + "\n\ndef _without_foreign_keys(context):\n"
                      "    context.execute('PRAGMA foreign_keys=OFF')\n")
    r = review_migration(load_project(root), "000000000002")
    assert r.conventions.sqlite_foreign_keys_guarded
    assert not [f for f in r.findings if f.rule == "sqlite-batch-cascade"]


def test_a_type_change_on_a_small_table_is_relaxed_only_where_the_values_fit(tmp_path, pg_url):
    gen = throwaway_database(pg_url, [
        "CREATE TABLE counts (id integer PRIMARY KEY, n integer, m integer)",
        "INSERT INTO counts SELECT g, g, CASE WHEN g = 7 THEN 40000 ELSE g END FROM generate_series(1, 50) g",
    ])
    url = next(gen)
    try:
        body = ("def upgrade():\n    op.alter_column('counts', 'n', existing_type=sa.Integer(), type_=sa.BigInteger())\n"
                "    op.alter_column('counts', 'm', existing_type=sa.Integer(), type_=sa.SmallInteger())\n\n\n"
                "def downgrade():\n    op.alter_column('counts', 'm', existing_type=sa.SmallInteger(), type_=sa.Integer())\n"
                "    op.alter_column('counts', 'n', existing_type=sa.BigInteger(), type_=sa.Integer())\n")
        project = load_project(make_project(tmp_path, [{"body": body}], url=url))
        r = review_migration(project, "000000000001", database_url=url)
        found = {f.column: f for f in r.findings if f.rule == "alter-column-type" and f.phase == "upgrade"}
        assert found["n"].severity == "info" and "small_table_rows" in found["n"].message  # a rewrite of 50 rows
        assert found["m"].severity == "error"  # 40,000 does not fit a SMALLINT: the size settles no value
    finally:
        next(gen, None)


def test_the_small_table_relaxation_holds_on_mariadb(tmp_path, mysql_url):
    # (SQLite has no lock findings to relax: batch mode's copy is the documented way there)
    gen = throwaway_database(mysql_url, ["CREATE TABLE counts (id integer PRIMARY KEY, n integer)",
                                         "INSERT INTO counts (id, n) VALUES (1, 1), (2, 2), (3, 3)"])
    url = next(gen)
    try:
        body = ("def upgrade():\n    op.alter_column('counts', 'n', existing_type=sa.Integer(), type_=sa.BigInteger())\n\n\n"
                "def downgrade():\n    op.alter_column('counts', 'n', existing_type=sa.BigInteger(), type_=sa.Integer())\n")
        project = load_project(make_project(tmp_path, [{"body": body}], url=url))
        (without,) = [f for f in review_migration(project, "000000000001").findings if f.rule == "alter-column-type" and f.phase == "upgrade"]
        assert without.severity == "error"  # MariaDB copies the table to change the type
        (found,) = [f for f in review_migration(project, "000000000001", database_url=url).findings
                    if f.rule == "alter-column-type" and f.phase == "upgrade"]
        assert found.severity == "info" and "3 row(s)" in found.message and "small_table_rows" in found.message
    finally:
        next(gen, None)


def _messages(source: str, rule: str, dialect: str = "postgresql") -> list[tuple[str, str]]:
    return [(f.severity, f.message) for f in review_source(source, dialect=dialect).findings if f.rule == rule]


def test_a_foreign_key_redefined_under_its_own_name_meets_no_orphan_and_a_downgrade_validates_in_place():
    """Dropping and re-adding a key of the same name (a new ON DELETE rule) scans, but every row satisfied the old one;
    a downgrade has no later revision to VALIDATE in, so its fix validates in an autocommit block."""
    swap = ("op.drop_constraint('fk_steps_job_id', 'steps', type_='foreignkey')\n"
            "op.create_foreign_key('fk_steps_job_id', 'steps', 'jobs', ['job_id'], ['id']{})")
    src = _source(swap.format(", ondelete='CASCADE'"), swap.format(""))
    found = review_source(src).findings
    up = [f for f in found if f.rule == "add-foreign-key-validating" and f.phase == "upgrade"]
    down = [f for f in found if f.rule == "add-foreign-key-validating" and f.phase == "downgrade"]
    # the drop of the key locked both tables (reads too): the new key's scan holds that lock over every row, where
    # NOT VALID + VALIDATE later would hold it for an instant: an error, but no orphan can fail it
    assert [f.severity for f in up] == ["error"] and "orphan" not in up[0].message and "since line" in up[0].message
    assert [f.severity for f in down] == ["warning"] and "later revision" not in down[0].fix
    assert "autocommit_block" in down[0].fix and "VALIDATE CONSTRAINT fk_steps_job_id" in down[0].fix
    plain = _messages(_source("op.create_foreign_key('fk_steps_job_id', 'steps', 'jobs', ['job_id'], ['id'])"), "add-foreign-key-validating")
    assert plain[0][0] == "error" and "orphan" in plain[0][1]


def test_a_foreign_key_on_mysql_copies_the_table_unless_checks_are_off():
    add = "op.create_foreign_key('fk_steps_job_id', 'steps', 'jobs', ['job_id'], ['id'])"
    assert _severity(_source(add), "add-foreign-key-validating", "mysql") == "warning"
    off = f"op.execute('SET foreign_key_checks = 0')\n{add}\nop.execute('SET foreign_key_checks = 1')"
    assert _severity(_source(off), "add-foreign-key-validating", "mysql") is None
    new = f"op.create_table('jobs2', sa.Column('id', sa.Integer, primary_key=True))\n{add.replace('steps', 'jobs2')}"
    assert _severity(_source(new), "add-foreign-key-validating", "mysql") is None


def test_a_unique_over_columns_just_added_empty_cannot_meet_a_duplicate():
    add = "op.add_column('users', sa.Column('handle', sa.String(40), nullable=True))\n"
    uq = "op.create_unique_constraint('uq_users_handle', 'users', ['handle'])"
    assert _severity(_source(add + uq), "add-unique-constraint", "mysql") is None
    (pg,) = _messages(_source(add + uq), "add-unique-constraint")
    assert pg[0] == "error" and "only NULLs" in pg[1]  # the lock of the build is still PostgreSQL's error
    filled = add + "op.execute(\"UPDATE users SET handle = lower(name)\")\n" + uq
    assert _severity(_source(filled), "add-unique-constraint", "mysql") == "warning"


def test_dropping_an_index_of_a_table_the_transaction_already_holds_exclusively_adds_no_wait():
    two = ("op.drop_index('ix_notes_a', table_name='notes')\nop.drop_index('ix_notes_b', table_name='notes')")
    found = [f for f in review_source(_source(two)).findings if f.rule == "drop-index-non-concurrent"]
    assert [f.line for f in found] == [found[0].line] and len(found) == 1  # the first one takes the lock
    apart = ("op.drop_index('ix_notes_a', table_name='notes')\nop.execute('COMMIT')\n"
             "op.drop_index('ix_notes_b', table_name='notes')")
    assert len([f for f in review_source(_source(apart)).findings if f.rule == "drop-index-non-concurrent"]) == 2


def test_a_check_every_row_already_meets_cannot_fail():
    """Widened, re-created as it was, or right after an UPDATE that wrote only values it allows: no row fails it."""
    widen = ("op.drop_constraint('ck_notes_kind', 'notes', type_='check')\n"
             "op.create_check_constraint('ck_notes_kind', 'notes', \"kind IN ('LLM', 'CODE', 'HUMAN')\")")
    narrow = widen.replace("'LLM', 'CODE', 'HUMAN'", "'LLM', 'HUMAN'")
    found = _messages(_source(widen, narrow), "add-check-constraint-validating")
    up = next(m for m in found if "widens" in m[1])
    assert up[0] == "warning" and "no row fails it" in up[1]  # the drop already holds the table's lock
    down = [m for m in found if "widens" not in m[1]]
    assert down and "one violating row fails" in down[0][1]  # narrowing back can fail
    backfill = ("op.execute(\"UPDATE users SET auth = CASE WHEN password IS NULL THEN 'OAUTH2' ELSE 'LOCAL' END\")\n"
                "op.create_check_constraint('ck_users_auth', 'users', \"auth IN ('LOCAL', 'OAUTH2')\")")
    ((severity, message),) = _messages(_source(backfill), "add-check-constraint-validating")
    assert "set auth of every row to a value it allows" in message and severity == "error"  # the scan's lock stays
    other = backfill.replace("ELSE 'LOCAL'", "ELSE 'LDAP'")
    assert "one violating row fails" in _messages(_source(other), "add-check-constraint-validating")[0][1]


def test_concurrently_chosen_by_a_deployment_setting_is_the_deployments_fact():
    up = ("concurrently = os.environ.get('APP_MIGRATE_CONCURRENTLY', '') == 'true'\n"
          "op.create_index('ix_spans_session', 'spans', ['session_id'], postgresql_concurrently=concurrently)")
    src = _source(up).replace("import sqlalchemy as sa\n", "import sqlalchemy as sa\nimport os\n", 1)
    ((severity, message),) = _messages(src, "create-index-non-concurrent")
    assert severity == "warning" and "chosen at run time (concurrently)" in message
    assert _severity(_source("op.create_index('ix_spans_session', 'spans', ['session_id'])"), "create-index-non-concurrent") == "error"


def test_set_not_null_after_deleting_the_null_rows_cannot_fail_but_still_scans():
    up = ("op.execute('DELETE FROM tokens WHERE user_id IS NULL OR refresh_id IS NULL')\n"
          "op.alter_column('tokens', 'refresh_id', existing_type=sa.Integer(), nullable=False)")
    ((severity, message),) = _messages(_source(up), "set-not-null")
    assert severity == "error" and "deleted the rows where it is NULL" in message and "fails if any row" not in message


def test_a_foreign_key_over_a_column_just_added_is_a_warning_as_classify_calls_it_automatic():
    """review and classify agree: classify's auto class add-foreign-key-empty-column is not a review error."""
    src = _source("op.add_column('sketch', sa.Column('group_id', sa.Integer(), nullable=True))\n"
                  "op.create_foreign_key('fk_sketch_group', 'sketch', 'group', ['group_id'], ['id'])",
                  "op.drop_constraint('fk_sketch_group', 'sketch', type_='foreignkey')\nop.drop_column('sketch', 'group_id')")
    ((severity, message),) = _messages(src, "add-foreign-key-validating")
    assert severity == "warning" and "writes to group wait" in message


def test_a_backfill_of_every_row_under_the_tables_exclusive_lock_is_an_error_on_postgresql():
    """The column add holds ACCESS EXCLUSIVE until commit: an UPDATE of every row keeps reads and writes waiting for
    the whole table, and a safe form exists (its own transaction, in batches): an error by the severity principle.
    A backfill limited by WHERE, or on another table, stays a note."""
    add = "op.add_column('spans', sa.Column('cost', sa.Integer(), nullable=True))\n"
    assert _severity(_source(add + "op.execute('UPDATE spans SET cost = 0')"), "backfill-in-schema-migration") == "error"
    assert _severity(_source(add + "op.execute('UPDATE spans SET cost = 0 WHERE cost IS NULL AND id < 1000')"),
                     "backfill-in-schema-migration") == "info"
    assert _severity(_source(add + "op.execute('UPDATE traces SET cost = 0')"), "backfill-in-schema-migration") == "info"


def test_a_unique_widened_to_more_columns_cannot_meet_a_duplicate():
    up = ("op.drop_constraint('uq_rules_name', 'rules', type_='unique')\n"
          "op.create_unique_constraint('uq_rules_name_tenant', 'rules', ['name', 'tenant'])")
    down = ("op.drop_constraint('uq_rules_name_tenant', 'rules', type_='unique')\n"
            "op.create_unique_constraint('uq_rules_name', 'rules', ['name'])")
    mysql = [f for f in review_source(_source(up, down), dialect="mysql").findings if f.rule == "add-unique-constraint"]
    assert [f.phase for f in mysql] == ["downgrade"]  # only narrowing back can meet a duplicate
    found = [(f.phase, f.severity, f.message) for f in review_source(_source(up, down)).findings if f.rule == "add-unique-constraint"]
    up_found = [f for f in found if f[0] == "upgrade"]
    assert up_found and up_found[0][1] == "warning" and "already met" in up_found[0][2]
    assert any(f[0] == "downgrade" and "already met" not in f[2] for f in found)  # narrowing back can meet duplicates


def test_a_key_replacing_the_databases_own_name_for_it_meets_no_orphan():
    """autogenerate's ON DELETE change under a convention: the old key had PostgreSQL's name, the new one the
    convention's; both hold the same columns, so every row already meets it, and the drop holds both tables."""
    up = ("op.drop_constraint('posts_topic_id_fkey', 'posts', type_='foreignkey')\n"
          "op.create_foreign_key('fk_posts_topic_id_topics', 'posts', 'topics', ['topic_id'], ['id'], ondelete='CASCADE')")
    ((severity, message),) = [m for m in _messages(_source(up), "add-foreign-key-validating")]
    assert severity == "error" and "orphan" not in message and "since line" in message
