"""Project code holds none of the caller's privileges (issue 17): each attack a hostile revision.

Run as root, as CI does.  Each revision below looks around its box and raises a
``RuntimeError`` carrying what it could do (``REPORT=<json>=END``); the test reads
that report from the verdict and checks nothing got out.  Where the machine lacks a
mechanism (no PID namespace, not root), the test checks that the verdict's
``isolation`` field says so instead of the attack failing.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from projectfactory import make_project

from db_migrate.project import load_project
from db_migrate.review import review_migration

CLI = str(Path(sys.executable).parent / "db-migrate")
TOKEN = f"holder-token-{secrets.token_hex(6)}"  # what another process keeps in its environment
ARGV_PASSWORD = f"argv-pass-{secrets.token_hex(6)}"  # what it shows on its command line
PG_PASSWORD = f"pgpass-{secrets.token_hex(6)}"

# The looking around, in the revision's own words: every attack of the issue, none of them raising.
SNOOP = '''
import glob, json, os, site, socket, sys


def _try(fn):
    try:
        return fn()
    except Exception as e:
        return "refused: %s" % type(e).__name__


def _write(path):
    with open(path, "w") as f:
        f.write("import os  # dbm hostile .pth")
    return "wrote"


def _read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def _connect(port):
    socket.create_connection(("127.0.0.1", port), timeout=3).close()
    return "connected"


def _snoop(marker, holder):
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    pids = sorted(p for p in os.listdir("/proc") if p.isdigit())
    others = [p for p in pids if p != str(os.getpid())] + ([holder] if holder not in pids else [])
    return {
        "pid": os.getpid(), "pids": pids, "uid": os.getuid(),
        "CapEff": status["CapEff"].strip(), "CapBnd": status["CapBnd"].strip(),
        "NoNewPrivs": status.get("NoNewPrivs", "?").strip(),
        "proc_root": {r: _try(lambda r=r: _write(r + marker)) for r in glob.glob("/proc/[0-9]*/root")},
        "holder_root": _try(lambda: _write("/proc/%s/root%s" % (holder, marker))),
        "pth": {sp: _try(lambda sp=sp: _write(os.path.join(sp, "dbm_hostile.pth")))
                for sp in site.getsitepackages() + [os.path.dirname(os.__file__)]},
        "environs": "".join(str(_try(lambda p=p: _read("/proc/%s/environ" % p))) for p in others),
        "cmdlines": "".join(str(_try(lambda p=p: _read("/proc/%s/cmdline" % p))) for p in others),
        "env": dict(os.environ),
        "pg_tcp": _try(lambda: _connect(5432)),
        "mysql_tcp": _try(lambda: _connect(3306)),
    }
'''


def hostile(marker: Path, holder: int, *, prints_environ: bool = False) -> str:
    """A revision whose upgrade() reports what it could reach, then raises with the report."""
    show = "    print('ENVIRON', dict(os.environ), file=sys.stderr)\n" if prints_environ else ""
    return (
        SNOOP
        + "def upgrade():\n"
        + show
        + f"    raise RuntimeError('REPORT=' + json.dumps(_snoop({str(marker)!r}, {str(holder)!r})) + '=END')\n"
        + "def downgrade():\n    pass\n"
    )


def report_of(verdict) -> dict:
    text = verdict if isinstance(verdict, str) else verdict.model_dump_json()
    start = text.index("REPORT=") + len("REPORT=")
    raw = text[start:text.index("=END", start)]
    return json.loads(json.loads(f'"{raw}"')) if '\\"' in raw else json.loads(raw)


@pytest.fixture
def holder():
    """Another process of the machine, holding a secret in its environment and on its command line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; time.sleep(600)", f"--password={ARGV_PASSWORD}"],
        env={**os.environ, "DBM_HOLDER_TOKEN": TOKEN},
    )
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A path outside every job's folder that no job may create (through any route)."""
    return tmp_path / "outside" / "planted.txt"


