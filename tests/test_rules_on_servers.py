"""What a rule says of a statement, held against what the real server does with it.

Each test pairs the review's verdict on a migration with the statement run on the real MariaDB or PostgreSQL
(a database of its own, dropped at the end): a rename that MariaDB does in place must not be an error, a type
change it can only do by copying the table must be; a conversion PostgreSQL does without losing a value must not
be called lossy.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from db_migrate.review.engine import review_source
from db_migrate.rules._helpers import classify_type_change


def up(*lines: str, down: str = "pass") -> str:
    return "def upgrade():\n" + "".join(f"    {line}\n" for line in lines) + "\n\ndef downgrade():\n" + "".join(
        f"    {line}\n" for line in down.splitlines()
    )


def found(src: str, dialect: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in review_source(src, dialect=dialect).findings:
        out.setdefault(f.rule, []).append(f)
    return out


@contextmanager
def own_database(server_url: str) -> Iterator[sa.Engine]:
    """A database of this test's own on the server (unique name), dropped afterwards."""
    name = f"dbm_rules_{uuid.uuid4().hex[:12]}"
    server = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with server.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    eng = sa.create_engine(sa.engine.make_url(server_url).set(database=name), isolation_level="AUTOCOMMIT")
    try:
        yield eng
    finally:
        eng.dispose()
        with server.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()


def refused(eng: sa.Engine, sql: str) -> str | None:
    """The server's error for ``sql``, or None when it ran."""
    try:
        with eng.connect() as c:
            c.execute(sa.text(sql))
    except sa.exc.DBAPIError as e:
        return str(e.orig)
    return None


# --------------------------------------------------------------------------- MySQL/MariaDB CHANGE COLUMN

RENAME_ONLY = up(
    "op.execute('ALTER TABLE invoices CHANGE COLUMN amount_cents total_cents INT NOT NULL')",
    down="op.execute('ALTER TABLE invoices CHANGE COLUMN total_cents amount_cents INT NOT NULL')",
)
RENAME_AND_RETYPE = up(
    "op.execute('ALTER TABLE invoices CHANGE COLUMN amount_cents total_cents BIGINT NOT NULL')",
    down="op.execute('ALTER TABLE invoices CHANGE COLUMN total_cents amount_cents INT NOT NULL')",
)


@pytest.mark.parametrize("dialect", ["mysql", "mariadb"])
def test_a_change_that_renames_and_retypes_is_an_error_naming_the_copy(dialect: str) -> None:
    (f,) = found(RENAME_AND_RETYPE, dialect)["alter-column-type"]
    assert f.severity == "error" and f.table == "invoices"
    assert "ALGORITHM=COPY" in f.message and "renamed to total_cents" in f.message
    assert "INTEGER to BIGINT" in f.message


@pytest.mark.parametrize("dialect", ["mysql", "mariadb"])
def test_a_change_that_only_renames_has_no_type_finding(dialect: str) -> None:
    rules = found(RENAME_ONLY, dialect)
    assert "alter-column-type" not in rules
    assert "rename-column" in rules  # the running code still reads the old name: that finding stays


def test_alembic_rename_with_a_new_type_is_the_same_error() -> None:
    src = up(
        "op.alter_column('invoices', 'amount_cents', new_column_name='total_cents', existing_type=sa.Integer(), "
        "type_=sa.BigInteger(), existing_nullable=False)",
        down="op.alter_column('invoices', 'total_cents', new_column_name='amount_cents', existing_type=sa.BigInteger(), "
        "type_=sa.Integer(), existing_nullable=False)",
    )
    (f,) = found(src, "mysql")["alter-column-type"]
    assert f.severity == "error" and "ALGORITHM=COPY" in f.message and "renamed to total_cents" in f.message
    rename_only = src.replace(", type_=sa.BigInteger()", "").replace(", type_=sa.Integer()", "")
    assert "alter-column-type" not in found(rename_only, "mysql")


