"""review_migration: what a revision does, what is unsafe about it, and the safe alternative.

The parent resolves the revision(s) from statically parsed headers, then a
sandbox worker imports each revision file, records its operations offline
(:mod:`db_migrate.capture`) and runs the rule catalogue over them
(:mod:`.engine`).  Results are cached by file content, dialect and rule set,
so an agent calling in a loop pays only for what changed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path

from db_migrate.capture.context import revision_files
from db_migrate.errors import DbMigrateError, MigrationCrashed, MigrationLoadError, MigrationTimeout, UsageError
from db_migrate.policy.settings import Policy
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
from db_migrate.verdict import WHOLE_REVISION, Finding, Isolation, Unchecked, decide, describe_counts, sort_findings

__all__ = ["Operation", "ReviewResult", "RevisionReview", "review_migration", "review_paths"]

#: Dialects a review can render for (what alembic's offline context supports here).
_DIALECTS = ("postgresql", "mysql", "mariadb", "sqlite", "mssql", "oracle")
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

    The decision is the project's policy applied without a database
    (:func:`db_migrate.policy.classify.decide_for`): escalate when a trigger
    that needs no database fires, revise when an error remains, else proceed.
    With ``all_revisions``, files matching the policy's ``exclude`` globs and
    revisions at or before its ``baseline`` are skipped, and ``unchecked`` says so.

    With ``database_url`` (the user's database, only read) each change is also
    checked against the data (:mod:`db_migrate.preflight`) and the verdict
    carries a ``preflight`` section; the dialect then defaults to the database's.

    Findings carry the ``edit`` a rule can write; :func:`db_migrate.fixes.review_with_patches` (what the
    ``review_migration`` tool calls) turns it into a checked ``patch``.
    """
    if database_url and not dialect:
        from db_migrate.project.config import dialect_of

        dialect = dialect_of(database_url)
    from db_migrate.policy.settings import baseline_revisions, load_policy

    policy = load_policy(project)
    history = load_history(project)
    old = baseline_revisions(history, policy)
    skipped: list[Unchecked] = []
    unreadable: list[RevisionOutcome] = []
    if revisions is not None and not all_revisions:
        unique: dict[str, RevisionHeader] = {}
        for ref in revisions:
            h = history.resolve(ref)
            unique.setdefault(str(h.path), h)
        result = review_paths(project, history.in_order(unique.values()), dialect=dialect, timeout=timeout, policy=policy, history=old)
        return _with_data(project, result, database_url, policy, timeout, old)
    if all_revisions:
        excluded = [h for h in history.headers if _excluded(project, h.path, policy.exclude)]
        skip = {h.path for h in excluded}
        before = [h for h in history.headers if h.revision in old and h.path not in skip]
        skip |= {h.path for h in before}
        headers = history.in_order(h for h in history.headers if h.path not in skip)
        if excluded:
            skipped.append(Unchecked(what=f"{len(excluded)} revision file(s)", reason="excluded by the policy's 'exclude' patterns"))
        if before:
            skipped.append(Unchecked(
                what=f"{len(before)} revision(s) up to the baseline {policy.baseline}",
                reason="at or before the policy's 'baseline': history, not reviewed",
            ))
        broken = [b for b in history.broken if not _excluded(project, b.path, policy.exclude)]
        if broken and not headers:
            b = broken[0]
            raise MigrationLoadError(
                f"{project.relpath(b.path)} is not valid Python: {b.message}", hint="Fix the syntax error and call again.",
                path=project.relpath(b.path),
            )
        # One file Python cannot parse is a finding for that file; every other revision is still reviewed.
        for b in broken:
            rel = project.relpath(b.path)
            reason = f"it is not valid Python: {b.message}"
            unreadable.append(RevisionOutcome(
                review=RevisionReview(revision=None, path=rel), load_error=reason,
                unchecked=[Unchecked(what=WHOLE_REVISION, reason=reason, path=rel, line=b.line)],
            ))
    else:
        headers = [history.resolve(revision)]
    result = review_paths(project, headers, dialect=dialect, timeout=timeout, policy=policy, history=old, unreadable=unreadable)
    result.unchecked[:0] = skipped
    return _with_data(project, result, database_url, policy, timeout, old)


