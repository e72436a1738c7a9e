"""A cap on the size of MCP tool results (``review_migration`` with ``all_revisions`` on a big history).

The structured content of a tool result goes into the agent's context whole.
:func:`bounded` keeps each list of a verdict's own fields (``reviews``,
``steps``, ``operations``...) to :data:`MAX_ITEMS` entries and the findings to
:data:`MAX_FINDINGS` (every error is kept, whatever their number; warnings,
then notes, fill the rest), and the approval record's ``approved`` and ``pending`` lists to
:data:`MAX_ITEMS`, and says in ``left_out`` what it dropped.  The
CLI's ``--format json`` is not capped: a CI job reads everything.
"""

from __future__ import annotations

from db_migrate.verdict import SEVERITY_ORDER, Verdict

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
