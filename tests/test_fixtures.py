"""Tests for the test material itself: fixtures/residency, bench/make_history.py
and tests/projectfactory.py.  They use alembic directly, never db_migrate."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from projectfactory import NOOP_BODY, make_project

ROOT = Path(__file__).resolve().parent.parent
RESIDENCY = ROOT / "fixtures" / "residency"
sys.path.insert(0, str(ROOT / "bench"))
from make_history import make_history  # noqa: E402

RESIDENCY_REVISIONS = [
    "929364751fdc",  # create persons, rotations
    "9343485feba9",  # create assignments
    "46f760feb10b",  # add persons.middle_name (nullable)
    "ad9cb2d4b40f",  # index, not concurrently
    "c8335fa6c848",  # add persons.is_active NOT NULL, no default
    "37001f9082a5",  # create audit_log
    "7bfbb393b25f",  # create acgme_duty_hours (named CHECK)
    "3bb75542f098",  # email_verified 1/3 nullable
    "b1d396cad623",  # email_verified 2/3 backfill
    "42e8bfea3a1b",  # email_verified 3/3 NOT NULL
    "7b60978e0237",  # rename rotations.rotation_type -> category
    "9692142c98f0",  # drop persons.pager_number
    "aa60e7cdaf87",  # f-string UPDATEs
    "ba2e5b21f0bc",  # narrow persons.email 255 -> 120
    "b0cfaa3c85b2",  # CREATE INDEX CONCURRENTLY in autocommit_block
    "f956808bc5df",  # downgrade is `pass`
]


# -- helpers ---------------------------------------------------------------


def alembic_config(script_location: Path) -> Config:
    """A Config without an ini file, so env.py does not run fileConfig()
    (which would reconfigure logging for the whole test process)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return cfg


@contextmanager
def connected(cfg: Config, url: str):
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            yield conn
    finally:
        cfg.attributes.pop("connection", None)
        engine.dispose()


def run(cfg: Config, conn, fn, *args):
    # end any transaction autobegun by an inspection: alembic's
    # autocommit_block() asserts when the caller owns the transaction
    conn.commit()
    fn(cfg, *args)
    conn.commit()


def autogen_diff(conn, metadata) -> list:
    mc = MigrationContext.configure(conn, opts={"compare_type": True})
    return compare_metadata(mc, metadata)


def tables(conn) -> set[str]:
    return set(sa.inspect(conn).get_table_names()) - {"alembic_version"}


def load_module(path: Path):
    import importlib.util

    name = "_test_models_" + hashlib.sha1(str(path).encode()).hexdigest()[:10]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def residency_metadata(project: Path):
    """Base.metadata of the residency app at ``project`` (fresh import)."""
    for name in [m for m in sys.modules if m == "app" or m.startswith("app.")]:
        del sys.modules[name]
    sys.path.insert(0, str(project))
    try:
        import app.models

        return app.models.Base.metadata
    finally:
        sys.path.remove(str(project))


