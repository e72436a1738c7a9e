"""Scratch databases: created, used, and always dropped; nothing else touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from db_migrate.errors import UsageError
from db_migrate.scratch import drop_database, scratch_database


def _exists(server_url: str, name: str) -> bool:
    eng = create_engine(server_url)
    with eng.connect() as c:
        if eng.dialect.name == "postgresql":
            found = c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        else:
            found = c.execute(text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :n"), {"n": name}).first()
    eng.dispose()
    return found is not None


def test_sqlite_scratch_is_a_temp_file_removed_afterwards() -> None:
    with scratch_database(purpose="t") as db:
        assert db.dialect == "sqlite" and db.server_url is None
        eng = create_engine(db.url)
        with eng.begin() as c:
            c.execute(text("CREATE TABLE t (id INTEGER)"))
        eng.dispose()
        path = Path(db.name)
        assert path.is_file()
    assert not path.exists() and not path.parent.exists()


def test_sqlite_template_is_copied_not_used(tmp_path: Path) -> None:
    tpl = tmp_path / "tpl.db"
    eng = create_engine(f"sqlite:///{tpl}")
    with eng.begin() as c:
        c.execute(text("CREATE TABLE t (id INTEGER)"))
    eng.dispose()
    with scratch_database(template=tpl) as db:
        assert Path(db.name) != tpl
        eng = create_engine(db.url)
        with eng.begin() as c:
            c.execute(text("DROP TABLE t"))
        eng.dispose()
    eng = create_engine(f"sqlite:///{tpl}")
    with eng.connect() as c:
        assert c.execute(text("SELECT count(*) FROM t")).scalar() == 0  # the template still has its table
    eng.dispose()


@pytest.mark.parametrize("server", ["pg_url", "mysql_url"])
def test_server_scratch_is_dropped_even_on_error(server: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(server)
    with pytest.raises(RuntimeError):
        with scratch_database(url, purpose="t") as db:
            name = db.name
            assert name.startswith("dbm_t_")
            assert _exists(url, name)
            eng = create_engine(db.url)
            with eng.connect() as c:  # left open on purpose: the drop must still succeed
                c.execute(text("CREATE TABLE t (id INTEGER)"))
                raise RuntimeError("boom")
    assert not _exists(url, name)


def test_unsupported_server_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        with scratch_database("oracle://u@host/db"):
            pass


def test_only_our_databases_are_ever_dropped(pg_url: str) -> None:
    with pytest.raises(UsageError):
        drop_database(pg_url, "postgres")


def test_no_scratch_database_on_a_production_server(residency: Path) -> None:
    """The refusal lives in scratch_database, so every tool that builds scratch databases honours it."""
    from db_migrate.errors import Refused
    from db_migrate.generate import generate_migration
    from db_migrate.heads import check_heads
    from db_migrate.project import load_project

    prod = "postgresql+psycopg://app:s3cret@prod-db.internal:5432/app"
    with pytest.raises(Refused, match="production"):
        with scratch_database(prod, purpose="x"):
            pass
    project = load_project(cwd=residency)
    with pytest.raises(Refused) as err:
        generate_migration(project, "nothing", scratch_url=prod)
    assert "s3cret" not in err.value.to_json()
    # asked to create a database there: the call is refused (exit 2), not a "proceed" with a note
    with pytest.raises(Refused) as err:
        check_heads(project, scratch_url=prod)
    assert "s3cret" not in err.value.to_json()
    # the project's own patterns count too
    (residency / "pyproject.toml").write_text('[tool.db-migrate]\nproduction_url_patterns = ["*ci-main*"]\n')
    with pytest.raises(Refused):
        with scratch_database("postgresql+psycopg://u@ci-main/app", settings=load_project(cwd=residency).settings):
            pass
