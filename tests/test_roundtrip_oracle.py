"""test_roundtrip against a plain alembic up/down/up replay (the oracle), on the embedded server and the system
PostgreSQL: extensions the server lacks are engine limits, recovery never invents a failure, invented rows never
hide a real one, and nothing tested is never a pass (issue 21)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
from alembic_replay import compare, replay  # noqa: E402
from conftest import PG_SERVER_URL  # noqa: E402
from projectfactory import make_project  # noqa: E402
from test_roundtrip_histories import add  # noqa: E402

from db_migrate.project import load_project  # noqa: E402
from db_migrate.roundtrip import RoundtripResult, test_roundtrip  # noqa: E402

TABLE = (
    "def upgrade():\n"
    "    op.create_table('t', sa.Column('id', sa.Integer, primary_key=True), sa.Column('name', sa.String(20)),\n"
    "                    sa.Column('url', sa.String(40)))\n"
    "def downgrade():\n    op.drop_table('t')\n"
)



PGCRYPTO = (  # as real histories do: the extension only for gen_random_uuid()
    "def upgrade():\n    op.execute('CREATE EXTENSION IF NOT EXISTS pgcrypto')\n"
    "    op.create_table('tok', sa.Column('id', sa.Uuid, primary_key=True, server_default=sa.text('gen_random_uuid()')),\n"
    "                    sa.Column('digest', sa.LargeBinary, server_default=sa.text(\"digest('x', 'sha256')\")))\n"
    "def downgrade():\n    op.drop_table('tok')\n    op.execute('DROP EXTENSION pgcrypto')\n"
)
UUID_OSSP = (
    "def upgrade():\n    op.execute('CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\"')\n"
    "    op.add_column('t', sa.Column('uid', sa.Uuid, server_default=sa.text('uuid_generate_v4()'), nullable=False))\n"
    "def downgrade():\n    op.drop_column('t', 'uid')\n    op.execute('DROP EXTENSION \"uuid-ossp\"')\n"
)
CRYPT = (  # a pgcrypto function no stand-in provides
    "def upgrade():\n    op.execute(\"SELECT crypt('secret', gen_salt('bf'))\")\n"
    "def downgrade():\n    pass\n"
)
NO_SUCH_EXTENSION = (  # an extension no server here has (as PostGIS is missing from the embedded one)
    "def upgrade():\n    op.execute('CREATE EXTENSION IF NOT EXISTS dbm_no_such_extension')\n"
    "def downgrade():\n    op.execute('DROP EXTENSION IF EXISTS dbm_no_such_extension')\n"
)
COMMITS_THEN_DOWNGRADE_FAILS = (  # commits mid-upgrade (CONCURRENTLY); its downgrade names the wrong index
    "def upgrade():\n    with op.get_context().autocommit_block():\n"
    "        op.create_index('ix_t_name', 't', ['name'], postgresql_concurrently=True)\n"
    "def downgrade():\n    op.drop_index('ix_t_wrong', table_name='t')\n"
)
DOWNGRADE_FAILS = "def upgrade():\n    op.execute('SELECT 1')\ndef downgrade():\n    op.execute('SELECT 1/0')\n"
UNIQUE_NAME = (  # real names are unique: invented ones must be too
    "def upgrade():\n    op.create_unique_constraint('uq_t_name', 't', ['name'])\n"
    "def downgrade():\n    op.drop_constraint('uq_t_name', 't', type_='unique')\n"
)
URL_CHECK_BAD_DOWNGRADE = (  # invented urls break the CHECK; the downgrade is broken on its own
    "def upgrade():\n    op.create_check_constraint('ck_t_url', 't', \"url LIKE 'https://%'\")\n"
    "def downgrade():\n    op.drop_constraint('ck_t_wrong', 't', type_='check')\n"
)
RANGES_AND_PARTITIONS = (
    "from sqlalchemy.dialects import postgresql\n"
    "def upgrade():\n"
    "    op.create_table('booking', sa.Column('id', sa.Integer, primary_key=True),\n"
    "                    sa.Column('seats', postgresql.INT4RANGE, nullable=False),\n"
    "                    sa.Column('during', postgresql.TSTZRANGE, nullable=False))\n"
    "    op.execute('CREATE TABLE ev (id integer NOT NULL, kind text NOT NULL, at date NOT NULL) PARTITION BY LIST (kind)')\n"
    "    op.execute(\"CREATE TABLE ev_a PARTITION OF ev FOR VALUES IN ('alpha')\")\n"
    "    op.execute(\"CREATE TABLE ev_b PARTITION OF ev FOR VALUES IN ('beta', 'gamma')\")\n"
    "    op.execute('CREATE TABLE log (id integer NOT NULL, at date NOT NULL) PARTITION BY RANGE (at)')\n"
    "    op.execute(\"CREATE TABLE log_2020 PARTITION OF log FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')\")\n"
    "def downgrade():\n    op.drop_table('booking')\n    op.execute('DROP TABLE ev')\n    op.execute('DROP TABLE log')\n"
)
MISSING_MODULE = "import dbm_not_installed_anywhere\n" + add("m")

_KIND_STEP = {"upgrade-failed": "upgrade", "downgrade-failed": "downgrade", "reupgrade-failed": "reupgrade"}


@pytest.fixture(params=["embedded", "system"])
def server(request) -> str:
    return request.getfixturevalue("embedded_pg" if request.param == "embedded" else "pg_url")


def _scratch(server: str, pg_url: str) -> str | None:
    """The roundtrip's database_url: none for the embedded server (the default engine of a PostgreSQL project)."""
    return server if server == pg_url else None


