"""db-migrate in CI: SARIF, GitHub annotations, --fail-on, several paths, --changed-since, the action's script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from db_migrate.cli import main

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
BIN = Path(sys.executable).parent
NOTES = "alembic/versions/f956808bc5df_add_notes_to_assignments.py"  # missing downgrade: an error; escalates (unclear rollback)
DROP = "alembic/versions/9692142c98f0_drop_pager_number_from_persons.py"  # warnings; escalates (drop with data), like classify
WARN = "alembic/versions/7b60978e0237_rename_rotation_type_to_category.py"  # a rename-column warning only: proceed

NEW_REVISION = '''"""add nickname to persons

Revision ID: 1234abcd5678
Revises: f956808bc5df
"""
from alembic import op
import sqlalchemy as sa

revision = "1234abcd5678"
down_revision = "f956808bc5df"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("persons", sa.Column("nickname", sa.String(50), nullable=False))


def downgrade():
    op.drop_column("persons", "nickname")
'''


def cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"}  # the test's own CI must not leak in
    full_env.update(NO_COLOR="1", **env)
    return subprocess.run([str(BIN / "db-migrate"), *args], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=300)


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=env).stdout


@pytest.fixture
def repo(residency: Path) -> Path:
    """The fixture project as a git repository with one commit on branch main."""
    git(residency, "init", "-q", "-b", "main")
    git(residency, "add", "-A")
    git(residency, "commit", "-q", "-m", "initial")
    return residency


def validate(log: dict) -> None:
    jsonschema.Draft4Validator(SCHEMA).validate(log)


def test_sarif_is_valid_and_every_result_names_a_catalogued_rule(residency: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["review", "--all", "--config", str(residency), "--format", "sarif"])
    log = json.loads(capsys.readouterr().out)
    validate(log)
    assert code == 3 and len(log["runs"]) == 1  # the history has escalations: escalate outranks revise
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    from db_migrate.rules import catalogue

    assert {r.id for r in catalogue()} <= {r["id"] for r in rules}
    assert all(r["help"]["text"] for r in rules[: len(catalogue())])
    assert run["results"], "the fixture history has findings"
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        loc = res["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"].startswith("alembic/versions/") and loc["region"]["startLine"] >= 1
        assert res["level"] in ("error", "warning", "note")
        # each result belongs to the revision whose file holds it (escalations included)
        assert res["properties"]["revision"] in loc["artifactLocation"]["uri"], res["ruleId"]
    escalations = {(r["ruleId"], r["properties"]["revision"]) for r in run["results"] if r["ruleId"].startswith("escalate/")}
    assert ("escalate/drop-with-data", "9692142c98f0") in escalations and ("escalate/protected-table", "b0cfaa3c85b2") in escalations
    fingerprints = [r["partialFingerprints"]["dbMigrateFinding/v1"] for r in run["results"]]
    assert len(set(fingerprints)) == len(fingerprints)


def test_fingerprints_survive_lines_moving(residency: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def results() -> list[dict]:
        main(["review", NOTES, "--config", str(residency), "--format", "sarif"])
        return json.loads(capsys.readouterr().out)["runs"][0]["results"]

    before = results()
    path = residency / NOTES
    path.write_text("# a comment\n# and another\n" + path.read_text())
    after = results()
    assert [r["partialFingerprints"] for r in before] == [r["partialFingerprints"] for r in after]
    lines = lambda rs: [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in rs]  # noqa: E731
    assert lines(after) == [n + 2 for n in lines(before)]


def test_sarif_of_classify_reports_each_trigger_with_its_evidence(residency: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["classify", "9692142c98f0", "--config", str(residency), "--format", "sarif"])
    log = json.loads(capsys.readouterr().out)
    validate(log)
    assert code == 3
    triggers = [r for r in log["runs"][0]["results"] if r["ruleId"].startswith("escalate/")]
    assert {"escalate/drop-with-data"} <= {r["ruleId"] for r in triggers}
    drop = next(r for r in triggers if r["ruleId"] == "escalate/drop-with-data")
    assert "persons.pager_number" in drop["message"]["text"] and drop["level"] == "error"
    assert drop["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == DROP


def test_github_annotations_go_to_stderr_beside_the_chosen_format(repo: Path) -> None:
    sub = repo / "backend"  # the project below the repository root: paths must be the repository's
    sub.mkdir()
    for name in ("alembic", "alembic.ini", "app", "pyproject.toml"):
        (repo / name).rename(sub / name)
    p = cli(["review", f"backend/{NOTES}", "--format", "json"], repo, GITHUB_ACTIONS="true")
    # issue 18: an empty downgrade db-migrate can write is revise (exit 1) with its patch, no longer escalate
    assert p.returncode == 1, p.stderr
    assert json.loads(p.stdout)["decision"] == "revise"  # stdout is still exactly the JSON
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("::")]
    assert lines[0].startswith(f"::error file=backend/{NOTES},line=")
    assert "title=db-migrate%3A missing-downgrade::" in lines[0] and "%0AFix:%0A" in lines[0]
    assert any(ln.startswith("::notice ") for ln in lines)
    quiet = cli(["review", f"backend/{NOTES}", "--format", "json"], repo)
    assert "::error" not in quiet.stderr


def test_fail_on_warning(residency: Path) -> None:
    assert cli(["review", WARN], residency).returncode == 0  # warnings only: proceed
    p = cli(["review", WARN, "--fail-on", "warning"], residency)
    assert p.returncode == 1 and "rename-column" in p.stdout
    assert cli(["review", WARN, "--fail-on", "error"], residency).returncode == 0
    assert cli(["review", DROP, "--fail-on", "error"], residency).returncode == 3  # a threshold never lifts an escalation


def test_review_takes_several_paths_as_one_verdict(residency: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["review", NOTES, DROP, NOTES, "--config", str(residency), "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert sorted(out["revisions"]) == ["9692142c98f0", "f956808bc5df"] and code == 3
    assert {f["rule"] for f in out["findings"]} >= {"missing-downgrade", "drop-column"}


def test_the_project_is_found_from_the_files_named(repo: Path) -> None:
    sub = repo / "backend"
    sub.mkdir()
    for name in ("alembic", "alembic.ini", "app", "pyproject.toml"):
        (repo / name).rename(sub / name)
    p = cli(["review", f"backend/{NOTES}", "--format", "json"], repo)
    assert p.returncode == 1 and json.loads(p.stdout)["revisions"] == ["f956808bc5df"], p.stderr  # revise (issue 18)
    # the project sits in backend/ of its repository: its patch says how git applies it there
    (finding,) = [f for f in json.loads(p.stdout)["findings"] if f["rule"] == "missing-downgrade"]
    assert finding["patch"].startswith("From the project root: git apply --directory=backend\n")


def test_changed_since_judges_a_branch_on_its_own_revisions(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "alembic/versions/1234abcd5678_add_nickname.py").write_text(NEW_REVISION)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "nickname")
    git(repo, "checkout", "-q", "main")
    (repo / DROP).write_text((repo / DROP).read_text() + "\n# edited on main after the branch\n")
    git(repo, "commit", "-q", "-am", "main moves on")
    git(repo, "checkout", "-q", "feature")
    (repo / NOTES).write_text((repo / NOTES).read_text() + "\n# uncommitted edit\n")

    p = cli(["review", "--changed-since", "main", "--format", "json"], repo)
    out = json.loads(p.stdout)
    # the branch's new revision and the working-tree edit; not main's later change
    assert sorted(out["revisions"]) == ["1234abcd5678", "f956808bc5df"], out["summary"]
    assert any(f["rule"] == "add-column-not-null-no-default" for f in out["findings"])

    p = cli(["classify", "--changed-since", "main", "--format", "json"], repo)
    verdicts = json.loads(p.stdout)
    assert isinstance(verdicts, list) and sorted(v["revisions"][0] for v in verdicts) == ["1234abcd5678", "f956808bc5df"]


def test_changed_since_with_nothing_changed_proceeds(repo: Path) -> None:
    p = cli(["review", "--changed-since", "HEAD"], repo)
    assert p.returncode == 0 and "no revision files changed since HEAD" in p.stdout
    p = cli(["classify", "--changed-since", "HEAD", "--format", "json"], repo)
    assert p.returncode == 0 and json.loads(p.stdout)["decision"] == "proceed", p.stdout + p.stderr
    p = cli(["review", "--all", "--changed-since", "HEAD", "--format", "json"], repo)
    assert p.returncode == 2 and json.loads(p.stdout)["error"]["code"] == "usage"


def test_changed_since_an_unknown_ref_is_a_structured_error(repo: Path) -> None:
    p = cli(["review", "--changed-since", "no-such-branch", "--format", "json"], repo)
    assert p.returncode == 2 and json.loads(p.stdout)["error"]["code"] == "git-error"
    assert "Traceback" not in p.stderr


def test_changed_since_outside_git_is_a_structured_error(residency: Path) -> None:
    p = cli(["review", "--changed-since", "main", "--format", "json"], residency)
    assert p.returncode == 2 and json.loads(p.stdout)["error"]["code"] == "git-error"


def test_the_action_review_script_writes_sarif_and_outputs(repo: Path, tmp_path: Path) -> None:
    """The review step of action.yml, run as the runner runs it (setup-python and upload are GitHub's)."""
    import yaml

    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    review = next(s for s in action["runs"]["steps"] if s.get("id") == "review")
    assert "scripts/action-review.sh" in review["run"]
    upload = next(s for s in action["runs"]["steps"] if "upload-sarif" in s.get("uses", ""))
    assert upload["with"]["sarif_file"] == "${{ steps.review.outputs.sarif-file }}"

    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "alembic/versions/1234abcd5678_add_nickname.py").write_text(NEW_REVISION)
    outputs = tmp_path / "github_output"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "GITHUB_ACTIONS": "true",
           "GITHUB_OUTPUT": str(outputs), "DBM_CHANGED_SINCE": "main", "DBM_FAIL_ON": "error", "DBM_SARIF": "out.sarif"}
    p = subprocess.run(["bash", str(ROOT / "scripts" / "action-review.sh")], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    got = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert got == {"exit-code": "1", "sarif-file": "out.sarif"}
    log = json.loads((repo / "out.sarif").read_text())
    validate(log)
    assert {r["ruleId"] for r in log["runs"][0]["results"]} >= {"add-column-not-null-no-default"}
    assert "::error file=alembic/versions/1234abcd5678_add_nickname.py" in p.stderr


def test_rules_as_sarif_is_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--format", "sarif"]) == 0
    log = json.loads(capsys.readouterr().out)
    validate(log)
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"]
