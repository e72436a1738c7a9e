"""The roundtrip's template cache: named by project, purged per project, bounded (least recently used
first), and saved even when env.py leaves a connection open."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent))
from projectfactory import DEFAULT_ENV_PY, make_project  # noqa: E402

from db_migrate.project import load_history, load_project  # noqa: E402
from db_migrate.roundtrip import test_roundtrip  # noqa: E402
from db_migrate.scratch.templates import (  # noqa: E402
    MIN_REVISIONS, TEMPLATE_PREFIX, cache_dir, project_tag, purge_templates, template_key,
)

TABLE = (
    "def upgrade():\n    op.create_table('t', sa.Column('id', sa.Integer, primary_key=True))\n"
    "def downgrade():\n    op.drop_table('t')\n"
)


def _history(n: int) -> list[str]:
    cols = [f"def upgrade():\n    op.add_column('t', sa.Column('c{i}', sa.Integer))\n"
            f"def downgrade():\n    op.drop_column('t', 'c{i}')\n" for i in range(n)]
    return [TABLE, *cols]


def _pg_templates(pg_url: str, tag: str) -> list[str]:
    eng = create_engine(pg_url)
    with eng.connect() as c:
        names = c.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                          {"p": (TEMPLATE_PREFIX + tag).replace("_", r"\_") + "%"}).scalars().all()
    eng.dispose()
    return list(names)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_templates_are_named_and_purged_per_project(tmp_path: Path, pg_url: str) -> None:
    a = load_project(make_project(tmp_path / "a", _history(MIN_REVISIONS + 1)))
    b = load_project(make_project(tmp_path / "b", _history(MIN_REVISIONS + 1)))
    try:
        assert test_roundtrip(a, database_url=pg_url, rows=2).template
        assert test_roundtrip(b, database_url=pg_url, rows=2).template
        assert len(_pg_templates(pg_url, project_tag(a))) == 1 and len(_pg_templates(pg_url, project_tag(b))) == 1
        removed = purge_templates(pg_url, project=a)
        assert removed == _pg_templates(pg_url, project_tag(a)) + removed  # all of a's, and a's are gone
        assert _pg_templates(pg_url, project_tag(a)) == []
        assert len(_pg_templates(pg_url, project_tag(b))) == 1  # the other project keeps its own
    finally:
        purge_templates(pg_url, project=a)
        purge_templates(pg_url, project=b)


def test_a_connection_env_py_leaves_open_does_not_stop_the_template(tmp_path: Path, pg_url: str) -> None:
    leaky = DEFAULT_ENV_PY.replace(
        "def run_migrations_online() -> None:\n",
        "_leaked = []\n\n\ndef run_migrations_online() -> None:\n"
        "    _leaked.append(engine_from_config(config.get_section(config.config_ini_section, {}),"
        " prefix='sqlalchemy.', poolclass=pool.NullPool).connect())\n",
    )
    p = load_project(make_project(tmp_path / "p", _history(MIN_REVISIONS + 1), env_py=leaky))
    try:
        r = test_roundtrip(p, database_url=pg_url, rows=2)
        assert r.template, r.unchecked
        assert not [u for u in r.unchecked if "template" in u.what]
    finally:
        purge_templates(pg_url, project=p)


def test_the_sqlite_cache_is_bounded_least_recently_used_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("DB_MIGRATE_MAX_TEMPLATES", "2")
    projects = [load_project(make_project(tmp_path / f"p{i}", _history(MIN_REVISIONS + 1))) for i in range(3)]
    folder = cache_dir() / "sqlite"

    def file_of(p) -> Path:
        h = load_history(p)
        parent = h.by_id[h.heads[0]].down_revisions[0]
        return folder / f"{project_tag(p)}_{template_key(p, h, parent, 'sqlite')}.db"

    assert test_roundtrip(projects[0], database_url="sqlite://", rows=2).template
    assert test_roundtrip(projects[1], database_url="sqlite://", rows=2).template
    os.utime(file_of(projects[0]), (1, 1))  # p0 used longest ago
    assert test_roundtrip(projects[2], database_url="sqlite://", rows=2).template
    assert sorted(folder.glob("*.db")) == sorted([file_of(projects[1]), file_of(projects[2])])
