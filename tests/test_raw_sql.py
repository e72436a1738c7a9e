"""Raw SQL in op.execute reaches the rules, the reversibility check and the policy as alembic operations.

The point: a team that writes ``op.execute("ALTER TABLE ...")`` instead of ``op.add_column(...)`` gets the
same verdict.  Each test compares the raw spelling with what the rules say of it, on PostgreSQL (pglast)
and on MySQL/MariaDB and SQLite (sqlglot); the last tests run the statements on the real servers to check
that what the translation claims about a column is what the database then holds.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from db_migrate.review.engine import review_source


def body(*upgrade: str, down: str = "pass") -> str:
    return "def upgrade():\n" + "".join(f"    {line}\n" for line in upgrade) + f"\n\ndef downgrade():\n    {down}\n"


def review(src: str, dialect: str = "postgresql"):
    return review_source(src, dialect=dialect)


def rules(outcome) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in outcome.findings:
        out.setdefault(f.rule, []).append(f)
    return out


def upgrade_ops(outcome) -> list:
    return [o for o in outcome.review.operations if o.phase == "upgrade"]


# --------------------------------------------------------------------------- PostgreSQL


def test_sa_ddl_run_through_the_connection_is_read_like_op_execute() -> None:
    """``conn.execute(sa.DDL('ALTER TABLE "%(table)s" ...', context=...))`` over a module-level list of columns:
    each statement, with its context filled in, is the alter_column it amounts to; the downgrade's statements say
    the old types, so the rewrite is known (a dozen tables rewritten in one transaction had proceeded)."""
    src = (
        "cols = [('orders', 'placed_at'), ('invoices', 'issued_at')]\n\n"
        "def upgrade():\n    for table, column in cols:\n        op.get_bind().execute(sa.DDL(\n"
        "            'ALTER TABLE \"%(table)s\" ALTER COLUMN \"%(column)s\" TYPE TIMESTAMP WITH TIME ZONE',\n"
        "            context={'table': table, 'column': column}))\n\n"
        "def downgrade():\n    for table, column in reversed(cols):\n        op.get_bind().execute(sa.DDL(\n"
        "            'ALTER TABLE \"%(table)s\" ALTER COLUMN \"%(column)s\" TYPE TIMESTAMP WITHOUT TIME ZONE',\n"
        "            context={'table': table, 'column': column}))\n"
    )
    out = review(src)
    assert [(o.kind, o.table, o.column) for o in upgrade_ops(out)] == [
        ("alter_column", "orders", "placed_at"), ("alter_column", "invoices", "issued_at")]
    found = rules(out)["alter-column-type"]
    assert found[0].severity == "error" and "TIMESTAMP WITHOUT TIME ZONE to TIMESTAMP WITH TIME ZONE" in found[0].message
    assert "missing-downgrade" not in rules(out) and "downgrade-not-inverse" not in rules(out)


@pytest.mark.parametrize(("using", "rewrites"), [
    ("placed_at AT TIME ZONE 'UTC'", True),  # every value computed anew
    ("placed_at::timestamptz", False),  # a cast of the column: whether it rewrites depends on the old type
    ("CAST(CAST(placed_at AS text) AS timestamptz)", False),  # casts through text (an enum re-created)
    ("placed_at", False),
])
def test_raw_type_change_with_a_using_that_computes_values_is_a_known_rewrite(using, rewrites) -> None:
    src = body(f"op.execute(\"ALTER TABLE orders ALTER COLUMN placed_at TYPE timestamptz USING {using}\")")
    found = rules(review(src))["alter-column-type"]
    assert found[0].severity == ("error" if rewrites else "warning"), found[0].message
    assert ("whatever the old type" in found[0].message) is rewrites


def test_not_null_column_without_default_in_raw_sql_is_the_same_error_as_add_column() -> None:
    raw = review(body('op.execute("ALTER TABLE persons ADD COLUMN badge int NOT NULL")'))
    (op,) = upgrade_ops(raw)
    assert (op.kind, op.table, op.column) == ("add_column", "persons", "badge")
    assert op.detail["from_sql"] is True and op.detail["nullable"] is False
    assert op.sql == ["ALTER TABLE persons ADD COLUMN badge int NOT NULL"]
    (f,) = rules(raw)["add-column-not-null-no-default"]
    assert f.severity == "error" and f.line == 15  # the op.execute line (the example header is 13 lines)
    native = review(body("op.add_column('persons', sa.Column('badge', sa.Integer(), nullable=False))"))
    assert {f.rule for f in raw.findings} == {f.rule for f in native.findings}


def test_a_default_or_a_nullable_column_is_not_flagged() -> None:
    found = rules(review(body('op.execute("ALTER TABLE persons ADD COLUMN badge int NOT NULL DEFAULT 0")')))
    assert "add-column-not-null-no-default" not in found
    assert "add-column-not-null-no-default" not in rules(review(body('op.execute("ALTER TABLE persons ADD COLUMN badge int")')))


@pytest.mark.parametrize(
    ("raw", "native", "rule"),
    [
        ("ALTER TABLE persons ALTER COLUMN age TYPE bigint", "op.alter_column('persons', 'age', type_=sa.BigInteger())", "alter-column-type"),
        ("ALTER TABLE persons RENAME COLUMN nick TO alias", "op.alter_column('persons', 'nick', new_column_name='alias')", "rename-column"),
        ("ALTER TABLE persons DROP COLUMN nick", "op.drop_column('persons', 'nick')", "drop-column"),
        ("DROP TABLE audit_log", "op.drop_table('audit_log')", "drop-table"),
        ("ALTER TABLE persons RENAME TO people", "op.rename_table('persons', 'people')", "rename-table"),
        ("ALTER TABLE persons ALTER COLUMN age SET NOT NULL", "op.alter_column('persons', 'age', nullable=False)", "set-not-null"),
        ("CREATE INDEX ix_persons_age ON persons (age)", "op.create_index('ix_persons_age', 'persons', ['age'])", "create-index-non-concurrent"),
        ("ALTER TABLE persons ADD CONSTRAINT uq_nick UNIQUE (nick)", "op.create_unique_constraint('uq_nick', 'persons', ['nick'])", "add-unique-constraint"),
        (
            "ALTER TABLE shifts ADD CONSTRAINT fk_p FOREIGN KEY (person_id) REFERENCES persons (id)",
            "op.create_foreign_key('fk_p', 'shifts', 'persons', ['person_id'], ['id'])",
            "add-foreign-key-validating",
        ),
    ],
)
def test_raw_ddl_gets_the_findings_of_the_alembic_operation(raw: str, native: str, rule: str) -> None:
    raw_found = rules(review(body(f'op.execute("{raw}")')))
    native_found = rules(review(body(native)))
    assert rule in raw_found and rule in native_found
    assert set(raw_found) == set(native_found), (set(raw_found), set(native_found))
    assert all(f.line == 15 for f in raw_found[rule])


def test_policy_sees_translated_drops_and_primary_key_swap(tmp_path: Path) -> None:
    from db_migrate.classify import classify_escalation
    from db_migrate.project import load_project
    from db_migrate.review import review_migration
    from projectfactory import make_project

    src = body(
        'op.execute("DROP TABLE audit_log")',
        'op.execute("ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, tenant_id)")',
        down='op.execute("ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id)")',
    )
    make_project(tmp_path, [src])
    project = load_project(cwd=tmp_path)
    reviewed = review_migration(project, "head")
    kinds = [(o.kind, o.detail.get("constraint_type")) for o in reviewed.reviews[0].operations if o.phase == "upgrade"]
    assert kinds == [("drop_table", None), ("drop_constraint", "primary"), ("create_primary_key", None)]
    assert "change-primary-key" in {f.rule for f in reviewed.findings}
    triggers = {t.trigger for t in classify_escalation(project, "head").escalation.triggers}
    assert {"primary-key-change", "drop-with-data"} <= triggers


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_table_re_created_by_hand_is_replaced_not_dropped(tmp_path: Path, dialect: str) -> None:
    from db_migrate.classify import classify_escalation
    from db_migrate.project import load_project
    from projectfactory import make_project

    def recreate(tmp: str, to: str) -> str:
        return (f'op.execute("CREATE TABLE {tmp} (id INTEGER PRIMARY KEY, body TEXT, tag VARCHAR(20))")\n'
                f'    op.execute("INSERT INTO {tmp} (id, body, tag) SELECT id, body, tag FROM {to}")\n'
                f'    op.execute("DROP TABLE {to}")\n    op.execute("ALTER TABLE {tmp} RENAME TO {to}")')

    base = ("def upgrade():\n    op.create_table('notes', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('body', sa.Text()), "
            "sa.Column('tag', sa.String(20)))\n\n\ndef downgrade():\n    op.drop_table('notes')\n")
    copy = f"def upgrade():\n    {recreate('notes_new', 'notes')}\n\n\ndef downgrade():\n    {recreate('notes_old', 'notes')}\n"
    url = "sqlite:///app.db" if dialect == "sqlite" else "postgresql://u@localhost/app"
    project = load_project(make_project(tmp_path, [{"body": base}, {"body": copy}], url=url))
    r = classify_escalation(project, "000000000002")
    assert "drop-with-data" not in {t.trigger for t in r.escalation.triggers}, r.escalation  # its rows went into the copy
    assert "drop-table" not in {f.rule for f in r.findings}
    # a table dropped after a copy that is NOT renamed to its name: its rows live on in the copy (moved, not lost),
    # which drop-table says as a note; the name the code uses is gone, which the note's "check" asks about
    plain = copy.replace('op.execute("ALTER TABLE notes_new RENAME TO notes")', "pass")
    (tmp_path / "b").mkdir()
    project = load_project(make_project(tmp_path / "b", [{"body": base}, {"body": plain}], url=url))
    moved = classify_escalation(project, "000000000002")
    assert "drop-with-data" not in {t.trigger for t in moved.escalation.triggers}
    assert [f.severity for f in moved.findings if f.rule == "drop-table"] == ["info"]
    # dropped with no copy first, it is lost
    (tmp_path / "c").mkdir()
    lost = copy.replace('op.execute("INSERT INTO notes_new (id, body, tag) SELECT id, body, tag FROM notes")', "pass")
    project = load_project(make_project(tmp_path / "c", [{"body": base}, {"body": lost}], url=url))
    assert "drop-with-data" in {t.trigger for t in classify_escalation(project, "000000000002").escalation.triggers}


def test_not_valid_then_validate_is_the_safe_pattern() -> None:
    added = review(body('op.execute("ALTER TABLE shifts ADD CONSTRAINT fk_p FOREIGN KEY (person_id) REFERENCES persons (id) NOT VALID")',
                        down="op.drop_constraint('fk_p', 'shifts', type_='foreignkey')"))
    (op,) = upgrade_ops(added)
    assert op.kind == "create_foreign_key" and op.detail["from_sql"] is True
    assert "add-foreign-key-validating" not in rules(added)
    # VALIDATE scans without blocking writes and has nothing to undo: an empty downgrade is right
    validated = review(body('op.execute("ALTER TABLE shifts VALIDATE CONSTRAINT fk_p")'))
    (op,) = upgrade_ops(validated)
    assert op.kind == "execute" and op.detail["sql_kind"] == "VALIDATE CONSTRAINT"
    assert not {"missing-downgrade", "missing-lock-timeout", "destructive-sql"} & set(rules(validated))


def test_raw_upgrade_and_raw_downgrade_are_checked_for_inverse() -> None:
    inverse = review(body('op.execute("ALTER TABLE persons ADD COLUMN nick varchar(40)")', down='op.execute("ALTER TABLE persons DROP COLUMN nick")'))
    assert "downgrade-not-inverse" not in rules(inverse) and "missing-downgrade" not in rules(inverse)
    index_left = review(body('op.execute("CREATE INDEX CONCURRENTLY ix_a ON persons (a)")', down='op.execute("SELECT 1")'))
    assert any("index ix_a" in f.message for f in rules(index_left)["downgrade-not-inverse"])


def test_one_execute_with_several_statements_keeps_their_order_and_line() -> None:
    src = body('op.execute("""ALTER TABLE persons ADD COLUMN nick varchar(40);\n    UPDATE persons SET nick = name;\n    ALTER TABLE persons ALTER COLUMN nick SET NOT NULL""")')
    ops = upgrade_ops(review(src))
    assert [(o.kind, o.detail.get("from_sql")) for o in ops] == [("add_column", True), ("execute", None), ("alter_column", True)]
    assert {o.line for o in ops} == {15}
    assert ops[1].sql == ["UPDATE persons SET nick = name"]


def test_untranslatable_subcommands_stay_raw_sql_beside_the_translated_ones() -> None:
    ops = upgrade_ops(review(body('op.execute("ALTER TABLE persons ADD COLUMN nick text, ALTER COLUMN age SET STATISTICS 100")')))
    assert [o.kind for o in ops] == ["add_column", "execute"]
    assert "SET STATISTICS" in ops[1].sql[0] and "ADD COLUMN" not in ops[1].sql[0]


def test_bind_execute_of_sa_text_is_translated_too() -> None:
    src = body("op.get_bind().execute(sa.text('ALTER TABLE persons DROP COLUMN nick'))")
    (op,) = upgrade_ops(review(src))
    assert (op.kind, op.column, op.detail["from_sql"]) == ("drop_column", "nick", True)


def test_triggers_and_functions_are_not_data_loss() -> None:
    found = rules(review(body('op.execute("DROP TRIGGER IF EXISTS trg_audit ON persons")', 'op.execute("DROP FUNCTION IF EXISTS audit_fn()")')))
    assert "destructive-sql" not in found and "drop-table" not in found


def test_enum_value_rename_and_removal_in_raw_sql_reach_the_enum_rule() -> None:
    renamed = rules(review(body("op.execute(\"ALTER TYPE status RENAME VALUE 'old' TO 'new'\")")))
    assert "enum-value-change" in renamed
    swap = (
        "op.execute(\"ALTER TYPE status RENAME TO status_old\")",
        "op.execute(\"CREATE TYPE status AS ENUM ('new', 'paid')\")",
        "op.execute('ALTER TABLE orders ALTER COLUMN status TYPE status USING status::text::status')",
        "op.execute('DROP TYPE status_old')",
    )
    (f,) = rules(review(body(*swap)))["enum-value-change"]
    assert f.severity == "warning" and "status" in f.message  # the old values are not known
    # the downgrade re-creates the old list: 'shipped' is the value the upgrade removes
    down = "op.execute(\"DROP TYPE status; CREATE TYPE status AS ENUM ('new', 'paid', 'shipped')\")"
    (f,) = rules(review(body(*swap, down=down)))["enum-value-change"]
    assert f.severity == "error" and "'shipped'" in f.message
    # the raw type conversion itself is an alter_column: the type-change rule sees it
    assert "alter-column-type" in rules(review(body(*swap)))


def test_serial_and_identity_columns_reach_add_serial_column() -> None:
    assert "add-serial-column" in rules(review(body('op.execute("ALTER TABLE events ADD COLUMN seq bigserial")')))
    assert "add-column-not-null-no-default" not in rules(review(body('op.execute("ALTER TABLE events ADD COLUMN seq bigserial")')))


def test_create_table_in_raw_sql_makes_later_operations_on_it_safe() -> None:
    src = body(
        'op.execute("CREATE TABLE badges (id serial PRIMARY KEY, person_id int NOT NULL REFERENCES persons (id), code text)")',
        'op.execute("CREATE INDEX ix_badges_code ON badges (code)")',
        'op.execute("ALTER TABLE badges ADD COLUMN level int NOT NULL")',
        down='op.execute("DROP TABLE badges")',
    )
    out = review(src)
    assert [o.kind for o in upgrade_ops(out)] == ["create_table", "create_index", "add_column"]
    assert not {"create-index-non-concurrent", "add-column-not-null-no-default", "downgrade-not-inverse", "drop-table"} & set(rules(out))


def test_a_statement_that_does_not_parse_is_unchecked_with_its_line() -> None:
    out = review(body('op.execute("ALTER TABLE persons ADD COLUMN nick text; ALTR TABLE persons DROP x")'))
    assert [o.kind for o in upgrade_ops(out)] == ["add_column", "execute"]  # the good statement is still translated
    (u,) = [u for u in out.unchecked if "raw SQL" in u.what]
    assert u.line == 15 and "ALTR TABLE" in u.what and "postgresql" in u.reason


# --------------------------------------------------------------------------- MySQL / MariaDB and SQLite (sqlglot)


@pytest.mark.parametrize("dialect", ["mysql", "mariadb"])
def test_mysql_raw_ddl_is_translated(dialect: str) -> None:
    out = review(body('op.execute("ALTER TABLE persons ADD COLUMN badge INT NOT NULL")'), dialect)
    (op,) = upgrade_ops(out)
    assert (op.kind, op.detail["from_sql"], op.detail["nullable"]) == ("add_column", True, False)
    assert "add-column-not-null-no-default" in rules(out)
    src = body(
        'op.execute("ALTER TABLE persons MODIFY COLUMN name VARCHAR(20) NOT NULL, CHANGE COLUMN nick alias VARCHAR(40)")',
        'op.execute("RENAME TABLE audit TO audit_old")',
        'op.execute("ALTER TABLE orders DROP PRIMARY KEY, ADD PRIMARY KEY (id, tenant_id)")',
        "op.execute(\"UPDATE persons SET name = 'a;b' WHERE id = 1\")",
        'op.execute("DROP TABLE audit_old")',
    )
    out = review(src, dialect)
    kinds = [(o.kind, o.column) for o in upgrade_ops(out)]
    assert kinds == [
        ("alter_column", "name"), ("alter_column", "nick"), ("rename_table", None),
        ("drop_constraint", None), ("create_primary_key", None), ("execute", None), ("drop_table", None),
    ]
    assert upgrade_ops(out)[5].sql == ["UPDATE persons SET name = 'a;b' WHERE id = 1"]  # the ; in the literal is not a split
    found = rules(out)
    assert {"alter-column-type", "rename-column", "rename-table", "change-primary-key", "drop-table"} <= set(found)
    assert "set-not-null" not in found  # MODIFY restates NOT NULL; the old value is unknown, so no claim of a change


def test_sqlite_raw_ddl_is_translated_and_unparsable_sql_is_unchecked() -> None:
    out = review(body('op.execute("ALTER TABLE persons DROP COLUMN nick; ALTER TABLE persons RENAME COLUMN a TO b; SELEC 1")'), "sqlite")
    assert [(o.kind, o.detail.get("from_sql")) for o in upgrade_ops(out)] == [("drop_column", True), ("alter_column", True), ("execute", None)]
    assert {"drop-column", "rename-column"} <= set(rules(out))
    assert any("SELEC 1" in u.what for u in out.unchecked)


# --------------------------------------------------------------------------- the real servers agree with the translation


def _translated_column(sql: str, dialect: str) -> sa.Column:
    from db_migrate.capture.rawsql import translate
    from db_migrate.capture.sql import parse_sql

    (stmt,) = parse_sql(sql, dialect)
    (op,), rest = translate(stmt, dialect)
    assert rest is None
    return op.column


def _run_and_reflect(server_url: str, name: str, statements: list[str]) -> dict:
    """Create database ``name``, run ``statements`` in it, reflect table t's columns; drop it again."""
    server = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    url = sa.engine.make_url(server_url).set(database=name)
    with server.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        eng = sa.create_engine(url)
        with eng.begin() as c:
            for s in statements:
                c.execute(sa.text(s))
        cols = {c["name"]: c for c in sa.inspect(eng).get_columns("t")}
        eng.dispose()
        return cols
    finally:
        with server.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()


