"""check_heads: the static graph checks, merge creation and the database state."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from projectfactory import enum_project, make_project

from db_migrate.errors import Refused, UsageError
from db_migrate.heads import check_heads
from db_migrate.project import load_project


def heads_of(root: Path, **kw):
    kw.setdefault("drift", False)
    return check_heads(load_project(root), **kw)


def rules(result) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in result.findings:
        out.setdefault(f.rule, []).append(f)
    return out


def test_linear_history_is_healthy(tmp_path):
    r = heads_of(make_project(tmp_path, [{}, {}, {}]))
    assert r.decision == "proceed"
    assert r.heads == ["000000000003"] and r.bases == ["000000000001"]
    assert r.revision_count == 3 and r.findings == []
    assert r.tool == "check_heads" and r.current is None and r.alembic_agrees is None


def test_multiple_heads_names_the_branch_point_and_the_merge_command(tmp_path):
    root = make_project(tmp_path, [{}, {}, {"id": "cafe00000001", "down": "000000000001"}])
    r = heads_of(root)
    assert r.decision == "revise"
    assert r.heads == ["000000000002", "cafe00000001"]
    (f,) = rules(r)["multiple-heads"]
    assert f.severity == "error"
    assert "forks at 000000000001" in f.message
    assert "alembic merge" in f.fix and "create_merge" in f.fix


def test_independent_labelled_branches_are_only_a_warning(tmp_path):
    root = make_project(tmp_path, [
        {"id": "aaaa00000001", "down": None, "branch_labels": ("billing",)},
        {"id": "bbbb00000001", "down": None, "branch_labels": ("search",)},
    ])
    (f,) = rules(heads_of(root))["multiple-heads"]
    assert f.severity == "warning" and "upgrade heads" in f.message


def test_dangling_down_revision(tmp_path):
    root = make_project(tmp_path, [{}, {"down": "deadbeef0000"}])
    r = heads_of(root)
    (f,) = rules(r)["dangling-down-revision"]
    assert f.revision == "000000000002" and "deadbeef0000" in f.message
    assert f.path == "migrations/versions/000000000002_rev.py" and f.line == 12
    assert r.decision == "revise"


def test_cycle_is_reported_once_with_its_path(tmp_path):
    root = make_project(tmp_path, [
        {"id": "a1", "down": "c3"}, {"id": "b2", "down": "a1"}, {"id": "c3", "down": "b2"}, {"id": "d4", "down": "c3"},
    ])
    r = heads_of(root)
    (f,) = rules(r)["revision-cycle"]
    assert "a1 -> c3 -> b2 -> a1" in f.message
    assert r.decision == "revise"


def test_self_loop_is_a_cycle(tmp_path):
    (f,) = rules(heads_of(make_project(tmp_path, [{"id": "a1", "down": "a1"}])))["revision-cycle"]
    assert "a1 -> a1" in f.message


def test_duplicate_revision_id_flags_every_copy(tmp_path):
    root = make_project(tmp_path, [{"id": "abc"}, {"id": "abc", "down": None, "name": "abc_copy.py"}])
    found = rules(heads_of(root))["duplicate-revision-id"]
    assert sorted(f.path for f in found) == ["migrations/versions/abc_copy.py", "migrations/versions/abc_rev.py"]


def test_missing_dependency_but_branch_labels_count(tmp_path):
    root = make_project(tmp_path, [
        {"id": "a1", "branch_labels": ("core",)},
        {"id": "b2", "depends_on": "core"},
        {"id": "c3", "depends_on": ("a1", "nope")},
    ])
    (f,) = rules(heads_of(root))["missing-dependency"]
    assert f.revision == "c3" and "nope" in f.message


def test_malformed_header_string_none(tmp_path):
    root = make_project(tmp_path, [{}, {"body": 'branch_labels = "None"\n'}, {"body": 'down_revision = "None"\n'}])
    found = rules(heads_of(root))["malformed-header"]
    by_rev = {f.revision: f for f in found}
    assert by_rev["000000000002"].severity == "warning" and "'None'" in by_rev["000000000002"].message
    assert by_rev["000000000003"].severity == "error"


def test_unparseable_revision_file(tmp_path):
    root = make_project(tmp_path, [{}, {"body": "x = (\n"}])
    (f,) = rules(heads_of(root))["unparseable-revision"]
    assert f.path.endswith("000000000002_rev.py") and f.severity == "error"


def test_merge_point_is_info(tmp_path):
    root = make_project(tmp_path, [{}, {}, {"id": "b1", "down": "000000000001"}, {"id": "m1", "down": ("000000000002", "b1")}])
    r = heads_of(root)
    assert r.decision == "proceed" and r.merge_points == ["m1"]
    (f,) = rules(r)["merge-point"]
    assert f.severity == "info"


def test_create_merge_writes_a_new_merge_revision(tmp_path):
    root = make_project(tmp_path, [{}, {}, {"id": "b1", "down": "000000000001"}])
    before = {p: p.read_bytes() for p in (root / "migrations" / "versions").iterdir()}
    assert heads_of(root).merge_revision is None  # never by default
    r = heads_of(root, create_merge=True, merge_message="join branches")
    assert r.merge_revision and r.decision == "proceed"
    assert len(r.heads) == 1 and r.merge_points == r.heads
    merge = root / r.merge_revision
    assert merge not in before and "join branches" in merge.read_text()
    assert all(p.read_bytes() == data for p, data in before.items())  # nothing else touched
    assert "merge-created" in rules(r)
    # a second call finds one head and writes nothing
    again = heads_of(root, create_merge=True)
    assert again.merge_revision is None and len(list(merge.parent.glob("*.py"))) == 4


def test_create_merge_refuses_a_broken_history(tmp_path):
    root = make_project(tmp_path, [{}, {}, {"id": "b1", "down": "000000000001"}, {"id": "x", "down": "gone"}])
    with pytest.raises(Refused):
        heads_of(root, create_merge=True)


def _sqlite_db(path: Path, *revs: str) -> str:
    with sqlite3.connect(path) as c:
        c.execute("create table alembic_version (version_num varchar(32) primary key)")
        c.executemany("insert into alembic_version values (?)", [(r,) for r in revs])
    return f"sqlite:///{path}"


def test_database_behind_head_lists_pending_oldest_first(tmp_path):
    root = make_project(tmp_path / "p", [{}, {}, {}, {}])
    db = tmp_path / "app.db"
    url = _sqlite_db(db, "000000000002")
    mtime = db.stat().st_mtime_ns
    r = heads_of(root, database_url=url)
    assert r.current == ["000000000002"]
    assert r.pending == ["000000000003", "000000000004"]
    (f,) = rules(r)["database-behind-head"]
    assert f.severity == "warning" and r.decision == "proceed"
    assert db.stat().st_mtime_ns == mtime  # read only


def test_database_at_head_and_unknown_revision(tmp_path):
    root = make_project(tmp_path / "p", [{}, {}])
    at_head = heads_of(root, database_url=_sqlite_db(tmp_path / "a.db", "000000000002"))
    assert at_head.pending == [] and at_head.findings == [] and "database at head" in at_head.summary
    unknown = heads_of(root, database_url=_sqlite_db(tmp_path / "b.db", "ffffffffffff"))
    (f,) = rules(unknown)["database-unknown-revision"]
    assert f.severity == "error" and unknown.decision == "revise"


def test_database_without_version_table_has_everything_pending(tmp_path):
    root = make_project(tmp_path / "p", [{}, {}])
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    r = heads_of(root, database_url=f"sqlite:///{db}")
    assert r.current == [] and r.pending == ["000000000001", "000000000002"]


def test_missing_sqlite_database_is_not_created(tmp_path):
    root = make_project(tmp_path / "p", [{}])
    with pytest.raises(UsageError):
        heads_of(root, database_url=f"sqlite:///{tmp_path / 'nope.db'}")
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.postgres
def test_database_state_on_postgres_is_read_only(tmp_path, pg_url):
    from sqlalchemy import create_engine, text

    from db_migrate.scratch import scratch_database

    root = make_project(tmp_path / "p", [{}, {}])
    with scratch_database(pg_url, purpose="heads_test") as db:
        eng = create_engine(db.url)
        with eng.begin() as c:
            c.execute(text("create table alembic_version (version_num varchar(32) primary key)"))
            c.execute(text("insert into alembic_version values ('000000000001')"))
        eng.dispose()
        r = heads_of(root, database_url=db.url)
    assert r.current == ["000000000001"] and r.pending == ["000000000002"]


# -- model drift (scratch SQLite, the project's env.py) ---------------------------------


def test_no_drift_on_the_untouched_fixture(residency):
    r = check_heads(load_project(residency))
    assert r.decision == "proceed" and r.drift_operations == []
    assert r.alembic_agrees is True
    assert "models match head" in r.summary
    assert not any(u.what == "model drift" for u in r.unchecked)


def test_model_edit_is_model_drift(residency):
    person = residency / "app" / "models" / "person.py"
    person.write_text(person.read_text().replace(
        "    role: Mapped[str]", "    nickname: Mapped[str | None] = mapped_column(String(40))\n    role: Mapped[str]"
    ))
    r = check_heads(load_project(residency))
    (f,) = rules(r)["model-drift"]
    assert f.severity == "error" and r.decision == "revise"
    assert "nickname" in f.message and "add_column" in r.drift_operations[0]


def test_env_py_that_cannot_import_its_models_is_unchecked_not_an_error(residency):
    (residency / "app" / "models" / "__init__.py").write_text("import app.does_not_exist\n")
    r = check_heads(load_project(residency))
    assert r.decision == "proceed"
    assert any(u.what == "model drift" for u in r.unchecked)
    assert "model-drift" not in rules(r)


def test_drift_is_skipped_on_multiple_heads(tmp_path):
    root = make_project(tmp_path, [{}, {}, {"id": "b1", "down": "000000000001"}])
    r = check_heads(load_project(root))
    assert any(u.what == "model drift" and "several heads" in u.reason for u in r.unchecked)


def test_merge_with_revision_environment_never_reaches_the_users_database(tmp_path):
    """With revision_environment, alembic runs env.py during the merge: an engine it builds itself is redirected."""
    user_db = tmp_path / "user.db"
    env = (
        "from alembic import context\nfrom sqlalchemy import create_engine\n\n"
        f"engine = create_engine('sqlite:///{user_db}')  # the user's database, from env.py's own settings\n"
        "with engine.connect() as connection:\n"
        "    context.configure(connection=connection, target_metadata=None)\n"
        "    with context.begin_transaction():\n"
        "        context.run_migrations()\n"
    )
    root = make_project(tmp_path / "p", [{}, {}, {"id": "b1", "down": "000000000001"}], env_py=env)
    ini = root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[alembic]\n", "[alembic]\nrevision_environment = true\n", 1))
    r = heads_of(root, create_merge=True, merge_message="join")
    assert r.merge_revision and (root / r.merge_revision).is_file()
    assert not user_db.exists(), "env.py's own engine must be redirected to the scratch database"


@pytest.mark.postgres
def test_enum_value_added_to_the_model_is_drift_not_models_match_head(tmp_path, pg_url):
    root = enum_project(tmp_path, ("happy", "sad", "meh"))
    r = check_heads(load_project(root), scratch_url=pg_url)
    (f,) = rules(r)["model-drift"]
    assert r.decision == "revise" and "models match head" not in r.summary
    assert "generate_migration" in f.fix and "ADD VALUE IF NOT EXISTS 'meh'" in r.drift_operations[0]
