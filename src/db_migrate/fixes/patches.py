"""Verified patches: a finding's fix as a unified diff that db-migrate applied and checked before offering it.

A rule that can write its fix whole gives the finding an ``edit`` (:class:`db_migrate.verdict.SourceEdit`):
replace downgrade()'s body, put a statement first or last in it, or replace one statement.  Here that
edit becomes a text edit of the revision file and a unified diff (``a/`` and ``b/`` paths relative to the
project root, as ``git diff`` writes them).  Before the diff is offered as ``Finding.patch`` it is

1. applied with ``git apply`` (when git is installed) to a copy of the project, outside it;
2. reviewed there: the patched revision no longer has that finding and has no error the original did not;
3. roundtripped there (upgrade, downgrade, upgrade on the scratch engine the project's roundtrip would use),
   with every verified patch of the revision applied together, for at most :data:`MAX_ROUNDTRIPS` revisions
   per call, and only when no error is left once they are applied (an error no patch fixes fails the
   roundtrip whatever the patches do); otherwise the first two checks stand alone.

At most :data:`MAX_FILES` revision files are checked per call (a review of a whole history in CI must stay
quick); the findings of the others keep their fix text, and a later call on one revision checks it.

``Finding.patch_checked`` lists the checks that ran and passed.  A patch that fails one is not offered:
the finding keeps its ``fix`` text.  Answers are kept per (file content, edit, project), so an agent's
loop pays for a check once.  The decision never depends on a check (policy/classify.py reads the edit),
so review, classify and roundtrip agree whether or not the checks ran.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import difflib
import hashlib
import shutil
import subprocess
import tempfile
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from db_migrate.errors import DbMigrateError
from db_migrate.project import Project, load_history, load_project
from db_migrate.project.headers import parse_python
from db_migrate.verdict import Finding, SourceEdit

__all__ = ["MAX_ROUNDTRIPS", "apply_edit", "offer_patches", "unified_patch"]

#: Revisions whose patches are roundtripped per call (the rest are checked by git apply and review).
MAX_ROUNDTRIPS = 2
#: Revision files whose patches are checked per call; the findings of further files keep their fix text.
MAX_FILES = 10
#: What is never copied with the project: version control, environments, caches.
_SKIP = (".git", ".hg", ".venv", "venv", "env", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache",
         ".ruff_cache", ".tox", ".nox", "*.pyc", "*.sqlite", "*.db")
#: Files larger than this are data, not project code: never copied.
_MAX_FILE = 5 * 1024 * 1024
_CACHE_SIZE = 512
_checked: OrderedDict[str, tuple[str | None, list[str]]] = OrderedDict()
_lock = threading.Lock()
_verifying: contextvars.ContextVar[bool] = contextvars.ContextVar("db_migrate_verifying_patches", default=False)


# ---------------------------------------------------------------------------
# Text edits (pure)
# ---------------------------------------------------------------------------


def _function(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def _statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """The body without its docstring."""
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[1:]
    return body


def _only_pass(stmts: list[ast.stmt]) -> bool:
    return all(isinstance(s, ast.Pass) for s in stmts)


def _innermost(body: list[ast.stmt], line: int) -> ast.stmt | None:
    """The innermost statement of ``body`` (nested blocks included) whose lines hold ``line``."""
    for s in body:
        if s.lineno <= line <= (s.end_lineno or s.lineno):
            for field in ("body", "orelse", "finalbody"):
                inner = getattr(s, field, None)
                if isinstance(inner, list) and inner and all(isinstance(x, ast.stmt) for x in inner):
                    found = _innermost(inner, line)
                    if found is not None:
                        return found
            return s
    return None


def apply_edit(source: str, edit: SourceEdit) -> str | None:
    """``source`` with ``edit`` carried out, or None when it cannot be placed (no such function or statement)."""
    try:
        tree = parse_python(source)
    except SyntaxError:
        return None
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    fn = _function(tree, edit.function)
    if fn is None:
        if edit.mode == "replace-body":  # no downgrade() at all: write one at the end of the file
            text = "".join(lines).rstrip("\n") + f"\n\n\ndef {edit.function}() -> None:\n" + textwrap.indent(edit.code, "    ") + "\n"
            return text if _parses(text) else None
        return None
    stmts = _statements(fn.body)
    if edit.mode == "replace-statement":
        target = _innermost(fn.body, edit.line or 0)
        if target is None:
            return None
        start, end, indent = target.lineno, target.end_lineno or target.lineno, " " * target.col_offset
    elif not stmts:  # a docstring alone
        start = end = (fn.body[0].end_lineno or fn.body[0].lineno) + 1
        indent = " " * fn.body[0].col_offset
        end = start - 1
    else:
        indent = " " * stmts[0].col_offset
        first, last = stmts[0].lineno, stmts[-1].end_lineno or stmts[-1].lineno
        if edit.mode == "replace-body" or _only_pass(stmts):
            start, end = first, last
        elif edit.mode == "prepend":
            start, end = first, first - 1
        else:
            start, end = last + 1, last
    new = textwrap.indent(edit.code.rstrip("\n") + "\n", indent)
    if edit.mode == "replace-statement" and lines[start - 1][: target.col_offset].strip():
        return None  # the statement shares its line with something else: no clean edit
    text = "".join(lines[: start - 1]) + new + "".join(lines[end:])
    return text if _parses(text) else None


def _parses(text: str) -> bool:
    try:
        parse_python(text)
    except SyntaxError:
        return False
    return True


def unified_patch(relpath: str, old: str, new: str, *, git_prefix: str = "") -> str:
    """A unified diff of ``relpath`` from ``old`` to ``new`` that ``git apply`` accepts (``a/``, ``b/`` prefixes).

    ``git_prefix``: the project root's folder inside its git repository (``git rev-parse --show-prefix``).
    git reads a patch's paths from the repository's top and, run in a subfolder, skips the files (exit 0):
    the patch then opens with the command that applies it, a preamble git ignores.
    """
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    out = []
    for line in difflib.unified_diff(a, b, fromfile=f"a/{relpath}", tofile=f"b/{relpath}"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    preamble = f"From the project root: git apply --directory={git_prefix.rstrip('/')}\n\n" if git_prefix else ""
    return f"{preamble}diff --git a/{relpath} b/{relpath}\n" + "".join(out)


def git_prefix(root: Path) -> str:
    """The project root's folder inside its git work tree ('' at the top, or outside git, or without git)."""
    git = shutil.which("git")
    if git is None:
        return ""
    try:
        done = subprocess.run([git, "-C", str(root), "rev-parse", "--show-prefix"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


# ---------------------------------------------------------------------------
# Checking a patch on a copy of the project
# ---------------------------------------------------------------------------


def verifying() -> bool:
    """True inside a check of a patch: reviews there offer no patches of their own (no recursion)."""
    return _verifying.get()


def _ignore(folder: str, names: list[str]) -> set[str]:
    """What copytree leaves out: :data:`_SKIP` and files over :data:`_MAX_FILE` (data, not code)."""
    skipped = set(shutil.ignore_patterns(*_SKIP)(folder, names))
    for name in names:
        path = Path(folder) / name
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_size > _MAX_FILE:
                skipped.add(name)
        except OSError:
            skipped.add(name)
    return skipped


class _Copy:
    """A copy of the project (outside it) that patches are applied to, one revision file at a time."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.dir = Path(tempfile.mkdtemp(prefix="dbm-patch-"))
        self.root = self.dir / "project"
        shutil.copytree(project.root, self.root, ignore=_ignore, symlinks=True)
        self.copy = load_project(self.root / project.config_file.relative_to(project.root), section=project.section)
        self.git = shutil.which("git")

    def write(self, relpath: str, original: str, patch: str | None = None, text: str | None = None) -> bool:
        """Put the original file back, then apply ``patch`` (with git when installed) or write ``text``."""
        target = self.root / relpath
        target.write_text(original)
        if patch is None:
            if text is not None:
                target.write_text(text)
            return True
        if self.git is None:
            target.write_text(text or original)
            return text is not None
        for args in (["apply", "--check"], ["apply"]):
            done = subprocess.run([self.git, *args, "-"], input=patch, cwd=self.root, capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                return False
        return True

    def header(self, revision: str | None, relpath: str):
        history = load_history(self.copy)
        if revision and revision in history.by_id:
            return history.by_id[revision]
        return history.resolve(str(self.root / relpath))

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _key(f: Finding) -> tuple:
    """What identifies a finding across the original and the patched file (lines move)."""
    return (f.rule, f.table, f.column, "".join(c for c in f.message if not c.isdigit()))


def _errors(findings: list[Finding]) -> set[tuple]:
    return {(f.rule, f.table, f.column) for f in findings if f.severity == "error"}


def _reviewed(copy: _Copy, revision: str | None, relpath: str, dialect: str, timeout: float | None):
    from db_migrate.review import review_paths

    return review_paths(copy.copy, [copy.header(revision, relpath)], dialect=dialect, timeout=timeout)


def _roundtrip_passes(copy: _Copy, revision: str | None, relpath: str, timeout: float | None) -> tuple[bool | None, str]:
    """(passed, the check's name): True/False when the patched revision's roundtrip passed/failed, None when it
    could not run here; the name says the engine when it is not the project's (``roundtrip on sqlite``)."""
    from db_migrate.roundtrip import test_roundtrip

    try:
        result = test_roundtrip(copy.copy, copy.header(revision, relpath).revision or "head", timeout=timeout)
    except DbMigrateError:
        return None, ""
    engine = result.engine.name if result.engine is not None else result.dialect
    same = engine == copy.project.dialect or {engine, copy.project.dialect} <= {"mysql", "mariadb"}
    return result.status == "passed", "roundtrip" if same else f"roundtrip on {engine}"


@contextlib.contextmanager
def _verifying_scope() -> Iterator[None]:
    token = _verifying.set(True)
    try:
        yield
    finally:
        _verifying.reset(token)


def offer_patches(project: Project, findings: list[Finding], *, dialect: str, timeout: float | None = None) -> list[Finding]:
    """``findings`` with ``patch`` and ``patch_checked`` set on each whose edit passed its checks.

    Each finding's patch is its own edit alone (checked by ``git apply`` and review); the roundtrip runs once
    per revision with all of that revision's checked edits applied together, since one rollback fix alone may
    leave another for the next upgrade to trip on.
    """
    todo = [f for f in findings if f.edit is not None and f.path and f.patch is None]
    if not todo or verifying():
        return findings
    from db_migrate.sandbox import progress

    by_file: dict[str, list[Finding]] = {}
    for f in todo:
        by_file.setdefault(f.path, []).append(f)  # type: ignore[arg-type]
    checked_files = 0
    answers: dict[int, tuple[str | None, list[str]]] = {}
    prefix = git_prefix(project.root)
    copy: _Copy | None = None
    roundtrips = 0
    try:
        with _verifying_scope():
            for relpath, group in by_file.items():
                path = project.root / relpath
                try:
                    original = path.read_text()
                except OSError:
                    continue
                keys = {id(f): _cache_key(project, prefix, original, f) for f in group}
                with _lock:
                    cached = {id(f): _checked[keys[id(f)]] for f in group if keys[id(f)] in _checked}
                answers.update(cached)
                if len(cached) == len(group) or checked_files >= MAX_FILES:
                    continue  # answered before; or this call checked enough files (a whole history in CI)
                checked_files += 1
                if copy is None:
                    progress("checking the fixes' patches on a copy of the project")
                    copy = _Copy(project)
                checked, ran = _check_file(copy, relpath, original, [f for f in group if id(f) not in cached], dialect, timeout,
                                      roundtrip=roundtrips < MAX_ROUNDTRIPS, prefix=prefix,
                                      everything=[f for f in findings if f.path == relpath])
                roundtrips += ran
                for f in group:
                    if id(f) in checked:
                        answers[id(f)] = checked[id(f)]
                        with _lock:
                            _checked[keys[id(f)]] = checked[id(f)]
                            while len(_checked) > _CACHE_SIZE:
                                _checked.popitem(last=False)
    except (OSError, DbMigrateError, subprocess.SubprocessError):
        pass  # no copy, no checks: the findings keep their fix text and no patch is offered
    finally:
        if copy is not None:
            copy.close()
    out = []
    for f in findings:
        patch, checks = answers.get(id(f), (None, []))
        out.append(f.model_copy(update={"patch": patch, "patch_checked": checks}) if patch else f)
    return out


def _cache_key(project: Project, prefix: str, original: str, f: Finding) -> str:
    h = hashlib.sha256()
    for part in (str(project.root), prefix, original, f.edit.model_dump_json() if f.edit else "", repr(_key(f))):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _check_file(copy: _Copy, relpath: str, original: str, group: list[Finding], dialect: str, timeout: float | None,
                *, roundtrip: bool, prefix: str = "", everything: list[Finding]) -> tuple[dict[int, tuple[str | None, list[str]]], bool]:
    """Each finding's (patch, checks), or (None, []) when a check failed; and whether a roundtrip ran."""
    out: dict[int, tuple[str | None, list[str]]] = {}
    revision = group[0].revision
    before = _errors(everything)  # the file's errors as the review found them: a patch may add none
    passed: list[Finding] = []
    ran = False
    for f in group:
        new = apply_edit(original, f.edit)  # type: ignore[arg-type]
        if new is None or new == original:
            out[id(f)] = (None, [])
            continue
        patch = unified_patch(relpath, original, new, git_prefix=prefix)
        if not copy.write(relpath, original, patch, new):
            out[id(f)] = (None, [])
            continue
        after = _reviewed(copy, revision, relpath, dialect, timeout)
        gone = all(_key(g) != _key(f) for g in after.findings)
        if not gone or _errors(after.findings) - before:  # still there, or a new error
            out[id(f)] = (None, [])
            continue
        checks = (["git-apply"] if copy.git else []) + ["review"]
        out[id(f)] = (patch, checks)
        passed.append(f)
    if roundtrip and passed:
        combined = original
        # statement replacements first, bottom up, while their line numbers still hold; then the others
        for f in sorted(passed, key=lambda f: (f.edit.mode != "replace-statement", -(f.edit.line or 0))):  # type: ignore[union-attr]
            combined = apply_edit(combined, f.edit) or combined  # type: ignore[arg-type]
        copy.write(relpath, original, text=combined)
        # An error no patch fixes fails the roundtrip whatever the patches do: it would say nothing about them.
        ok, name = (None, "") if _errors(_reviewed(copy, revision, relpath, dialect, timeout).findings) else \
            _roundtrip_passes(copy, revision, relpath, timeout)
        ran = ok is not None
        for f in passed:
            patch, checks = out[id(f)]
            out[id(f)] = (None, []) if ok is False else (patch, checks + ([name] if ok else []))
    copy.write(relpath, original)
    return out, ran
