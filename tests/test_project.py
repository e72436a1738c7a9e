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


@pytest.mark.parametrize("options", [
    "version_locations = %(here)s/migrations/versions {extra}\npath_separator = space\n",
    "version_locations = %(here)s/migrations/versions{os_sep}{extra}\npath_separator = os\n",
    "version_locations = %(here)s/migrations/versions;{extra}\nversion_path_separator = ;\n",
    "version_locations = %(here)s/migrations/versions, {extra}\n",  # alembic's legacy split: spaces and commas
    "version_locations = {extra}\nrecursive_version_locations = true\npath_separator = newline\n",
])
def test_version_locations_are_read_as_alembic_reads_them_without_alembic(
    options: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    import db_migrate.project.config as config

    make_project(tmp_path, [{"id": "aa01", "down": None}])
    extra = tmp_path / "more_versions"
    extra.mkdir()
    ini = tmp_path / "alembic.ini"
    ini.write_text(ini.read_text().replace("[alembic]\n", "[alembic]\n" + options.format(extra=extra, os_sep=os.pathsep), 1))
    loaded_before = {m for m in sys.modules if m.split(".")[0] in ("alembic", "sqlalchemy")}
    fast = load_project(cwd=tmp_path)
    # the plain reading imported neither alembic nor SQLAlchemy (a static command's start-up cost)
    assert {m for m in sys.modules if m.split(".")[0] in ("alembic", "sqlalchemy")} == loaded_before
    monkeypatch.setattr(config, "_read_plain_ini", lambda *a: None)
    slow = load_project(cwd=tmp_path)
    assert extra.resolve() in fast.version_locations
    assert (fast.version_locations, fast.recursive_versions) == (slow.version_locations, slow.recursive_versions)


def test_an_unknown_path_separator_is_left_for_alembic_to_refuse(tmp_path: Path) -> None:
    make_project(tmp_path, [{"id": "aa01", "down": None}])
    ini = tmp_path / "alembic.ini"
    ini.write_text(ini.read_text().replace("[alembic]\n", "[alembic]\nversion_locations = a b\npath_separator = tab\n", 1))
    with pytest.raises(Exception, match="tab"):
        load_project(cwd=tmp_path)


def _new_process(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Forget what this process parsed (as a new CLI call would) and count the files parsed again."""
    from db_migrate.project import history

    monkeypatch.setattr(history, "_cache", {})
    monkeypatch.setattr(history, "_from_disk", set())
    parsed: list[str] = []
    real = history.parse_header
    monkeypatch.setattr(history, "parse_header", lambda path, text=None, **kw: parsed.append(path.name) or real(path, text, **kw))
    return parsed


def _age(root: Path, seconds: float) -> None:
    """Date the revision files ``seconds`` back: files written a moment ago are never trusted by mtime."""
    import time

    for f in (root / "migrations" / "versions").glob("*.py"):
        os.utime(f, (time.time() - seconds, time.time() - seconds))


def test_parsed_headers_are_kept_on_disk_for_the_next_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path, ["def upgrade():\n    pass\ndef downgrade():\n    pass\n",
                                   {"id": "b1", "down": "000000000001", "branch_labels": ("side",)},
                                   "def upgrade(:\n"])  # a body that is not Python, below a readable header
    _age(root, 60)
    project = load_project(root)
    before = load_history(project)
    parsed = _new_process(monkeypatch)
    after = load_history(project)
    assert parsed == []  # nothing parsed again: every header came from the disk cache
    assert after.headers == before.headers and [h.lines for h in after.headers] == [h.lines for h in before.headers]
    assert after.body_errors == before.body_errors and len(after.body_errors) == 1
    (root / "migrations" / "versions" / "b1_rev.py").write_text(
        (root / "migrations" / "versions" / "b1_rev.py").read_text().replace("('side',)", "('other',)"))
    edited = root / "migrations" / "versions" / "b1_rev.py"
    os.utime(edited, (edited.stat().st_mtime - 30, edited.stat().st_mtime - 30))  # not racy, but new
    parsed = _new_process(monkeypatch)
    assert load_history(project).by_id["b1"].branch_labels == ("other",) and parsed == ["b1_rev.py"]


def test_a_damaged_header_cache_is_parsed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from db_migrate.project import history

    root = make_project(tmp_path, ["def upgrade():\n    pass\ndef downgrade():\n    pass\n"])
    _age(root, 60)
    project = load_project(root)
    load_history(project)
    history._disk_cache_file(project).write_text('{"format": 1, "files": {"x": [1]}}')
    parsed = _new_process(monkeypatch)
    assert list(load_history(project).by_id) == ["000000000001"] and len(parsed) == 1


def test_a_file_written_a_moment_ago_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the same size and mtime tick can hide a second write: such an entry is not trusted next time
    root = make_project(tmp_path, ["def upgrade():\n    pass\ndef downgrade():\n    pass\n"])
    project = load_project(root)
    load_history(project)
    parsed = _new_process(monkeypatch)
    load_history(project)
    assert parsed == ["000000000001_rev.py"]


@pytest.mark.parametrize(("url", "secrets"), [
    ("postgresql+psycopg://app@localhost/app", []),          # no password, no query: nothing to parse
    ("sqlite:///app.db", []),
    ("postgresql://u:s3cret@h/db", ["s3cret"]),
    ("postgresql://u:p@ss:w0rd@h/db", ["p@ss:w0rd", "p%40ss%3Aw0rd"]),  # not valid for SQLAlchemy: an unencoded "@"
    ("postgresql://u@h/db?sslpassword=k3yk3y&application_name=x", ["k3yk3y"]),
    ("postgresql://h/db?password=hunter22", ["hunter22"]),
])
def test_url_secrets_finds_every_secret_and_parses_only_when_one_can_be_there(url: str, secrets: list[str]) -> None:
    from db_migrate.urls import url_secrets

    assert url_secrets(url) == secrets