@pytest.mark.parametrize(
    ("server", "dialect", "create"),
    [
        pytest.param("pg_url", "postgresql", "CREATE TABLE t (id int)", marks=pytest.mark.postgres),
        pytest.param("mysql_url", "mariadb", "CREATE TABLE t (id INT)", marks=pytest.mark.mysql),
    ],
)
def test_the_server_holds_what_the_translation_claims(server: str, dialect: str, create: str, request) -> None:
    add = "ALTER TABLE t ADD COLUMN badge varchar(12) NOT NULL DEFAULT 'x'"
    col = _translated_column(add, dialect)
    url = request.getfixturevalue(server)
    reflected = _run_and_reflect(url, f"dbm_rawsql_{uuid.uuid4().hex[:12]}", [create, add])
    assert reflected["badge"]["nullable"] is col.nullable is False
    assert reflected["badge"]["type"].length == col.type.length == 12
    assert "x" in reflected["badge"]["default"] and col.server_default.arg.text == "'x'"


def test_a_temporary_scratch_table_of_a_data_step_is_not_a_schema_change() -> None:
    """Seen in a public history: one op.execute creates a temp table, indexes it, updates from it, drops it."""
    src = body(
        'op.execute("""CREATE TEMPORARY TABLE merge_map AS SELECT id, merged_into_id FROM users WHERE merged_into_id IS NOT NULL;\n'
        '    CREATE INDEX ix_merge_map ON merge_map (id);\n'
        '    UPDATE registrations r SET user_id = mm.merged_into_id FROM merge_map mm WHERE r.user_id = mm.id;\n'
        '    DROP TABLE merge_map""")'
    )
    out = review(src)
    assert [o.kind for o in upgrade_ops(out)] == ["execute"] * 4  # one entry per statement, none an alembic op
    assert not {"create-index-non-concurrent", "missing-lock-timeout", "destructive-sql", "drop-table", "backfill-in-schema-migration"} & set(rules(out))