def _excluded(project: Project, path: Path, patterns: list[str]) -> bool:
    if not patterns:
        return False
    rel = project.relpath(path)
    return any(fnmatchcase(rel, p) or fnmatchcase(path.name, p) for p in patterns)


def _with_data(
    project: Project, result: ReviewResult, database_url: str | None, policy: Policy, timeout: float | None, history: frozenset[str]
) -> ReviewResult:
    """``result`` decided with what ``database_url`` says (read-only), as classify_escalation decides: row
    counts, column contents and the preflight of each change."""
    if not database_url:
        return result
    from db_migrate.approval import book_for
    from db_migrate.policy.classify import with_data
    from db_migrate.preflight import read_data

    facts, preflight = read_data(result, database_url, policy, timeout)
    return with_data(result, policy, facts, preflight, approvals=book_for(project, result.reviews),
                     database_url=database_url, project_url=project.url, history=history)


def _key(h: RevisionHeader, dialect: str, env: str) -> tuple[str, str]:
    data = h.path.read_bytes()
    return (hashlib.sha256(data).hexdigest(), f"{dialect}:{env}")


_context_files: dict[str, list[str]] = {}  # project root -> files env.py imported (the models), from the worker


def _env_fingerprint(project: Project) -> str:
    """What the project context depends on, for the cache key: the project, its config, env.py, and the models it imported.

    The naming convention and lock_timeout (db_migrate.capture.context) come from env.py and the models; an
    edit to either must not serve outcomes computed under the old ones.
    """
    h = hashlib.sha256(str(project.root).encode())
    for f in (project.script_location / "env.py", project.config_file):  # the config: what revisions read of it
        try:
            h.update(f.read_bytes())
        except OSError:
            pass
    # the history's facts (columns NOT NULL or added before a revision, its parents' types, tables created) change
    # what a revision's review says: an edit of any revision file, or one added or removed, is a new context
    for f in [*_context_files.get(str(project.root), []), *map(str, sorted(revision_files(project)[1]))]:
        try:
            st = os.stat(f)
            h.update(f"{f}:{st.st_mtime_ns}:{st.st_size}".encode())
        except OSError:
            h.update(f"{f}:gone".encode())
    return h.hexdigest()[:16]


def review_paths(
    project: Project,
    headers: list[RevisionHeader],
    *,
    dialect: str | None = None,
    timeout: float | None = None,
    policy: Policy | None = None,
    history: frozenset[str] = frozenset(),
    unreadable: list[RevisionOutcome] | None = None,
) -> ReviewResult:
    """Review the given revision files (in the order given) and apply ``policy`` (default: the project's).

    ``history``: revisions at or before the baseline (see
    :func:`db_migrate.policy.settings.baseline_revisions`), which fire no trigger.
    ``unreadable``: outcomes of files that do not parse, reported beside the others.
    """
    from db_migrate.policy.settings import load_policy

    if dialect is not None and dialect not in _DIALECTS:
        # a dialect name SQLAlchemy does not know would fail deep inside the capture
        raise UsageError(
            f"Unknown dialect {dialect!r}; valid dialects: {', '.join(_DIALECTS)}.",
            hint="Leave dialect unset to use the one of the project's sqlalchemy.url.",
        )
    policy = policy or load_policy(project)
    dialect = dialect or project.dialect
    if not headers:
        return ReviewResult(decision="proceed", summary="no revisions to review: proceed", dialect=dialect)
    outcomes: dict[int, RevisionOutcome] = {}
    todo: list[tuple[int, RevisionHeader]] = []
    keys: dict[int, tuple[str, str]] = {}
    # the target server changes what some rules say: part of the key, like env.py
    target = f":{policy.target_version}" if policy.target_version else ""
    env = _env_fingerprint(project) + target
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
            results = _run(project, [h for _, h in todo], dialect, timeout, policy.target_version)
        if results and results[0].context_files != _context_files.get(str(project.root)):
            _context_files[str(project.root)] = results[0].context_files
            env = _env_fingerprint(project) + target
            keys.update({i: _key(h, dialect, env) for i, h in todo})
        for (i, h), outcome in zip(todo, results):
            outcomes[i] = outcome
            # Revisions importing application code may change meaning when that code changes: don't cache.
            if outcome.load_error is None and not any(u.what.startswith("values taken from") for u in outcome.unchecked):
                with _cache_lock:
                    _cache[keys[i]] = (outcome, weakest(isolations))
                    while len(_cache) > _CACHE_SIZE:
                        _cache.popitem(last=False)
    from db_migrate.capture.offline import is_offline_artifact

    if len(headers) == 1 and outcomes[0].load_error and not is_offline_artifact(outcomes[0].load_error):
        h = headers[0]
        raise MigrationLoadError(
            f"Cannot analyse {project.relpath(h.path)}: {outcomes[0].load_error}.",
            hint="Fix the revision so that it imports cleanly, then call again.",
            revision=h.revision, path=project.relpath(h.path),
        )
    whole = load_history(project).headers  # read once: the conventions and their application both need it
    return _assemble(
        project, [outcomes[i] for i in range(len(headers))] + list(unreadable or []), dialect, policy, history,
        project_conventions(project, dialect, policy, whole), whole,
    )


