"""The project's conventions: what its history shows it does on purpose, stated in every verdict.

A rule written for one team's habits is noise for another's: OpenStack projects write no downgrades at all
(rollback is a restore), some projects make every downgrade raise by design, expand/contract histories keep
two labelled heads, and release markers are empty on purpose. :func:`infer` reads these habits from the
history's statically parsed headers (:class:`db_migrate.project.headers.RevisionHeader`: what ``upgrade()`` and
``downgrade()`` are, the branch labels) and the dialect; ``[tool.db-migrate] conventions`` overrides any of
them (:class:`db_migrate.policy.settings.ConventionSettings`). Pure functions over plain data: the review
service calls :func:`infer`, then :func:`apply` to its findings, and the policy (:mod:`.classify`) reads the
result from the verdict's ``conventions``.

How downgrade practice is inferred (revisions whose upgrade does something, merges left out):

- ``never``: at least :data:`MIN_REVISIONS` such revisions and at least :data:`SHARE` of them have no
  downgrade or an empty one (a shorter history: all of at least :data:`MIN_UNANIMOUS`);
- ``raise``: as many have a downgrade that only raises (NotImplementedError or another exception), more of
  them raising than empty;
- ``written`` otherwise (and for shorter histories: too few revisions to call it a habit).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from db_migrate.verdict import Finding

DowngradePractice = Literal["written", "never", "raise"]

#: Revisions (with an upgrade that does something) a history needs before its habits count as conventions.
MIN_REVISIONS = 3
#: The share of those revisions that must follow a downgrade habit: two thirds (a history that wrote a downgrade
#: for its first revision and none since does not write downgrades).
SHARE = 2 / 3
#: A shorter history counts only when every one of at least this many revisions follows it.
MIN_UNANIMOUS = 3

_EMPTY = ("missing", "pass")
_RAISES = ("not-implemented", "raise")


class Conventions(BaseModel):
    """What the verdict assumed about the project: inferred from its history unless the project said otherwise."""

    downgrades: DowngradePractice = Field(
        default="written",
        description="written: revisions carry downgrades and a missing one is a finding; never: the project writes "
        "none (rollback is a restore), so a missing downgrade is not reported and escalates only where the upgrade "
        "destroys data; raise: downgrades raise by design (irreversible-by-design, not migration-raises).",
    )
    naming: str = Field(
        default="",
        description="Whose names unnamed constraints get: the naming_convention of env.py's target_metadata, or "
        "the database's own default names (PostgreSQL <table>_<column>_fkey, MySQL <table>_ibfk_<n>).",
    )
    branch_labels: dict[str, list[str]] = Field(
        default_factory=dict, description="Labelled branches (expand/contract): label -> the revisions that start it."
    )
    markers: list[str] = Field(
        default_factory=list,
        description="Revisions empty on purpose (release or branch markers): not reported as empty migrations.",
    )
    trigger_functions: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Functions the history's triggers execute, with the tables whose triggers call them: replacing "
        "one changes what happens on those tables (a protected or audit table's trigger function counts as that table).",
    )
    cascade_children: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Tables other tables reference with ON DELETE CASCADE (parent -> children), from the history: "
        "on SQLite, batch mode re-creating a parent with foreign keys on deletes every child row.",
    )
    sqlite_foreign_keys: bool = Field(
        default=False, description="env.py (or the project) turns SQLite's foreign keys on (PRAGMA foreign_keys=ON)."
    )
    sqlite_foreign_keys_guarded: bool = Field(
        default=False, description="env.py turns SQLite's foreign keys off around the migrations: batch mode "
        "re-creating a table cannot cascade.",
    )
    helper_modules: list[str] = Field(
        default_factory=list,
        description="The migrations' own helper modules (imported by revisions, or named in [tool.db-migrate] "
        "conventions): their imports are not application code (no orm-import-in-migration).",
    )
    evidence: list[str] = Field(default_factory=list, description="Why each convention was assumed, or who set it.")


_TRIGGER = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?TRIGGER\s+[\w\"]+.*?\bON\s+([\w\".]+).*?"
    r"\bEXECUTE\s+(?:FUNCTION|PROCEDURE)\s+([\w\".]+)\s*\(",
    re.IGNORECASE | re.DOTALL,
)
_FUNCTION = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+([\w\".]+)\s*\(", re.IGNORECASE)


def _bare(name: str) -> str:
    return name.replace('"', "").rpartition(".")[2].lower()


def trigger_functions(texts: Iterable[str]) -> dict[str, list[str]]:
    """Function -> the tables whose triggers execute it, from ``CREATE TRIGGER ... ON t ... EXECUTE FUNCTION f()``
    anywhere in ``texts`` (the history's revision files)."""
    out: dict[str, list[str]] = {}
    for text in texts:
        if "TRIGGER" not in text.upper():
            continue
        for m in _TRIGGER.finditer(text):
            tables = out.setdefault(_bare(m.group(2)), [])
            if _bare(m.group(1)) not in tables:
                tables.append(_bare(m.group(1)))
    return out


_RAW_CASCADE = re.compile(
    r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w\".]+)\s*\((.*?)\)\s*(?:;|$)", re.IGNORECASE | re.DOTALL)
_REFERENCES = re.compile(r"\bREFERENCES\s+([\w\".]+)[^,]*?\bON\s+DELETE\s+CASCADE", re.IGNORECASE | re.DOTALL)
_FOREIGN_KEYS_ON = re.compile(r"PRAGMA\s+foreign_keys\s*=\s*(ON|1|true)\b", re.IGNORECASE)
_FOREIGN_KEYS_OFF = re.compile(r"PRAGMA\s+foreign_keys\s*=\s*(OFF|0|false)\b", re.IGNORECASE)


def foreign_keys_off(text: str) -> bool:
    """The text turns SQLite's foreign key enforcement off (a revision guarding its batch operations)."""
    return _FOREIGN_KEYS_OFF.search(text) is not None


def foreign_keys_on(text: str) -> bool:
    """The text turns SQLite's foreign key enforcement on."""
    return _FOREIGN_KEYS_ON.search(text) is not None


def cascade_children(texts: Iterable[str]) -> dict[str, list[str]]:
    """Parent table -> the tables whose foreign keys to it delete ON CASCADE, read from revision sources
    without running them: ``sa.ForeignKey('parent.id', ondelete='CASCADE')`` inside a create_table/add_column
    of the child, ``create_foreign_key(name, child, parent, ..., ondelete='CASCADE')``, and raw ``CREATE TABLE
    child (... REFERENCES parent ... ON DELETE CASCADE)``."""
    import ast

    out: dict[str, list[str]] = {}

    def add(parent: str, child: str) -> None:
        kids = out.setdefault(_bare(parent), [])
        if _bare(child) not in kids:
            kids.append(_bare(child))

    for text in texts:
        if "cascade" not in text.lower():
            continue
        for m in _RAW_CASCADE.finditer(text):
            for r in _REFERENCES.finditer(m.group(2)):
                add(r.group(1), m.group(1))
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            strs = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name == "create_foreign_key" and _cascades(call) and len(strs) >= 3:
                add(strs[2], strs[1])
            elif name in ("create_table", "add_column") and strs:
                for inner in (n for n in ast.walk(call) if isinstance(n, ast.Call) and _cascades(n)):
                    target = next((a.value for a in inner.args if isinstance(a, ast.Constant) and isinstance(a.value, str) and "." in a.value), None)
                    if target is None and len(inner.args) > 1 and isinstance(inner.args[1], (ast.List, ast.Tuple)):
                        target = next((e.value for e in inner.args[1].elts if isinstance(e, ast.Constant) and isinstance(e.value, str)), None)
                    if target:
                        add(target.rsplit(".", 1)[0], strs[0])
    return out


def _cascades(call) -> bool:
    import ast

    return any(k.arg == "ondelete" and isinstance(k.value, ast.Constant) and str(k.value.value).upper() == "CASCADE"
               for k in call.keywords)


#: Batch operations that make alembic re-create the table on SQLite (copy, drop the old, rename the new).
RECREATE_KINDS = ("alter_column", "drop_column", "create_foreign_key", "create_unique_constraint",
                  "create_check_constraint", "drop_constraint", "create_primary_key")


def batch_cascade_findings(reviews: Iterable[Any], conventions: Conventions, existing: Iterable[Finding],
                           guarded: Iterable[str | None] = ()) -> list[Finding]:
    """SQLite batch operations that re-create a table other tables reference with ON DELETE CASCADE (children
    known from the history), not already reported by the revision's own rule; ``guarded``: revisions that turn
    foreign keys off themselves (PRAGMA foreign_keys=OFF around the batch)."""
    if conventions.sqlite_foreign_keys_guarded:
        return []
    seen = {(f.revision, f.table) for f in existing if f.rule == "sqlite-batch-cascade"}
    skip = set(guarded)
    out = []
    for r in reviews:
        if r.revision in skip:
            continue
        for op in r.operations:
            kids = conventions.cascade_children.get(_bare(op.table or ""))
            if not kids or not (op.detail or {}).get("batch") or op.kind not in RECREATE_KINDS or op.table_created_here:
                continue
            if (r.revision, op.table) in seen:
                continue
            seen.add((r.revision, op.table))
            out.append(Finding(
                rule="sqlite-batch-cascade", severity="error" if conventions.sqlite_foreign_keys else "warning",
                phase=op.phase, revision=r.revision, path=r.path, line=op.line, table=op.table,
                message=cascade_message(op.table, kids, conventions.sqlite_foreign_keys),
            ))
    return out


def cascade_message(table: str, children: list[str], fks_on: bool) -> str:
    """What re-creating ``table`` in batch mode does to the rows of its ON DELETE CASCADE children."""
    kids = ", ".join(children)
    when = ("the project turns foreign keys on (PRAGMA foreign_keys=ON), so" if fks_on else
            "if the connection has foreign keys on (PRAGMA foreign_keys=ON; not seen in env.py),")
    return (f"Batch mode re-creates {table} (copy, DROP TABLE, rename): {when} dropping the old {table} deletes every "
            f"row of {kids} through ON DELETE CASCADE. Turn foreign keys off around the batch "
            f"(op.execute('PRAGMA foreign_keys=OFF') before, ON after, outside the transaction).")


def functions_defined(sql: str) -> list[str]:
    """Functions a statement creates or replaces."""
    return [_bare(m.group(1)) for m in _FUNCTION.finditer(sql)]


def infer(headers: Sequence[Any], *, dialect: str, settings: Any = None, naming_convention: bool = False,
          triggers: dict[str, list[str]] | None = None, cascades: dict[str, list[str]] | None = None,
          sqlite_foreign_keys: bool = False, sqlite_foreign_keys_guarded: bool = False,
          helper_modules: Sequence[str] = ()) -> Conventions:
    """The conventions of a history: ``headers`` are RevisionHeader-like (``revision``, ``upgrade``,
    ``downgrade``, ``down_revisions``, ``branch_labels``, ``message``), ``settings`` the project's
    ``ConventionSettings`` (its explicit choices win), ``naming_convention`` whether target_metadata has one."""
    evidence: list[str] = []
    doing = [h for h in headers if len(h.down_revisions) <= 1 and h.upgrade in ("code", "raise")]
    empty = sum(1 for h in doing if h.downgrade in _EMPTY)
    raising = sum(1 for h in doing if h.downgrade in _RAISES)
    practice: DowngradePractice = "written"
    # the newest revisions (no revision builds on them) show the practice now: a history that started writing
    # downgrades is not one that never does, however many older revisions lack them
    referenced = {p for h in headers for p in h.down_revisions}
    newest = [h for h in doing if h.revision not in referenced]
    current = all(h.downgrade in _EMPTY or h.downgrade in _RAISES for h in newest)
    habit = current and ((empty + raising) >= SHARE * len(doing) if len(doing) >= MIN_REVISIONS else (
        len(doing) >= MIN_UNANIMOUS and empty + raising == len(doing)))
    if habit:
        practice = "raise" if raising > empty else "never"
        evidence.append(
            f"downgrades: {empty + raising} of {len(doing)} revisions that change something have "
            + ("a downgrade that only raises" if practice == "raise" else "no downgrade or an empty one")
        )
    if settings is not None and settings.downgrades is not None:
        practice = settings.downgrades
        evidence.append(f"downgrades: {practice!r} set in [tool.db-migrate] conventions")
    naming = _naming(dialect, naming_convention, settings)
    labels: dict[str, list[str]] = {}
    for h in headers:
        for label in h.branch_labels:
            labels.setdefault(label, []).append(h.revision)
    markers = [h.revision for h in headers if _is_marker(h)]
    if settings is not None and settings.markers:
        markers = list(dict.fromkeys([*markers, *settings.markers]))
    helpers = list(helper_modules)
    if helpers:
        evidence.append(f"helper modules: imported by the revisions from the migrations' own package ({', '.join(helpers)})")
    declared = list(getattr(settings, "helper_modules", None) or [])
    if declared:
        evidence.append(f"helper modules: {', '.join(declared)} set in [tool.db-migrate] conventions")
    helpers = list(dict.fromkeys([*helpers, *declared]))
    return Conventions(downgrades=practice, naming=naming, branch_labels=labels, markers=markers, evidence=evidence,
                       helper_modules=helpers,
                       trigger_functions=triggers or {}, cascade_children=cascades or {},
                       sqlite_foreign_keys=sqlite_foreign_keys and not sqlite_foreign_keys_guarded,
                       sqlite_foreign_keys_guarded=sqlite_foreign_keys_guarded)


def _naming(dialect: str, naming_convention: bool, settings: Any) -> str:
    choice = getattr(settings, "naming", None)
    if choice == "convention" or (choice is None and naming_convention):
        return "the naming_convention of target_metadata"
    return f"{dialect}'s default constraint names"


def _is_marker(h: Any) -> bool:
    """An empty revision that is not a merge: a release or branch marker (autogenerate noise is told apart by
    the review's empty-migration rule, which reads the body)."""
    return len(h.down_revisions) == 1 and h.upgrade in _EMPTY and h.downgrade in _EMPTY and bool(
        h.branch_labels or h.message or h.depends_on)


def follows(conventions: Conventions | None, downgrade_kind: str) -> bool:
    """A revision whose downgrade is ``downgrade_kind`` does what the project does on purpose (never writes
    one, or raises by design): its missing downgrade is not a finding."""
    if conventions is None:
        return False
    if conventions.downgrades == "never":
        return downgrade_kind in _EMPTY or downgrade_kind in _RAISES
    if conventions.downgrades == "raise":
        return downgrade_kind in _RAISES or downgrade_kind in _EMPTY
    return False


def apply(findings: Iterable[Finding], conventions: Conventions, downgrade_kinds: dict[str | None, tuple[str, str | None]]) -> list[Finding]:
    """``findings`` as the project's conventions read them.

    ``downgrade_kinds``: revision -> (what its downgrade() is, the message of a lone raise). Under ``never``
    a missing downgrade that follows the habit is dropped (the project-level note in :func:`notes` says so
    once); under ``raise`` it becomes ``irreversible-by-design`` (info) quoting the raise.
    """
    out: list[Finding] = []
    for f in findings:
        if f.rule == "orm-import-in-migration" and _declared_helper(f, conventions):
            continue  # the project says this module is its migrations' helper code, not application models
        kind, reason = downgrade_kinds.get(f.revision, ("unknown", None))
        if f.rule in ("missing-downgrade", "migration-raises") and f.phase == "downgrade" and follows(conventions, kind):
            if f.rule == "migration-raises" and kind not in _RAISES:
                out.append(f)
                continue
            if conventions.downgrades == "raise":
                out.append(f.model_copy(update=dict(
                    rule="irreversible-by-design", severity="info", fix=None,
                    message=f"Irreversible by the project's convention (its downgrades raise by design): "
                    f"{reason or 'the downgrade raises'}. Rolling back past this revision needs a restore.",
                )))
            continue
        out.append(f)
    return out


_IMPORTED = re.compile(r"^Imports application module ([\w.]+)")


def _declared_helper(f: Finding, conventions: Conventions) -> bool:
    m = _IMPORTED.match(f.message)
    return m is not None and any(m.group(1) == h or m.group(1).startswith(h + ".") for h in conventions.helper_modules)


def notes(conventions: Conventions, reviewed: int) -> list[Finding]:
    """The one project-level note a convention deserves (info): said once, not on every revision."""
    if conventions.downgrades == "never" and reviewed:
        return [Finding(
            rule="project-conventions", severity="info", phase="history",
            message="The project writes no downgrades (" + "; ".join(e for e in conventions.evidence if e.startswith("downgrades")) +
            "): missing downgrades are not reported, and rollback means restoring a backup. Revisions that destroy "
            "data still escalate (unclear-rollback).",
        )]
    return []


#: What destroys data when there is no downgrade to bring it back (operation kinds, statement kinds).
_LOSING_KINDS = ("drop_table", "drop_column")
_LOSING_SQL = ("DELETE", "TRUNCATE", "UPDATE", "DROP TABLE", "MERGE")


def loses_data(kind: str, sql_kind: str, created_here: bool) -> bool:
    """An upgrade operation whose effect no restore-free rollback brings back (used by the policy)."""
    if created_here:
        return False
    return kind in _LOSING_KINDS or (kind == "execute" and sql_kind.startswith(_LOSING_SQL))