def test_dropping_the_column_an_expression_index_uses_drops_the_index() -> None:
    src = body(
        "op.add_column('affiliations', sa.Column('alt_names', sa.Text(), nullable=True))",
        'op.execute("CREATE INDEX CONCURRENTLY ix_aff_names ON affiliations USING gin (to_tsvector(\'simple\', alt_names))")',
        down="op.drop_column('affiliations', 'alt_names')",
    )
    assert "downgrade-not-inverse" not in rules(review(src))


def test_a_table_moved_aside_and_rebuilt_under_its_name_is_replaced(tmp_path: Path) -> None:
    from db_migrate.classify import classify_escalation
    from db_migrate.project import load_project
    from projectfactory import make_project

    base = ("def upgrade():\n    op.create_table('user', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('email', sa.String(256)))\n\n\n"
            "def downgrade():\n    op.drop_table('user')\n")
    rebuild = ("def upgrade():\n    op.rename_table('user', 'user_old')\n"
               "    op.create_table('user', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('email', sa.String(320)))\n"
               "    op.execute('INSERT INTO user (id, email) SELECT id, email FROM user_old')\n    op.drop_table('user_old')\n\n\n"
               "def downgrade():\n    pass\n")
    project = load_project(make_project(tmp_path, [{"body": base}, {"body": rebuild}], url="sqlite:///app.db"))
    r = classify_escalation(project, "000000000002")
    assert "drop-with-data" not in {t.trigger for t in r.escalation.triggers}, r.escalation