def _history(tmp_path: Path, revisions: list) -> Path:
    return make_project(tmp_path / "p", revisions, models="import sqlalchemy as sa\ntarget_metadata = sa.MetaData()\n")


def _step_failures(r: RoundtripResult) -> set[tuple[str, str]]:
    return {(f.revision, _KIND_STEP[f.kind]) for f in r.failures if f.kind in _KIND_STEP}


def assert_agrees(r: RoundtripResult, oracle: dict) -> None:
    """Every failure the replay finds is reported (a failure, or an engine limit in unchecked); every failure
    reported is one the replay shows, or one the seeded rows prove (it passes on an empty database)."""
    diff = compare(r.model_dump(mode="json"), oracle)
    assert (diff["missed"], diff["false"]) == ([], []), (oracle, r.failures, r.unchecked)


def _run(root: Path, server: str, **kw) -> tuple[RoundtripResult, dict]:
    r = test_roundtrip(load_project(root), database_url=_scratch(server, PG_SERVER_URL), **kw)
    return r, replay(str(root / "alembic.ini"), server)


# --------------------------------------------------------------------------- 1. engine limits

def test_pgcrypto_and_uuid_ossp_run_on_stand_ins_and_say_so(tmp_path: Path, server: str, pg_url: str) -> None:
    root = _history(tmp_path, [TABLE, PGCRYPTO, UUID_OSSP, add("a")])
    r, oracle = _run(root, server, all_revisions=True)
    assert r.status == "passed" and r.decision == "proceed", (r.failures, r.unchecked)
    assert len(r.revisions) == 4 and oracle["failures"] == []
    notes = [u for u in r.unchecked if u.what.startswith("extensions")]
    if server == pg_url:
        assert notes == []  # the system server has both: nothing stands in
    else:
        assert notes and "pgcrypto" in notes[0].reason and "uuid-ossp" in notes[0].reason
        assert "--database-url" in notes[0].reason
    assert_agrees(r, oracle)


