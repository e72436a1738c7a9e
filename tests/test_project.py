"""Finding the project and reading revision headers without running them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from db_migrate.errors import AmbiguousRevision, ConfigNotFound, MultipleHeadsError, PathOutsideProject, RevisionNotFound
from db_migrate.project import load_history, load_project, parse_header, redact_url
from projectfactory import make_project


def test_fixture_project_is_found_from_a_subdirectory(residency: Path) -> None:
    p = load_project(cwd=residency / "app" / "models")
    assert p.root == residency.resolve()
    assert p.dialect == "postgresql"
    assert p.settings["protected_tables"] == ["acgme*"]
    assert p.version_locations == ((residency / "alembic" / "versions").resolve(),)


def test_no_project_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    with pytest.raises(ConfigNotFound, match="No Alembic project"):
        load_project(cwd=tmp_path)
    with pytest.raises(ConfigNotFound, match="does not exist"):
        load_project(tmp_path / "nope.ini")


def test_pyproject_tool_alembic_project(tmp_path: Path) -> None:
    make_project(tmp_path, ["def upgrade():\n    pass\n\ndef downgrade():\n    pass\n"])
    script_location = "migrations"
    (tmp_path / "alembic.ini").unlink()
    (tmp_path / "pyproject.toml").write_text(f'[tool.alembic]\nscript_location = "%(here)s/{script_location}"\n\n[tool.db-migrate]\nlarge_table_rows = 5\n')
    p = load_project(cwd=tmp_path)
    assert p.kind == "toml"
    assert p.settings == {"large_table_rows": 5}
    assert load_history(p).heads == ["000000000001"]


def test_headers_are_read_statically_even_when_imports_are_missing(tmp_path: Path) -> None:
    path = tmp_path / "x.py"
    path.write_text(
        '"""Add things\n\nRevision ID: abc\n"""\nfrom app.models import Thing  # not installed\n'
        'revision: str = "abc"\ndown_revision = ("p1", "p2")\nbranch_labels = "None"\ndepends_on = None\n'
        "def upgrade():\n    raise SystemExit(1)\n"
    )
    h = parse_header(path)
    assert h.revision == "abc"
    assert h.down_revisions == ("p1", "p2") and h.is_merge
    assert h.message == "Add things"
    assert any("branch_labels is the string 'None'" in p for p in h.problems)


def test_resolve_by_id_prefix_head_and_path(residency: Path) -> None:
    h = load_history(load_project(cwd=residency))
    assert h.resolve("head").revision == "f956808bc5df"
    assert h.resolve("9692").revision == "9692142c98f0"
    path = next((residency / "alembic" / "versions").glob("9692*.py"))
    assert h.resolve(str(path)).revision == "9692142c98f0"
    with pytest.raises(RevisionNotFound):
        h.resolve("ffffffff")
    with pytest.raises(PathOutsideProject):
        h.resolve("/etc/passwd.py")


def test_ambiguous_prefix_and_multiple_heads(tmp_path: Path) -> None:
    make_project(tmp_path, [{"id": "aa01", "down": None}, {"id": "aa02", "down": "aa01"}, {"id": "bb03", "down": "aa01"}])
    h = load_history(load_project(cwd=tmp_path))
    with pytest.raises(AmbiguousRevision):
        h.resolve("aa")
    with pytest.raises(MultipleHeadsError) as e:
        h.resolve("head")
    assert "aa02" in e.value.message and "bb03" in e.value.message


def test_header_cache_sees_edits(tmp_path: Path) -> None:
    make_project(tmp_path, [{"id": "aa01", "down": None}])
    p = load_project(cwd=tmp_path)
    assert load_history(p).heads == ["aa01"]
    f = next((tmp_path / "migrations" / "versions").glob("*.py"))
    f.write_text(f.read_text().replace("'aa01'", "'aa09'"))
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000))
    assert load_history(p).heads == ["aa09"]


def test_redact_url_hides_password() -> None:
    assert "s3cret" not in redact_url("postgresql://u:s3cret@h/db")
    assert redact_url("postgresql://u:s3cret@h/db").startswith("postgresql://u:***@h")


@pytest.mark.parametrize("which", ["fixture", "factory"])
def test_plain_ini_fast_path_reads_what_alembic_reads(which: str, residency: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import db_migrate.project.config as config

    root = residency if which == "fixture" else make_project(tmp_path / "p", [{"id": "aa01", "down": None}])
    fast = load_project(cwd=root)
    monkeypatch.setattr(config, "_read_plain_ini", lambda *a: None)
    slow = load_project(cwd=root)
    assert (fast.script_location, fast.version_locations, fast.url) == (slow.script_location, slow.version_locations, slow.url)


def test_extra_version_locations_are_left_to_alembic(tmp_path: Path) -> None:
    make_project(tmp_path, [{"id": "aa01", "down": None}])
    extra = tmp_path / "more_versions"
    extra.mkdir()
    ini = tmp_path / "alembic.ini"
    ini.write_text(ini.read_text().replace("[alembic]\n", f"[alembic]\nversion_locations = %(here)s/migrations/versions {extra}\npath_separator = space\n", 1))
    p = load_project(cwd=tmp_path)
    assert extra.resolve() in p.version_locations and len(p.version_locations) == 2