def test_without_the_old_type_the_change_is_a_warning_naming_what_decides() -> None:
    (f,) = found(up("op.execute('ALTER TABLE invoices CHANGE amount_cents total_cents BIGINT NOT NULL')"), "mariadb")["alter-column-type"]
    assert f.severity == "warning"
    assert "amount_cents to total_cents BIGINT" in f.message and "renames and restates the type is instant" in f.message


@pytest.mark.mysql
def test_mariadb_renames_in_place_and_copies_for_a_new_type(mysql_url: str) -> None:
    with own_database(mysql_url) as eng:
        with eng.connect() as c:
            c.execute(sa.text("CREATE TABLE invoices (id INT PRIMARY KEY, amount_cents INT NOT NULL)"))
            c.execute(sa.text("INSERT INTO invoices VALUES (1, 250), (2, 990)"))
        # the rename that restates the type: in place, without copying (what the rule stays quiet on)
        assert refused(eng, "ALTER TABLE invoices CHANGE COLUMN amount_cents total_cents INT NOT NULL, ALGORITHM=INSTANT") is None
        # rename and retype in one CHANGE: no in-place algorithm, no LOCK=NONE; only a copy
        for online in ("ALGORITHM=INSTANT", "ALGORITHM=INPLACE", "LOCK=NONE"):
            why = refused(eng, f"ALTER TABLE invoices CHANGE COLUMN total_cents amount_cents BIGINT NOT NULL, {online}")
            assert why is not None and "not supported" in why, online
        assert refused(eng, "ALTER TABLE invoices CHANGE COLUMN total_cents amount_cents BIGINT NOT NULL, ALGORITHM=COPY") is None
        with eng.connect() as c:
            assert c.execute(sa.text("SELECT SUM(amount_cents) FROM invoices")).scalar() == 1240


# --------------------------------------------------------------------------- a primary key re-created on its own columns


def keyed(upgrade_cols: str, downgrade_cols: str = "['id']", batch: bool = False) -> str:
    if batch:
        return up(
            "with op.batch_alter_table('shipments') as b:",
            "    b.drop_constraint('shipments_pkey', type_='primary')",
            f"    b.create_primary_key('pk_shipments', {upgrade_cols})",
            down="with op.batch_alter_table('shipments') as b:\n"
            "    b.drop_constraint('pk_shipments', type_='primary')\n"
            f"    b.create_primary_key('shipments_pkey', {downgrade_cols})",
        )
    return up(
        "op.drop_constraint('shipments_pkey', 'shipments', type_='primary')",
        f"op.create_primary_key('pk_shipments', 'shipments', {upgrade_cols})",
        down="op.drop_constraint('pk_shipments', 'shipments', type_='primary')\n"
        f"op.create_primary_key('shipments_pkey', 'shipments', {downgrade_cols})",
    )


@pytest.mark.parametrize("batch", [False, True], ids=["ops", "batch"])
@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_a_key_re_created_on_the_same_columns_is_not_a_key_change(dialect: str, batch: bool) -> None:
    rules = found(keyed("['id']", batch=batch), dialect)
    assert "change-primary-key" not in rules
    if dialect == "postgresql":  # the index is still built again under ACCESS EXCLUSIVE: said once per phase, with the rename
        (f, _) = rules["create-index-non-concurrent"]
        assert f.phase == "upgrade" and "same columns (id)" in f.message and "ACCESS EXCLUSIVE" in f.message
        assert "RENAME CONSTRAINT shipments_pkey TO pk_shipments" in f.fix


@pytest.mark.parametrize("batch", [False, True], ids=["ops", "batch"])
def test_a_key_whose_columns_change_still_is(batch: bool) -> None:
    rules = found(keyed("['id', 'carrier_id']", batch=batch), "postgresql")
    # said once, where the upgrade changes it: the downgrade that puts the old key back only undoes that
    assert {f.phase for f in rules["change-primary-key"]} == {"upgrade"}
    assert "create-index-non-concurrent" not in rules


