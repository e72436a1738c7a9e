"""review_migration: what a revision does, what is unsafe about it, and the safe alternative.

The parent resolves the revision(s) from statically parsed headers, then a
sandbox worker imports each revision file, records its operations offline
(:mod:`db_migrate.capture`) and runs the rule catalogue over them
(:mod:`.engine`).  Results are cached by file content, dialect and rule set,
so an agent calling in a loop pays only for what changed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence

from db_migrate.errors import DbMigrateError, MigrationCrashed, MigrationLoadError, MigrationTimeout
from db_migrate.project import Project, load_history
from db_migrate.project.headers import RevisionHeader
from db_migrate.review.model import Operation, ReviewResult, RevisionOutcome, RevisionReview
from db_migrate.sandbox import (
    DEFAULT_TIMEOUT,
    collect_isolation,
    progress,
    record_isolation,
    reports_isolation,
    run_job,
    weakest,
)
from db_migrate.verdict import Finding, Isolation, Unchecked, decide, describe_counts, sort_findings

__all__ = ["Operation", "ReviewResult", "RevisionReview", "review_migration", "review_paths"]

_CACHE_SIZE = 4096
_cache: OrderedDict[tuple[str, str], tuple[RevisionOutcome, Isolation]] = OrderedDict()
"""Outcomes by file content and dialect, with the isolation they were computed under."""
_cache_lock = threading.Lock()


@reports_isolation
def review_migration(
    project: Project,
    revision: str | None = "head",
    *,
    all_revisions: bool = False,
    revisions: Sequence[str] | None = None,
    dialect: str | None = None,
    timeout: float | None = None,
    database_url: str | None = None,
) -> ReviewResult:
    """Review one revision (id, unique prefix, ``head`` or file path), several, or every revision.

    ``revisions`` (ids, prefixes or paths; what pre-commit and ``--changed-since``
    pass) replaces ``revision`` when given; each is resolved like ``revision``, a
    revision named twice is reviewed once, and an empty list gives a ``proceed``
    verdict that says there was nothing to review.

    With ``database_url`` (the user's database, only read) each change is also
    checked against the data (:mod:`db_migrate.preflight`) and the verdict
    carries a ``preflight`` section; the dialect then defaults to the database's.
    """
    if database_url and not dialect:
        from db_migrate.project.config import dialect_of

        dialect = dialect_of(database_url)
    history = load_history(project)
    unreadable: list[RevisionOutcome] = []
    if revisions is not None and not all_revisions:
        unique: dict[str, RevisionHeader] = {}
        for ref in revisions:
            h = history.resolve(ref)
            unique.setdefault(str(h.path), h)
        return _with_data(project, review_paths(project, list(unique.values()), dialect=dialect, timeout=timeout), database_url, timeout)
    if all_revisions:
        headers = sorted(history.headers, key=lambda h: str(h.path))
        if history.broken and not headers:
            b = history.broken[0]
            raise MigrationLoadError(
                f"{project.relpath(b.path)} is not valid Python: {b.message}", hint="Fix the syntax error and call again.",
                path=project.relpath(b.path),
            )
        # One file Python cannot parse is a finding for that file; every other revision is still reviewed.
        for b in history.broken:
            rel = project.relpath(b.path)
            reason = f"it is not valid Python: {b.message}"
            unreadable.append(RevisionOutcome(
                review=RevisionReview(revision=None, path=rel), load_error=reason,
                unchecked=[Unchecked(what="every operation of the revision", reason=reason, path=rel, line=b.line)],
            ))
    else:
        headers = [history.resolve(revision)]
    return _with_data(project, review_paths(project, headers, dialect=dialect, timeout=timeout, unreadable=unreadable), database_url, timeout)


def _with_data(project: Project, result: ReviewResult, database_url: str | None, timeout: float | None) -> ReviewResult:
    """``result`` with the preflight against ``database_url`` when one was given (read-only)."""
    if not database_url:
        return result
    from db_migrate.policy import load_policy
    from db_migrate.policy.classify import with_preflight
    from db_migrate.preflight import run_preflight

    progress("checking the changes against the data (read-only)")
    return with_preflight(result, run_preflight(result, database_url, load_policy(project), timeout=timeout))


def _key(h: RevisionHeader, dialect: str, env: str) -> tuple[str, str]:
    data = h.path.read_bytes()
    return (hashlib.sha256(data).hexdigest(), f"{dialect}:{env}")


_context_files: dict[str, list[str]] = {}  # project root -> files env.py imported (the models), from the worker


def _env_fingerprint(project: Project) -> str:
    """What the project context depends on, for the cache key: the project, env.py, and the models it imported.

    The naming convention and lock_timeout (db_migrate.capture.context) come from env.py and the models; an
    edit to either must not serve outcomes computed under the old ones.
    """
    h = hashlib.sha256(str(project.root).encode())
    try:
        h.update((project.script_location / "env.py").read_bytes())
    except OSError:
        pass
    for f in _context_files.get(str(project.root), []):
        try:
            st = os.stat(f)
            h.update(f"{f}:{st.st_mtime_ns}:{st.st_size}".encode())
        except OSError:
            h.update(f"{f}:gone".encode())
    return h.hexdigest()[:16]


def review_paths(project: Project, headers: list[RevisionHeader], *, dialect: str | None = None, timeout: float | None = None,
                 unreadable: list[RevisionOutcome] | None = None) -> ReviewResult:
    """Review the given revision files (in the order given); ``unreadable``: outcomes of files that do not parse."""
    dialect = dialect or project.dialect
    if not headers:
        return ReviewResult(decision="proceed", summary="no revisions to review: proceed", dialect=dialect)
    outcomes: dict[int, RevisionOutcome] = {}
    todo: list[tuple[int, RevisionHeader]] = []
    keys: dict[int, tuple[str, str]] = {}
    env = _env_fingerprint(project)
    for i, h in enumerate(headers):
        keys[i] = _key(h, dialect, env)
        with _cache_lock:
            hit = _cache.get(keys[i])
        if hit is not None:
            outcomes[i] = _relocate(hit[0], project, h)
            record_isolation(hit[1])
        else:
            todo.append((i, h))
    if todo:
        progress(f"reviewing {len(todo)} revision(s)", 0, len(todo))
        with collect_isolation() as isolations:
            results = _run(project, [h for _, h in todo], dialect, timeout)
        if results and results[0].context_files != _context_files.get(str(project.root)):
            _context_files[str(project.root)] = results[0].context_files
            env = _env_fingerprint(project)
            keys.update({i: _key(h, dialect, env) for i, h in todo})
        for (i, h), outcome in zip(todo, results):
            outcomes[i] = outcome
            # Revisions importing application code may change meaning when that code changes: don't cache.
            if outcome.load_error is None and not any(u.what.startswith("values taken from") for u in outcome.unchecked):
                with _cache_lock:
                    _cache[keys[i]] = (outcome, weakest(isolations))
                    while len(_cache) > _CACHE_SIZE:
                        _cache.popitem(last=False)
    if len(headers) == 1 and outcomes[0].load_error:
        h = headers[0]
        raise MigrationLoadError(
            f"Cannot analyse {project.relpath(h.path)}: {outcomes[0].load_error}.",
            hint="Fix the revision so that it imports cleanly, then call again.",
            revision=h.revision, path=project.relpath(h.path),
        )
    return _assemble(project, [outcomes[i] for i in range(len(headers))] + list(unreadable or []), dialect)


def _relocate(outcome: RevisionOutcome, project: Project, h: RevisionHeader) -> RevisionOutcome:
    """A cached outcome for identical content at another path keeps this path."""
    rel = project.relpath(h.path)
    if outcome.review.path == rel:
        return outcome
    data = outcome.model_dump()
    data["review"]["path"] = rel
    for group in ("findings", "suppressed", "unchecked"):
        for item in data[group]:
            item["path"] = rel
    return RevisionOutcome.model_validate(data)


def _run(project: Project, headers: list[RevisionHeader], dialect: str, timeout: float | None) -> list[RevisionOutcome]:
    files = [(str(h.path), project.relpath(h.path)) for h in headers]
    try:
        return run_job(
            "db_migrate.review.engine:review_job", files=files, root=str(project.root), dialect=dialect,
            config_file=str(project.config_file), section=project.section,
            # A phase that loops is reported as a finding well before the whole job would time out.
            phase_seconds=max(0.5, min(10.0, (timeout or DEFAULT_TIMEOUT) / 4)),
            timeout=timeout, cwd=project.root, isolation="static", what="reviewing " + (files[0][1] if len(files) == 1 else f"{len(files)} revisions"),
        )
    except (MigrationCrashed, MigrationTimeout):
        if len(headers) == 1:
            raise
        # One revision took the whole batch down: review each alone so the others still get a verdict.
        out = []
        for h in headers:
            try:
                out.extend(_run(project, [h], dialect, timeout))
            except (MigrationCrashed, MigrationTimeout) as e1:
                out.append(_failed_outcome(project, h, e1))
        return out


def _failed_outcome(project: Project, h: RevisionHeader, e: DbMigrateError) -> RevisionOutcome:
    rel = project.relpath(h.path)
    return RevisionOutcome(
        review=RevisionReview(revision=h.revision, path=rel, message=h.message, down_revisions=list(h.down_revisions)),
        load_error=e.message,
        unchecked=[Unchecked(what="every operation of the revision", reason=e.message, revision=h.revision, path=rel)],
    )  # _assemble turns the load error into a migration-raises finding


def _assemble(project: Project, outcomes: list[RevisionOutcome], dialect: str) -> ReviewResult:
    findings = sort_findings([f for o in outcomes for f in o.findings])
    for o in outcomes:
        if o.load_error:  # no rule ran on it
            findings.append(Finding(
                rule="migration-raises", severity="error", phase="revision", revision=o.review.revision, path=o.review.path,
                message=f"The revision cannot be analysed: {o.load_error.rstrip('.')}.",
                fix="Make the file import cleanly: no syntax errors, no exits or exceptions at import time.",
            ))
    decision = decide(findings)
    n = len(outcomes)
    what = outcomes[0].review.revision or outcomes[0].review.path if n == 1 else f"{n} revisions"
    return ReviewResult(
        decision=decision,
        summary=f"{what}: {decision} ({describe_counts(findings)})",
        revisions=[o.review.revision for o in outcomes if o.review.revision],
        findings=findings,
        unchecked=[u for o in outcomes for u in o.unchecked],
        dialect=dialect,
        reviews=[o.review for o in outcomes],
        suppressed=[f for o in outcomes for f in o.suppressed],
    )