def _project(tmp_path: Path, body: str, **kw) -> Path:
    (tmp_path / "outside").mkdir(exist_ok=True)
    return make_project(tmp_path / "p", [body], **kw)


def _boxed(iso) -> bool:
    """Whether this machine gave the job its own PID namespace (else the verdict must say so)."""
    return iso.processes == "own-pid-namespace"


def _check_no_escape(rep: dict, outside: Path, iso, *, identity: str = "unprivileged") -> None:
    """The common acceptance: no write through /proc, no .pth, no capability, no other process's secrets."""
    assert not outside.exists(), "a job wrote outside its folder"
    assert all(v.startswith("refused") for v in rep["pth"].values()), rep["pth"]
    assert not [p for p in Path(sys.prefix).rglob("dbm_hostile.pth")]
    assert int(rep["CapEff"], 16) == 0 and int(rep["CapBnd"], 16) == 0, (rep["CapEff"], rep["CapBnd"])
    assert rep["NoNewPrivs"] == "1"
    if not _boxed(iso):
        assert iso.processes == "shared" and "other processes visible" in iso.summary
        return
    assert rep["pid"] == 1 and rep["pids"] == ["1"], "the job sees other processes"
    assert rep["holder_root"].startswith("refused")
    assert TOKEN not in rep["environs"] and ARGV_PASSWORD not in rep["cmdlines"]
    if os.geteuid() == 0:
        assert iso.identity == identity and rep["uid"] == (65534 if identity == "unprivileged" else 0)


def test_review_job_cannot_leave_its_box(tmp_path: Path, holder: int, outside: Path) -> None:
    """Static job (review, classify): no /proc route out, no .pth, no capabilities, no secrets, no network."""
    root = _project(tmp_path, hostile(outside, holder))
    v = review_migration(load_project(root), "head")
    rep = report_of(v)
    _check_no_escape(rep, outside, v.isolation)
    assert v.isolation.network == "none"
    assert rep["pg_tcp"].startswith("refused") and rep["mysql_tcp"].startswith("refused")


def test_classify_job_cannot_leave_its_box(tmp_path: Path, holder: int, outside: Path) -> None:
    from db_migrate.classify import classify_escalation

    root = _project(tmp_path, hostile(outside, holder))
    v = classify_escalation(load_project(root), "head")
    assert v.isolation.network == "none" and v.isolation.processes == "own-pid-namespace"
    assert v.isolation.identity == ("unprivileged" if os.geteuid() == 0 else v.isolation.identity)
    assert not outside.exists()


def test_sqlite_roundtrip_job_has_no_network(tmp_path: Path, holder: int, outside: Path) -> None:
    from db_migrate.roundtrip import test_roundtrip

    root = _project(tmp_path, hostile(outside, holder), url="sqlite:///app.db")
    r = test_roundtrip(load_project(root), database_url="sqlite://", rows=1)
    rep = report_of(r)
    _check_no_escape(rep, outside, r.isolation)
    assert rep["pg_tcp"].startswith("refused") and rep["mysql_tcp"].startswith("refused")
    assert r.isolation.network == "none"


def test_sqlite_generate_job_has_no_network(tmp_path: Path, holder: int, outside: Path) -> None:
    from db_migrate.errors import DbMigrateError
    from db_migrate.generate import generate_migration

    root = _project(tmp_path, hostile(outside, holder), url="sqlite:///app.db")
    with pytest.raises(DbMigrateError) as e:  # head is built first: the hostile upgrade runs and raises
        generate_migration(load_project(root), "next", scratch_url="sqlite://")
    rep = report_of(str(e.value))
    assert rep["pg_tcp"].startswith("refused") and rep["mysql_tcp"].startswith("refused")
    assert not outside.exists() and int(rep["CapEff"], 16) == 0