def test_without_the_old_key_a_re_created_key_counts_as_changed() -> None:
    src = up("op.drop_constraint('shipments_pkey', 'shipments', type_='primary')",
             "op.create_primary_key('pk_shipments', 'shipments', ['id'])")
    (f,) = found(src, "postgresql")["change-primary-key"]  # one change of key, said where the new one is set
    assert f.message.startswith("Replaces primary key shipments_pkey of shipments")


@pytest.mark.postgres
def test_postgresql_rebuilds_a_re_created_key_and_renames_one_in_place(pg_url: str) -> None:
    def index_file(c, name: str) -> int:
        return c.execute(sa.text("SELECT relfilenode FROM pg_class WHERE relname = :n"), {"n": name}).scalar()

    with own_database(pg_url) as eng, eng.connect() as c:
        c.execute(sa.text("CREATE TABLE shipments (id int CONSTRAINT shipments_pkey PRIMARY KEY, carrier_id int)"))
        c.execute(sa.text("INSERT INTO shipments SELECT g, g % 5 FROM generate_series(1, 500) g"))
        before = index_file(c, "shipments_pkey")
        with eng.execution_options(isolation_level="READ COMMITTED").begin() as t:  # one transaction, as alembic's
            t.execute(sa.text("ALTER TABLE shipments DROP CONSTRAINT shipments_pkey"))
            t.execute(sa.text("ALTER TABLE shipments ADD CONSTRAINT pk_shipments PRIMARY KEY (id)"))
            held = set(t.execute(sa.text(
                "SELECT mode FROM pg_locks WHERE locktype = 'relation' AND relation = 'shipments'::regclass "
                "AND pid = pg_backend_pid()")).scalars())
        assert "AccessExclusiveLock" in held
        rebuilt = index_file(c, "pk_shipments")
        assert rebuilt != before  # a new index, built from the table's rows
        c.execute(sa.text("ALTER TABLE shipments RENAME CONSTRAINT pk_shipments TO shipments_pkey"))
        assert index_file(c, "shipments_pkey") == rebuilt  # the rename keeps the index: catalogue only
        c.execute(sa.text("CREATE TABLE parcels (id int PRIMARY KEY, shipment_id int REFERENCES shipments (id))"))
        with pytest.raises(sa.exc.DBAPIError, match="depend"):
            c.execute(sa.text("ALTER TABLE shipments DROP CONSTRAINT shipments_pkey"))


# --------------------------------------------------------------------------- JSON, JSONB and text on PostgreSQL

@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (sa.JSON(), postgresql.JSONB(), "rewrite"),  # every document kept
        (postgresql.JSONB(), sa.JSON(), "rewrite"),
        (sa.Text(), postgresql.JSONB(), "change"),  # fails on text that is not JSON; loses nothing
        (sa.String(500), sa.JSON(), "change"),
        (postgresql.JSONB(), sa.Text(), "rewrite"),  # every document has a text form
        (sa.JSON(), sa.String(), "rewrite"),
        (postgresql.JSONB(), sa.String(40), "narrow"),  # a long document does not fit
    ],
)
def test_json_type_changes_are_classed_by_what_happens_to_the_values(old, new, expected) -> None:
    assert classify_type_change(old, new, "postgresql") == expected


def _json_change(old: str, new: str) -> str:
    return up(
        f"op.alter_column('events', 'payload', existing_type={old}, type_={new}, postgresql_using='payload::jsonb')",
        down=f"op.alter_column('events', 'payload', existing_type={new}, type_={old})",
    ).replace("def upgrade", "from sqlalchemy.dialects import postgresql\n\n\ndef upgrade", 1)


def test_json_to_jsonb_is_a_rewrite_that_loses_no_document() -> None:
    rules = found(_json_change("sa.JSON()", "postgresql.JSONB()"), "postgresql")
    (f,) = rules["alter-column-type"]
    assert f.severity == "error" and "ACCESS EXCLUSIVE" in f.message  # the lock stays an error (unless the table is small)
    assert "no document is lost" in f.message and "fails" not in f.message
    assert "lossy-downgrade" not in rules