def project_conventions(project: Project, dialect: str, policy: Policy, headers: list[RevisionHeader]):
    """The project's conventions (:mod:`db_migrate.policy.conventions`), read from its whole history (``headers``)."""
    from db_migrate.policy.conventions import cascade_children, foreign_keys_off, foreign_keys_on, infer, trigger_functions

    files = [project.script_location / "env.py", *map(Path, _context_files.get(str(project.root), []))]
    named = fks = guarded = False
    for i, f in enumerate(files):
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        named, fks = named or "naming_convention" in text, fks or foreign_keys_on(text)
        guarded = guarded or (i == 0 and foreign_keys_off(text))  # env.py turning them off around the run
    texts = list(_texts(h.path for h in headers))
    return infer(headers, dialect=dialect, settings=policy.conventions, naming_convention=named,
                 triggers=trigger_functions(texts), cascades=cascade_children(texts) if dialect == "sqlite" else {},
                 sqlite_foreign_keys=fks, sqlite_foreign_keys_guarded=guarded, helper_modules=_helper_modules(project, texts))


# an import that may be of the migrations' own helpers: relative, or through a migrations package (a cheap
# filter before parsing: most revisions import only alembic and sqlalchemy)
_HELPER_IMPORT = re.compile(r"^\s*(?:from\s+(?:\.|[\w.]*(?:migrat|alembic_|versions))|import\s+[\w.]*migrat)", re.MULTILINE)


def _helper_modules(project: Project, texts: Sequence[str]) -> list[str]:
    """The project's modules the revisions import as the migrations' own helpers (not application models)."""
    root = str(project.root)
    return sorted({m for text in texts if _HELPER_IMPORT.search(text) for m in _helper_imports(text, root)})


@functools.lru_cache(maxsize=4096)
def _helper_imports(text: str, root: str) -> tuple[str, ...]:
    """One revision's imports of helper modules (kept: every review of the project reads the whole history again)."""
    from db_migrate.capture.source import source_facts
    from db_migrate.project.headers import parse_python
    from db_migrate.rules.orm_import import is_migration_helper

    try:
        tree = parse_python(text)
    except (SyntaxError, ValueError):
        return ()
    return tuple(f.detail for f in source_facts(tree, Path(root))
                 if f.kind == "app-import" and is_migration_helper(f.detail, tuple(f.names or ())))


def _texts(paths):
    """The text of each revision file (cached by modification time and size: a history is read on every call)."""
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        yield _text(str(p), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8192)
def _text(path: str, mtime: int, size: int) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _relocate(outcome: RevisionOutcome, project: Project, h: RevisionHeader) -> RevisionOutcome:
    """A cached outcome for identical content at another path keeps this path."""
    rel = project.relpath(h.path)
    if outcome.review.path == rel:
        return outcome
    # model_copy, not a dump: a finding's edit is never serialised
    return outcome.model_copy(update={
        "review": outcome.review.model_copy(update={"path": rel}),
        **{group: [item.model_copy(update={"path": rel}) for item in getattr(outcome, group)]
           for group in ("findings", "suppressed", "unchecked")},
    })


