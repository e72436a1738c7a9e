"""Shared test fixtures.

Database tests use the real servers (PostgreSQL at 127.0.0.1:5432, MariaDB at
127.0.0.1:3306). Outside CI a missing server skips them; with CI=true it fails
them, because a skipped database test proves nothing.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

#: Put into every scratch database name this test run creates (and its workers: they inherit
#: the environment), so leftover checks count this run's databases only; other engineers'
#: runs use the same servers at the same time.
RUN_TAG = os.environ.setdefault("DB_MIGRATE_SCRATCH_TAG", "t" + secrets.token_hex(4))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist's workers inherit the run's tag: each adds its own number (gw1 -> w1), so one worker's
    # leftover check never counts what the other is creating at that moment
    RUN_TAG = os.environ["DB_MIGRATE_SCRATCH_TAG"] = (RUN_TAG[:9] + "w" + os.environ["PYTEST_XDIST_WORKER"].lstrip("gw"))[:12]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
PG_SERVER_URL = os.environ.get("DB_MIGRATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MYSQL_SERVER_URL = os.environ.get("DB_MIGRATE_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# One cache per test session (templates, and the embedded PostgreSQL server that PostgreSQL projects
# get by default): never the user's. DB_MIGRATE_TEST_CACHE names a cache to reuse between runs.
# The directory must be traversable by the embedded server's system user when we are root.
_SESSION_CACHE = os.environ.get("DB_MIGRATE_TEST_CACHE") or tempfile.mkdtemp(prefix="dbm-test-cache-")
os.chmod(_SESSION_CACHE, 0o755)
if not os.environ.get("DB_MIGRATE_TEST_CACHE"):
    # pytest-xdist's controller imports this too and runs no test (nor the fixture that removes it): at exit
    atexit.register(shutil.rmtree, _SESSION_CACHE, True)
os.environ["XDG_CACHE_HOME"] = _SESSION_CACHE
os.environ.setdefault("DB_MIGRATE_PG_IDLE_MINUTES", "5")  # if the session is killed, the server stops itself


def _server_available(url: str) -> str | None:
    """None when the server answers, else the reason it does not."""
    from sqlalchemy import create_engine, text

    try:
        eng = create_engine(url, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as e:  # any driver error means "not available"
        return f"{type(e).__name__}: {e}"


def _require(url: str, name: str) -> str:
    why = _server_available(url)
    if why is not None:
        msg = f"{name} at {url.split('@')[-1]} is not available: {why}"
        if IN_CI:
            pytest.fail(msg + " (CI=true: database tests must run)")
        pytest.skip(msg)
    return url


@pytest.fixture(scope="session", autouse=True)
def _session_cache():
    """Stop this session's embedded PostgreSQL server and the CLI calls' warm fork server; drop the cache."""
    yield _SESSION_CACHE
    from db_migrate.sandbox import shared
    from db_migrate.scratch import embedded

    embedded.stop()
    for sock in shared.run_dir().glob("fork-*.sock"):
        shared.stop(sock)
    if not os.environ.get("DB_MIGRATE_TEST_CACHE"):
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_pg() -> str:
    """URL of this session's embedded PostgreSQL server, started once (never skipped: it ships with the package)."""
    from db_migrate.scratch.embedded import ensure_running

    return ensure_running()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """SQLAlchemy URL of the PostgreSQL *server* (maintenance database): tests create their own databases."""
    return _require(PG_SERVER_URL, "PostgreSQL")


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """SQLAlchemy URL of the MariaDB server: tests create their own databases."""
    return _require(MYSQL_SERVER_URL, "MariaDB")


@pytest.fixture
def residency(tmp_path: Path) -> Path:
    """A private copy of the fixture project (tests may write to it)."""
    dest = tmp_path / "residency"
    shutil.copytree(FIXTURES / "residency", dest, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    return dest


def own_databases(server_url: str, purpose: str) -> list[str]:
    """Scratch databases ``dbm_<purpose>_...`` that this test run created and that still exist."""
    from sqlalchemy import create_engine, text

    from db_migrate.scratch import run_tag

    pattern = f"dbm\\_{purpose}\\_{run_tag()}%"
    eng = create_engine(server_url)
    try:
        with eng.connect() as c:
            if eng.dialect.name == "postgresql":
                rows = c.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": pattern})
            else:
                rows = c.execute(text("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p"), {"p": pattern})
            return sorted(r[0] for r in rows)
    finally:
        eng.dispose()