@pytest.fixture
def pg_db(pg_url):
    """A fresh, uniquely named PostgreSQL database; dropped afterwards."""
    name = f"dbm_fixt_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def mysql_db(mysql_url):
    """A fresh, uniquely named MariaDB database; dropped afterwards."""
    name = f"dbm_fixt_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(mysql_url, poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE `{name}`"))
    try:
        yield sa.make_url(mysql_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


# -- fixtures/residency ----------------------------------------------------


def test_residency_history_is_linear_and_well_formed():
    script = ScriptDirectory(str(RESIDENCY / "alembic"))
    assert script.get_heads() == [RESIDENCY_REVISIONS[-1]]
    chain = [r.revision for r in script.walk_revisions("base", "heads")][::-1]
    assert chain == RESIDENCY_REVISIONS
    files = sorted(p.name for p in (RESIDENCY / "alembic" / "versions").glob("*.py"))
    assert len(files) == len(RESIDENCY_REVISIONS)
    for name in files:
        assert re.fullmatch(r"[0-9a-f]{12}_[a-z0-9_]+\.py", name), name
        text = (RESIDENCY / "alembic" / "versions" / name).read_text()
        rev = name[:12]
        assert f"Revision ID: {rev}\n" in text
        assert "Revises:" in text and "Create Date:" in text
        assert "def upgrade() -> None:" in text and "def downgrade() -> None:" in text


def test_residency_pyproject_is_valid_toml():
    import tomllib

    conf = tomllib.loads((RESIDENCY / "pyproject.toml").read_text())["tool"]["db-migrate"]
    assert conf["protected_tables"] == ["acgme*"]
    assert isinstance(conf["large_table_rows"], int)


def test_residency_upgrade_head_sqlite_matches_models(residency, tmp_path):
    cfg = alembic_config(residency / "alembic")
    with connected(cfg, f"sqlite:///{tmp_path / 'r.db'}") as conn:
        run(cfg, conn, command.upgrade, "head")
        assert tables(conn) == {"persons", "rotations", "assignments", "audit_log", "acgme_duty_hours"}
        assert autogen_diff(conn, residency_metadata(residency)) == []


def test_residency_downgrades_step_by_step_sqlite(residency, tmp_path):
    cfg = alembic_config(residency / "alembic")
    with connected(cfg, f"sqlite:///{tmp_path / 'r.db'}") as conn:
        run(cfg, conn, command.upgrade, "head")
        for _ in RESIDENCY_REVISIONS:
            run(cfg, conn, command.downgrade, "-1")
        assert tables(conn) == set()
        # the head's downgrade is `pass`: going down one and up again fails
        run(cfg, conn, command.upgrade, "head")
        run(cfg, conn, command.downgrade, "-1")
        assert "notes" in {c["name"] for c in sa.inspect(conn).get_columns("assignments")}
        with pytest.raises(sa.exc.OperationalError, match="duplicate column"):
            run(cfg, conn, command.upgrade, "head")


def test_residency_offline_sql_through_alembic_ini(residency):
    """The real alembic.ini + env.py, offline, rendering PostgreSQL SQL."""
    out = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(residency / "alembic.ini"), "upgrade", "head", "--sql"],
        capture_output=True,
        text=True,
        cwd=residency,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    sql = out.stdout
    assert "ALTER TABLE persons ADD COLUMN is_active BOOLEAN NOT NULL;" in sql
    assert "CREATE INDEX ix_assignments_rotation_id ON assignments (rotation_id);" in sql
    assert re.search(r"COMMIT;\s+CREATE INDEX CONCURRENTLY ix_acgme_duty_hours_week_start", sql)
    assert "UPDATE persons SET role = 'faculty' WHERE role = 'attending';" in sql


@pytest.mark.postgres
def test_residency_roundtrip_postgres(residency, pg_db):
    cfg = alembic_config(residency / "alembic")
    with connected(cfg, pg_db) as conn:
        run(cfg, conn, command.upgrade, "head")
        assert autogen_diff(conn, residency_metadata(residency)) == []
        for _ in RESIDENCY_REVISIONS:
            run(cfg, conn, command.downgrade, "-1")
        assert tables(conn) == set()


@pytest.mark.postgres
def test_residency_unsafe_not_null_fails_on_populated_table_postgres(residency, pg_db):
    cfg = alembic_config(residency / "alembic")
    with connected(cfg, pg_db) as conn:
        run(cfg, conn, command.upgrade, "ad9cb2d4b40f")
        conn.execute(
            sa.text(
                "INSERT INTO persons (id, first_name, last_name, email, role) "
                "VALUES ('p1', 'Ada', 'Lovelace', 'ada@example.org', 'attending')"
            )
        )
        conn.commit()
        with pytest.raises(sa.exc.IntegrityError, match="is_active"):
            run(cfg, conn, command.upgrade, "c8335fa6c848")


# -- bench/make_history.py -------------------------------------------------


def _bench_roundtrip(dest: Path, url: str, n: int) -> None:
    make_history(dest, n, seed=1)
    metadata = load_module(dest / "models.py").target_metadata
    cfg = alembic_config(dest / "alembic")
    with connected(cfg, url) as conn:
        run(cfg, conn, command.upgrade, "head")
        assert tables(conn)
        assert autogen_diff(conn, metadata) == []
        run(cfg, conn, command.downgrade, "base")
        assert tables(conn) == set()
        run(cfg, conn, command.upgrade, "head")


def test_make_history_roundtrip_sqlite(tmp_path):
    _bench_roundtrip(tmp_path / "h", f"sqlite:///{tmp_path / 'h.db'}", 30)


@pytest.mark.postgres
def test_make_history_roundtrip_postgres(tmp_path, pg_db):
    _bench_roundtrip(tmp_path / "h", pg_db, 60)


@pytest.mark.mysql
def test_make_history_roundtrip_mariadb(tmp_path, mysql_db):
    _bench_roundtrip(tmp_path / "h", mysql_db, 60)


