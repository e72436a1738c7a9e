"""Caps on what goes in and out of a tool call.

In: :func:`check_arguments` refuses, before any work and in time linear in
the argument (a length test and a scan for NUL), a string argument no call
could use: a revision reference longer than any path (``PATH_MAX``), a URL
longer than any server accepts, a message longer than a revision message.
A 1 MB ``revision`` used to reach the revision resolver and the secret
scrubber, whose cost grew with the square of its length, holding the server.

Out: a cap on the size of MCP tool results (``review_migration`` with ``all_revisions`` on a big history).

The structured content of a tool result goes into the agent's context whole.
:func:`bounded` keeps each list of a verdict's own fields (``reviews``,
``steps``, ``operations``...) to :data:`MAX_ITEMS` entries and the findings to
:data:`MAX_FINDINGS` (every error is kept, whatever their number; warnings,
then notes, fill the rest), and the approval record's ``approved`` and ``pending`` lists to
:data:`MAX_ITEMS`, and says in ``left_out`` what it dropped.  The
CLI's ``--format json`` is not capped: a CI job reads everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from db_migrate.errors import InvalidArgument

if TYPE_CHECKING:  # the CLI checks its arguments before it needs pydantic
    from db_migrate.verdict import Verdict

PATH_MAX = 4096
"""Linux's longest path: no revision reference (an id, a prefix, a file path) is longer."""
URL_MAX = 4096
"""Longest database URL accepted (hosts, options and a certificate path fit many times over)."""
ARGUMENT_LIMITS: dict[str, int] = {
    "revision": PATH_MAX, "from_revision": PATH_MAX, "to_revision": PATH_MAX,
    "database_url": URL_MAX, "scratch_url": URL_MAX,
    "message": 1024, "merge_message": 1024,  # alembic makes a file name of it; 1 KB is several paragraphs
    "environment": 256, "dialect": 64,
}
"""Longest value, in characters, of each string argument of the tools."""
NAME_LIMIT = 64
"""Longest argument name (every tool's are under 20): a longer one is refused without being echoed."""
DEFAULT_LIMIT = 4096
"""Longest value of a string argument not named in :data:`ARGUMENT_LIMITS`."""
_WHAT = {"revision": "a revision id, a unique prefix, 'head' or the path of a revision file",
         "url": "a SQLAlchemy database URL", "message": "a short revision message"}


def check_arguments(tool: str, arguments: dict[str, Any]) -> None:
    """Raise :class:`InvalidArgument` for a string argument of ``tool`` over its limit or holding NUL.

    Linear in the arguments' size and never echoes a refused value (it may be a URL with a password).
    """
    for name, value in arguments.items():
        if len(name) > NAME_LIMIT:
            raise InvalidArgument(
                f"{tool}: an argument name is {len(name)} characters long; no argument is named like that.",
                hint=f"{tool} takes the arguments its inputSchema lists (tools/list).",
                length=len(name), limit=NAME_LIMIT,
            )
        if not isinstance(value, str):
            continue
        limit = ARGUMENT_LIMITS.get(name, DEFAULT_LIMIT)
        kind = "url" if name.endswith("_url") else "revision" if name.endswith("revision") else "message"
        if len(value) > limit:
            raise InvalidArgument(
                f"{tool}: the {name} argument is {len(value)} characters long; the longest accepted is {limit}.",
                hint=f"Give {{arg:{name}}} as {_WHAT[kind]} of at most {limit} characters.",
                argument=name, length=len(value), limit=limit,
            )
        if "\0" in value:
            raise InvalidArgument(
                f"{tool}: the {name} argument holds a NUL character.",
                hint=f"Give {{arg:{name}}} as {_WHAT[kind]}, without NUL characters.",
                argument=name,
            )

MAX_ITEMS = 100
"""Entries kept per list field of a result (reviews, steps, operations, ...)."""
MAX_FINDINGS = 500
"""Findings kept (errors always)."""
_UNCAPPED = {"revisions", "escalation"}


def bounded(result: Verdict, *, max_items: int = MAX_ITEMS, max_findings: int = MAX_FINDINGS) -> Verdict:
    """``result`` within the caps, with ``left_out`` naming each cut; unchanged when nothing is cut."""
    update: dict[str, object] = {}
    left_out = list(result.left_out)
    for name in type(result).model_fields:
        if name in _UNCAPPED or name in ("findings", "left_out"):
            continue
        value = getattr(result, name)
        if isinstance(value, list) and len(value) > max_items:
            update[name] = value[:max_items]
            left_out.append(f"{name}: {len(value) - max_items} of {len(value)} (first {max_items} kept)")
    approval = result.approval
    if approval is not None and max(len(approval.approved), len(approval.pending)) > max_items:
        cut = {k: getattr(approval, k) for k in ("approved", "pending") if len(getattr(approval, k)) > max_items}
        update["approval"] = approval.model_copy(update={k: v[:max_items] for k, v in cut.items()})
        left_out += [f"approval.{k}: {len(v) - max_items} of {len(v)} (first {max_items} kept)" for k, v in cut.items()]
    if len(result.findings) > max_findings:
        from db_migrate.verdict import SEVERITY_ORDER

        ranked = sorted(range(len(result.findings)), key=lambda i: (SEVERITY_ORDER[result.findings[i].severity], i))
        keep = {i for i in ranked[:max_findings]} | {i for i, f in enumerate(result.findings) if f.severity == "error"}
        dropped = [f for i, f in enumerate(result.findings) if i not in keep]
        update["findings"] = [f for i, f in enumerate(result.findings) if i in keep]
        by = {s: sum(1 for f in dropped if f.severity == s) for s in ("warning", "info")}
        left_out.append(
            f"findings: {len(dropped)} of {len(result.findings)} ({by['warning']} warning(s), {by['info']} note(s); every error kept)"
        )
    if not update:
        return result
    update["left_out"] = left_out
    return result.model_copy(update=update)
