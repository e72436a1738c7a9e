"""generate_migration on tmp copies of the fixture and on hand-made histories."""

from __future__ import annotations

from pathlib import Path

import pytest
from projectfactory import enum_project, make_project, one_table_project

from db_migrate.errors import (
    GenerateBusy,
    MigrationLoadError,
    MultipleHeadsError,
    ProjectCodeError,
    Refused,
    UsageError,
)
from db_migrate.generate import generate_migration
from db_migrate.project.writing import revision_lock
from db_migrate.project import load_project, load_history


def versions(root: Path) -> set[str]:
    return {p.name for p in (root / "alembic" / "versions").glob("*.py")}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


PERSON = Path("app/models/person.py")
ROLE = "    role: Mapped[str]"


def test_model_edit_writes_a_reviewed_revision(residency):
    edit(residency / PERSON, ROLE, "    nickname: Mapped[str | None] = mapped_column(String(40))\n" + ROLE)
    before = versions(residency)
    r = generate_migration(load_project(residency), "add nickname")
    assert r.created and r.decision == "proceed"
    assert versions(residency) - before == {Path(r.path).name}
    text = (residency / r.path).read_text()
    assert "nickname" in text and f"= '{r.down_revision}'" in text
    assert [o.op for o in r.operations] == ["add_column"]
    # a PostgreSQL project: generated on the embedded PostgreSQL server, so not in SQLite's batch form
    assert "op.add_column('persons'" in r.upgrade_code and "op.drop_column('persons', 'nickname')" in r.downgrade_code
    assert r.revisions == [r.revision] and "review" not in r.model_dump()  # the review is merged, not repeated
    assert load_history(load_project(residency)).heads == [r.revision]
    assert r.timings["scratch"] > 0 and "embedded PostgreSQL" in r.compared_with
    assert r.engine is not None and r.engine.embedded


def test_nothing_changed_writes_nothing(residency):
    before = versions(residency)
    r = generate_migration(load_project(residency), "nothing")
    assert not r.created and r.path is None and r.decision == "proceed"
    assert "no file was written" in r.summary
    assert versions(residency) == before


def test_drop_and_add_of_one_type_is_flagged_as_a_rename(residency):
    edit(residency / PERSON, "middle_name: Mapped", "preferred_name: Mapped")
    r = generate_migration(load_project(residency), "rename middle name")
    (f,) = [f for f in r.findings if f.rule == "probable-rename"]
    assert f.severity == "error" and f.table == "persons" and f.column == "middle_name"  # as written, data is lost
    assert 'new_column_name="preferred_name"' in f.fix and "rewrite_renames=true" in f.fix
    assert f.path == r.path and r.decision != "proceed"
    # following the fix replaces generate's own unapplied revision instead of answering "No changes"
    first = r.path
    again = generate_migration(load_project(residency), "rename middle name", rewrite_renames=True)
    assert again.created and again.path != first and not (residency / first).exists()
    assert again.down_revision == r.down_revision
    (replaced,) = [f for f in again.findings if f.rule == "replaced-revision"]
    assert first in replaced.message and first in again.summary
    text = (residency / again.path).read_text()
    assert "new_column_name='preferred_name'" in text and "drop_column" not in text
    assert load_history(load_project(residency)).heads == [again.revision]


def test_rewrite_renames_never_replaces_an_edited_revision(residency):
    edit(residency / PERSON, "middle_name: Mapped", "preferred_name: Mapped")
    r = generate_migration(load_project(residency), "rename middle name")
    path = residency / r.path
    path.write_text(path.read_text().replace("def downgrade()", "# reviewed by hand\ndef downgrade()"))
    before = versions(residency)
    edited = path.read_text()
    again = generate_migration(load_project(residency), "rename middle name", rewrite_renames=True)
    assert path.read_text() == edited and versions(residency) == before  # nothing else written, nothing removed
    assert not again.created
    assert any(f.rule == "replaced-revision" and "edited" in f.message for f in again.findings)


def test_dropped_and_created_table_of_one_shape_is_a_table_rename(tmp_path):
    name = "sa.Column('name', sa.String(40))"
    root = one_table_project(tmp_path, name, name, table="clients", model_table="customers")
    r = generate_migration(load_project(root), "rename clients")
    (f,) = [f for f in r.findings if f.rule == "probable-rename"]
    assert f.severity == "error" and "rename_table" in f.fix
    again = generate_migration(load_project(root), "rename clients", rewrite_renames=True)
    assert [o.op for o in again.operations] == ["rename_table"]
    assert "rename_table('clients', 'customers')" in again.upgrade_code
    assert "rename_table('customers', 'clients')" in again.downgrade_code


