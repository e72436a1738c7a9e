"""review_migration end to end: the fixture history, and hostile or broken revisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from db_migrate.errors import MigrationLoadError, MigrationTimeout, RevisionNotFound
from db_migrate.project import load_project
from db_migrate.review import review_migration
from projectfactory import make_project

ADD_NULLABLE = (
    "def upgrade():\n    op.add_column('persons', sa.Column('nick', sa.String(40), nullable=True))\n\n"
    "def downgrade():\n    op.drop_column('persons', 'nick')\n"
)


def review_body(tmp_path: Path, body: str, **kw):
    make_project(tmp_path, [body])
    return review_migration(load_project(cwd=tmp_path), "head", **kw)


def test_operations_are_recorded_with_lines_and_sql(tmp_path: Path) -> None:
    r = review_body(tmp_path, ADD_NULLABLE)
    up = [o for o in r.reviews[0].operations if o.phase == "upgrade"]
    assert [(o.kind, o.table, o.column) for o in up] == [("add_column", "persons", "nick")]
    assert up[0].detail["nullable"] is True and up[0].detail["type"] == "VARCHAR(40)"
    assert up[0].sql == ["ALTER TABLE persons ADD COLUMN nick VARCHAR(40)"]
    src = (tmp_path / r.reviews[0].path).read_text().splitlines()
    assert "op.add_column" in src[up[0].line - 1]
    assert r.decision == "proceed"


def test_whole_fixture_history_is_reviewed(residency: Path) -> None:
    r = review_migration(load_project(cwd=residency), all_revisions=True)
    assert len(r.reviews) == 16
    assert r.dialect == "postgresql"
    by_rev = {rv.revision: rv for rv in r.reviews}
    concurrently = [o for o in by_rev["b0cfaa3c85b2"].operations if o.kind == "create_index"][0]
    assert concurrently.detail["postgresql_concurrently"] is True
    assert concurrently.detail["in_autocommit_block"] is True
    fstring = [o for o in by_rev["aa60e7cdaf87"].operations if o.kind == "execute"]
    assert fstring and fstring[0].detail["sql_kind"] == "UPDATE" and fstring[0].table == "persons"


def test_dialect_override_renders_for_that_dialect(tmp_path: Path) -> None:
    body = ADD_NULLABLE.replace("sa.String(40)", "sa.DateTime()")
    r = review_body(tmp_path, body, dialect="mysql")
    assert r.dialect == "mysql"
    assert r.reviews[0].operations[0].sql == ["ALTER TABLE persons ADD COLUMN nick DATETIME"]
    pg = review_migration(load_project(cwd=tmp_path), "head")
    assert pg.reviews[0].operations[0].sql == ["ALTER TABLE persons ADD COLUMN nick TIMESTAMP WITHOUT TIME ZONE"]


def test_syntax_error_is_a_structured_error(tmp_path: Path) -> None:
    with pytest.raises(MigrationLoadError, match="not valid Python"):
        review_body(tmp_path, "def upgrade(:\n    pass\n")


def test_exit_at_import_is_a_structured_error(tmp_path: Path) -> None:
    with pytest.raises(MigrationLoadError, match=r"sys.exit\(3\)"):
        review_body(tmp_path, "import sys\nsys.exit(3)\n" + ADD_NULLABLE)


def test_raise_at_import_is_a_structured_error(tmp_path: Path) -> None:
    with pytest.raises(MigrationLoadError, match="RuntimeError: nope"):
        review_body(tmp_path, "raise RuntimeError('nope')\n")


def test_endless_loop_at_import_times_out_and_the_next_call_works(tmp_path: Path) -> None:
    make_project(tmp_path / "a", ["while True:\n    pass\n"])
    with pytest.raises(MigrationTimeout):
        review_migration(load_project(cwd=tmp_path / "a"), "head", timeout=2)
    assert review_body(tmp_path / "b", ADD_NULLABLE).decision == "proceed"


def test_endless_loop_in_upgrade_is_reported_not_waited_out(tmp_path: Path) -> None:
    # A warm worker first: the call's budget (a quarter of it per phase) must not be spent starting
    # a worker on a loaded machine.
    review_body(tmp_path / "warm", ADD_NULLABLE)
    r = review_body(tmp_path, "def upgrade():\n    while True:\n        pass\n\ndef downgrade():\n    pass\n", timeout=12)
    f = [f for f in r.findings if f.rule == "migration-raises"]
    assert f and "did not finish" in f[0].message and f[0].phase == "upgrade"
    assert r.decision == "revise"


def test_sys_exit_in_upgrade_is_a_finding(tmp_path: Path) -> None:
    r = review_body(tmp_path, "import sys\ndef upgrade():\n    sys.exit(2)\n\ndef downgrade():\n    pass\n")
    f = [f for f in r.findings if f.rule == "migration-raises"]
    lines = (tmp_path / r.reviews[0].path).read_text().splitlines()
    assert f and "sys.exit(2)" in f[0].message and "sys.exit(2)" in lines[f[0].line - 1]


def test_missing_module_is_analysed_with_stand_ins(tmp_path: Path) -> None:
    body = "from scheduler_app.enums import Role\n\n" + ADD_NULLABLE
    r = review_body(tmp_path, body)
    assert r.reviews[0].operations[0].kind == "add_column"
    assert any("scheduler_app" in u.what for u in r.unchecked)


def test_data_reads_are_unchecked_not_crashes(tmp_path: Path) -> None:
    body = (
        "def upgrade():\n    conn = op.get_bind()\n    rows = conn.execute(sa.text('select id from persons')).fetchall()\n"
        "    for r in rows:\n        op.execute(f\"update persons set x = 1 where id = {r[0]}\")\n\n"
        "def downgrade():\n    pass\n"
    )
    r = review_body(tmp_path, body)
    assert r.reviews[0].reads_data
    assert any("reads data" in u.reason or "rows" in u.reason for u in r.unchecked)
    assert not any(f.rule == "migration-raises" for f in r.findings)


def test_unknown_revision_and_outside_path(tmp_path: Path) -> None:
    make_project(tmp_path, [ADD_NULLABLE])
    p = load_project(cwd=tmp_path)
    with pytest.raises(RevisionNotFound):
        review_migration(p, "deadbeef")
    with pytest.raises(Exception) as e:
        review_migration(p, "/etc/hosts.py")
    assert getattr(e.value, "code", "") == "path-outside-project"


def test_suppression_comment_silences_one_rule(tmp_path: Path) -> None:
    body = "import sys\ndef upgrade():\n    sys.exit(2)  # db-migrate: ignore[migration-raises] exits on purpose in this test\n\ndef downgrade():\n    pass\n"
    r = review_body(tmp_path, body)
    assert not any(f.rule == "migration-raises" for f in r.findings)
    assert [f.rule for f in r.suppressed] == ["migration-raises"]


def test_batch_of_revisions_survives_one_that_kills_its_worker(tmp_path: Path) -> None:
    make_project(tmp_path, [ADD_NULLABLE, "import os\nos._exit(7)\n", ADD_NULLABLE.replace("nick", "nick2")])
    r = review_migration(load_project(cwd=tmp_path), all_revisions=True)
    assert len(r.reviews) == 3
    bad = [f for f in r.findings if f.rule == "migration-raises"]
    assert len(bad) == 1 and "000000000002" == bad[0].revision
    assert r.reviews[2].operations[0].column == "nick2"


def test_binary_and_non_revision_files_are_refused_clearly(tmp_path: Path) -> None:
    make_project(tmp_path, [ADD_NULLABLE])
    versions = tmp_path / "migrations" / "versions"
    (versions / "blob.py").write_bytes(b"\x00\x01\x02garbage" * 100)
    (versions / "notes.py").write_text("# just notes\n" * 1000)
    p = load_project(cwd=tmp_path)
    with pytest.raises(MigrationLoadError, match="cannot contain null bytes") as e:
        review_migration(p, str(versions / "blob.py"))
    assert "line None" not in e.value.message
    with pytest.raises(MigrationLoadError, match="not an Alembic revision"):
        review_migration(p, str(versions / "notes.py"))
    assert review_migration(p, "000000000001").decision == "proceed"