def test_make_history_shape_and_determinism(tmp_path):
    a = make_history(tmp_path / "a", 50, seed=3)
    b = make_history(tmp_path / "b", 50, seed=3)
    c = make_history(tmp_path / "c", 50, seed=4)

    def digest(p: Path) -> str:
        h = hashlib.sha1()
        for f in sorted((p / "alembic" / "versions").iterdir()) + [p / "models.py"]:
            h.update(f.name.encode() + f.read_bytes())
        return h.hexdigest()

    assert digest(a) == digest(b) != digest(c)
    script = ScriptDirectory(str(a / "alembic"))
    assert len(script.get_heads()) == 1
    assert len(list(script.walk_revisions())) == 50
    kinds = {f.name.split("_", 2)[1] for f in (a / "alembic" / "versions").iterdir()}
    assert {"create", "add", "index"} <= kinds


def test_make_history_writes_2000_revisions(tmp_path):
    # its speed is measured by the bench scripts that use it, not asserted here
    make_history(tmp_path / "big", 2000)
    assert len(list((tmp_path / "big" / "alembic" / "versions").glob("*.py"))) == 2000


def test_make_history_cli(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "make_history.py"), str(tmp_path / "cli"), "7"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "cli" / "alembic" / "versions").glob("*.py"))) == 7
    assert "sqlite:///" in (tmp_path / "cli" / "alembic.ini").read_text()


# -- tests/projectfactory.py -----------------------------------------------

CREATE_T = (
    'def upgrade() -> None:\n    op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))\n\n\n'
    'def downgrade() -> None:\n    op.drop_table("t")\n'
)
ADD_COL = (
    'def upgrade() -> None:\n    op.add_column("t", sa.Column("x", sa.String(10), nullable=True))\n\n\n'
    'def downgrade() -> None:\n    with op.batch_alter_table("t") as b:\n        b.drop_column("x")\n'
)


def test_projectfactory_linear_project_runs(tmp_path):
    root = make_project(tmp_path / "p", [CREATE_T, ADD_COL, NOOP_BODY])
    script = ScriptDirectory.from_config(Config(str(root / "alembic.ini")))
    assert [r.revision for r in script.walk_revisions()] == ["000000000003", "000000000002", "000000000001"]
    assert script.get_revision("000000000002").down_revision == "000000000001"
    cfg = alembic_config(root / "migrations")
    with connected(cfg, f"sqlite:///{tmp_path / 'p.db'}") as conn:
        run(cfg, conn, command.upgrade, "head")
        assert {c["name"] for c in sa.inspect(conn).get_columns("t")} == {"id", "x"}
        run(cfg, conn, command.downgrade, "base")
        assert tables(conn) == set()


def test_projectfactory_branches_and_hostile_bodies(tmp_path):
    root = make_project(
        tmp_path / "p",
        [
            NOOP_BODY,
            {"id": "aaaa", "down": "000000000001"},
            {"id": "bbbb", "down": "000000000001", "body": "import sys\nsys.exit(3)\n"},
            {"id": "cccc", "down": ("aaaa", "bbbb"), "name": "merge.py"},
        ],
        url="postgresql://u:p%40ss@localhost/app",
    )
    versions = root / "migrations" / "versions"
    assert (versions / "merge.py").read_text().count("down_revision = ('aaaa', 'bbbb')") == 1
    assert "sys.exit(3)" in (versions / "bbbb_rev.py").read_text()
    assert "p%%40ss" in (root / "alembic.ini").read_text()
    cfg = Config(str(root / "alembic.ini"))
    assert cfg.get_main_option("sqlalchemy.url") == "postgresql://u:p%40ss@localhost/app"
    with pytest.raises(SystemExit):  # importing the hostile revision exits
        ScriptDirectory.from_config(cfg).get_heads()


def test_projectfactory_models_and_custom_env(tmp_path):
    models = 'import sqlalchemy as sa\ntarget_metadata = sa.MetaData()\nsa.Table("t", target_metadata, sa.Column("id", sa.Integer, primary_key=True))\n'
    root = make_project(tmp_path / "p", [CREATE_T], models=models)
    cfg = alembic_config(root / "migrations")
    with connected(cfg, f"sqlite:///{tmp_path / 'p.db'}") as conn:
        run(cfg, conn, command.upgrade, "head")
        assert autogen_diff(conn, load_module(root / "models.py").target_metadata) == []
    root2 = make_project(tmp_path / "q", [NOOP_BODY], env_py="raise RuntimeError('env boom')\n")
    assert (root2 / "migrations" / "env.py").read_text() == "raise RuntimeError('env boom')\n"
