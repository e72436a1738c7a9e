"""test_roundtrip on real databases: the fixture project and small hostile projects."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import own_databases  # noqa: E402
from projectfactory import make_project  # noqa: E402

from db_migrate.errors import Refused  # noqa: E402
from db_migrate.project import load_project  # noqa: E402
from db_migrate.roundtrip import RoundtripResult, test_roundtrip  # noqa: E402

PERSONS = (
    "def upgrade():\n"
    "    op.create_table('persons', sa.Column('id', sa.Integer, primary_key=True),\n"
    "                    sa.Column('name', sa.String(100), nullable=False),\n"
    "                    sa.Column('email', sa.String(120), nullable=True, unique=True),\n"
    "                    sa.Column('team', sa.String(20), nullable=True))\n"
    "def downgrade():\n    op.drop_table('persons')\n"
)
NOT_NULL_NO_DEFAULT = (
    "def upgrade():\n    op.add_column('persons', sa.Column('age', sa.Integer, nullable=False))\n"
    "def downgrade():\n    op.drop_column('persons', 'age')\n"
)
TYPE_CHANGE_NOT_UNDONE = (
    "def upgrade():\n    op.alter_column('persons', 'email', type_=sa.String(255), existing_type=sa.String(120))\n"
    "def downgrade():\n    pass\n"
)
DOWNGRADE_LOSES_DATA = (
    "def upgrade():\n"
    "    op.add_column('persons', sa.Column('full_name', sa.String(100), nullable=True))\n"
    "    op.execute('UPDATE persons SET full_name = name')\n"
    "    op.drop_column('persons', 'name')\n"
    "def downgrade():\n"
    "    op.add_column('persons', sa.Column('name', sa.String(100), nullable=True))\n"
    "    op.drop_column('persons', 'full_name')\n"
)
GOOD_ADD = (
    "def upgrade():\n    op.add_column('persons', sa.Column('nick', sa.String(30), nullable=True))\n"
    "def downgrade():\n    op.drop_column('persons', 'nick')\n"
)


def _project(tmp_path: Path, *bodies: str):
    return load_project(make_project(tmp_path / "p", [PERSONS, *bodies]))


def _kinds(r: RoundtripResult) -> list[str]:
    return sorted(f.kind for f in r.failures)


def _leftovers(pg_url: str) -> list[str]:
    return own_databases(pg_url, "roundtrip")  # this run's only: others share the server


@pytest.fixture(params=["sqlite", "pg_url", "mysql_url"])
def server(request: pytest.FixtureRequest) -> str | None:
    # "sqlite://" keeps SQLite for these PostgreSQL projects (None would mean the embedded PostgreSQL server)
    return "sqlite://" if request.param == "sqlite" else request.getfixturevalue(request.param)


def test_fixture_head_has_a_downgrade_that_forgets_its_column(residency: Path, server: str | None) -> None:
    r = test_roundtrip(load_project(residency), database_url=server, rows=10)
    assert _kinds(r) == ["reupgrade-failed", "schema-mismatch"]
    mismatch = next(f for f in r.failures if f.kind == "schema-mismatch")
    assert mismatch.message == "after the downgrade: column assignments.notes (TEXT) was not removed by the downgrade"
    assert all(f.revision == "f956808bc5df" for f in r.failures)
    failed = next(f for f in r.failures if f.kind == "reupgrade-failed")
    assert failed.populated_only is False and "notes" in failed.error


def test_fixture_revision_passes(residency: Path, server: str | None) -> None:
    r = test_roundtrip(load_project(residency), "46f760feb10b", database_url=server, rows=10)
    assert r.status == "passed", r.failures
    assert r.decision == "proceed" and r.runner == "project-env"
    assert [s.step for s in r.steps if s.step in ("upgrade", "downgrade", "reupgrade")] == ["upgrade", "downgrade", "reupgrade"]
    assert r.seeded.get("persons") == 10


def test_fixture_narrowing_does_not_fail_on_invented_long_values(residency: Path, pg_url: str) -> None:
    # seeded text stays short: a narrowing fails on real long values, never on ones db-migrate made up
    r = test_roundtrip(load_project(residency), "ba2e5b21f0bc", database_url=pg_url)
    assert _kinds(r) == [] and r.status == "passed"
    # String(255) -> String(120) refuses a value that does not fit (PostgreSQL: "value too long") instead of cutting
    # it: nothing is changed that the downgrade would leave changed, so no rollback trigger; the lock is review's
    assert r.decision == "proceed" and not (r.escalation and r.escalation.required), r.escalation


def test_not_null_without_default_fails_on_populated_only(tmp_path: Path, server: str | None) -> None:
    r = test_roundtrip(_project(tmp_path, NOT_NULL_NO_DEFAULT), database_url=server, rows=5)
    if server is not None and server.startswith("mysql"):
        assert r.status == "passed"  # MariaDB fills an implicit default: nothing to catch
        return
    assert _kinds(r) == ["upgrade-failed"]
    assert r.failures[0].populated_only is True and r.failures[0].revision == "000000000002"


@pytest.mark.parametrize("server", ["pg_url", "mysql_url"])
def test_set_not_null_failing_only_on_seeded_nulls_is_the_datas_question(tmp_path: Path, server: str, request) -> None:
    # the seeder put NULLs where the column allowed them; whether real rows are NULL is asked of the data
    # (review/classify with database_url), not answered by rows db-migrate made up
    body = ("def upgrade():\n    op.alter_column('persons', 'team', existing_type=sa.String(20), nullable=False)\n"
            "def downgrade():\n    op.alter_column('persons', 'team', existing_type=sa.String(20), nullable=True)\n")
    r = test_roundtrip(_project(tmp_path, body), database_url=request.getfixturevalue(server), rows=8)
    assert r.failures == [] and r.status == "passed", r.failures
    assert any("only the seeded values fail it" in u.reason for u in r.unchecked), r.unchecked


@pytest.mark.parametrize("server", ["pg_url", "mysql_url"])
def test_downgrade_forgetting_a_type_change_is_a_schema_mismatch(tmp_path: Path, server: str, request) -> None:
    r = test_roundtrip(_project(tmp_path, TYPE_CHANGE_NOT_UNDONE), database_url=request.getfixturevalue(server), rows=5)
    assert _kinds(r) == ["schema-mismatch"]
    assert "column persons.email type VARCHAR(120) -> VARCHAR(255)" in r.failures[0].message


def test_downgrade_dropping_a_column_with_data_is_data_loss(tmp_path: Path, server: str | None) -> None:
    r = test_roundtrip(_project(tmp_path, DOWNGRADE_LOSES_DATA), database_url=server, rows=6)
    losses = [f for f in r.failures if f.kind == "data-loss"]
    assert [(f.table, f.column, f.rows) for f in losses] == [("persons", "name", 6)]
    assert any(f.kind == "schema-mismatch" and "persons.name nullable false -> true" in f.message for f in r.failures)


def test_all_revisions_reports_every_failing_revision(tmp_path: Path, pg_url: str) -> None:
    p = _project(tmp_path, TYPE_CHANGE_NOT_UNDONE, GOOD_ADD, DOWNGRADE_LOSES_DATA)
    r = test_roundtrip(p, database_url=pg_url, all_revisions=True, rows=4)
    assert r.revisions == ["000000000001", "000000000002", "000000000003", "000000000004"]
    assert {f.revision for f in r.failures} == {"000000000002", "000000000004"}
    assert not r.unchecked
    r2 = test_roundtrip(p, database_url=pg_url, from_revision="000000000003", to_revision="000000000003", rows=4)
    assert r2.revisions == ["000000000003"] and r2.status == "passed"


def test_mysql_reports_what_was_applied_partway(tmp_path: Path, mysql_url: str) -> None:
    body = (
        "def upgrade():\n"
        "    op.add_column('persons', sa.Column('nick', sa.String(30), nullable=True))\n"
        "    op.execute('INSERT INTO persons (id, name) SELECT id, name FROM persons')\n"
        "    op.create_unique_constraint('uq_persons_team', 'persons', ['team'])\n"
        "def downgrade():\n"
        "    op.drop_constraint('uq_persons_team', 'persons', type_='unique')\n"
        "    op.drop_column('persons', 'nick')\n"
    )
    r = test_roundtrip(_project(tmp_path, body), database_url=mysql_url, rows=6)
    f = r.failures[0]
    assert f.kind == "upgrade-failed" and f.populated_only is True  # any row at all is copied onto its own id
    assert f.applied_partway == ["added column persons.nick"]
    assert "added unique constraint persons.uq_persons_team" in f.not_applied


def test_sqlite_alter_limit_gets_a_batch_hint(tmp_path: Path) -> None:
    body = (
        "def upgrade():\n    op.create_unique_constraint('uq_team', 'persons', ['team'])\n"
        "def downgrade():\n    op.drop_constraint('uq_team', 'persons', type_='unique')\n"
    )
    sqlite_project = load_project(make_project(tmp_path / "p", [PERSONS, body], url="sqlite:///app.db"))
    r = test_roundtrip(sqlite_project, rows=0)
    assert r.failures[0].kind == "upgrade-failed"
    assert "batch_alter_table" in (r.failures[0].hint or "")


def test_a_hanging_migration_times_out_and_leaves_no_database(tmp_path: Path, pg_url: str) -> None:
    body = "def upgrade():\n    import time\n    time.sleep(60)\ndef downgrade():\n    pass\n"
    r = test_roundtrip(_project(tmp_path, body), database_url=pg_url, timeout=2, rows=2)
    f = r.failures[0]
    assert (f.kind, f.error_code, f.revision, f.step) == ("upgrade-failed", "migration-timeout", "000000000002", "upgrade")
    assert _leftovers(pg_url) == []


def test_sys_exit_is_a_structured_failure(tmp_path: Path, pg_url: str) -> None:
    body = "def upgrade():\n    import sys\n    sys.exit(3)\ndef downgrade():\n    pass\n"
    r = test_roundtrip(_project(tmp_path, body), database_url=pg_url, rows=2)
    assert r.failures[0].error_code == "migration-crashed" and r.status == "failed"
    assert _leftovers(pg_url) == []
    assert test_roundtrip(_project(tmp_path / "again"), database_url=pg_url, rows=2).status == "passed"


def test_production_url_is_refused(tmp_path: Path) -> None:
    p = _project(tmp_path)
    (p.root / "pyproject.toml").write_text('[tool.db-migrate]\nproduction_url_patterns = ["*prod*"]\n')
    p = load_project(p.root)
    with pytest.raises(Refused) as err:
        test_roundtrip(p, database_url="postgresql+psycopg://app:secret@prod-db.internal/app")
    assert "production" in err.value.message and "secret" not in err.value.to_json()


def test_parallel_roundtrips_do_not_collide(tmp_path: Path, pg_url: str) -> None:
    p = _project(tmp_path, GOOD_ADD)
    results: list[RoundtripResult] = []
    threads = [threading.Thread(target=lambda: results.append(test_roundtrip(p, database_url=pg_url, rows=3))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in results] == ["passed"] * 3
    assert len({r.database for r in results}) == 3
    assert _leftovers(pg_url) == []


@pytest.mark.timeout(600)
def test_cancellation_drops_the_scratch_database(tmp_path: Path, pg_url: str) -> None:
    import anyio

    from db_migrate.sandbox import run_in_scope

    body = "def upgrade():\n    import time\n    time.sleep(60)\ndef downgrade():\n    pass\n"
    p = _project(tmp_path, body)

    async def main() -> bool:
        with anyio.move_on_after(1.5) as scope:
            await run_in_scope(test_roundtrip, p, database_url=pg_url, rows=2, timeout=30)
        return scope.cancelled_caught

    assert anyio.run(main) is True
    # The abandoned thread finishes its finally-block in the background: wait until it has (the bound only
    # bounds a hang on a loaded shared machine), then nothing it created may be left
    from db_migrate.sandbox.parent import cancel_all_calls

    assert cancel_all_calls(wait=300)
    assert _leftovers(pg_url) == []


def test_a_column_a_foreign_key_uses_is_dropped_only_after_its_key_on_mariadb(tmp_path: Path, mysql_url: str) -> None:
    """What the review says (drop-column-in-foreign-key) is what the server does: the downgrade fails until the fix
    drops the key first."""
    from db_migrate.rules.drops import DropColumnInForeignKey

    teams = ("def upgrade():\n    op.create_table('teams', sa.Column('id', sa.Integer, primary_key=True))\n"
             "def downgrade():\n    op.drop_table('teams')\n")
    example = DropColumnInForeignKey.examples[0]
    bad = example.bad.replace("'orders'", "'persons'").replace("users.id", "teams.id")
    good = example.good.replace("'orders'", "'persons'").replace("users.id", "teams.id")
    failed = test_roundtrip(load_project(make_project(tmp_path / "bad", [PERSONS, teams, bad])), database_url=mysql_url, rows=3)
    assert failed.status == "failed" and any("1553" in (f.error or "") or "foreign key" in (f.error or "") for f in failed.failures)
    fixed = test_roundtrip(load_project(make_project(tmp_path / "good", [PERSONS, teams, good])), database_url=mysql_url, rows=3)
    assert fixed.status == "passed", fixed.failures


def test_a_parent_dropped_before_its_child_fails_the_downgrade_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    """drop-table-still-referenced says what PostgreSQL does: its bad example's downgrade fails, the good one runs."""
    from db_migrate.rules.drops import DropTableStillReferenced

    example = DropTableStillReferenced.examples[0]
    failed = test_roundtrip(load_project(make_project(tmp_path / "bad", [PERSONS, example.bad])), database_url=pg_url, rows=3)
    assert failed.status == "failed" and any("depend" in (f.error or "") for f in failed.failures), failed.failures
    fixed = test_roundtrip(load_project(make_project(tmp_path / "good", [PERSONS, example.good])), database_url=pg_url, rows=3)
    assert fixed.status == "passed", fixed.failures


def test_a_type_change_postgresql_cannot_cast_fails_and_its_fix_runs(tmp_path: Path, pg_url: str) -> None:
    """alter-column-type-needs-using says what PostgreSQL does: the downgrade back to INTEGER fails without USING."""
    from db_migrate.rules.alter_column import AlterColumnTypeNeedsUsing

    users = ("def upgrade():\n    op.create_table('users', sa.Column('id', sa.Integer, primary_key=True), sa.Column('age', sa.Integer))\n"
             "def downgrade():\n    op.drop_table('users')\n")
    example = AlterColumnTypeNeedsUsing.examples[0]
    failed = test_roundtrip(load_project(make_project(tmp_path / "bad", [users, example.bad])), database_url=pg_url, rows=3)
    assert failed.status == "failed" and any("cast" in (f.error or "") for f in failed.failures), failed.failures
    fixed = test_roundtrip(load_project(make_project(tmp_path / "good", [users, example.good])), database_url=pg_url, rows=3)
    assert fixed.status == "passed", fixed.failures