def test_text_to_jsonb_fails_on_text_that_is_not_json_and_is_not_called_lossy() -> None:
    rules = found(_json_change("sa.Text()", "postgresql.JSONB()"), "postgresql")
    (f,) = rules["alter-column-type"]
    assert f.severity == "error" and "not valid JSON" in f.message and "truncat" not in f.message
    assert "lossy-downgrade" not in rules
    back = up("op.alter_column('events', 'payload', existing_type=postgresql.JSONB(), type_=sa.Text())",
              down="op.alter_column('events', 'payload', existing_type=sa.Text(), type_=postgresql.JSONB(), "
              "postgresql_using='payload::jsonb')").replace("def upgrade", "from sqlalchemy.dialects import postgresql\n\n\ndef upgrade", 1)
    rules = found(back, "postgresql")
    assert "no data is lost" in rules["alter-column-type"][0].message and "lossy-downgrade" not in rules


@pytest.mark.postgres
def test_postgresql_keeps_every_document_from_json_to_jsonb_and_refuses_text_that_is_not_json(pg_url: str) -> None:
    with own_database(pg_url) as eng, eng.connect() as c:
        c.execute(sa.text("CREATE TABLE events (id int PRIMARY KEY, payload json, note text)"))
        c.execute(sa.text("""INSERT INTO events VALUES (1, '{"b": 1,  "a": [1, 2], "a": 3}', '{"k": 1}'), (2, '[1, 2.50]', 'not json')"""))
        table_file = "SELECT relfilenode FROM pg_class WHERE relname = 'events'"
        before = c.execute(sa.text(table_file)).scalar()
        c.execute(sa.text("ALTER TABLE events ALTER COLUMN payload TYPE jsonb USING payload::jsonb"))
        assert c.execute(sa.text(table_file)).scalar() != before  # rewritten
        docs = c.execute(sa.text("SELECT payload::text FROM events ORDER BY id")).scalars().all()
        assert docs == ['{"a": 3, "b": 1}', "[1, 2.50]"]  # normalised: spacing, key order, the last duplicate key
        with pytest.raises(sa.exc.DBAPIError, match="invalid input syntax for type json"):
            c.execute(sa.text("ALTER TABLE events ALTER COLUMN note TYPE jsonb USING note::jsonb"))
        assert c.execute(sa.text("SELECT note FROM events ORDER BY id")).scalars().all() == ['{"k": 1}', "not json"]  # nothing lost
        c.execute(sa.text("ALTER TABLE events ALTER COLUMN payload TYPE text"))  # every document has a text form
        assert c.execute(sa.text("SELECT payload FROM events ORDER BY id")).scalars().all() == docs


# --------------------------------------------------------------------------- a table copied by hand, one column left out

_RESTORE = (
    "op.execute('CREATE TABLE _members_old (id INTEGER PRIMARY KEY, email VARCHAR(200) NOT NULL, nickname VARCHAR(50))')\n"
    "op.execute('INSERT INTO _members_old (id, email, nickname) SELECT id, email, nickname FROM members')\n"
    "op.execute('DROP TABLE members')\n"
    "op.execute('ALTER TABLE _members_old RENAME TO members')"
)


def recreation(copy: str) -> list[str]:
    """The hand-written re-creation of members (SQLite's way to change a table), copying with ``copy``."""
    return [
        "CREATE TABLE _members_new (id INTEGER PRIMARY KEY, email VARCHAR(200) NOT NULL, nickname VARCHAR(80))",
        copy,
        "DROP TABLE members",
        "ALTER TABLE _members_new RENAME TO members",
    ]


def as_revision(statements: list[str], down: str = _RESTORE) -> str:
    return up(*(f"op.execute({s!r})" for s in statements), down=down)