def test_rewrite_renames_writes_alter_column(residency):
    edit(residency / PERSON, "middle_name: Mapped", "preferred_name: Mapped")
    r = generate_migration(load_project(residency), "rename middle name", rewrite_renames=True)
    text = (residency / r.path).read_text()
    assert "new_column_name='preferred_name'" in text and "drop_column" not in text
    assert "new_column_name='middle_name'" in r.downgrade_code  # the downgrade renames back
    assert [o.op for o in r.operations] == ["rename_column"]


def test_blind_spots_check_constraint_and_server_default(residency):
    edit(residency / PERSON, "from sqlalchemy import Boolean,", "from sqlalchemy import CheckConstraint, Boolean,")
    edit(residency / PERSON, '    __tablename__ = "persons"\n',
         '    __tablename__ = "persons"\n    __table_args__ = (CheckConstraint("length(email) > 3", name="email_len"),)\n')
    edit(residency / PERSON, "is_active: Mapped[bool] = mapped_column(Boolean, default=True)",
         "is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sql.true())")
    r = generate_migration(load_project(residency), "blind spots")
    # autogenerate alone sees neither change (compare_server_default is off): our comparators write both
    assert r.created, r.summary
    text = (residency / r.path).read_text()
    assert "op.create_check_constraint(op.f('ck_persons_email_len'), 'persons', 'length(email) > 3')" in text
    assert "server_default=sa.text('true')" in text and "'is_active'" in r.upgrade_code
    assert "drop_constraint(op.f('ck_persons_email_len')" in r.downgrade_code
    assert "server_default=None" in r.downgrade_code
    assert not [f for f in r.findings if f.rule in ("check-constraint-not-generated", "server-default-not-compared")]


def test_several_heads_are_refused_with_the_merge_command(tmp_path):
    root = make_project(tmp_path, [{}, {}, {"id": "b1", "down": "000000000001"}])
    with pytest.raises(MultipleHeadsError) as e:
        generate_migration(load_project(root), "x")
    assert "create_merge" in e.value.hint


def test_history_with_a_cycle_is_refused(tmp_path):
    root = make_project(tmp_path, [{"id": "a1", "down": "b2"}, {"id": "b2", "down": "a1"}])
    with pytest.raises(MigrationLoadError, match="cycle"):
        generate_migration(load_project(root), "x")


def test_message_is_required(residency):
    with pytest.raises(UsageError):
        generate_migration(load_project(residency), "  ")


def test_concurrent_generate_is_busy(residency):
    project = load_project(residency)
    with revision_lock(project):
        with pytest.raises(GenerateBusy) as e:
            generate_migration(project, "x")
    assert e.value.code == "generate-busy"
    # released: the next call works
    assert not generate_migration(project, "x").created


def test_broken_env_py_is_a_structured_error_and_writes_nothing(residency):
    env = residency / "alembic" / "env.py"
    env.write_text(env.read_text().replace("target_metadata = Base.metadata", "target_metadata = Base.metadata\n1 / 0"))
    before = versions(residency)
    with pytest.raises(ProjectCodeError) as e:
        generate_migration(load_project(residency), "x")
    assert "ZeroDivisionError" in e.value.message
    assert versions(residency) == before


def test_models_that_do_not_import_are_a_structured_error(residency):
    edit(residency / PERSON, "from app.db.base import Base", "from app.db.base import Base\nimport app.nowhere")
    before = versions(residency)
    with pytest.raises(ProjectCodeError, match="nowhere"):
        generate_migration(load_project(residency), "x")
    assert versions(residency) == before


def test_unwritable_target_is_refused_without_debris(residency):
    ini = residency / "alembic.ini"
    edit(ini, "# file_template = %%(year)d_%%(month).2d", "file_template = blocked/%%(rev)s_%%(slug)s\n# x = ")
    (residency / "alembic" / "versions" / "blocked").write_text("a file where a folder is expected")
    edit(residency / PERSON, ROLE, "    nickname: Mapped[str | None] = mapped_column(String(40))\n" + ROLE)
    before = versions(residency)
    with pytest.raises(Refused):
        generate_migration(load_project(residency), "add nickname")
    assert versions(residency) == before


@pytest.mark.postgres
def test_enum_values_on_postgres_scratch(tmp_path, pg_url):
    root = enum_project(tmp_path, ("happy", "sad", "meh"))
    r = generate_migration(load_project(root), "more moods", scratch_url=pg_url)
    assert r.created and "on postgresql" in r.compared_with
    # the added value goes into the revision, outside the transaction; the downgrade recreates the type without it
    assert "autocommit_block()" in r.upgrade_code and "ADD VALUE IF NOT EXISTS 'meh' AFTER 'sad'" in r.upgrade_code
    assert "CREATE TYPE mood AS ENUM ('happy', 'sad')" in r.downgrade_code
    assert "USING mood::text::mood" in r.downgrade_code and "DATA-DEPENDENT" in r.downgrade_code
    assert [o.op for o in r.operations] == ["alter_enum"]


