"""generate.comparators: what autogenerate does not compare, written as operations (unit and MariaDB)."""

from __future__ import annotations

import pytest

from db_migrate.generate.comparators import enum_change, install


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


@pytest.mark.mysql
def test_mysql_set_values_are_an_alter_column_with_the_new_type(mysql_url):
    import sqlalchemy as sa
    from alembic.autogenerate import produce_migrations, render_python_code
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.dialects import mysql

    from db_migrate.scratch import scratch_database

    install()
    with scratch_database(mysql_url, purpose="comparators_test") as db:
        engine = sa.create_engine(db.url)
        try:
            with engine.begin() as c:
                c.exec_driver_sql("CREATE TABLE t (id int primary key, tags SET('x','y') DEFAULT 'x')")
            md = sa.MetaData()
            sa.Table("t", md, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("tags", mysql.SET("x", "y", "z"), server_default="x"))
            with engine.connect() as c:
                script = produce_migrations(MigrationContext.configure(c, opts={"target_metadata": md}), md)
        finally:
            engine.dispose()
    up, down = render_python_code(script.upgrade_ops), render_python_code(script.downgrade_ops)
    assert "type_=mysql.SET('x', 'y', 'z')" in up and "type_=mysql.SET('x', 'y')" in down
    assert "server_default=" not in up.replace("existing_server_default", "")  # an equal default is no change