@pytest.mark.parametrize("dialect", ["sqlite", "mysql"])
def test_a_column_the_copy_leaves_out_is_data_loss_naming_it(dialect: str) -> None:
    statements = recreation("INSERT INTO _members_new (id, email) SELECT id, email FROM members")
    (f,) = found(as_revision(statements), dialect)["table-copy-leaves-column"]
    assert f.severity == "error" and f.phase == "upgrade" and f.table == "members" and f.column == "nickname"
    assert "nickname" in f.message and "data loss" in f.message


@pytest.mark.parametrize(
    "copy",
    [
        "INSERT INTO _members_new (id, email, nickname) SELECT id, email, nickname FROM members",
        "INSERT INTO _members_new SELECT * FROM members",
        "INSERT INTO _members_new (id, email, nickname) SELECT id, lower(email), COALESCE(nickname, '') FROM members",
    ],
    ids=["named", "star", "expressions"],
)
def test_a_copy_that_reads_every_column_is_quiet(copy: str) -> None:
    assert "table-copy-leaves-column" not in found(as_revision(recreation(copy)), "sqlite")


def test_without_the_old_columns_nothing_is_said() -> None:
    statements = recreation("INSERT INTO _members_new (id, email) SELECT id, email FROM members")
    assert "table-copy-leaves-column" not in found(as_revision(statements, down="pass"), "sqlite")


def test_a_copy_into_a_table_that_stays_beside_the_old_one_is_not_a_re_creation() -> None:
    src = up("op.execute('CREATE TABLE member_emails (id INTEGER PRIMARY KEY, email VARCHAR(200))')",
             "op.execute('INSERT INTO member_emails (id, email) SELECT id, email FROM members')",
             down="op.execute('DROP TABLE member_emails')\n" + _RESTORE)
    assert "table-copy-leaves-column" not in found(src, "sqlite")


def test_the_old_table_made_earlier_in_the_same_phase_gives_its_columns() -> None:
    src = up("op.create_table('members', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('email', sa.String(200)), "
             "sa.Column('nickname', sa.String(50)))",
             *(f"op.execute({s!r})" for s in recreation("INSERT INTO _members_new (id, email) SELECT id, email FROM members")),
             down="op.drop_table('members')")
    (f,) = found(src, "sqlite")["table-copy-leaves-column"]
    assert f.column == "nickname"


def test_sqlite_loses_the_column_the_copy_leaves_out(tmp_path) -> None:
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'members.db'}")
    statements = recreation("INSERT INTO _members_new (id, email) SELECT id, email FROM members")
    try:
        with eng.begin() as c:
            c.execute(sa.text("CREATE TABLE members (id INTEGER PRIMARY KEY, email VARCHAR(200) NOT NULL, nickname VARCHAR(50))"))
            c.execute(sa.text("INSERT INTO members VALUES (1, 'a@example.org', 'ann'), (2, 'b@example.org', 'bo')"))
            for s in statements:
                c.execute(sa.text(s))
            rows = c.execute(sa.text("SELECT id, email, nickname FROM members ORDER BY id")).all()
    finally:
        eng.dispose()
    assert [tuple(r) for r in rows] == [(1, "a@example.org", None), (2, "b@example.org", None)]  # every nickname gone


# --------------------------------------------------------------------------- MySQL/MariaDB MODIFY and AUTO_INCREMENT


def modify(src: str) -> str:
    """The MODIFY alembic renders for the upgrade's alter_column of ``src`` on MySQL."""
    ops = review_source(src, dialect="mysql").review.operations
    return next(s for o in ops if o.kind == "alter_column" and o.phase == "upgrade" for s in o.sql)


@pytest.mark.mysql
def test_the_modify_alembic_renders_without_existing_autoincrement_breaks_inserts_on_mariadb(mysql_url: str) -> None:
    """What the rule claims, on the server: the MODIFY alembic renders for the bad example leaves AUTO_INCREMENT out
    and the next INSERT without an id fails; the fixed call's MODIFY keeps it."""
    from db_migrate.rules import get_rule

    (example,) = get_rule("modify-drops-auto-increment").examples
    for src, breaks in ((example.bad, True), (example.good, False)):
        with own_database(mysql_url) as eng:
            assert refused(eng, "CREATE TABLE bundle (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, u VARCHAR(5))") is None
            assert refused(eng, modify(src)) is None
            error = refused(eng, "INSERT INTO bundle (u) VALUES ('a')")
            assert (error is not None and "default" in error) is breaks, error


