"""runtime.comparators: what autogenerate does not compare, written as operations (unit and MariaDB)."""

from __future__ import annotations

import pytest

from db_migrate.runtime.comparators import enum_change, install


@pytest.mark.parametrize("old, new, want", [
    (["a", "b"], ["a", "x", "b"], ("add", [("x", "AFTER", "a")])),
    (["a", "b"], ["x", "a", "b"], ("add", [("x", "BEFORE", "a")])),
    (["a", "b"], ["a", "c"], ("rename", [("b", "c")])),
    (["a", "b", "c"], ["a", "c"], ("recreate", ["b"])),
    (["a", "b"], ["b", "a"], ("recreate", [])),  # a new order is a new type
    (["a", "b"], ["a", "b", "c", "d"], ("add", [("c", "AFTER", "b"), ("d", "AFTER", "c")])),
])
def test_enum_change_classification(old, new, want):
    assert enum_change(old, new) == want


def _diff_on(server_url: str, ddl: list[str], table_args, notes: dict | None = None) -> tuple[str, str]:
    """Create table t with ``ddl`` in a scratch database on ``server_url``; autogenerate against a model of ``table_args``."""
    import sqlalchemy as sa
    from alembic.autogenerate import produce_migrations, render_python_code
    from alembic.runtime.migration import MigrationContext

    from db_migrate.scratch import scratch_database

    install()
    with scratch_database(server_url, purpose="comparators_test") as db:
        engine = sa.create_engine(db.url)
        try:
            with engine.begin() as c:
                for stmt in ddl:
                    c.exec_driver_sql(stmt)
            md = sa.MetaData()
            sa.Table("t", md, sa.Column("id", sa.Integer, primary_key=True), *table_args())
            with engine.connect() as c:
                ctx = MigrationContext.configure(c, opts={"target_metadata": md})
                script = produce_migrations(ctx, md)
                if notes is not None:
                    from db_migrate.runtime.comparators import notes as notes_of

                    notes["notes"] = notes_of(ctx)
        finally:
            engine.dispose()
    return render_python_code(script.upgrade_ops), render_python_code(script.downgrade_ops)


@pytest.mark.mysql
def test_mysql_set_values_are_an_alter_column_with_the_new_type(mysql_url):
    import sqlalchemy as sa
    from sqlalchemy.dialects import mysql

    up, down = _diff_on(mysql_url, ["CREATE TABLE t (id int primary key, tags SET('x','y') DEFAULT 'x')"],
                        lambda: [sa.Column("tags", mysql.SET("x", "y", "z"), server_default="x")])
    assert "type_=mysql.SET('x', 'y', 'z')" in up and "type_=mysql.SET('x', 'y')" in down
    assert "server_default=" not in up.replace("existing_server_default", "")  # an equal default is no change


@pytest.mark.mysql
def test_mysql_server_defaults_are_compared_by_value_not_text(mysql_url):
    import sqlalchemy as sa

    ddl = ["CREATE TABLE t (id int primary key, flag BOOL DEFAULT 1, on_ BOOL DEFAULT 1, "
           "created DATETIME DEFAULT CURRENT_TIMESTAMP, name VARCHAR(10) DEFAULT 'y')"]
    up, _ = _diff_on(mysql_url, ddl, lambda: [
        sa.Column("flag", sa.Boolean, server_default=sa.false()),  # 1 in the database: a real change
        sa.Column("on_", sa.Boolean, server_default=sa.true()),  # true and 1 are the same value
        sa.Column("created", sa.DateTime, server_default=sa.func.now()),  # now() and current_timestamp() too
        sa.Column("name", sa.String(10), server_default="x"),  # 'y' in the database: a real change
    ])
    assert "'flag'" in up and "'name'" in up and "server_default='x'" in up
    assert "'on_'" not in up and "'created'" not in up


@pytest.mark.postgres
def test_a_failing_comparator_is_a_note_and_autogenerate_carries_on(pg_url, monkeypatch):
    import sqlalchemy as sa

    from db_migrate.runtime import comparators

    def broken(*args):
        raise RuntimeError("no catalogue here")

    monkeypatch.setattr(comparators, "_columns_of_type", broken)
    seen = {}

    def table_args():
        return [sa.Column("mood", sa.Enum("happy", "sad", "meh", name="mood")), sa.Column("n", sa.Integer)]

    up, _ = _diff_on(pg_url, ["CREATE TYPE mood AS ENUM ('happy', 'sad')",
                              "CREATE TABLE t (id int primary key, mood mood)"], table_args, notes=seen)
    assert "add_column('t', sa.Column('n'" in up  # alembic's own comparison went on
    (note,) = seen["notes"]
    assert note["rule"] == "blind-spot-not-compared" and "enum values" in note["message"] and "no catalogue" in note["message"]