_CTE_DELETE = ("WITH old_connections AS (SELECT id FROM connection WHERE kind = 'legacy') "
               "DELETE FROM dataset WHERE connection_id IN (SELECT id FROM old_connections)")


def test_a_delete_through_a_cte_names_only_its_target_and_keeps_exactly_its_rows() -> None:
    """The CTE's name is not a table and the CTE's WHERE is not the DELETE's: the finding names the table rows leave,
    and the backup in its fix selects the rows the DELETE removes (checked on the server below)."""
    (f,) = rules(review(body(f'op.execute("{_CTE_DELETE}")')))["destructive-sql"]
    assert f.message.startswith("DELETE from dataset:")
    assert "AS WITH old_connections AS (SELECT id FROM connection WHERE kind = 'legacy') SELECT * FROM dataset WHERE " \
           "connection_id IN (SELECT id FROM old_connections)" in f.fix


@pytest.mark.postgres
def test_the_backup_of_a_delete_through_a_cte_runs_and_holds_the_deleted_rows(pg_url: str) -> None:
    import re as _re

    (f,) = rules(review(body(f'op.execute("{_CTE_DELETE}")')))["destructive-sql"]
    keep = _re.search(r'op\.execute\("(CREATE TABLE .*?)"\)', f.fix).group(1)
    name = f"dbm_rawsql_{uuid.uuid4().hex[:12]}"
    server = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with server.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        eng = sa.create_engine(sa.engine.make_url(pg_url).set(database=name))
        with eng.begin() as c:
            c.execute(sa.text("CREATE TABLE connection (id int, kind text); CREATE TABLE dataset (id int, connection_id int)"))
            c.execute(sa.text("INSERT INTO connection VALUES (1, 'legacy'), (2, 'new'); INSERT INTO dataset VALUES (10, 1), (20, 2)"))
            c.execute(sa.text(keep))
            c.execute(sa.text(_CTE_DELETE))
            assert c.execute(sa.text("SELECT id FROM dataset_backup")).scalars().all() == [10]
            assert c.execute(sa.text("SELECT id FROM dataset")).scalars().all() == [20]
        eng.dispose()
    finally:
        with server.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()


