"""The alembic runtime: the project's env.py on a scratch database, with safety nets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

sys.path.insert(0, str(Path(__file__).parent))
from projectfactory import DEFAULT_ENV_PY, make_project  # noqa: E402

from db_migrate.errors import ProjectCodeError  # noqa: E402
from db_migrate.project import load_project  # noqa: E402
from db_migrate.sandbox import run_job  # noqa: E402
from db_migrate.scratch import scratch_database  # noqa: E402

CREATE_T = (
    "def upgrade():\n    op.create_table('t', sa.Column('id', sa.Integer, primary_key=True), sa.Column('name', sa.String(20)))\n"
    "def downgrade():\n    op.drop_table('t')\n"
)


def _job(name: str, root: Path, url: str, **kw):
    p = load_project(root)
    return run_job(f"db_migrate.runtime:{name}", cwd=p.root, timeout=30,
                   config_file=str(p.config_file), section=p.section, url=url, **kw)


def _tables(url: str) -> set[str]:
    eng = create_engine(url)
    try:
        return set(inspect(eng).get_table_names())
    finally:
        eng.dispose()


def test_upgrade_and_downgrade_use_the_project_env(residency: Path) -> None:
    with scratch_database() as db:
        info = _job("upgrade", residency, db.url, revision="heads")
        assert info.runner == "project-env" and info.runner_reason is None
        assert len(info.heads) == 1
        assert {"persons", "assignments", "audit_log"} <= _tables(db.url)
        info = _job("downgrade", residency, db.url, revision="base")
        assert info.heads == []
        assert _tables(db.url) == {"alembic_version"}


def test_env_building_its_own_engine_is_redirected_to_scratch(tmp_path: Path) -> None:
    users_db = tmp_path / "users.db"  # "the user's database", named in env.py (as if read from a settings module)
    env = DEFAULT_ENV_PY.replace(
        'connection = config.attributes.get("connection")',
        'import sqlalchemy\n    connection = None\n'
        f'    engine = sqlalchemy.create_engine("sqlite:///{users_db}")\n'
        '    with engine.connect() as connection:\n        _run(connection)\n        connection.commit()\n    return',
    )
    root = make_project(tmp_path / "p", [CREATE_T], env_py=env)
    with scratch_database() as db:
        info = _job("upgrade", root, db.url, revision="heads")
        assert info.heads == ["000000000001"]
        assert "t" in _tables(db.url)
        assert "redirected" in (info.runner_reason or "")
    assert not users_db.exists() or "t" not in _tables(f"sqlite:///{users_db}")


def test_env_that_cannot_import_app_code_falls_back_to_built_in(tmp_path: Path) -> None:
    env = "import app_module_that_does_not_exist\n" + DEFAULT_ENV_PY
    root = make_project(tmp_path / "p", [CREATE_T], env_py=env)
    with scratch_database() as db:
        info = _job("upgrade", root, db.url, revision="heads")
        assert info.runner == "built-in"
        assert "app_module_that_does_not_exist" in info.runner_reason
        assert info.heads == ["000000000001"] and "t" in _tables(db.url)


def test_env_that_commits_inside_a_migration(tmp_path: Path, pg_url: str) -> None:
    body = (
        "def upgrade():\n    op.create_table('t', sa.Column('id', sa.Integer, primary_key=True))\n"
        "    op.get_bind().commit()\n    op.execute('INSERT INTO t (id) VALUES (1)')\n"
        "def downgrade():\n    op.drop_table('t')\n"
    )
    root = make_project(tmp_path / "p", [body])
    with scratch_database(pg_url) as db:
        info = _job("upgrade", root, db.url, revision="heads")
        assert info.heads == ["000000000001"]


def test_a_failing_migration_is_a_project_code_error_with_location(tmp_path: Path) -> None:
    body = "def upgrade():\n    op.execute('SELECT * FROM no_such_table')\ndef downgrade():\n    pass\n"
    root = make_project(tmp_path / "p", [body])
    with scratch_database() as db:
        with pytest.raises(ProjectCodeError) as err:
            _job("upgrade", root, db.url, revision="heads")
    assert "no_such_table" in err.value.message and "000000000001_rev.py:" in err.value.message


def test_autogenerate_diff_writes_no_file(tmp_path: Path) -> None:
    models = (
        "import sqlalchemy as sa\ntarget_metadata = sa.MetaData()\n"
        "sa.Table('t', target_metadata, sa.Column('id', sa.Integer, primary_key=True), sa.Column('name', sa.String(20)),"
        " sa.Column('email', sa.String(100)))\n"
    )
    root = make_project(tmp_path / "p", [CREATE_T], models=models)
    before = sorted(p.name for p in (root / "migrations" / "versions").iterdir())
    with scratch_database() as db:
        diff = _job("autogenerate_diff", root, db.url)
    assert not diff.empty
    assert [(o.op, o.table, o.name) for o in diff.ops] == [("add_column", "t", "email")]
    assert "op.add_column('t'" in diff.python
    assert sorted(p.name for p in (root / "migrations" / "versions").iterdir()) == before


def test_async_env_runs_through_the_project_env(tmp_path: Path) -> None:
    """An async env.py (AsyncEngine + run_sync) runs as written, against the scratch database."""
    env = '''import asyncio
from alembic import context
from sqlalchemy.ext.asyncio import async_engine_from_config

config = context.config


def do_run(connection):
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def main():
    engine = async_engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.")
    async with engine.connect() as connection:
        await connection.run_sync(do_run)
        await connection.commit()
    await engine.dispose()


asyncio.run(main())
'''
    root = make_project(tmp_path / "p", [CREATE_T], env_py=env)
    with scratch_database() as db:
        info = _job("upgrade", root, db.url, revision="heads")
        assert info.heads == ["000000000001"] and "t" in _tables(db.url)
        assert info.runner == "project-env", info.runner_reason