def _run(
    project: Project, headers: list[RevisionHeader], dialect: str, timeout: float | None, target_version: str | None
) -> list[RevisionOutcome]:
    files = [(str(h.path), project.relpath(h.path)) for h in headers]
    try:
        return run_job(
            "db_migrate.review.engine:review_job", files=files, root=str(project.root), dialect=dialect,
            config_file=str(project.config_file), section=project.section, target_version=target_version,
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
                out.extend(_run(project, [h], dialect, timeout, target_version))
            except (MigrationCrashed, MigrationTimeout) as e1:
                out.append(_failed_outcome(project, h, e1))
        return out


def _failed_outcome(project: Project, h: RevisionHeader, e: DbMigrateError) -> RevisionOutcome:
    rel = project.relpath(h.path)
    return RevisionOutcome(
        review=RevisionReview(revision=h.revision, path=rel, message=h.message, down_revisions=list(h.down_revisions)),
        load_error=e.message,
        unchecked=[Unchecked(what=WHOLE_REVISION, reason=e.message, revision=h.revision, path=rel)],
    )  # _assemble turns the load error into a migration-raises finding


def _configured(findings: list[Finding], policy: Policy) -> list[Finding]:
    """The findings with the project's rule settings applied: disabled rules dropped, severities overridden."""
    out = []
    for f in findings:
        severity = policy.rule_severity(f.rule, f.severity)
        if severity is not None:
            out.append(f if severity == f.severity else f.model_copy(update={"severity": severity}))
    return out


def _assemble(
    project: Project, outcomes: list[RevisionOutcome], dialect: str, policy: Policy, history: frozenset[str],
    conventions=None, whole: list[RevisionHeader] = (),
) -> ReviewResult:
    from db_migrate.approval import book_for
    from db_migrate.policy import conventions as conv
    from db_migrate.policy.classify import decide_for

    found = [f for o in outcomes for f in o.findings]
    if conventions is not None:
        kinds = {h.revision: (h.downgrade, h.downgrade_reason) for h in whole}
        found = conv.apply(found, conventions, kinds) + conv.notes(conventions, len(outcomes))
        if dialect == "sqlite" and conventions.sqlite_foreign_keys_guarded:
            found = [f for f in found if f.rule != "sqlite-batch-cascade"]  # env.py turns foreign keys off
        elif dialect == "sqlite":
            by_rev = {h.revision: h.path for h in whole}
            guarded = [o.review.revision for o in outcomes if o.review.revision in by_rev
                       and conv.foreign_keys_off(next(_texts([by_rev[o.review.revision]]), ""))]
            found += conv.batch_cascade_findings([o.review for o in outcomes], conventions, found, guarded)
    findings = sort_findings(_configured(found, policy))
    from db_migrate.capture.offline import is_offline_artifact

    for o in outcomes:
        if o.load_error and is_offline_artifact(o.load_error):
            continue  # a stand-in (a module not installed here) or our library version: unchecked says so
        if o.load_error:  # no rule ran on it
            findings.append(Finding(
                rule="migration-raises", severity="error", phase="revision", revision=o.review.revision, path=o.review.path,
                message=f"The revision cannot be analysed: {o.load_error.rstrip('.')}.",
                fix="Make the file import cleanly: no syntax errors, no exits or exceptions at import time.",
            ))
    n = len(outcomes)
    what = outcomes[0].review.revision or outcomes[0].review.path if n == 1 else f"{n} revisions"
    result = ReviewResult(
        decision=decide(findings),
        summary="",
        revisions=[o.review.revision for o in outcomes if o.review.revision],
        findings=findings,
        unchecked=[u for o in outcomes for u in o.unchecked],
        dialect=dialect,
        reviews=[o.review for o in outcomes],
        suppressed=[f for o in outcomes for f in o.suppressed],
        conventions=conventions,
    )
    # the same policy as classify_escalation, without a database
    d = decide_for(result, policy, project_url=project.url, history=history, approvals=book_for(project, result.reviews))
    result.decision, result.escalation, result.unchecked, result.approval = d.decision, d.escalation, d.unchecked, d.approval
    result.summary = f"{what}: {d.headline} ({describe_counts(findings)})"
    return result
