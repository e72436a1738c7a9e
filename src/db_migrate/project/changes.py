"""Which revision files a branch added or changed: ``--changed-since REF``.

A pull request should be judged on its own revisions, not on the whole
history.  The files compared are those that differ between the merge base of
``REF`` and ``HEAD`` and the working tree (committed, staged or not), plus
untracked files, restricted to the project's version locations; deleted
files are left out (there is nothing to review).  Using the merge base means
``--changed-since origin/main`` on a feature branch ignores what landed on
main after the branch was cut.  Only ``git`` is run, read-only.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from db_migrate.errors import UsageError
from db_migrate.project.history import History


class GitError(UsageError):
    """git is missing, the project is not in a repository, or the ref does not exist."""

    code = "git-error"


def _git(root: Path, *args: str) -> str:
    try:
        p = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise GitError("--changed-since needs git, which is not on PATH.", hint="Install git, or name the revisions instead.") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} did not answer within 60 s.") from None
    if p.returncode != 0:
        first = (p.stderr.strip().splitlines() or ["failed"])[-1]
        raise GitError(f"git {' '.join(args[:2])}: {first}", hint=_hint(first))
    return p.stdout


def _hint(message: str) -> str:
    if "not a git repository" in message:
        return "--changed-since works inside a git repository; run it from the checkout."
    return ("Name a branch, tag or commit that exists here (in CI, fetch it first: "
            "actions/checkout with fetch-depth: 0, or git fetch origin main).")


def changed_files(root: Path, ref: str) -> list[Path]:
    """Absolute paths of files under ``root`` that differ from the merge base of ``ref`` and HEAD, or are untracked."""
    if ref.startswith("-"):
        raise GitError(f"{ref!r} is not a git ref.", hint="Name a branch, tag or commit, e.g. origin/main.")
    top = Path(_git(root, "rev-parse", "--show-toplevel").strip())
    _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    base = _git(root, "merge-base", ref, "HEAD").strip()
    names = _git(root, "diff", "--name-only", "-z", "--no-renames", "--diff-filter=d", base, "--", ".").split("\0")
    names += _git(root, "ls-files", "--others", "--exclude-standard", "-z", "--full-name", "--", ".").split("\0")
    return sorted({(top / n).resolve() for n in names if n})


def changed_revisions(history: History, ref: str) -> list[Path]:
    """Revision files of ``history`` changed since ``ref`` (see the module docstring), sorted.

    Files that are not valid Python are included, so that resolving them reports the
    syntax error instead of skipping the file.
    """
    wanted = {p for p in changed_files(history.project.root, ref) if p.suffix == ".py"}
    known = [h.path for h in history.headers if h.revision] + [b.path for b in history.broken]
    return sorted(p for p in known if p in wanted)
