"""check_heads keeps its drift answer while nothing it read has changed, and only then.

Every test here writes a small SQLite project (its own cache entries: the tag
is the project's config path) and calls check_heads twice or more.  The
second call must be a replay exactly when the models, the data they read and
the folders they list are as they were; any change must be seen.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from projectfactory import make_project

from db_migrate.heads import check_heads, drift_cache
from db_migrate.project import load_history, load_project

URL = "sqlite:///app.db"
PERSONS = (
    "def upgrade():\n"
    "    op.create_table('persons', sa.Column('id', sa.Integer, primary_key=True), sa.Column('name', sa.String(40)))\n"
    "def downgrade():\n    op.drop_table('persons')\n"
)
MODELS = (
    "import sqlalchemy as sa\ntarget_metadata = sa.MetaData()\n"
    "sa.Table('persons', target_metadata, sa.Column('id', sa.Integer, primary_key=True), sa.Column('name', sa.String(40)){extra})\n"
)


def _project(tmp_path: Path, *, models: str = MODELS.format(extra=""), env_py: str | None = None) -> Path:
    return make_project(tmp_path, [PERSONS], url=URL, models=models, env_py=env_py)


def _heads(root: Path):
    return check_heads(load_project(root / "alembic.ini"))


def test_an_unchanged_project_replays_the_answer_and_runs_no_project_code(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first, second = _heads(root), _heads(root)
    assert not first.drift_cached and first.summary.endswith("models match head.")
    assert second.drift_cached and second.summary.endswith("models match head (unchanged since the last check).")
    assert second.decision == first.decision == "proceed" and second.engine == first.engine
    assert second.isolation.summary == "no project code ran for this verdict"


def test_a_model_loaded_by_path_is_watched(tmp_path: Path) -> None:
    # the factory's env.py loads models.py with spec_from_file_location: it never enters sys.modules
    root = _project(tmp_path)
    _heads(root)
    (root / "models.py").write_text(MODELS.format(extra=", sa.Column('email', sa.Text())"))
    edited = _heads(root)
    assert not edited.drift_cached and [f.rule for f in edited.findings] == ["model-drift"]
    assert "email" in edited.drift_operations[0]
    again = _heads(root)
    assert again.drift_cached and [f.rule for f in again.findings] == ["model-drift"]  # drift is replayed too


def test_touching_a_file_without_changing_it_is_still_a_replay(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _heads(root)
    later = os.stat(root / "models.py").st_mtime_ns + 5_000_000_000
    os.utime(root / "models.py", ns=(later, later))  # a checkout that rewrites the same bytes
    assert _heads(root).drift_cached


PACKAGE_ENV_PY_HEAD = '''import importlib, pkgutil, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import appmodels
for m in pkgutil.iter_modules(appmodels.__path__):  # every module of the package, found by listing it
    importlib.import_module("appmodels." + m.name)
target_metadata = appmodels.metadata
'''


def _env_py(head: str) -> str:
    from projectfactory import DEFAULT_ENV_PY

    return DEFAULT_ENV_PY.replace("target_metadata = _target_metadata()\n", head)


def test_a_new_module_in_a_scanned_package_is_seen(tmp_path: Path) -> None:
    root = _project(tmp_path, env_py=_env_py(PACKAGE_ENV_PY_HEAD))
    (root / "appmodels").mkdir()
    (root / "appmodels" / "__init__.py").write_text("import sqlalchemy as sa\nmetadata = sa.MetaData()\n")
    (root / "appmodels" / "persons.py").write_text(
        "import sqlalchemy as sa\nfrom appmodels import metadata\n"
        "sa.Table('persons', metadata, sa.Column('id', sa.Integer, primary_key=True), sa.Column('name', sa.String(40)))\n"
    )
    assert _heads(root).findings == [] and _heads(root).drift_cached
    # nothing that was read changes: only the folder gains a file, which the scan imports
    (root / "appmodels" / "orders.py").write_text(
        "import sqlalchemy as sa\nfrom appmodels import metadata\n"
        "sa.Table('orders', metadata, sa.Column('id', sa.Integer, primary_key=True))\n"
    )
    r = _heads(root)
    assert not r.drift_cached and "orders" in r.drift_operations[0]


DATA_ENV_PY_HEAD = '''import json
from pathlib import Path
import sqlalchemy as sa
_root = Path(__file__).resolve().parents[1]
target_metadata = sa.MetaData()
for name, columns in json.loads((_root / "schema.json").read_text()).items():
    sa.Table(name, target_metadata, sa.Column("id", sa.Integer, primary_key=True),
             *[sa.Column(c, sa.String(40)) for c in columns])
if (_root / "extra_table").exists():  # an optional switch, absent at first
    sa.Table("extra", target_metadata, sa.Column("id", sa.Integer, primary_key=True))
'''


def test_a_data_file_read_at_import_and_a_file_looked_for_are_watched(tmp_path: Path) -> None:
    root = _project(tmp_path, env_py=_env_py(DATA_ENV_PY_HEAD))
    (root / "schema.json").write_text('{"persons": ["name"]}')
    assert _heads(root).findings == [] and _heads(root).drift_cached
    (root / "schema.json").write_text('{"persons": ["name", "nick"]}')
    r = _heads(root)
    assert not r.drift_cached and "nick" in r.drift_operations[0]
    (root / "schema.json").write_text('{"persons": ["name"]}')
    assert _heads(root).findings == []
    (root / "extra_table").write_text("")  # it was looked for and missing: creating it is a change
    r = _heads(root)
    assert not r.drift_cached and "extra" in r.drift_operations[0]


def test_an_incomplete_answer_is_never_kept(tmp_path: Path) -> None:
    failing = "def upgrade():\n    raise RuntimeError('the schema at head cannot be built')\ndef downgrade():\n    pass\n"
    root = make_project(tmp_path, [failing], url=URL, models=MODELS.format(extra=""))
    for _ in range(2):
        r = _heads(root)
        assert not r.drift_cached and any(u.what == "model drift" for u in r.unchecked)


def test_the_environment_is_part_of_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path)
    _heads(root)
    monkeypatch.setenv("APP_SCHEMA_VARIANT", "b")  # env.py may read it
    assert not _heads(root).drift_cached
    monkeypatch.setenv("DB_MIGRATE_DRIFT_CACHE", "0")
    assert not _heads(root).drift_cached and not _heads(root).drift_cached


def test_purge_templates_drops_the_projects_kept_answers_only(tmp_path: Path) -> None:
    a, b = _project(tmp_path / "a"), _project(tmp_path / "b")
    _heads(a), _heads(b)
    done = subprocess.run(
        [sys.executable, "-m", "db_migrate.cli", "roundtrip", "--purge-templates", "--config", str(a / "alembic.ini")],
        capture_output=True, text=True, cwd=a,
    )
    assert done.returncode == 0, done.stderr
    assert str(drift_cache.folder()) in done.stdout
    assert not _heads(a).drift_cached and _heads(b).drift_cached


def test_a_damaged_entry_is_a_miss_not_an_error(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _heads(root)
    from db_migrate.cache import project_tag

    entries = list(drift_cache.folder().glob(f"{project_tag(load_project(root / 'alembic.ini'))}_*.json"))
    assert len(entries) == 1
    entries[0].write_text('{"format": 2, "files": [["x"]]')
    r = _heads(root)
    assert not r.drift_cached and r.decision == "proceed"


@pytest.mark.parametrize("added", [1, 7])
def test_new_revisions_on_top_build_their_template_from_the_old_heads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, added: int
) -> None:
    from db_migrate.scratch import templates

    columns = [f"c{i}" for i in range(9)]

    def add_column(c: str) -> str:
        return (f"def upgrade():\n    op.add_column('persons', sa.Column('{c}', sa.Integer()))\n"
                f"def downgrade():\n    op.drop_column('persons', '{c}')\n")

    extra = "".join(f", sa.Column('{c}', sa.Integer())" for c in columns)
    root = make_project(tmp_path, [PERSONS, *map(add_column, columns)], url=URL, models=MODELS.format(extra=extra))
    assert _heads(root).findings == []  # builds the template at the head, from an empty database
    copied_from: list[object] = []
    real = templates.scratch_database
    monkeypatch.setattr(templates, "scratch_database", lambda *a, **k: copied_from.append(k.get("template")) or real(*a, **k))
    new = [f"n{i}" for i in range(added)]
    make_project(tmp_path, [PERSONS, *map(add_column, columns + new)], url=URL,
                 models=MODELS.format(extra=extra + "".join(f", sa.Column('{c}', sa.Integer())" for c in new)))
    r = _heads(root)
    assert r.heads == [f"{len(columns) + added + 1:012d}"] and r.findings == []  # the new columns are there: they ran
    project = load_project(root / "alembic.ini")
    old_head = templates.template_key(project, load_history(project), f"{len(columns) + 1:012d}", "sqlite")
    assert len(copied_from) == 1 and old_head in str(copied_from[0])


def test_without_target_metadata_nothing_is_built_and_the_answer_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # env.py hands alembic no models: the schema at head is never built (a long history would be replayed for
    # nothing), and the answer is kept like a drift answer until env.py or what it reads changes
    from db_migrate.scratch import templates

    built: list[str] = []
    real = templates.ensure_template
    monkeypatch.setattr(templates, "ensure_template", lambda *a, **k: built.append("template") or real(*a, **k))
    root = _project(tmp_path, models="import sqlalchemy as sa\ntarget_metadata = None\n")
    first, second = _heads(root), _heads(root)
    assert built == []
    assert [u.reason for u in first.unchecked if u.what == "model drift"] == [
        [u.reason for u in second.unchecked if u.what == "model drift"][0]]
    assert "no target_metadata" in first.unchecked[0].reason
    assert not first.drift_cached and second.drift_cached
    assert second.isolation.summary == "no project code ran for this verdict"
    (root / "models.py").write_text(MODELS.format(extra=""))  # the models arrive: compared at once
    third = _heads(root)
    assert not third.drift_cached and built == ["template"] and third.summary.endswith("models match head.")


def _entry(root: Path) -> Path:
    from db_migrate.cache import project_tag

    (entry,) = drift_cache.folder().glob(f"{project_tag(load_project(root / 'alembic.ini'))}_*.json")
    return entry


def test_a_forged_entry_is_not_replayed(tmp_path: Path) -> None:
    """A kept drift answer rewritten by someone else (a job that reached the cache, as in issue 17) says revise."""
    import json

    root = _project(tmp_path, models=MODELS.format(extra=", sa.Column('email', sa.Text())"))
    drifted = _heads(root)
    assert drifted.decision == "revise" and not drifted.drift_cached
    entry = _entry(root)
    signature, _, body = entry.read_bytes().partition(b"\n")
    kept = json.loads(body)
    assert kept["outcome"]["operations"], kept["outcome"]
    kept["outcome"]["operations"] = []  # "models match head"
    for forged in (signature + b"\n" + json.dumps(kept).encode(),  # the old signature kept
                   json.dumps(kept).encode(),  # unsigned, as entries were before
                   b"0" * 64 + b"\n" + json.dumps(kept).encode()):  # a signature made up
        entry.write_bytes(forged)
        r = _heads(root)
        assert not r.drift_cached and r.decision == "revise" and "email" in r.drift_operations[0]


def test_an_entry_signed_with_another_key_is_not_replayed(tmp_path: Path) -> None:
    from db_migrate import cache

    root = _project(tmp_path)
    _heads(root)
    assert _heads(root).drift_cached
    key = cache.key_file()
    original = key.read_bytes()
    assert key.stat().st_mode & 0o777 == 0o600 and len(original) == cache.KEY_BYTES
    try:
        key.unlink()
        cache._keys.clear()
        assert not _heads(root).drift_cached  # a new key: nothing the old one signed is replayed
        assert key.read_bytes() != original
    finally:
        key.unlink(missing_ok=True)
        key.write_bytes(original)
        key.chmod(0o600)
        cache._keys.clear()


def test_a_key_others_may_read_signs_nothing(tmp_path: Path) -> None:
    from db_migrate import cache

    root = _project(tmp_path)
    key = cache.key_file()
    _heads(root)
    try:
        key.chmod(0o644)  # readable by others: they could sign entries
        cache._keys.clear()
        assert cache.key() is None
        assert not _heads(root).drift_cached and not _heads(root).drift_cached
        assert key.stat().st_mode & 0o777 == 0o644  # never overwritten, never repaired behind the user's back
    finally:
        key.chmod(0o600)
        cache._keys.clear()


def test_a_models_file_edited_with_its_size_and_mtime_put_back_is_not_replayed(tmp_path: Path) -> None:
    root = _project(tmp_path)
    models = root / "models.py"
    an_hour_ago = os.stat(models).st_mtime_ns - 3600 * 10**9  # not a file just written (those were always hashed)
    os.utime(models, ns=(an_hour_ago, an_hour_ago))
    assert _heads(root).findings == [] and _heads(root).drift_cached
    before = os.stat(models)
    edited = MODELS.format(extra="").replace("'name', sa.String(40)", "'nick', sa.String(40)")
    assert len(edited) == before.st_size
    models.write_text(edited)
    os.utime(models, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(models).st_size == before.st_size and os.stat(models).st_mtime_ns == before.st_mtime_ns
    r = _heads(root)
    assert not r.drift_cached and [f.rule for f in r.findings] == ["model-drift"] and "nick" in " ".join(r.drift_operations)


def test_a_file_added_beside_the_models_with_the_folders_mtime_put_back_is_seen(tmp_path: Path) -> None:
    root = _project(tmp_path, env_py=_env_py(DATA_ENV_PY_HEAD))
    (root / "schema.json").write_text('{"persons": ["name"]}')
    assert _heads(root).findings == [] and _heads(root).drift_cached
    before = os.stat(root)  # its mtime is all the earlier version compared
    (root / "extra_table").write_text("")
    os.utime(root, ns=(before.st_atime_ns, before.st_mtime_ns))
    r = _heads(root)
    assert not r.drift_cached and "extra" in r.drift_operations[0]
