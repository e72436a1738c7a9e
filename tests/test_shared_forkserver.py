"""CLI calls share one warm fork server (sandbox/shared.py) and still share nothing else.

Each test gets its own cache folder, so its own warm parent, stopped at the end.
The revision below reports, through the error review shows, what the job sees of
the environment: in ``os.environ`` and in ``/proc/self/environ``, the block the
process was started with.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from polling import wait_until
from projectfactory import make_project

from db_migrate.sandbox import shared

def _revision(imports: str, *upgrade: str) -> str:
    """A revision file's body: ``imports``, an upgrade() of the given lines, a downgrade() that does nothing."""
    return f"import {imports}\ndef upgrade():\n" + "".join(f"    {line}\n" for line in upgrade) + "def downgrade():\n    pass\n"


SEES_ENV = _revision(
    "os",
    "try:\n        block = open('/proc/self/environ', 'rb').read()\n    except PermissionError:\n        block = b''  # an unprivileged job: not even its own",
    "raise RuntimeError('seen=%r in-block=%r cwd=%s token=%r' % (os.environ.get('DBM_SHARED_MARK'),"
    " b'DBM_SHARED_MARK' in block, os.getcwd(), os.environ.get('DBM_SHARED_TOKEN')))",
)


@pytest.fixture
def cache():
    """A cache folder short enough for its socket to live in it (deep ones fall back to /tmp/db-migrate-UID)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="dbm-", dir="/tmp"))
    yield folder
    for sock in (folder / "db-migrate" / "run").glob("fork-*.sock"):
        shared.stop(sock)
    shutil.rmtree(folder, ignore_errors=True)


def _review(root: Path, cache: Path, **env: str) -> tuple[dict, str]:
    done = subprocess.run(
        [sys.executable, "-m", "db_migrate.cli", "review", "head", "--format", "json"],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "XDG_CACHE_HOME": str(cache), **env},
    )
    return json.loads(done.stdout), done.stderr


def _warm_parents(cache: Path) -> list[int]:
    pids = []
    for f in (cache / "db-migrate" / "run").glob("fork-*.pid"):
        pid = int(f.read_text().split("\n")[0])
        if Path(f"/proc/{pid}").exists():
            pids.append(pid)
    return pids


def _seen(verdict: dict) -> str:
    text = json.dumps(verdict)
    return text[text.index("seen="):].split('"')[0]


def test_calls_share_one_warm_parent_but_never_an_environment(tmp_path: Path, cache: Path) -> None:
    root = make_project(tmp_path / "p", [SEES_ENV], url="sqlite:///app.db")
    first, _ = _review(root, cache, DBM_SHARED_MARK="first-call-mark", DBM_SHARED_TOKEN="first-call-token")
    assert "seen='first-call-mark'" in _seen(first)  # the caller's own environment...
    assert "token=None" in _seen(first)  # ...but never its credentials
    parents = _warm_parents(cache)
    assert len(parents) == 1
    second, _ = _review(root, cache)
    assert _warm_parents(cache) == parents  # the same warm parent served the second call
    # neither the environment the job got nor the block its process started with holds the first call's secret
    assert "seen=None in-block=False" in _seen(second)
    assert f"cwd={root}" in _seen(second)  # the caller's folder, not the warm parent's
    assert second["isolation"]["process"] == "fresh-process"


def test_a_killed_warm_parent_is_replaced_and_can_be_turned_off(tmp_path: Path, cache: Path) -> None:
    root = make_project(tmp_path / "p", [SEES_ENV], url="sqlite:///app.db")
    _review(root, cache)
    (pid,) = _warm_parents(cache)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 60)  # reaped by init once dead; the socket file stays behind, stale
    verdict, _ = _review(root, cache)
    assert "seen=None" in _seen(verdict)
    assert len(_warm_parents(cache)) == 1 and _warm_parents(cache) != [pid]
    for sock in (cache / "db-migrate" / "run").glob("fork-*.sock"):
        shared.stop(sock)
    wait_until(lambda: not _warm_parents(cache), 120)  # the stopped parent leaves when it handles SIGTERM
    verdict, _ = _review(root, cache, DB_MIGRATE_SHARED_WORKER="0")
    assert "seen=None" in _seen(verdict) and _warm_parents(cache) == []


SPAWNS = _revision(
    "subprocess, sys",
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)  # dbm-shared-orphan'], start_new_session=True)",
)


def test_what_a_job_spawns_dies_with_the_call(tmp_path: Path, cache: Path) -> None:
    root = make_project(tmp_path / "p", [SPAWNS], url="sqlite:///app.db")
    _review(root, cache)
    def alive() -> list[Path]:
        return [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).find("dbm-shared-orphan") >= 0]

    wait_until(lambda: not alive(), 60)
    assert alive() == []
    assert len(_warm_parents(cache)) == 1  # while the warm parent itself stays for the next call


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_the_socket_folder_is_private(tmp_path: Path, cache: Path) -> None:
    root = make_project(tmp_path / "p", [SEES_ENV], url="sqlite:///app.db")
    _review(root, cache)
    run = cache / "db-migrate" / "run"
    assert run.stat().st_mode & 0o777 == 0o700
    (sock,) = run.glob("fork-*.sock")
    assert sock.stat().st_mode & 0o077 == 0


def test_a_cache_folder_too_deep_for_a_socket_falls_back_to_a_short_private_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/tmp/" + "deep/" * 30)
    path = shared.socket_path()
    assert path is not None and path.parent == Path(f"/tmp/db-migrate-{os.getuid()}") and len(str(path)) <= 100
    monkeypatch.setenv("XDG_CACHE_HOME", "/tmp/" + "other/" * 30)
    assert shared.socket_path() != path  # one warm parent per cache folder, wherever its socket lives


def test_the_warm_parent_leaves_when_idle(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An open session keeps the warm parent from idling, so it is seen alive while one is held, with no race;
    # its idle clock starts when the last session ends. The wait below only bounds a hang.
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("DB_MIGRATE_WORKER_IDLE_MINUTES", "0.02")  # 1.2 s
    session = shared.connect()
    assert session is not None
    (pid,) = _warm_parents(cache)
    session.close()
    wait_until(lambda: not _warm_parents(cache), 120)
    assert not Path(f"/proc/{pid}").exists() or b"db_migrate.sandbox" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert _warm_parents(cache) == [] and list((cache / "db-migrate" / "run").glob("fork-*.sock")) == []


REACHES_THE_WARM_PARENT = _revision(
    "glob, os, socket",
    "found = []",
    "for path in glob.glob(os.environ['DBM_RUN_DIR'] + '/fork-*.sock'):",
    "    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)",
    "    s.settimeout(5)",
    "    try:",
    "        s.connect(path)",
    "        s.send(b'x')",
    "        found.append(repr(s.recv(8)))",
    "    except OSError as e:",
    "        found.append(type(e).__name__)",
    "raise RuntimeError('seen=' + ','.join(found))",
)


def test_a_job_cannot_get_a_session_of_its_own(tmp_path: Path, cache: Path) -> None:
    # a session would fork jobs under whatever isolation it is asked for: a job must never get one
    root = make_project(tmp_path / "p", [REACHES_THE_WARM_PARENT], url="sqlite:///app.db")
    verdict, _ = _review(root, cache, DBM_RUN_DIR=str(cache / "db-migrate" / "run"))
    seen = _seen(verdict)
    assert len(_warm_parents(cache)) == 1
    assert "b'ok'" not in seen and seen != "seen="  # the socket was there to try, and gave nothing


def test_a_process_in_other_namespaces_gets_no_session_even_at_the_socket(tmp_path: Path, cache: Path) -> None:
    # the second defence, should a job ever reach the socket unmasked: its private namespaces show
    root = make_project(tmp_path / "p", [SEES_ENV], url="sqlite:///app.db")
    _review(root, cache)
    (sock,) = (cache / "db-migrate" / "run").glob("fork-*.sock")
    knock = ("import pickle, socket, sys\n"
             "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.settimeout(5); s.connect(sys.argv[1])\n"
             "try:\n    s.send(pickle.dumps({'env': {}, 'cwd': '/'}))\n    print(repr(s.recv(8)))\n"
             "except OSError as e:\n    print(type(e).__name__)\n")  # refused: closed at once, before or after our send
    here = subprocess.run([sys.executable, "-c", knock, str(sock)], capture_output=True, text=True, timeout=30)
    assert here.stdout.strip() == "b'ok'"  # a caller in our namespaces gets a session (then leaves)
    try:
        away = subprocess.run(["unshare", "--mount", "--net", sys.executable, "-c", knock, str(sock)],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no unshare(1) here")
    if away.returncode != 0 and "unshare" in away.stderr:
        pytest.skip(f"cannot create namespaces here: {away.stderr.strip()}")
    assert away.stdout.strip() in ("b''", "ConnectionResetError", "BrokenPipeError"), away.stdout + away.stderr