@pytest.mark.postgres
@pytest.mark.parametrize("values, sql", [
    (("happy", "glad"), "RENAME VALUE 'sad' TO 'glad'"),
    (("happy",), "CREATE TYPE mood AS ENUM ('happy')"),
])
def test_enum_value_renamed_or_removed_on_postgres(tmp_path, pg_url, values, sql):
    root = enum_project(tmp_path, values, server_default="happy")
    r = generate_migration(load_project(root), "moods", scratch_url=pg_url)
    assert r.created and sql in r.upgrade_code
    if len(values) == 1:  # removal: default dropped and restored around the USING cast, and said to depend on data
        assert "DROP DEFAULT" in r.upgrade_code and "SET DEFAULT 'happy'::mood" in r.upgrade_code
        assert "DATA-DEPENDENT" in r.upgrade_code and "ADD VALUE IF NOT EXISTS 'sad' AFTER 'happy'" in r.downgrade_code
    else:
        assert "RENAME VALUE 'glad' TO 'sad'" in r.downgrade_code


def test_named_database_is_compared_as_is_and_not_written(residency, tmp_path):
    from db_migrate.sandbox import run_job

    project = load_project(residency)
    db = tmp_path / "dev.db"
    run_job("db_migrate.runtime:upgrade", cwd=residency, config_file=str(project.config_file),
            section=project.section, url=f"sqlite:///{db}", revision="heads", writable=[tmp_path])
    data = db.read_bytes()
    edit(residency / PERSON, ROLE, "    nickname: Mapped[str | None] = mapped_column(String(40))\n" + ROLE)
    r = generate_migration(project, "add nickname", database_url=f"sqlite:///{db}")
    assert r.created and "read only" in r.compared_with
    assert [o.name for o in r.operations] == ["nickname"]
    assert db.read_bytes() == data


def test_named_database_behind_head_is_refused(residency, tmp_path):
    import sqlite3

    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    before = versions(residency)
    with pytest.raises(ProjectCodeError, match="not at head"):
        generate_migration(load_project(residency), "x", database_url=f"sqlite:///{db}")
    assert versions(residency) == before
    assert db.stat().st_size == 0  # no version table was created


@pytest.mark.postgres
def test_computed_expression_change_says_what_to_write(tmp_path, pg_url):
    columns = "sa.Column('a', sa.Integer), sa.Column('b', sa.Integer, sa.Computed('a * {}'))"
    root = one_table_project(tmp_path, columns.format(2), columns.format(3))
    before = versions_of(root)
    r = generate_migration(load_project(root), "triple", scratch_url=pg_url)
    assert not r.created and versions_of(root) == before  # no faithful operation: nothing written ...
    (f,) = [f for f in r.findings if f.rule == "computed-not-generated"]  # ... but the agent is told what to write
    assert f.severity == "error" and f.table == "t" and f.column == "b" and r.decision == "revise"
    assert "no file was written" in r.summary.lower() and "by hand" in r.summary
    assert "a * 3" in f.message and "op.drop_column" in f.fix and "sa.Computed" in f.fix


def versions_of(root: Path) -> set[str]:
    return {p.name for p in (root / "migrations" / "versions").glob("*.py")}


def test_rewrite_renames_never_folds_a_finished_change_into_the_next(residency):
    edit(residency / PERSON, ROLE, "    nickname: Mapped[str | None] = mapped_column(String(40))\n" + ROLE)
    first = generate_migration(load_project(residency), "add nickname")
    edit(residency / PERSON, "middle_name: Mapped", "preferred_name: Mapped")
    r = generate_migration(load_project(residency), "rename middle name", rewrite_renames=True)
    assert (residency / first.path).exists() and r.down_revision == first.revision  # on top, not instead
    assert not [f for f in r.findings if f.rule == "replaced-revision"]
    assert [o.op for o in r.operations] == ["rename_column"]


def test_a_replaced_file_comes_back_when_the_call_fails_and_marks_detect_edits(tmp_path):
    from db_migrate.project.writing import generated_unedited, mark_generated, set_aside

    f = tmp_path / "abc_rev.py"
    f.write_text("x = 1\n")
    mark_generated(f, renames_pending=True)
    assert generated_unedited(f) == {"renames_pending": True}
    with pytest.raises(RuntimeError), set_aside(f):
        assert not f.exists()
        raise RuntimeError("the worker failed")
    assert generated_unedited(f) == {"renames_pending": True}  # back, unchanged
    with set_aside(f) as drop:
        drop()
    assert not f.exists() and not list(tmp_path.iterdir())
    f.write_text("x = 1\n")
    mark_generated(f)
    f.write_text(f.read_text().replace("x = 1", "x = 2"))
    assert generated_unedited(f) is None
