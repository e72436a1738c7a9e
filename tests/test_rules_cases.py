"""Rule behaviour beyond the catalogue examples: the false positives peers are known for, severities, messages."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from db_migrate.review.engine import review_source
from db_migrate.rules._helpers import classify_type_change


def rules_of(body: str, dialect: str = "postgresql") -> dict[str, list]:
    out: dict[str, list] = {}
    for f in review_source(body, dialect=dialect).findings:
        out.setdefault(f.rule, []).append(f)
    return out


def up(*lines: str, down: str = "pass") -> str:
    return "def upgrade():\n" + "".join(f"    {line}\n" for line in lines) + f"\n\ndef downgrade():\n    {down}\n"


@pytest.mark.parametrize(
    ("old", "new", "dialect", "expected"),
    [
        (sa.String(50), sa.String(200), "postgresql", "widen"),
        (sa.String(200), sa.String(50), "postgresql", "narrow"),
        (sa.String(200), sa.Text(), "postgresql", "widen"),
        (sa.String(200), sa.Text(), "mysql", "rewrite"),
        (sa.Text(), sa.String(200), "postgresql", "narrow"),
        (sa.Numeric(10, 2), sa.Numeric(12, 2), "postgresql", "widen"),
        (sa.Numeric(10, 2), sa.Numeric(12, 1), "postgresql", "narrow"),
        (sa.Integer(), sa.BigInteger(), "postgresql", "rewrite"),
        (sa.BigInteger(), sa.Integer(), "postgresql", "narrow"),
        (sa.Integer(), sa.String(20), "postgresql", "rewrite"),  # every integer has a text form that fits
        (sa.Integer(), sa.String(5), "postgresql", "narrow"),  # -2147483648 does not
        (sa.CHAR(10), sa.String(10), "postgresql", "change"),
        (None, sa.Text(), "postgresql", "unknown"),
        (sa.String(20), sa.VARCHAR(20), "postgresql", "same"),
        (sa.Enum("a", name="e"), sa.Enum("a", "b", name="e"), "postgresql", "enum"),
    ],
)
def test_classify_type_change(old, new, dialect, expected):
    assert classify_type_change(old, new, dialect) == expected


def test_not_null_with_constant_or_stable_default_is_fast():
    for default in ("'0'", "sa.text('0')", "sa.func.now()", "sa.text('CURRENT_TIMESTAMP')"):
        found = rules_of(up(f"op.add_column('t', sa.Column('c', sa.DateTime(), nullable=False, server_default={default}))"))
        assert "add-column-not-null-no-default" not in found, default
        assert "add-column-volatile-default" not in found, default


@pytest.mark.parametrize("fn", ["gen_random_uuid()", "random()", "clock_timestamp()", "uuid_generate_v4()"])
def test_volatile_defaults_rewrite(fn):
    found = rules_of(up(f"op.add_column('t', sa.Column('c', sa.Text(), server_default=sa.text('{fn}')))"))
    (f,) = found["add-column-volatile-default"]
    assert f.severity == "error" and fn in f.message and "t.c" in f.message


def test_string_default_is_a_literal_not_a_function():
    # server_default="random()" renders DEFAULT 'random()': a constant string.
    assert "add-column-volatile-default" not in rules_of(up("op.add_column('t', sa.Column('c', sa.Text(), server_default='random()'))"))


def test_volatile_default_only_on_postgresql():
    body = up("op.add_column('t', sa.Column('c', sa.Text(), server_default=sa.text('random()')))")
    assert "add-column-volatile-default" not in rules_of(body, "mysql")


def test_type_changes_severity():
    widen = rules_of(up("op.alter_column('t', 'c', existing_type=sa.String(10), type_=sa.String(20))"))
    assert "alter-column-type" not in widen
    narrow = rules_of(up("op.alter_column('t', 'c', existing_type=sa.String(20), type_=sa.String(10))"))["alter-column-type"][0]
    assert narrow.severity == "error" and "ACCESS EXCLUSIVE" in narrow.message and "t.c" in narrow.message
    unknown = rules_of(up("op.alter_column('t', 'c', type_=sa.String(10))"))["alter-column-type"][0]
    assert unknown.severity == "warning" and "existing_type" in unknown.message
    mysql = rules_of(up("op.alter_column('t', 'c', existing_type=sa.Integer(), type_=sa.BigInteger())"), "mysql")["alter-column-type"][0]
    assert "ALGORITHM=COPY" in mysql.message


def test_operations_on_a_table_created_here_are_quiet():
    body = up(
        "op.create_table('t', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('u', sa.Integer()))",
        "op.add_column('t', sa.Column('c', sa.Integer(), nullable=False))",
        "op.alter_column('t', 'u', existing_type=sa.Integer(), type_=sa.BigInteger(), nullable=False)",
        "op.create_index('ix_t_u', 't', ['u'])",
        "op.create_foreign_key('fk_t_u', 't', 'users', ['u'], ['id'])",
        "op.create_check_constraint('ck_t_u', 't', 'u > 0')",
        "op.create_unique_constraint('uq_t_u', 't', ['u'])",
        "op.execute('UPDATE t SET u = 1')",
        down="op.drop_table('t')",
    )
    found = rules_of(body)
    assert not found, {k: [f.message for f in v] for k, v in found.items()}


def test_concurrent_index_inside_vs_outside_autocommit_block():
    inside = up("with op.get_context().autocommit_block():", "    op.create_index('ix', 't', ['a'], postgresql_concurrently=True)")
    outside = up("op.create_index('ix', 't', ['a'], postgresql_concurrently=True)")
    assert not {"concurrent-index-in-transaction", "create-index-non-concurrent"} & rules_of(inside).keys()
    found = rules_of(outside)
    assert found["concurrent-index-in-transaction"][0].severity == "error"
    assert "create-index-non-concurrent" not in found


def test_index_rules_do_not_apply_to_mysql():
    found = rules_of(up("op.create_index('ix', 't', ['a'])", "op.drop_index('ix2', table_name='t')"), "mysql")
    assert not {"create-index-non-concurrent", "drop-index-non-concurrent", "missing-lock-timeout"} & found.keys()


def test_set_not_null_after_add_and_backfill():
    add = "op.add_column('t', sa.Column('c', sa.Integer(), nullable=True))"
    setnn = "op.alter_column('t', 'c', existing_type=sa.Integer(), nullable=False)"
    assert "set-not-null" not in rules_of(up(add, "op.execute('UPDATE t SET c = 0')", setnn, down="op.drop_column('t', 'c')"))
    (f,) = rules_of(up(add, setnn, down="op.drop_column('t', 'c')"))["set-not-null"]
    assert f.severity == "error" and "NULL" in f.message
    existing = up(setnn, down="op.alter_column('t', 'c', existing_type=sa.Integer(), nullable=True)")
    (f,) = rules_of(existing)["set-not-null"]
    # PostgreSQL scans under ACCESS EXCLUSIVE and a safe form exists: an error (the severity principle)
    assert f.severity == "error" and f.phase == "upgrade"  # the downgrade's inverse alter is not flagged
    (f,) = rules_of(existing, "mysql")["set-not-null"]
    assert f.severity == "warning" and "database_url" in f.message  # an in-place rebuild: the harm is in the data


def test_destructive_sql_severity():
    # emptying a table is a warning like dropping it (whether its rows matter is the data's); the policy escalates
    assert rules_of(up("op.execute('DELETE FROM t')"))["destructive-sql"][0].severity == "warning"
    assert rules_of(up("op.execute('TRUNCATE t')"))["destructive-sql"][0].severity == "warning"
    assert rules_of(up("op.execute('DELETE FROM t WHERE id = 1')"))["destructive-sql"][0].severity == "warning"
    # a raw DROP TABLE is a drop_table operation (drop-table's finding); a schema has no alembic operation
    dropped = rules_of(up("op.execute('DROP TABLE t')"))
    assert "destructive-sql" not in dropped and dropped["drop-table"][0].table == "t"
    assert rules_of(up("op.execute('DROP SEQUENCE t_seq')"))["destructive-sql"][0].table == "t_seq"
    assert "destructive-sql" not in rules_of(up("op.execute('UPDATE t SET a = 1 WHERE id = 2')"))
    assert "destructive-sql" in rules_of(up("op.execute('UPDATE t SET a = 1')"))
    # same on MySQL, where sqlglot parses the SQL
    assert rules_of(up("op.execute('DELETE FROM t')"), "mysql")["destructive-sql"][0].severity == "warning"


def test_downgrade_not_inverse_names_what_is_left_behind():
    found = rules_of(up("op.create_index('ix_a', 't', ['a'])", down="op.execute('SELECT 1')"))
    assert any("index ix_a" in f.message and "does not drop it" in f.message for f in found["downgrade-not-inverse"])
    renamed = rules_of(up("op.alter_column('t', 'a', new_column_name='b')", down="op.alter_column('t', 'b', new_column_name='a')"))
    assert "downgrade-not-inverse" not in renamed
    stray = rules_of(up("op.add_column('t', sa.Column('c', sa.Integer()))", down="op.drop_column('t', 'c')\n    op.drop_table('other')"))
    assert any("other" in f.message for f in stray["downgrade-not-inverse"])


def test_downgrade_dropping_the_column_drops_its_index():
    body = up(
        "op.add_column('t', sa.Column('c', sa.Integer()))",
        "op.create_index('ix_t_c', 't', ['c'])",
        down="op.drop_column('t', 'c')",
    )
    assert "downgrade-not-inverse" not in rules_of(body)


def test_missing_lock_timeout_once_per_revision():
    body = up("op.add_column('t', sa.Column('a', sa.Integer()))", "op.add_column('u', sa.Column('b', sa.Integer()))")
    assert len(rules_of(body)["missing-lock-timeout"]) == 1
    assert "missing-lock-timeout" not in rules_of(up("op.execute(\"SET lock_timeout = '3s'\")", "op.add_column('t', sa.Column('a', sa.Integer()))"))


def test_merge_revision_is_not_empty_migration():
    source = (
        '"""merge"""\nfrom alembic import op\nimport sqlalchemy as sa\n\nrevision = "m1"\n'
        'down_revision = ("a1", "b1")\nbranch_labels = None\ndepends_on = None\n\n'
        "def upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"
    )
    assert "empty-migration" not in {f.rule for f in review_source(source).findings}


def test_unnamed_inline_foreign_key_in_add_column():
    source = up("op.add_column('t', sa.Column('u', sa.Integer(), sa.ForeignKey('users.id')))", down="op.drop_column('t', 'u')")
    # MySQL numbers a table's foreign keys (t_ibfk_<n>): which n depends on the keys the table already has
    (f,) = rules_of(source, "mysql")["unnamed-constraint"]
    assert "users.id" in f.message
    # PostgreSQL names it t_u_fkey, whatever else the table has: nothing to warn about
    assert "unnamed-constraint" not in rules_of(source)


def test_sqlite_batch_and_native_operations():
    assert "sqlite-alter-needs-batch" not in rules_of(up("op.drop_column('t', 'c')", "op.alter_column('t', 'a', new_column_name='b')"), "sqlite")
    assert "sqlite-alter-needs-batch" in rules_of(up("op.create_foreign_key('fk', 't', 'u', ['a'], ['id'])"), "sqlite")


def test_enum_value_removed_is_error_added_in_autocommit_is_fine():
    body = up(
        "op.alter_column('o', 's', existing_type=sa.Enum('a', 'b', name='st'), type_=sa.Enum('a', name='st'))"
    )
    (f,) = rules_of(body)["enum-value-change"]
    assert f.severity == "error" and "'b'" in f.message
    assert "alter-column-type" not in rules_of(body)


def test_findings_of_a_clean_migration():
    body = up(
        "op.execute(\"SET LOCAL lock_timeout = '5s'\")",
        "op.add_column('users', sa.Column('nick', sa.String(50), nullable=True))",
        down="op.drop_column('users', 'nick')",
    )
    assert rules_of(body) == {}


def test_a_table_moved_aside_to_be_rebuilt_under_its_name_is_not_a_rename():
    rebuild = ("op.rename_table('user', 'user_old')\n"
               "    op.create_table('user', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('email', sa.String(256)))\n"
               "    op.execute('INSERT INTO user (id, email) SELECT id, email FROM user_old')\n"
               "    op.drop_table('user_old')")
    assert "rename-table" not in rules_of(up(rebuild), "sqlite")
    assert "rename-table" in rules_of(up("op.rename_table('user', 'account')"), "sqlite")


def test_a_table_emptied_earlier_in_the_revision_has_no_rows_to_fail_or_scan():
    emptied = rules_of(up("op.execute('DELETE FROM runs')",
                          "op.add_column('runs', sa.Column('kind', sa.String(10), nullable=False))",
                          "op.create_foreign_key('fk_runs_pkg', 'runs', 'packages', ['pkg_id'], ['id'])"))
    assert not {"add-column-not-null-no-default", "add-foreign-key-validating"} & set(emptied)
    assert "destructive-sql" in emptied  # emptying it is the finding
    kept = rules_of(up("op.execute('DELETE FROM runs WHERE id < 10')",
                       "op.add_column('runs', sa.Column('kind', sa.String(10), nullable=False))"))
    assert "add-column-not-null-no-default" in kept


def test_a_column_moved_aside_and_added_back_under_its_name_is_not_a_rename():
    swap = up("op.alter_column('metric', 'unit', new_column_name='tmp_unit', existing_type=sa.String(31))",
              "op.add_column('metric', sa.Column('unit', sa.String(255), nullable=True))",
              "op.execute('UPDATE metric SET unit = tmp_unit')",
              "op.drop_column('metric', 'tmp_unit')")
    assert "rename-column" not in rules_of(swap)
    assert "rename-column" in rules_of(up("op.alter_column('metric', 'unit', new_column_name='units', existing_type=sa.String(31))"))


def test_a_column_whose_values_were_copied_into_another_is_not_lost_when_dropped(tmp_path):
    from db_migrate.classify import classify_escalation
    from db_migrate.project import load_project
    from projectfactory import make_project

    folded = ("op.add_column('resource', sa.Column('creator', sa.String(255), nullable=True))",
              "op.execute(\"UPDATE resource SET creator = created_by_user || ':' || created_by_project\")",
              "op.drop_column('resource', 'created_by_user')", "op.drop_column('resource', 'created_by_project')")
    assert "drop-column" not in rules_of(up(*folded))
    project = load_project(make_project(tmp_path, [{"body": up(*folded)}]))
    assert "drop-with-data" not in {t.trigger for t in classify_escalation(project, "000000000001").escalation.triggers}
    # a column dropped without its values going anywhere still is
    assert "drop-column" in rules_of(up("op.execute('UPDATE resource SET creator = NULL')", "op.drop_column('resource', 'created_by_user')"))