def test_a_function_the_stand_in_lacks_is_unchecked_not_revise(tmp_path: Path, server: str, pg_url: str) -> None:
    root = _history(tmp_path, [TABLE, PGCRYPTO, CRYPT, add("a")])
    r, oracle = _run(root, server, all_revisions=True)
    assert r.failures == []
    if server == pg_url:
        assert r.status == "passed" and oracle["failures"] == []
    else:
        assert r.status == "partial" and r.decision == "escalate"
        note = next(u for u in r.unchecked if u.revision == "000000000003")
        assert "crypt" in note.reason and "--database-url" in note.reason
        assert "untested-revision" in [t.trigger for t in r.escalation.triggers]
    assert_agrees(r, oracle)


def test_an_extension_the_server_lacks_is_unchecked_and_the_history_goes_on(tmp_path: Path, server: str) -> None:
    root = _history(tmp_path, [
        TABLE,
        {"id": "ext", "down": "000000000001", "body": NO_SUCH_EXTENSION},
        {"id": "after", "down": "ext", "body": add("a")},
        {"id": "side", "down": "000000000001", "body": add("s")},
    ])
    r, oracle = _run(root, server, all_revisions=True)
    assert r.failures == [] and r.decision == "escalate" and r.status == "partial"
    note = next(u for u in r.unchecked if u.revision == "ext")
    assert "dbm_no_such_extension" in note.reason and "--database-url" in note.reason
    assert any(u.revision == "after" for u in r.unchecked)  # its descendant could not be reached, and says why
    assert any(s.revision == "side" and s.step == "reupgrade" and s.ok for s in r.steps)
    assert ("ext", "upgrade") in {(rev, step) for rev, step, _ in oracle["failures"]}
    assert_agrees(r, oracle)
    head_only = test_roundtrip(load_project(root), "ext", database_url=_scratch(server, PG_SERVER_URL))
    assert head_only.status == "untested" and head_only.decision == "escalate"


def test_drift_check_runs_on_stand_ins_and_names_a_missing_extension(tmp_path: Path, server: str, pg_url: str) -> None:
    from db_migrate.heads.drift import model_drift
    from db_migrate.project import load_history

    root = _history(tmp_path / "ok", [TABLE, PGCRYPTO, UUID_OSSP])
    project = load_project(root)
    history = load_history(project)
    out = model_drift(project, history, history.heads[0], scratch_url=_scratch(server, pg_url))
    assert out.checked, out.unchecked
    if server != pg_url:
        assert any(u.what.startswith("extensions") and "pgcrypto" in u.reason for u in out.unchecked)
    root = _history(tmp_path / "missing", [TABLE, NO_SUCH_EXTENSION])
    project = load_project(root)
    history = load_history(project)
    out = model_drift(project, history, history.heads[0], scratch_url=_scratch(server, pg_url))
    assert not out.checked and out.findings == []
    reason = next(u.reason for u in out.unchecked if u.what == "model drift")
    assert "dbm_no_such_extension" in reason and "--database-url" in reason


# --------------------------------------------------------------------------- 2. recovery

def test_a_committing_revision_whose_downgrade_fails_is_not_blamed_again(tmp_path: Path, server: str) -> None:
    root = _history(tmp_path, [TABLE, COMMITS_THEN_DOWNGRADE_FAILS, add("a"), DOWNGRADE_FAILS, add("b")])
    for rows in (0, 20):
        r, oracle = _run(root, server, all_revisions=True, rows=rows)
        assert _step_failures(r) == {("000000000002", "downgrade"), ("000000000004", "downgrade")}, r.failures
        assert len({s.revision for s in r.steps if s.step == "upgrade" and s.ok}) == 5  # reached head
        assert not [u for u in r.unchecked if u.what == "roundtrip"]
        assert "empty database" not in " ".join([f.error or "" for f in r.failures] + [u.reason for u in r.unchecked])
        assert r.status == "failed" and r.decision != "proceed"  # revise, or escalate by the policy
        assert_agrees(r, oracle)


# --------------------------------------------------------------------------- 3. seeded rows

