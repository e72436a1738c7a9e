"""test_roundtrip on histories like real ones: branches and merges, a failing revision in the middle,
module-level enums, revisions that commit, enum columns with seeded rows (real PostgreSQL)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from projectfactory import make_project  # noqa: E402

from db_migrate.project import load_project  # noqa: E402
from db_migrate.roundtrip import RoundtripResult, test_roundtrip  # noqa: E402

TABLE = (
    "def upgrade():\n"
    "    op.create_table('t', sa.Column('id', sa.Integer, primary_key=True), sa.Column('name', sa.String(20)))\n"
    "def downgrade():\n    op.drop_table('t')\n"
)


def add(col: str, table: str = "t") -> str:
    return (f"def upgrade():\n    op.add_column('{table}', sa.Column('{col}', sa.Integer, nullable=True))\n"
            f"def downgrade():\n    op.drop_column('{table}', '{col}')\n")


NOT_NULL = (  # fails only with rows: a populated-only failure
    "def upgrade():\n    op.add_column('t', sa.Column('age', sa.Integer, nullable=False))\n"
    "def downgrade():\n    op.drop_column('t', 'age')\n"
)
ALWAYS_FAILS = "def upgrade():\n    op.execute('SELECT 1/0')\ndef downgrade():\n    pass\n"
FORGETS_DOWNGRADE = (
    "def upgrade():\n    op.add_column('t', sa.Column('z', sa.Integer))\n"
    "def downgrade():\n    pass\n"
)
MODULE_ENUM = (
    "from sqlalchemy.dialects import postgresql\n"
    "kind = postgresql.ENUM('a', 'b', name='kind')\n"
    "def upgrade():\n"
    "    op.create_table('e', sa.Column('id', sa.Integer, primary_key=True), sa.Column('k', kind, nullable=False))\n"
    "def downgrade():\n    op.drop_table('e')\n    kind.drop(op.get_bind())\n"
)


def _roundtrip(tmp_path: Path, revisions: list, pg_url: str, **kw) -> RoundtripResult:
    return test_roundtrip(load_project(make_project(tmp_path / "p", revisions)), database_url=pg_url, **kw)


def _failed(r: RoundtripResult) -> set[tuple[str, str]]:
    return {(f.revision, f.kind) for f in r.failures}


def _blocked(r: RoundtripResult) -> set[str]:
    return {u.revision for u in r.unchecked if u.what == "roundtrip"}


def test_branches_keep_their_sibling_and_a_merge_is_tested(tmp_path: Path, pg_url: str) -> None:
    r = _roundtrip(tmp_path, [
        TABLE,
        {"id": "b1", "down": "000000000001", "body": add("x")},
        {"id": "b2", "down": "000000000001", "body": add("y")},
        {"id": "m", "down": ("b1", "b2")},
    ], pg_url, all_revisions=True)
    # by id, downgrading b2 "to its parent" would also unapply b1 (and blame b2 for column x)
    assert r.status == "passed", r.failures
    assert sorted(r.revisions) == ["000000000001", "b1", "b2", "m"]
    assert not [u for u in r.unchecked if "merge" in u.what]


def test_a_broken_branch_revision_is_blamed_alone(tmp_path: Path, pg_url: str) -> None:
    r = _roundtrip(tmp_path, [
        TABLE,
        {"id": "b1", "down": "000000000001", "body": FORGETS_DOWNGRADE},
        {"id": "b2", "down": "000000000001", "body": add("y")},
        {"id": "m", "down": ("b1", "b2")},
    ], pg_url, all_revisions=True)
    assert {rev for rev, _ in _failed(r)} == {"b1"}
    assert {"000000000001", "b2", "m"} <= {s.revision for s in r.steps if s.step == "reupgrade" and s.ok}


def test_roundtrip_goes_on_after_a_failing_revision_in_the_middle(tmp_path: Path, pg_url: str) -> None:
    r = _roundtrip(tmp_path, [TABLE, add("a"), NOT_NULL, add("b"), add("c")], pg_url, all_revisions=True)
    assert _failed(r) == {("000000000003", "upgrade-failed")}
    f = r.failures[0]
    assert f.populated_only is True  # settled by replaying it unseeded to reach its children
    checked = {s.revision for s in r.steps if s.step == "reupgrade" and s.ok}
    assert {"000000000004", "000000000005"} <= checked
    assert not _blocked(r)
    # its own downgrade and re-upgrade were still tested, on an empty database
    assert "5 of 5" in r.summary and {"downgrade", "reupgrade"} <= {s.step for s in r.steps if s.revision == "000000000003"}


def test_descendants_of_an_always_failing_revision_are_listed_with_why(tmp_path: Path, pg_url: str) -> None:
    r = _roundtrip(tmp_path, [
        TABLE,
        {"id": "bad", "down": "000000000001", "body": ALWAYS_FAILS},
        {"id": "after", "down": "bad", "body": add("a")},
        {"id": "side", "down": "000000000001", "body": add("s")},
    ], pg_url, all_revisions=True)
    assert _failed(r) == {("bad", "upgrade-failed")}
    assert r.failures[0].populated_only is False
    assert _blocked(r) == {"after"}
    why = next(u.reason for u in r.unchecked if u.revision == "after")
    assert "bad" in why and "division by zero" in why
    assert any(s.revision == "side" and s.step == "reupgrade" and s.ok for s in r.steps)


def test_a_failing_ancestor_is_named_not_the_revision_under_test(tmp_path: Path, pg_url: str) -> None:
    r = _roundtrip(tmp_path, [TABLE, ALWAYS_FAILS, add("a")], pg_url)  # head only: 2 fails while preparing
    assert [(f.revision, f.step) for f in r.failures] == [("000000000002", "prepare")]
    assert _blocked(r) == {"000000000003"}
    assert all(s.seconds < 600 for s in r.steps)  # a failed step is timed from its own start


def test_module_level_enum_reupgrades_like_stock_alembic(tmp_path: Path, pg_url: str) -> None:
    r = _roundtrip(tmp_path, [TABLE, MODULE_ENUM, add("b")], pg_url, all_revisions=True)
    assert r.status == "passed", r.failures
    assert r.seeded.get("e") == 20


def test_an_enum_downgrade_that_forgets_its_type_still_fails(tmp_path: Path, pg_url: str) -> None:
    forgets = MODULE_ENUM.replace("    kind.drop(op.get_bind())\n", "")
    r = _roundtrip(tmp_path, [TABLE, forgets], pg_url)
    assert ("000000000002", "schema-mismatch") in _failed(r) or ("000000000002", "reupgrade-failed") in _failed(r)


@pytest.mark.parametrize("commit", ["op.get_bind().commit()", "op.execute('COMMIT')"])
def test_a_committing_revision_does_not_break_later_ones(tmp_path: Path, pg_url: str, commit: str) -> None:
    committing = (
        f"def upgrade():\n    op.add_column('t', sa.Column('c', sa.Integer))\n    {commit}\n"
        "    op.execute('UPDATE t SET c = 1')\n"
        "def downgrade():\n    op.drop_column('t', 'c')\n"
    )
    r = _roundtrip(tmp_path, [TABLE, committing, add("d"), NOT_NULL, add("e")], pg_url, all_revisions=True)
    assert _failed(r) == {("000000000004", "upgrade-failed")}
    assert r.failures[0].populated_only is True
    assert {"000000000002", "000000000003", "000000000005"} <= {s.revision for s in r.steps if s.step == "reupgrade" and s.ok}


ENUM_TABLE = (
    "from sqlalchemy.dialects import postgresql\n"
    "def upgrade():\n"
    "    op.create_table('orders', sa.Column('id', sa.Integer, primary_key=True),\n"
    "        sa.Column('state', postgresql.ENUM('new', 'paid', 'gone', name='state'), nullable=False),\n"
    "        sa.Column('kind', sa.Enum('small', 'large', name='kind', native_enum=False, create_constraint=True), nullable=False),\n"
    "        sa.Column('qty', sa.Integer, sa.CheckConstraint('qty > 100', name='ck_qty'), nullable=False),\n"
    "        sa.Column('code', sa.String(20), nullable=True))\n"
    "def downgrade():\n    op.drop_table('orders')\n    op.execute('DROP TYPE state')\n"
)
DROP_ENUM_VALUE = (  # rows may hold 'gone': the conversion fails on real data too
    "def upgrade():\n"
    "    op.execute(\"ALTER TYPE state RENAME TO state_old\")\n"
    "    op.execute(\"CREATE TYPE state AS ENUM ('new', 'paid')\")\n"
    "    op.execute(\"ALTER TABLE orders ALTER COLUMN state TYPE state USING state::text::state\")\n"
    "    op.execute(\"DROP TYPE state_old\")\n"
    "def downgrade():\n"
    "    op.execute(\"ALTER TYPE state RENAME TO state_new\")\n"
    "    op.execute(\"CREATE TYPE state AS ENUM ('new', 'paid', 'gone')\")\n"
    "    op.execute(\"ALTER TABLE orders ALTER COLUMN state TYPE state USING state::text::state\")\n"
    "    op.execute(\"DROP TYPE state_new\")\n"
)
CODE_TO_INT = (  # the seeder's free text ('code-3') is no value a real code column need hold
    "def upgrade():\n"
    "    op.alter_column('orders', 'code', type_=sa.Integer, existing_type=sa.String(20), postgresql_using='code::integer')\n"
    "def downgrade():\n"
    "    op.alter_column('orders', 'code', type_=sa.String(20), existing_type=sa.Integer)\n"
)


def test_seeded_rows_respect_native_and_check_enums_and_checks(tmp_path: Path, pg_url: str) -> None:
    r = _roundtrip(tmp_path, [ENUM_TABLE, add("note", "orders")], pg_url)
    assert r.status == "passed", r.failures
    assert r.seeded.get("orders") == 20
    assert not [u for u in r.unchecked if u.what.startswith("seeding")]


def test_an_enum_value_rows_hold_is_a_real_failure(tmp_path: Path, pg_url: str) -> None:
    r = _roundtrip(tmp_path, [ENUM_TABLE, DROP_ENUM_VALUE], pg_url)
    assert _failed(r) == {("000000000002", "upgrade-failed")}
    assert r.failures[0].populated_only is True and "gone" in (r.failures[0].error or "")


def test_a_conversion_only_invented_values_break_is_not_the_revisions_fault(tmp_path: Path, pg_url: str) -> None:
    r = _roundtrip(tmp_path, [ENUM_TABLE, CODE_TO_INT], pg_url)
    assert r.failures == [] and r.status == "passed"
    # the roundtrip passed; the decision is still the policy's: a String->Integer downgrade does not restore values
    assert r.decision == "escalate" and [t.trigger for t in r.escalation.triggers] == ["unclear-rollback"]
    note = next(u for u in r.unchecked if u.revision == "000000000002")
    assert "seeded values" in note.reason and "code-" in note.reason


AUTOCOMMIT_INDEX = (
    "def upgrade():\n    with op.get_context().autocommit_block():\n"
    "        op.create_index('ix_t_name', 't', ['name'], postgresql_concurrently=True)\n"
    "def downgrade():\n    with op.get_context().autocommit_block():\n"
    "        op.drop_index('ix_t_name', table_name='t', postgresql_concurrently=True)\n"
)


def test_autocommit_blocks_work_after_the_roundtrip_and_a_revision_committed(tmp_path: Path, pg_url: str) -> None:
    committing = (
        "def upgrade():\n    op.add_column('t', sa.Column('c', sa.Integer))\n    op.get_bind().commit()\n"
        "def downgrade():\n    op.drop_column('t', 'c')\n"
    )
    # the roundtrip commits before each revision; alembic must still own a live transaction for
    # autocommit_block() to commit ("This transaction is inactive" otherwise)
    r = _roundtrip(tmp_path, [TABLE, AUTOCOMMIT_INDEX, committing, add("d"), AUTOCOMMIT_INDEX.replace("ix_t_name", "ix_t_d").replace("['name']", "['d']")],
                   pg_url, all_revisions=True)
    assert r.status == "passed", r.failures


def test_prepend_sys_path_makes_project_helpers_importable(tmp_path: Path, pg_url: str) -> None:
    root = make_project(tmp_path / "p", [TABLE, "from helpers import COLUMN\n" + add("x").replace("'x'", "COLUMN")])
    (root / "lib").mkdir()
    (root / "lib" / "helpers.py").write_text("COLUMN = 'from_helper'\n")
    ini = root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[alembic]\n", "[alembic]\nprepend_sys_path = lib\n"))
    r = test_roundtrip(load_project(root), database_url=pg_url)
    assert r.status == "passed", r.failures
