"""The pre-commit hook (.pre-commit-hooks.yaml), run by pre-commit itself on a real git repository.

``pre-commit try-repo`` clones this repository (uncommitted changes included),
installs it into a fresh virtualenv as a hook user would get it, and runs the
hook on the files staged in the project's repository.  Slow (it installs
db-migrate and its dependencies once per run), so it is one test.
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


@pytest.mark.timeout(1200)
def test_the_hook_reviews_the_revision_files_a_commit_touches(residency: Path, tmp_path: Path) -> None:
    pre_commit = shutil.which("pre-commit", path=str(BIN)) or shutil.which("pre-commit")
    assert pre_commit, "pre-commit is in the test extra: pip install -e .[test]"
    git(residency, "init", "-q", "-b", "main")
    git(residency, "add", "-A")
    git(residency, "commit", "-q", "-m", "initial")
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "VIRTUAL_ENV")}
    env.update(PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"), NO_COLOR="1", GIT_CONFIG_GLOBAL=os.devnull)

    def hook() -> subprocess.CompletedProcess[str]:
        return subprocess.run([pre_commit, "try-repo", str(ROOT), "db-migrate-review", "--verbose"],
                              cwd=residency, capture_output=True, text=True, env=env, timeout=1100)

    # a good new revision and an unrelated file: the hook passes, and sees only the revision
    (residency / "alembic/versions/1234abcd5678_add_nickname.py").write_text(GOOD)
    (residency / "app" / "notes.py").write_text("x = 1\n")
    git(residency, "add", "-A")
    p = hook()
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1234abcd5678: proceed" in p.stdout, p.stdout

    # a staged edit that breaks a revision: the commit is refused with the finding and its fix
    bad = residency / "alembic/versions/1234abcd5678_add_nickname.py"
    bad.write_text(GOOD.replace("nullable=True", "nullable=False"))
    git(residency, "add", "-A")
    p = hook()
    assert p.returncode == 1, p.stdout + p.stderr
    assert "add-column-not-null-no-default" in p.stdout and "fix:" in p.stdout

    # nothing staged that is a revision: the hook is skipped
    git(residency, "commit", "-q", "--no-verify", "-m", "wip")
    (residency / "app" / "notes.py").write_text("x = 2\n")
    git(residency, "add", "-A")
    p = hook()
    assert p.returncode == 0 and "no files to check" in p.stdout.lower(), p.stdout