@pytest.mark.mysql
def test_the_modify_alembic_renders_without_existing_nullable_makes_a_not_null_column_nullable_on_mariadb(mysql_url: str) -> None:
    """What modify-drops-not-null claims, on the server: the bad example's MODIFY lets a NULL in, the fixed one not."""
    from db_migrate.rules import get_rule

    (example,) = get_rule("modify-drops-not-null").examples
    assert "modify-drops-not-null" in found(example.bad, "mysql") and "modify-drops-not-null" not in found(example.good, "mysql")
    for src, nullable in ((example.bad, True), (example.good, False)):
        with own_database(mysql_url) as eng:
            assert refused(eng, "CREATE TABLE users (quota INT NOT NULL)") is None
            assert refused(eng, modify(src)) is None
            assert (refused(eng, "INSERT INTO users (quota) VALUES (NULL)") is None) is nullable


def _narrowed(dialect_type: str) -> str:
    return up(f"op.alter_column('labels', 'name', existing_type={dialect_type}(50), type_=sa.String(20))",
              down=f"op.alter_column('labels', 'name', existing_type=sa.String(20), type_={dialect_type}(50))")


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_a_narrowed_varchar_is_refused_not_cut_so_its_downgrade_is_not_lossy(dialect: str) -> None:
    rules = found(_narrowed("sa.String"), dialect)
    assert "lossy-downgrade" not in rules
    cut = found(up("op.alter_column('shifts', 'hours', existing_type=sa.Numeric(6, 2), type_=sa.Integer())",
                   down="op.alter_column('shifts', 'hours', existing_type=sa.Integer(), type_=sa.Numeric(6, 2))"), dialect)
    assert "lossy-downgrade" in cut  # fractions are rounded away without a word


@pytest.mark.postgres
def test_postgresql_refuses_a_value_too_long_for_the_narrowed_varchar(pg_url: str) -> None:
    with own_database(pg_url) as eng:
        refused(eng, "CREATE TABLE labels (name varchar(50))")
        refused(eng, "INSERT INTO labels VALUES ('a label of more than twenty characters')")
        assert "too long" in (refused(eng, "ALTER TABLE labels ALTER COLUMN name TYPE varchar(20)") or "")


@pytest.mark.mysql
def test_mariadb_refuses_a_value_too_long_for_the_narrowed_varchar(mysql_url: str) -> None:
    with own_database(mysql_url) as eng:
        refused(eng, "CREATE TABLE labels (name varchar(50))")
        refused(eng, "INSERT INTO labels VALUES ('a label of more than twenty characters')")
        assert "truncated" in (refused(eng, "ALTER TABLE labels MODIFY name varchar(20)") or "").lower()


@pytest.mark.parametrize(("old", "new", "change"), [
    ("sa.REAL()", "sa.Float(precision=3)", "same"), ("sa.Float(precision=24)", "sa.REAL()", "same"),
    ("sa.REAL()", "sa.Float(precision=53)", "rewrite"), ("postgresql.DOUBLE_PRECISION()", "sa.REAL()", "narrow"),
])
def test_postgresql_stores_float_p_up_to_24_as_real(old: str, new: str, change: str) -> None:
    assert classify_type_change(eval(old), eval(new), "postgresql") == change


@pytest.mark.postgres
def test_postgresql_reports_float_3_as_real(pg_url: str) -> None:
    with own_database(pg_url) as eng, eng.connect() as c:
        c.execute(sa.text("CREATE TABLE risks (a real, b float(3), c float(25))"))
        got = dict(c.execute(sa.text("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'risks'")).all())
    assert got == {"a": "real", "b": "real", "c": "double precision"}


