"""The pre-commit hook (.pre-commit-hooks.yaml), run by pre-commit itself on a real git repository.

The project's repository gets a ``.pre-commit-config.yaml`` naming this
repository (a snapshot of the working tree, uncommitted changes included) and
``pre-commit install``; then real ``git commit``s run the hook: pre-commit
installs db-migrate into its own virtualenv as a hook user gets it, and passes
the revision files the commit touches.  Slow (one install), so it is one test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

GOOD = '''"""add nickname to persons"""
from alembic import op
import sqlalchemy as sa

revision = "1234abcd5678"
down_revision = "f956808bc5df"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("persons", sa.Column("nickname", sa.String(50), nullable=True))


def downgrade():
    op.drop_column("persons", "nickname")
'''


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


def snapshot_of_this_repository(dest: Path) -> str:
    """A git repository holding this working tree as one commit (what pre-commit clones); its sha."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "snapshot")
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=dest, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.timeout(1200)
def test_the_hook_reviews_the_revision_files_a_commit_touches(residency: Path, tmp_path: Path) -> None:
    pre_commit = shutil.which("pre-commit", path=str(BIN)) or shutil.which("pre-commit")
    assert pre_commit, "pre-commit is in the test extra: pip install -e .[test]"
    hooks_repo = tmp_path / "db-migrate-repo"
    sha = snapshot_of_this_repository(hooks_repo)
    (residency / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hooks_repo}\n    rev: {sha}\n    hooks:\n      - id: db-migrate-review\n"
    )
    git(residency, "init", "-q", "-b", "main")
    git(residency, "add", "-A")
    git(residency, "commit", "-q", "-m", "initial")
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "VIRTUAL_ENV")}
    env.update(PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"), NO_COLOR="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    subprocess.run([pre_commit, "install"], cwd=residency, check=True, capture_output=True, env=env)

    def commit(message: str) -> tuple[int, str]:
        """git commit; the exit code and what git and the hook printed."""
        subprocess.run(["git", "add", "-A"], cwd=residency, check=True, env=env)
        p = subprocess.run(["git", "commit", "-m", message], cwd=residency, capture_output=True, text=True, env=env, timeout=1100)
        return p.returncode, p.stdout + p.stderr

    # a good new revision and an unrelated file: the hook passes
    new = residency / "alembic/versions/1234abcd5678_add_nickname.py"
    new.write_text(GOOD)
    (residency / "app" / "notes.py").write_text("x = 1\n")
    code, out = commit("nickname")
    assert code == 0 and "db-migrate review" in out and "Passed" in out, out

    # an edit that breaks the revision: the commit is refused, with the finding and its fix
    new.write_text(GOOD.replace("nullable=True", "nullable=False"))
    code, out = commit("make it required")
    assert code == 1 and "add-column-not-null-no-default" in out and "fix:" in out and "1234abcd5678" in out, out
    assert "9692142c98f0" not in out, "only the files the commit touches are reviewed"

    # back to the committed revision; a commit touching no revision file skips the hook
    new.write_text(GOOD)
    (residency / "app" / "notes.py").write_text("x = 2\n")
    code, out = commit("notes")
    assert code == 0 and "no files to check" in out.lower(), out

    # an escalating revision is refused until a human approves it; an edit after the approval is refused again
    drop = residency / "alembic/versions/9692142c98f0_drop_pager_number_from_persons.py"
    drop.write_text(drop.read_text() + "\n# archived the pager numbers first\n")
    code, out = commit("drop pager numbers")
    assert code != 0 and "escalate" in out and "drop-with-data" in out, out
    approve = subprocess.run([str(BIN / "db-migrate"), "approve", "9692142c98f0", "--by", "Ana", "--yes"], cwd=residency,
                             capture_output=True, text=True, env=env, timeout=300)
    assert approve.returncode == 0, approve.stdout + approve.stderr
    code, out = commit("drop pager numbers, approved")
    assert code == 0 and "Passed" in out, out
    drop.write_text(drop.read_text() + "\n# and one more edit\n")
    code, out = commit("edit after approval")
    assert code != 0 and "the revision changed since Ana approved it" in out, out
