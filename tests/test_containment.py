"""Hostile project code stays in its box (issue 9): each case a revision or env.py written to misbehave.

Where the operating system's isolation (namespaces) is not available on a
machine, the tests that rely on it check the verdict's ``isolation`` field
says so instead (see :func:`namespaces`).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from projectfactory import make_project
from polling import wait_until

from db_migrate.errors import DatabaseError, MemoryLimitExceeded, Refused
from db_migrate.project import load_project
from db_migrate.review import review_migration
from db_migrate.sandbox import run_job
from db_migrate.scratch import list_databases, owner_tag, scratch_database

CLI = str(Path(sys.executable).parent / "db-migrate")
NOT_NULL = ("def upgrade():\n    op.add_column('persons', sa.Column('nick', sa.String(20), nullable=False))\n"
            "def downgrade():\n    op.drop_column('persons', 'nick')\n")
PERSONS = ("def upgrade():\n    op.create_table('persons', sa.Column('id', sa.Integer, primary_key=True))\n"
           "def downgrade():\n    op.drop_table('persons')\n")




@pytest.fixture(scope="module")
def namespaces(tmp_path_factory: pytest.TempPathFactory) -> bool:
    """Whether static jobs get a private network and a read-only filesystem on this machine."""
    iso = review_migration(load_project(make_project(tmp_path_factory.mktemp("ns"), [PERSONS])), "head").isolation
    return iso.network == "none" and iso.filesystem == "read-only"


@pytest.fixture
def victim(pg_url: str):
    """A database that is not scratch: hostile code must not write to it. Yields its URL."""
    name = f"h4victim_{secrets.token_hex(5)}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    eng = create_engine(url, poolclass=NullPool)
    with eng.begin() as c:
        c.execute(text("CREATE TABLE t (n int)"))
    yield url
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _victim_state(url: str) -> tuple[int, list[str]]:
    eng = create_engine(url, poolclass=NullPool)
    with eng.connect() as c:
        rows = c.execute(text("SELECT count(*) FROM t")).scalar_one()
        tables = sorted(c.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
    eng.dispose()
    return rows, tables


def _reach_out(victim_url: str, marker: Path, mysql_url: str | None = None) -> str:
    """Module-level code that writes everywhere it can: the victim (TCP and Unix socket), files, MariaDB."""
    u = make_url(victim_url)
    lines = [
        "import os, psycopg",
        "for kw in (dict(host='127.0.0.1', port=5432), dict(host='/var/run/postgresql')):",
        "    try:",
        f"        with psycopg.connect(dbname={u.database!r}, user='postgres', autocommit=True, connect_timeout=3, **kw) as c:",
        "            c.execute('INSERT INTO t VALUES (1)')",
        "    except Exception as e:",
        "        print('blocked:', type(e).__name__)",
        "for path in (" + repr(str(marker)) + ", os.path.join(os.path.dirname(__file__), '..', 'env.py')):",
        "    try:",
        "        open(path, 'a').write('# written by a hostile revision\\n')",
        "    except OSError as e:",
        "        print('blocked:', e)",
    ]
    if mysql_url:
        lines += [
            "import pymysql",
            "for kw in (dict(host='127.0.0.1', port=3306), dict(unix_socket='/run/mysqld/mysqld.sock')):",
            "    try:",
            "        pymysql.connect(user='root', connect_timeout=3, **kw).cursor().execute('CREATE DATABASE IF NOT EXISTS h4_hostile_was_here')",
            "    except Exception as e:",
            "        print('blocked:', type(e).__name__)",
        ]
    return "\n".join(lines) + "\n"


# -- 1. no state across calls ---------------------------------------------------------------------


def test_a_revision_that_patches_the_job_machinery_does_not_reach_the_next_call(tmp_path: Path) -> None:
    spy = tmp_path / "spied.txt"
    patcher = (
        "import db_migrate.review.engine as _engine, db_migrate.sandbox.worker as _worker\n"
        "_engine.review_job = lambda **kw: []\n"
        "_real = _worker._run_one\n"
        "def _spy(target, kwargs, cwd):\n"
        f"    open({str(spy)!r}, 'a').write(repr(kwargs))\n"
        "    return _real(target, kwargs, cwd)\n"
        "_worker._run_one = _spy\n" + PERSONS
    )
    project = load_project(make_project(tmp_path / "p", [patcher, NOT_NULL]))
    review_migration(project, "000000000001")
    later = review_migration(project, "000000000002")
    assert later.decision == "revise" and any(f.rule == "add-column-not-null-no-default" for f in later.findings)
    assert not spy.exists()


# -- 2. no reach beyond scratch ------------------------------------------------------------------


def test_review_and_classify_cannot_write_to_another_database_or_outside_files(
    tmp_path: Path, victim: str, mysql_url: str, namespaces: bool
) -> None:
    from db_migrate.classify import classify_escalation

    marker = tmp_path / "outside.txt"
    root = make_project(tmp_path / "p", [PERSONS, _reach_out(victim, marker, mysql_url) + NOT_NULL])
    env_before = (root / "migrations" / "env.py").read_text()
    project = load_project(root)
    results = [review_migration(project, "head"), classify_escalation(project, "head")]
    if not namespaces:
        assert all(r.isolation.network == "unrestricted" for r in results), "without namespaces the verdict must say so"
        pytest.skip("namespaces unavailable here: the isolation field says the network was not restricted")
    assert all(r.isolation.network == "none" and r.isolation.filesystem == "read-only" for r in results)
    assert _victim_state(victim) == (0, ["t"])
    assert not marker.exists() and (root / "migrations" / "env.py").read_text() == env_before
    eng = create_engine(mysql_url, poolclass=NullPool)
    with eng.connect() as c:
        assert "h4_hostile_was_here" not in c.execute(text("SHOW DATABASES")).scalars().all()
    eng.dispose()


def test_roundtrip_jobs_cannot_write_files_and_say_what_the_network_allowed(tmp_path: Path, pg_url: str, namespaces: bool) -> None:
    from db_migrate.roundtrip import test_roundtrip

    marker = tmp_path / "outside.txt"
    body = PERSONS.replace("def upgrade():\n", f"def upgrade():\n    open({str(marker)!r}, 'w').write('x')\n")
    r = test_roundtrip(load_project(make_project(tmp_path / "p", [body])), database_url=pg_url, rows=1)
    if not namespaces:
        assert r.isolation.filesystem == "unrestricted"
        pytest.skip("namespaces unavailable here: the isolation field says the filesystem was not restricted")
    assert not marker.exists() and r.status == "failed"
    assert r.isolation.filesystem == "read-only"
    assert r.isolation.network == "scratch-database-only"  # over TCP: through the box's relay, to that server alone


# -- 3. the user's database is only read -------------------------------------------------------------


def test_generate_against_a_named_database_never_hands_it_to_project_code(tmp_path: Path, pg_url: str, victim: str) -> None:
    from db_migrate.generate import generate_migration

    models = (
        "import sqlalchemy as sa\n"
        "target_metadata = sa.MetaData()\n"
        "sa.Table('t', target_metadata, sa.Column('n', sa.Integer))\n"
        "sa.Table('added', target_metadata, sa.Column('id', sa.Integer, primary_key=True))\n"
        "from alembic import context\n"
        "_url = context.config.get_main_option('sqlalchemy.url')\n"
        "_eng = sa.create_engine(_url)\n"
        "with _eng.connect() as _c:\n"
        "    _c.exec_driver_sql('SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE')\n"
        "    _c.exec_driver_sql('COMMIT')\n"
        "    _c.exec_driver_sql('CREATE TABLE hostile (x int)')\n"
        "    _c.exec_driver_sql('COMMIT')\n"
    )
    create_t = "def upgrade():\n    op.create_table('t', sa.Column('n', sa.Integer))\ndef downgrade():\n    op.drop_table('t')\n"
    root = make_project(tmp_path / "p", [create_t], models=models, url=victim)
    eng = create_engine(victim, poolclass=NullPool)
    with eng.begin() as c:  # the user's database is at head
        c.execute(text("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)"))
        c.execute(text("INSERT INTO alembic_version VALUES ('000000000001')"))
    eng.dispose()
    r = generate_migration(load_project(root), "add table", database_url=victim, scratch_url=pg_url)
    assert r.created and "scratch copy" in r.compared_with
    assert "create_table('added'" in r.upgrade_code  # the copy holds the user's schema: only the new table differs
    assert _victim_state(victim) == (0, ["alembic_version", "t"])  # no "hostile" table where the user's data lives


# -- 4. secrets ------------------------------------------------------------------------------------


SECRET, SECRET2 = "Pl4ntedPassw0rd", "Pl4ntedKeyPhrase"


@pytest.mark.timeout(900)
def test_no_output_of_any_tool_shows_a_planted_secret(tmp_path: Path, pg_url: str) -> None:
    server = make_url(pg_url)
    with_secret = server.set(password=SECRET, query={**server.query, "sslpassword": SECRET2}).render_as_string(hide_password=False)
    leaky = (
        "from alembic import context\n"
        "import os\n"
        "print('my url is', context.config.get_main_option('sqlalchemy.url'))\n"
        "def upgrade():\n"
        "    url = context.config.get_main_option('sqlalchemy.url')\n"
        "    print('upgrading', url)\n"
        "    raise RuntimeError('failed on ' + url)\n"
        "def downgrade():\n    pass\n"
    )
    root = make_project(tmp_path / "p", [PERSONS, leaky], url=with_secret)
    prod = with_secret.replace("127.0.0.1", "prod-db.internal")
    commands = [
        ["review"], ["review", "--all"], ["classify", "--database-url", with_secret],
        ["heads", "--database-url", with_secret, "--scratch-url", with_secret],
        ["generate", "-m", "x", "--scratch-url", with_secret], ["generate", "-m", "x", "--database-url", with_secret],
        ["roundtrip", "--database-url", with_secret], ["roundtrip", "--database-url", prod],
        ["heads", "--scratch-url", prod], ["classify", "--database-url", prod],
    ]
    for i, cmd in enumerate(commands):
        for fmt in ("json", "text") if i % 3 == 0 else ("json",):
            p = subprocess.run([CLI, *cmd, "-f", fmt], cwd=root, capture_output=True, text=True, timeout=300)
            out = p.stdout + p.stderr
            assert SECRET not in out and SECRET2 not in out, (cmd, fmt, out[:2000])
            assert p.returncode in (0, 1, 2, 3), (cmd, out[-2000:])


def test_redact_url_hides_every_credential_part() -> None:
    from db_migrate.urls import redact_url, scrub

    url = "postgresql+psycopg://bob:pw1234@h/db?password=qp5678&sslpassword=kp9012&passfile=/home/b/.pgpass&sslkey=/k.pem&sslmode=require"
    shown = redact_url(url)
    for secret in ("pw1234", "qp5678", "kp9012", ".pgpass", "/k.pem"):
        assert secret not in shown
    assert "sslmode=require" in shown and "bob" in shown
    assert scrub("connect failed: postgresql://x:hunter22@h/d password=abc123") == "connect failed: postgresql://x:***@h/d password=***"


# -- 5. production refusal -----------------------------------------------------------------------


def test_a_production_host_hidden_in_the_query_is_refused_and_nothing_is_created(pg_url: str, tmp_path: Path) -> None:
    from db_migrate.roundtrip import test_roundtrip

    url = "postgresql+psycopg://postgres@dev-db/postgres?host=prod-db.internal&hostaddr=127.0.0.1"
    mine = lambda: [n for n in list_databases(pg_url) if n.endswith("_" + owner_tag())]  # noqa: E731
    before = mine()
    with pytest.raises(Refused, match="prod-db.internal"):
        test_roundtrip(load_project(make_project(tmp_path, [PERSONS])), database_url=url)
    assert mine() == before
    p = subprocess.run([CLI, "heads", "--scratch-url", url, "-f", "json"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and '"refused"' in p.stdout


# -- 6. nothing left behind ------------------------------------------------------------------------


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            kids = {int(k) for k in (task / "children").read_text().split()}
        except OSError:
            continue
        for k in kids:
            out |= {k} | _descendants(k)
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


LOOP = "def upgrade():\n    while True:\n        pass\ndef downgrade():\n    pass\n"


def _working_in(folder: Path, besides: int) -> set[int]:
    """Processes whose working folder is ``folder``, ``besides`` excepted.

    A CLI call's fork server (its own, or its session of the shared warm parent, which is
    not the CLI's descendant) and its jobs all work in the project's folder.
    """
    out: set[int] = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != besides:
            try:
                if os.readlink(d / "cwd") == str(folder) and _alive(int(d.name)):
                    out.add(int(d.name))
            except OSError:
                pass
    return out


@pytest.mark.parametrize(("how", "server", "worker"), [
    (how, server, "shared") for how in ("SIGKILL", "SIGTERM", "SIGINT") for server in ("pg_url", "mysql_url")
] + [("SIGKILL", "pg_url", "private")])
@pytest.mark.timeout(900)
def test_killing_the_cli_mid_roundtrip_leaves_no_process_and_no_database(
    tmp_path: Path, how: str, server: str, worker: str, request
) -> None:
    # Every wait below only bounds a hang (a loaded machine may take minutes to start the roundtrip);
    # what is asserted is the state reached, never how fast.
    server_url = request.getfixturevalue(server)
    root = make_project(tmp_path, [PERSONS, LOOP]).resolve()
    env = {**os.environ, "DB_MIGRATE_SHARED_WORKER": "1" if worker == "shared" else "0"}
    cli = subprocess.Popen([CLI, "roundtrip", "--database-url", server_url, "--timeout", "3600"], cwd=root,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    ours = lambda: [n for n in list_databases(server_url) if f"p{cli.pid}s" in n]  # noqa: E731
    try:
        assert wait_until(lambda: ours() and len(_working_in(root, cli.pid)) >= 2, 300), "the roundtrip never started"
        spawned = _working_in(root, cli.pid)  # the fork server (or session) and the looping job
        os.kill(cli.pid, getattr(signal, how))
        cli.wait(300)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert wait_until(lambda: not any(_alive(p) for p in spawned), 300), "a worker outlived the CLI"
    if how == "SIGKILL" and worker == "private":
        # kill -9 skips every finally, and without the warm parent no supervisor outlives the CLI:
        # the database stays until the next run on that server sweeps it
        next_run = "import sys\nfrom db_migrate.scratch import scratch_database\nwith scratch_database(sys.argv[1]):\n    pass\n"
        subprocess.run([sys.executable, "-c", next_run, server_url], check=True, timeout=300)  # anyone's next run here
    # with the warm parent, its guard session drops it as soon as the CLI's connection closes: no next run
    assert wait_until(lambda: ours() == [], 120), f"scratch databases left behind: {ours()}"


def test_a_drop_that_failed_is_done_by_the_supervisor_once_the_cli_is_gone(tmp_path: Path, pg_url: str) -> None:
    """The guard session runs the clean-ups still registered when its caller goes away."""
    script = (
        "import sys\n"
        "from db_migrate.sandbox import share_fork_server, shared\n"
        "import db_migrate.scratch as scratch\n"
        "if share_fork_server():\n"  # as the CLI does: the warm parent supervises our scratch databases
        "    scratch.set_supervisor(shared.supervise, shared.release)\n"
        "url = sys.argv[1]\n"
        "with scratch.scratch_database(url, purpose='kept') as kept:\n"
        "    pass\n"  # a clean end first: dropped by us, withdrawn from the guard (nothing breaks)
        "real_drop = scratch.drop_database\n"
        "scratch.drop_database = lambda *a: (_ for _ in ()).throw(RuntimeError('drop failed'))\n"
        "try:\n"
        "    with scratch.scratch_database(url, purpose='retried') as db:\n"
        "        print(db.name, flush=True)\n"
        "except RuntimeError:\n"
        "    pass\n"
    )
    env = {**os.environ, "DB_MIGRATE_SHARED_WORKER": "1"}
    p = subprocess.run([sys.executable, "-c", script, pg_url], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    name = p.stdout.strip()
    assert name.startswith("dbm_retried_")
    # our drop failed; the guard drops it once the process has gone
    assert wait_until(lambda: name not in list_databases(pg_url), 120), f"{name} was left behind"


@pytest.mark.timeout(300)
def test_stopping_the_mcp_server_mid_call_leaves_no_process_and_no_database(tmp_path: Path, pg_url: str) -> None:
    # an MCP client (Claude Code, the Inspector) ends a server with SIGTERM, often in the middle of a call
    import socket
    import threading

    import anyio
    from mcp import Client

    root = make_project(tmp_path, [PERSONS, LOOP]).resolve()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([CLI, "serve", "--http", "--port", str(port), "--project", str(root), "--timeout", "600"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def call() -> None:
        async with Client(f"http://127.0.0.1:{port}/mcp") as c:
            await c.call_tool("test_roundtrip", {"database_url": pg_url})

    def run() -> None:
        try:
            anyio.run(call)
        except BaseException:
            pass  # the server goes away mid-call: what the client sees is not the point here

    def start() -> None:
        assert wait_until(lambda: _port_open(port), 30), "the server never listened"
        threading.Thread(target=run, daemon=True).start()

    _sigterm_mid_call(server, root, pg_url, start)


@pytest.mark.timeout(300)
def test_stopping_the_stdio_mcp_server_mid_call_leaves_no_process_and_no_database(tmp_path: Path, pg_url: str) -> None:
    import json

    root = make_project(tmp_path, [PERSONS, LOOP]).resolve()
    server = subprocess.Popen([CLI, "serve", "--project", str(root), "--timeout", "600"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def send(message: dict) -> None:
        server.stdin.write((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())  # type: ignore[union-attr]
        server.stdin.flush()  # type: ignore[union-attr]

    def start() -> None:
        send({"id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}})
        assert json.loads(server.stdout.readline())["id"] == 1  # type: ignore[union-attr]
        send({"method": "notifications/initialized"})
        send({"id": 2, "method": "tools/call", "params": {"name": "test_roundtrip", "arguments": {"database_url": pg_url}}})

    _sigterm_mid_call(server, root, pg_url, start)


def _sigterm_mid_call(server: subprocess.Popen, root: Path, pg_url: str, start) -> None:
    """Once ``start()`` has a roundtrip running in ``server``, SIGTERM it: nothing of the call may be left."""
    ours = lambda: [n for n in list_databases(pg_url) if f"p{server.pid}s" in n]  # noqa: E731
    try:
        start()
        assert wait_until(lambda: ours() and len(_working_in(root, server.pid)) >= 2, 60), "the roundtrip never started"
        spawned = _working_in(root, server.pid)
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    finally:
        if server.poll() is None:
            server.kill()
    assert wait_until(lambda: not any(_alive(p) for p in spawned), 20), "a worker outlived the server"
    assert wait_until(lambda: ours() == [], 30), f"scratch databases left behind: {ours()}"


def _port_open(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_processes_a_revision_spawns_die_and_cannot_hold_the_cli_output_open(tmp_path: Path) -> None:
    mark = f"h4spawn{secrets.token_hex(4)}"
    spawner = (
        "import subprocess, sys\n"
        "for i in range(20):\n"
        f"    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', {mark!r}], start_new_session=i % 2 == 0)\n"
        + PERSONS
    )
    root = make_project(tmp_path, [spawner])
    p = subprocess.run([CLI, "review", "-f", "json"], cwd=root, capture_output=True, text=True, timeout=240)
    assert p.returncode in (0, 1), p.stdout + p.stderr

    def left() -> list[int]:
        found = []
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and mark in (d / "cmdline").read_bytes().decode(errors="replace") and _alive(int(d.name)):
                    found.append(int(d.name))
            except OSError:
                pass
        return found

    assert wait_until(lambda: not left(), 20), f"spawned processes survived: {left()}"


# -- 7. limits -------------------------------------------------------------------------------------


def test_a_job_over_the_memory_limit_is_a_structured_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hog.py").write_text("def eat():\n    return len(bytearray(8 << 30))\n")
    monkeypatch.setenv("DB_MIGRATE_MEMORY_LIMIT_MB", "512")
    with pytest.raises(MemoryLimitExceeded, match="512 MiB"):
        run_job("hog:eat", cwd=tmp_path, timeout=60)
    body = "def upgrade():\n    blob = bytearray(8 << 30)\ndef downgrade():\n    pass\n"
    r = review_migration(load_project(make_project(tmp_path / "p", [body])), "head")
    assert r.isolation.memory_limit_mib == 512
    assert any("MemoryError" in f.message for f in r.findings), r.findings


def test_a_pathological_revision_is_one_finding_and_the_rest_is_still_checked(tmp_path: Path) -> None:
    from db_migrate.heads import check_heads

    root = make_project(tmp_path, [PERSONS, NOT_NULL])
    (root / "migrations" / "versions" / "zz_deep.py").write_text("x = " + "-" * 200_000 + "1\n")
    project = load_project(root)
    r = review_migration(project, all_revisions=True)
    assert {f.rule for f in r.findings if f.path and f.path.endswith("zz_deep.py")} == {"migration-raises"}
    assert any(f.rule == "add-column-not-null-no-default" for f in r.findings)
    h = check_heads(project, drift=False)
    assert any(f.path and f.path.endswith("zz_deep.py") for f in h.findings) and h.heads == ["000000000002"]


# -- 8. robustness ----------------------------------------------------------------------------------


def test_an_unreachable_scratch_server_is_a_database_error(tmp_path: Path) -> None:
    from db_migrate.roundtrip import test_roundtrip

    root = make_project(tmp_path, [PERSONS] * 1 + [f"# {i}\n" + "def upgrade():\n    pass\ndef downgrade():\n    pass\n" for i in range(9)])
    with pytest.raises(DatabaseError):
        test_roundtrip(load_project(root), database_url="postgresql+psycopg://postgres@127.0.0.1:1/postgres", timeout=30)


def test_a_template_another_role_built_falls_back_to_a_plain_build(tmp_path: Path, pg_url: str) -> None:
    from db_migrate.roundtrip import test_roundtrip

    role = f"h4role_{secrets.token_hex(4)}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as c:
        c.execute(text(f'CREATE ROLE "{role}" LOGIN CREATEDB'))
    try:
        noop = "def upgrade():\n    pass\ndef downgrade():\n    pass\n"
        root = make_project(tmp_path, [PERSONS] + [f"# step {i} {secrets.token_hex(4)}\n" + noop for i in range(10)])
        project = load_project(root)
        templates = lambda: {n for n in list_databases(pg_url) if n.startswith("dbm_tpl_")}  # noqa: E731
        before = templates()
        assert test_roundtrip(project, database_url=pg_url, rows=1).status == "passed"  # builds the template as postgres
        built = templates() - before
        assert built, "no template was built: the test would not test the fallback"
        as_role = make_url(pg_url).set(username=role).render_as_string(hide_password=False)
        r = test_roundtrip(project, database_url=as_role, rows=1)
        assert r.status == "passed", r.failures
    finally:
        with admin.connect() as c:  # only what this test made: its own template (a unique history) and role
            for name in (templates() - before) | {n for n in list_databases(pg_url) if n.endswith("_" + owner_tag())}:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


@pytest.mark.parametrize("args", [["--timeout", "nan"], ["--timeout", "inf"], ["--timeout", "1e308"], ["--timeout", "0"],
                                  ["--config", "/etc/passwd"]])
def test_bad_timeouts_and_configs_are_usage_or_config_errors(tmp_path: Path, args: list[str]) -> None:
    root = make_project(tmp_path, [PERSONS])
    p = subprocess.run([CLI, "review", *args, "-f", "json"], cwd=root, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and ('"usage"' in p.stdout or '"config-invalid"' in p.stdout), p.stdout + p.stderr


@pytest.mark.parametrize("loop_in", ["revision", "env.py"])
@pytest.mark.timeout(600)
def test_the_timeout_bounds_the_whole_call_not_each_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop_in: str) -> None:
    """``roundtrip --timeout T`` with code looping at import: one job uses T up, no later job gets T again."""
    from projectfactory import DEFAULT_ENV_PY

    from db_migrate.sandbox import parent
    from db_migrate.tools import call

    looping = "while True:\n    pass\n"
    if loop_in == "revision":
        root = make_project(tmp_path, [PERSONS.replace("persons", "people"), looping + PERSONS])
    else:
        root = make_project(tmp_path, [PERSONS], env_py=looping + DEFAULT_ENV_PY)
    killed: list[object] = []
    real_kill = parent.Job.kill

    def kill(self):
        if not self.killed:
            killed.append(self)
        real_kill(self)

    monkeypatch.setattr(parent.Job, "kill", kill)
    timeout = 2.0  # waited out on purpose: short (before the call's deadline, three jobs each waited this long)
    result = call("test_roundtrip", load_project(root), database_url="sqlite://", timeout=timeout)
    assert result.status == "failed" and result.decision == "revise"
    # the job that looped was stopped (or, on a machine slow enough, an earlier job used the time up)
    assert any("did not finish within" in f.message or "was used up" in f.message for f in result.findings), result.findings
    assert len(killed) == 1, f"{len(killed)} jobs were stopped at the timeout; the deadline is the call's"
    reasons = " ".join(u.reason for u in result.unchecked)
    if loop_in == "revision":  # the policy's review would import the looping revision again: not started
        assert f"time limit of {timeout:g} s was used up" in reasons, reasons