def test_tcp_scratch_job_reaches_its_server_only(tmp_path: Path, holder: int, outside: Path, pg_url: str, mysql_url: str) -> None:
    """A job on a TCP scratch server (127.0.0.1:5432) talks to it through the relay; no other port answers."""
    from db_migrate.roundtrip import test_roundtrip

    root = _project(tmp_path, hostile(outside, holder))
    r = test_roundtrip(load_project(root), database_url=pg_url, rows=1)
    rep = report_of(r)
    _check_no_escape(rep, outside, r.isolation)
    assert r.isolation.network == "scratch-database-only"
    assert rep["mysql_tcp"].startswith("refused")  # another port of the same host
    assert rep["pg_tcp"].startswith("refused")  # even the scratch server's own port: only the relay's socket leads there


def test_tcp_scratch_job_works_through_the_relay(tmp_path: Path, pg_url: str) -> None:
    """The relay carries a real roundtrip: upgrade, downgrade, upgrade on the scratch server."""
    from db_migrate.roundtrip import test_roundtrip

    body = ("def upgrade():\n    op.create_table('persons', sa.Column('id', sa.Integer, primary_key=True))\n"
            "def downgrade():\n    op.drop_table('persons')\n")
    r = test_roundtrip(load_project(make_project(tmp_path / "p", [body])), database_url=pg_url, rows=1)
    assert r.status == "passed", r.model_dump_json()
    assert r.isolation.network == "scratch-database-only" and r.isolation.processes == "own-pid-namespace"


def test_pgpassword_never_reaches_a_job_nor_the_caller(tmp_path: Path, holder: int, outside: Path) -> None:
    """PGPASSWORD and *_TOKEN of the caller: not in the job's environment; a revision printing os.environ shows neither."""
    root = _project(tmp_path, hostile(outside, holder, prints_environ=True))
    done = subprocess.run(
        [CLI, "review", "head", "--format", "json"], cwd=root, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PGPASSWORD": PG_PASSWORD, "DBM_CALLER_TOKEN": TOKEN,
             "DATABASE_URL": f"postgresql://u:{PG_PASSWORD}x@db.example/prod"},
    )
    assert "ENVIRON" in done.stderr  # the job's print reached the caller...
    assert PG_PASSWORD not in done.stdout + done.stderr and TOKEN not in done.stdout + done.stderr  # ...without them
    rep = report_of(json.loads(done.stdout)["findings"][0]["message"])
    assert not {"PGPASSWORD", "DBM_CALLER_TOKEN", "DATABASE_URL"} & set(rep["env"])


def test_a_secret_printed_by_a_job_is_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    """Should project code come by a credential of the caller's environment anyway, its prints are scrubbed."""
    from db_migrate.sandbox import run_job

    folder = tmp_path / "mod"
    folder.mkdir()
    (folder / "dbm_printer.py").write_text("import sys\ndef show(text):\n    print('seen', text, file=sys.stderr)\n")
    monkeypatch.setenv("PGPASSWORD", PG_PASSWORD)
    run_job("dbm_printer:show", cwd=folder, isolation="static", text=PG_PASSWORD)
    err = capfd.readouterr().err
    assert "seen ***" in err and PG_PASSWORD not in err


def test_a_private_project_is_lent_read_only_to_nobody(tmp_path: Path, holder: int, outside: Path) -> None:
    """A project folder only its owner may read (umask 077): lent read-only through an idmapped mount."""
    if os.geteuid() != 0:
        pytest.skip("root's identity change")
    root = _project(tmp_path, hostile(outside, holder))
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    v = review_migration(load_project(root), "head")
    _check_no_escape(report_of(v), outside, v.isolation)  # as nobody, which read the 0600 revision


