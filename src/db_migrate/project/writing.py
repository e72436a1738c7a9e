"""Writing new revision files safely: one writer per project, no overwrite, no debris.

Both generate_migration and check_heads(create_merge=True) let alembic write the
file (so ``file_template``, ``script.py.mako`` and post-write hooks apply) and
wrap it in three guards:

* :func:`revision_lock` (parent side): an ``fcntl.flock`` on a lock file kept in
  the temp directory, keyed by the project's version locations.  A second
  writer gets :class:`~db_migrate.errors.GenerateBusy` at once instead of
  racing to create a second head.  The kernel drops the lock if we die.
* :func:`refuse_overwrite` (worker side): alembic computes the new file's path
  in ``ScriptDirectory._rev_path``; we check it there, before anything is
  written, and refuse an existing path.  If alembic fails after writing
  (a post-write hook that errors, a template that does not parse), the new
  file is removed again.
* :func:`remove_new_files` (parent side): when the worker had to be killed
  (timeout, crash) the files that appeared meanwhile are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from db_migrate.errors import GenerateBusy, Refused
from db_migrate.project import Project


def _lock_path(project: Project) -> Path:
    key = hashlib.sha256("\0".join(str(v) for v in project.version_locations).encode()).hexdigest()[:16]
    d = Path(tempfile.gettempdir()) / "db-migrate-locks"
    d.mkdir(mode=0o700, exist_ok=True)
    return d / f"{key}.lock"


@contextlib.contextmanager
def revision_lock(project: Project) -> Iterator[None]:
    """Hold the project's revision-writer lock, or raise GenerateBusy when another writer holds it."""
    fd = os.open(_lock_path(project), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GenerateBusy(
                f"Another db-migrate call is writing a revision in {project.relpath(project.script_location)} right now.",
                hint="Wait for it to finish, then call again (two concurrent revisions would create two heads).",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def revision_files(project: Project) -> set[Path]:
    """Every ``*.py`` file under the version locations (a snapshot to diff against)."""
    out: set[Path] = set()
    for loc in project.version_locations:
        if loc.is_dir():
            out.update(p.resolve() for p in loc.rglob("*.py") if "__pycache__" not in p.parts)
    return out


def remove_new_files(project: Project, before: set[Path]) -> list[Path]:
    """Remove revision files that appeared since ``before`` (after a killed writer); return them."""
    removed = []
    for p in sorted(revision_files(project) - before):
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


@contextlib.contextmanager
def refuse_overwrite(written: list[Path]) -> Iterator[None]:
    """Worker side: make alembic refuse to write over an existing file; undo a failed write.

    The path of each file alembic decides to write is appended to ``written``.
    """
    from alembic.script import ScriptDirectory

    original = ScriptDirectory._rev_path

    def checked(self, path, rev_id, message, create_date):  # type: ignore[no-untyped-def]
        target = original(self, path, rev_id, message, create_date)
        if Path(target).exists():
            raise Refused(
                f"Alembic would write {target}, which already exists; db-migrate never overwrites a file.",
                hint="The project's file_template produced an existing name (does it contain %(rev)s?). "
                "Call again later, or change file_template.",
                path=str(target),
            )
        written.append(Path(target))
        return target

    ScriptDirectory._rev_path = checked  # type: ignore[method-assign]
    try:
        yield
    except BaseException:
        for p in written:
            with contextlib.suppress(OSError):
                p.unlink()
        raise
    finally:
        ScriptDirectory._rev_path = original  # type: ignore[method-assign]


MARKER = "# db-migrate generate_migration wrote this file"
"""Starts the last line of every revision generate_migration writes: tells its own files, unedited, from anything else."""

RENAMES_PENDING = " (probable renames written as drop + add)"
_HASH = "; sha256 of the text above: "


def mark_generated(path: Path, *, renames_pending: bool = False) -> None:
    """Worker side: append the marker line with the hash of the file as written (after alembic's post-write hooks).

    ``renames_pending`` records that the file drops and adds what is probably a rename: only such a
    file may be replaced by a later ``rewrite_renames`` call.
    """
    text = path.read_text(encoding="utf-8")
    missing_newline = not text.endswith("\n")
    if missing_newline:
        text += "\n"
    line = MARKER + (RENAMES_PENDING if renames_pending else "") + _HASH + hashlib.sha256(text.encode()).hexdigest()
    with path.open("a", encoding="utf-8") as f:
        f.write(("\n" if missing_newline else "") + line + "\n")


def generated_unedited(path: Path) -> dict[str, bool] | None:
    """``{"renames_pending": ...}`` when generate_migration wrote ``path`` and nobody edited it since, else None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    body, sep, tail = text.rstrip("\n").rpartition("\n" + MARKER)
    if not sep or "\n" in tail or _HASH not in tail:
        return None
    flags, _, digest = tail.partition(_HASH)
    if hashlib.sha256((body + "\n").encode()).hexdigest() != digest.strip():
        return None
    return {"renames_pending": flags == RENAMES_PENDING}


@contextlib.contextmanager
def set_aside(path: Path) -> Iterator[Callable[[], None]]:
    """Hide a revision file from alembic for the block (a renamed dotfile beside it, atomic); restore it unless dropped.

    Yields ``drop()``: call it once the replacement is written, to remove the hidden file for good.
    A failure inside the block restores the file; nothing is ever overwritten (a name already
    taken refuses before anything moves).
    """
    hidden = path.with_name(f".{path.name}.db-migrate-replaced")
    if hidden.exists():
        raise Refused(f"{hidden} exists (left by an interrupted call?); db-migrate never overwrites a file.",
                      hint=f"Rename it back to {path.name} or remove it, then call again.", path=str(hidden))
    os.rename(path, hidden)
    state = {"drop": False}

    def drop() -> None:
        state["drop"] = True

    try:
        yield drop
    finally:
        if state["drop"]:
            with contextlib.suppress(OSError):
                hidden.unlink()
        elif not path.exists():
            os.rename(hidden, path)
