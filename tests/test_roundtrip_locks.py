"""Locks and rewrites measured during the roundtrip's upgrade (real PostgreSQL), and the review's
lock/rewrite findings confirmed or cleared by them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from projectfactory import make_project  # noqa: E402

from db_migrate.project import load_project  # noqa: E402
from db_migrate.roundtrip import RoundtripResult, test_roundtrip  # noqa: E402

TABLE = (
    "def upgrade():\n"
    "    op.create_table('t', sa.Column('id', sa.Integer, primary_key=True), sa.Column('n', sa.Integer),\n"
    "                    sa.Column('s', sa.String(20)))\n"
    "def downgrade():\n    op.drop_table('t')\n"
)
TO_BIGINT = (
    "def upgrade():\n    op.alter_column('t', 'n', type_=sa.BigInteger, existing_type=sa.Integer)\n"
    "def downgrade():\n    op.alter_column('t', 'n', type_=sa.Integer, existing_type=sa.BigInteger)\n"
)
WIDEN = (
    "def upgrade():\n    op.alter_column('t', 's', type_=sa.String(50), existing_type=sa.String(20))\n"
    "def downgrade():\n    op.alter_column('t', 's', type_=sa.String(20), existing_type=sa.String(50))\n"
)
INDEX = (
    "def upgrade():\n    op.create_index('ix_t_n', 't', ['n'])\n"
    "def downgrade():\n    op.drop_index('ix_t_n', table_name='t')\n"
)


def _roundtrip(tmp_path: Path, body: str, pg_url: str) -> RoundtripResult:
    return test_roundtrip(load_project(make_project(tmp_path / "p", [TABLE, body])), database_url=pg_url)


def _modes(r: RoundtripResult, table: str) -> set[str]:
    return {lk.mode for t in r.locks for lk in t.locks if lk.table == table}


def test_a_type_change_is_measured_as_a_rewrite_under_access_exclusive(tmp_path: Path, pg_url: str) -> None:
    r = _roundtrip(tmp_path, TO_BIGINT, pg_url)
    assert r.status == "passed"
    alter = [t for t in r.locks if t.statement.startswith("ALTER TABLE t")]
    assert alter and "t" in alter[0].rewritten and all(t.revision == "000000000002" for t in r.locks)
    assert "AccessExclusiveLock" in _modes(r, "t")
    checks = [c for c in r.lock_checks if c.rule == "alter-column-type"]
    assert checks and checks[0].outcome == "confirmed" and "rewritten" in checks[0].evidence


def test_a_varchar_widening_takes_the_lock_but_rewrites_nothing(tmp_path: Path, pg_url: str) -> None:
    r = _roundtrip(tmp_path, WIDEN, pg_url)
    assert "AccessExclusiveLock" in _modes(r, "t")
    assert not [t for t in r.locks if t.rewritten]
    assert all(c.outcome == "cleared" for c in r.lock_checks if c.rule == "alter-column-type")


def test_a_plain_create_index_holds_a_share_lock(tmp_path: Path, pg_url: str) -> None:
    r = _roundtrip(tmp_path, INDEX, pg_url)
    assert "ShareLock" in _modes(r, "t")
    checks = [c for c in r.lock_checks if c.rule == "create-index-non-concurrent"]
    assert checks and checks[0].outcome == "confirmed"
    # the seed and snapshot statements of the roundtrip itself are not traced
    assert not [t for t in r.locks if t.statement.upper().startswith(("INSERT", "SELECT"))]