@pytest.mark.parametrize(("server", "dialect", "delete"), [
    ("mysql_url", "mysql", "DELETE c FROM visits c LEFT JOIN pages p ON c.page_id = p.id WHERE p.id IS NULL"),
    ("pg_url", "postgresql", "DELETE FROM visits v USING pages p WHERE v.page_id = p.id AND p.gone"),
])
def test_the_backup_of_a_delete_that_joins_keeps_exactly_the_rows_it_deletes(server: str, dialect: str, delete: str, request) -> None:
    (f,) = found(up(f'op.execute("{delete}")'), dialect)["destructive-sql"]
    keep = next(line for line in f.fix.splitlines() if "CREATE TABLE" in line)
    keep_sql = keep.split("op.execute(", 1)[1].rstrip(")").strip("'\"")
    with own_database(request.getfixturevalue(server)) as eng:
        for sql in ("CREATE TABLE pages (id int PRIMARY KEY, gone boolean)", "CREATE TABLE visits (id int PRIMARY KEY, page_id int)",
                    "INSERT INTO pages VALUES (1, false), (2, true)", "INSERT INTO visits VALUES (10, 1), (11, 2), (12, 3)"):
            assert refused(eng, sql) is None
        assert refused(eng, keep_sql) is None, keep_sql
        with eng.connect() as c:
            kept = sorted(r[0] for r in c.execute(sa.text("SELECT id FROM visits_backup")))
        assert refused(eng, delete) is None
        with eng.connect() as c:
            left = sorted(r[0] for r in c.execute(sa.text("SELECT id FROM visits")))
    assert kept and sorted(kept + left) == [10, 11, 12] and not set(kept) & set(left)


def test_sqlite_keeps_every_value_through_a_narrowed_varchar_and_a_flag_made_boolean(tmp_path) -> None:
    """SQLite enforces no length and stores by affinity: what PostgreSQL refuses, SQLite keeps whole."""
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'flags.db'}")
    with eng.begin() as c:
        c.execute(sa.text("CREATE TABLE agents (label VARCHAR(5), active BOOLEAN)"))
        c.execute(sa.text("INSERT INTO agents VALUES ('a label longer than five', 2)"))
        assert c.execute(sa.text("SELECT length(label), active FROM agents")).one() == (24, 2)
    eng.dispose()
    narrowed = up("with op.batch_alter_table('agents') as b:\n        b.alter_column('label', existing_type=sa.Text(), type_=sa.String(5))",
                  down="with op.batch_alter_table('agents') as b:\n    b.alter_column('label', existing_type=sa.String(5), type_=sa.Text())")
    flags = up("with op.batch_alter_table('agents') as b:\n        b.alter_column('active', existing_type=sa.Integer(), type_=sa.Boolean())",
               down="with op.batch_alter_table('agents') as b:\n    b.alter_column('active', existing_type=sa.Boolean(), type_=sa.Integer())")
    for src in (narrowed, flags):
        rules = found(src, "sqlite")
        assert not {"alter-column-type", "lossy-downgrade", "downgrade-tightens-column"} & set(rules), rules
    assert "lossy-downgrade" in found(up("op.alter_column('agents', 'score', existing_type=sa.Float(), type_=sa.Integer())",
                                         down="op.alter_column('agents', 'score', existing_type=sa.Integer(), type_=sa.Float())"), "sqlite")


@pytest.mark.mysql
def test_mariadb_fills_existing_rows_of_a_new_not_null_enum_with_its_first_member(mysql_url: str) -> None:
    with own_database(mysql_url) as eng:
        assert refused(eng, "CREATE TABLE devices (id INT PRIMARY KEY)") is None
        assert refused(eng, "INSERT INTO devices VALUES (1)") is None
        assert refused(eng, "ALTER TABLE devices ADD COLUMN state ENUM('enabled', 'disabled') NOT NULL") is None
        with eng.connect() as c:
            assert c.execute(sa.text("SELECT state FROM devices")).scalar() == "enabled"