def test_a_private_project_written_into_falls_back_to_root_without_capabilities_and_says_so(tmp_path: Path) -> None:
    """generate writes inside a project folder nobody may not read: the job keeps uid 0, never a capability."""
    if os.geteuid() != 0:
        pytest.skip("the fallback is root's")
    from db_migrate.generate import generate_migration

    models = ("import sqlalchemy as sa\ntarget_metadata = sa.MetaData()\n"
              "sa.Table('added', target_metadata, sa.Column('id', sa.Integer, primary_key=True))\n")
    first = "def upgrade():\n    pass\ndef downgrade():\n    pass\n"
    root = make_project(tmp_path / "p", [first], models=models, url="sqlite:///app.db")
    os.chmod(root, 0o700)
    r = generate_migration(load_project(root), "add", scratch_url="sqlite://")
    assert r.created and (root / r.path).stat().st_uid == 0
    assert r.isolation.identity == "root-without-capabilities"
    assert "not readable by an unprivileged user" in r.isolation.summary
    assert r.isolation.processes == "own-pid-namespace" and r.isolation.network == "none"


def test_a_spawned_process_dies_with_its_job(tmp_path: Path) -> None:
    """A revision's setsid'd child dies when the job (pid 1 of its namespace) exits."""
    tag = f"dbm-box-orphan-{secrets.token_hex(4)}"
    body = ("import subprocess, sys\n"
            "def upgrade():\n"
            f"    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', {tag!r}], start_new_session=True)\n"
            "def downgrade():\n    pass\n")
    review_migration(load_project(make_project(tmp_path / "p", [body])), "head")

    def alive() -> list[str]:
        found = []
        for p in Path("/proc").iterdir():
            try:
                if p.name.isdigit() and tag in (p / "cmdline").read_text():
                    found.append(p.name)
            except OSError:
                pass
        return found

    end = time.monotonic() + 20  # bounds a hang only; nothing is timed
    while alive() and time.monotonic() < end:
        time.sleep(0.1)
    assert alive() == []


def test_embedded_scratch_job_reaches_its_socket_only(tmp_path: Path, holder: int, outside: Path) -> None:
    """On the embedded server (a Unix socket), the job gets that socket alone: no TCP, no other socket."""
    from db_migrate.roundtrip import test_roundtrip

    root = _project(tmp_path, hostile(outside, holder))
    r = test_roundtrip(load_project(root), rows=1)  # no database_url: the embedded PostgreSQL server
    if not (r.engine and r.engine.embedded):
        pytest.skip("no embedded PostgreSQL server here")
    rep = report_of(r)
    _check_no_escape(rep, outside, r.isolation)
    assert r.isolation.network == "scratch-database-only" and "Unix socket" in r.isolation.summary
    assert rep["pg_tcp"].startswith("refused") and rep["mysql_tcp"].startswith("refused")


def test_generate_reads_a_named_postgresql_database_in_our_process(tmp_path: Path, pg_url: str) -> None:
    """generate --database-url postgresql://...@127.0.0.1:5432/x with the embedded scratch server: the
    copy of the schema is read by our code (no "Network is unreachable"), the job only sees the copy."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from db_migrate.generate import generate_migration

    name = f"box_named_{secrets.token_hex(5)}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    try:
        eng = create_engine(url, poolclass=NullPool)
        with eng.begin() as c:
            c.execute(text("CREATE TABLE t (n int)"))
            c.execute(text("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)"))
            c.execute(text("INSERT INTO alembic_version VALUES ('000000000001')"))
        eng.dispose()
        models = ("import sqlalchemy as sa\ntarget_metadata = sa.MetaData()\n"
                  "sa.Table('t', target_metadata, sa.Column('n', sa.Integer))\n"
                  "sa.Table('added', target_metadata, sa.Column('id', sa.Integer, primary_key=True))\n")
        create_t = "def upgrade():\n    op.create_table('t', sa.Column('n', sa.Integer))\ndef downgrade():\n    op.drop_table('t')\n"
        root = make_project(tmp_path / "p", [create_t], models=models, url=url)
        r = generate_migration(load_project(root), "add table", database_url=url)
        assert r.created and "create_table('added'" in r.upgrade_code, r.summary
        assert r.isolation.network in ("none", "scratch-database-only")
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