def test_an_enum_swapped_under_its_own_name_is_a_rewrite_of_every_column_moved_to_it() -> None:
    """Rename the type away, create one under the name, cast the column over: the names match, but every row is cast
    to a new type under ACCESS EXCLUSIVE (the usual way to edit an enum's labels before ADD VALUE existed)."""
    src = body(
        "op.execute('ALTER TYPE notify_status RENAME TO tmp_notify_status')",
        "op.execute(\"CREATE TYPE notify_status AS ENUM ('sent', 'failed', 'pending')\")",
        "op.execute('ALTER TABLE notifications ALTER COLUMN status TYPE notify_status USING status::text::notify_status')",
        "op.execute('DROP TYPE tmp_notify_status')",
        down="op.execute('ALTER TABLE notifications ALTER COLUMN status TYPE notify_status USING status::text::notify_status')",
    )
    (f,) = rules(review(src))["alter-column-type"]
    assert f.severity == "error" and "renamed away" in f.message and "rewrites notifications" in f.message
    plain = body("op.execute('ALTER TABLE notifications ALTER COLUMN status TYPE notify_status USING status::text::notify_status')",
                 down="op.execute('ALTER TABLE notifications ALTER COLUMN status TYPE notify_status USING status::text::notify_status')")
    assert "renamed away" not in " ".join(f.message for f in rules(review(plain)).get("alter-column-type", []))