def test_seeded_rows_are_rows_the_schema_accepts(tmp_path: Path, server: str) -> None:
    root = _history(tmp_path, [TABLE, UNIQUE_NAME, RANGES_AND_PARTITIONS, add("x", "booking")])
    r, oracle = _run(root, server, all_revisions=True)
    assert r.status == "passed", (r.failures, r.unchecked)
    assert r.seeded.get("booking") == 20 and r.seeded.get("ev", 0) >= 3 and r.seeded.get("log", 0) >= 1
    assert not [u for u in r.unchecked if u.what.startswith("seeding")]
    assert_agrees(r, oracle)


def test_an_upgrade_only_invented_rows_break_still_has_its_downgrade_tested(tmp_path: Path, server: str) -> None:
    root = _history(tmp_path, [TABLE, URL_CHECK_BAD_DOWNGRADE, add("a")])
    r, oracle = _run(root, server, all_revisions=True)
    # the CHECK fails only on invented urls: unchecked, with the constraint and the value
    note = next(u for u in r.unchecked if u.revision == "000000000002" and "with rows" in u.what)
    assert "ck_t_url" in note.reason and "url-" in note.reason
    # its downgrade, broken on its own, is still found (on an empty database)
    assert _step_failures(r) == {("000000000002", "downgrade")}, r.failures
    assert r.decision != "proceed"  # revise, or escalate by the policy (an added CHECK)
    assert_agrees(r, oracle)
    r0 = test_roundtrip(load_project(root), database_url=_scratch(server, PG_SERVER_URL), all_revisions=True, rows=0)
    assert _step_failures(r0) == _step_failures(r)


# --------------------------------------------------------------------------- 4. nothing tested is not a pass

def test_an_untested_revision_is_never_a_pass(tmp_path: Path, server: str) -> None:
    root = _history(tmp_path, [TABLE, MISSING_MODULE])
    r = test_roundtrip(load_project(root), database_url=_scratch(server, PG_SERVER_URL))
    assert r.status == "untested" and r.decision == "escalate" and r.failures == []
    assert "0 revision(s)" in r.summary and "could not be tested" in r.summary
    # --all: alembic loads every revision file first, so none can run here; none is a failure either
    r_all = test_roundtrip(load_project(root), database_url=_scratch(server, PG_SERVER_URL), all_revisions=True)
    assert r_all.status == "untested" and r_all.decision == "escalate" and r_all.failures == []
    assert "untested-revision" in [t.trigger for t in r_all.escalation.triggers]
    # an import inside upgrade() stops only its own revision: the others are tested (partial)
    lazy = "def upgrade():\n    import dbm_not_installed_anywhere\ndef downgrade():\n    pass\n"
    root = _history(tmp_path / "lazy", [TABLE, lazy, add("z")])
    r_lazy = test_roundtrip(load_project(root), database_url=_scratch(server, PG_SERVER_URL), all_revisions=True)
    assert r_lazy.status == "partial" and r_lazy.decision == "escalate" and r_lazy.failures == []


def test_stand_ins_need_no_superuser(embedded_pg: str) -> None:
    """The role a job connects as (it only owns its scratch database) creates both stand-ins: they are trusted."""
    import psycopg

    from db_migrate.scratch import scratch_database
    from db_migrate.scratch.embedded import _connect_kwargs

    with scratch_database(embedded_pg, purpose="ext") as db:
        assert db.role and _connect_kwargs(db.url)["user"] == db.role
        with psycopg.connect(**_connect_kwargs(db.url), autocommit=True) as c:
            assert c.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
            c.execute('CREATE EXTENSION pgcrypto')
            c.execute('CREATE EXTENSION "uuid-ossp"')
            v3, digest, own = c.execute(
                "SELECT uuid_generate_v3(uuid_ns_dns(), 'www.example.com'), encode(digest('abc', 'sha256'), 'hex'), "
                "public.gen_random_uuid() IS NOT NULL").fetchone()
            assert str(v3) == "5df41881-3aed-3515-88a7-2f4a814cf09e"  # RFC 4122's v3 of this name
            assert digest.startswith("ba7816bf") and own
