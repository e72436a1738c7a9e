"""Verdicts as text for people: the CLI's text output and the MCP tool's text block.

:func:`render` gives the full report (grouped by revision, each finding with
``file:line``, message and fix, then escalation triggers and what was not
checked); :func:`brief` the text an MCP tool puts beside its structured
content (every error with its fix and every trigger with its evidence, for
clients that show the model only text).  Colour only when asked (:func:`use_color`: a terminal, no ``NO_COLOR``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import IO, Any

from db_migrate.verdict import SEVERITY_ORDER, Finding, Verdict, describe_counts

_COLORS = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "dim": "2", "bold": "1"}
_DECISION_COLOR = {"proceed": "green", "revise": "yellow", "escalate": "magenta"}
_SEVERITY_COLOR = {"error": "red", "warning": "yellow", "info": "blue"}
_VERDICT_FIELDS = set(Verdict.model_fields)


def use_color(stream: IO[str]) -> bool:
    """Colour on a terminal only, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Paint:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        codes = ";".join(_COLORS[s] for s in styles)
        return f"\033[{codes}m{text}\033[0m"


def location(f: Finding) -> str:
    """``path:line`` (or whatever part of it is known)."""
    if f.path and f.line:
        return f"{f.path}:{f.line}"
    return f.path or (f"line {f.line}" if f.line else "")


def render(result: Verdict, *, color: bool = False) -> str:
    """The full human-readable report of ``result``."""
    paint = _Paint(color)
    out: list[str] = []
    decision = result.decision.upper()
    out.append(f"{paint(decision, 'bold', _DECISION_COLOR.get(result.decision, 'bold'))}  {result.summary}")
    if result.engine is not None:
        out.append(f"  {paint('engine:', 'dim')} {describe_engine(result.engine)}")
    for name, value in _extras(result):
        if isinstance(value, list):
            out.append(f"  {paint(name + ':', 'dim')}")
            out.extend(f"    {line}" for line in value)
        else:
            out.append(f"  {paint(name + ':', 'dim')} {value}")

    groups = _by_revision(result)
    repeated = repeated_advice([f for fs in groups.values() for f in fs])
    said = {id(f): n for n, group in enumerate(repeated, 1) for f in group}
    for rev, findings in groups.items():
        path = next((f.path for f in findings if f.path), None)
        out.append("")
        out.append(paint(f"{rev}" + (f"  {path}" if path else ""), "bold"))
        for f in sorted(findings, key=lambda f: (f.line or 0, SEVERITY_ORDER[f.severity], f.rule)):
            where = location(f)
            head = f"  {paint(f.severity, _SEVERITY_COLOR[f.severity])} [{f.rule}] ({f.phase})"
            if id(f) in said:  # the advice is said once, below, with every place it applies to
                what = ".".join(x for x in (f.table, f.column) if x)
                out.append(f"{head} {where}" + (f" {what}" if what else "") + f": repeated advice #{said[id(f)]} below")
                continue
            out.append(f"{head} {where}" if where else head)
            out.extend(_indent(f.message, 6))
            if f.fix:
                out.append(f"      {paint('fix:', 'green')}")
                out.extend(_indent(f.fix, 8))
            if f.patch:
                out.append(f"      {paint('patch', 'green')} (git apply; checked: {', '.join(f.patch_checked)}):")
                out.extend(_indent(f.patch.rstrip(chr(10)), 8))
    for n, group in enumerate(repeated, 1):
        first = group[0]
        out.append("")
        out.append(paint(f"Repeated advice #{n}: [{first.rule}] {first.severity}, {len(group)} places "
                         f"(said once; shown for {location(first)}, each place names its own table and line)", "bold"))
        out.extend(_indent(first.message, 6))
        if first.fix:
            out.append(f"      {paint('fix:', 'green')}")
            out.extend(_indent(first.fix, 8))

    if result.escalation is not None and result.escalation.triggers:
        out.append("")
        title = "Needs a human:" if result.escalation.required else "Escalation approved (approval record):"
        out.append(paint(title, "bold", "magenta"))
        for t in result.escalation.triggers:
            out.append(f"  - {t.trigger}: {t.reason}")
            for ev in t.evidence:
                out.append(f"      {paint(ev, 'dim')}" + _approved_note(result, ev))
    out.extend(_approval_lines(result, paint))
    if result.escalation is not None and result.escalation.auto_classes:
        out.append(f"{paint('Agent may handle:', 'dim')} {', '.join(result.escalation.auto_classes)}")

    preflight = getattr(result, "preflight", None)
    if preflight is not None and preflight.table_sizes:
        out.append("")
        out.append(paint(f"Tables locked or rewritten ({preflight.database}):", "bold"))
        for t in preflight.table_sizes:
            size = f"{t.rows:,}{'+' if t.estimate else ''} rows" + (f", {t.bytes:,} bytes" if t.bytes is not None else "")
            held = f", about {t.lock_seconds:g} s" if t.lock_seconds is not None else ""
            out.append(f"  - {t.table}: {size}; {t.lock}{held}: {'; '.join(t.operations)}")

    if result.unchecked:
        out.append("")
        out.append(paint("Not checked:", "bold"))
        for u in result.unchecked:
            where = " ".join(x for x in (u.revision, f"{u.path}:{u.line}" if u.path and u.line else u.path) if x)
            out.append(f"  - {u.what}: {u.reason}" + (f" ({where})" if where else ""))

    out.append("")
    out.append(paint(describe_counts(result.findings), "dim"))
    return "\n".join(out)


def repeated_advice(findings: list[Finding]) -> list[list[Finding]]:
    """Findings that give the same advice in two or more revisions: the same rule, message and fix once the
    place (its table, column and line numbers) is taken out.  Each group in the order of its first place."""
    groups: dict[tuple[str, ...], list[Finding]] = {}
    for f in findings:
        groups.setdefault(_advice(f), []).append(f)
    return [g for g in groups.values() if len({f.revision for f in g}) > 1]


def _advice(f: Finding) -> tuple[str, ...]:
    """What a finding advises without its place: its table and column, line numbers and snake_case names
    (the operation, ``add_column`` or ``alter_column``, and the index or constraint named) taken out."""
    text = f"{f.message}\n{f.fix or ''}"
    for name in sorted({x for x in (f.table, f.column) if x}, key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(name)}\b", "<name>", text)
    text = re.sub(r"\b[a-z]+(?:_[a-z0-9]+)+\b", "<id>", text)
    return (f.rule, f.severity, f.phase, re.sub(r"\d+", "<n>", text))


def _by_revision(result: Verdict) -> dict[str, list[Finding]]:
    """Findings per revision, in the order of the verdict's reviews (history order, base to head)."""
    order = [r.revision or r.path for r in getattr(result, "reviews", None) or []]
    groups: dict[str, list[Finding]] = {k: [] for k in order if k}
    for f in result.findings:
        groups.setdefault(f.revision or f.path or "(project)", []).append(f)
    return {k: v for k, v in groups.items() if v}


def _approved_note(result: Verdict, evidence: str) -> str:
    approval = result.approval
    if approval is None:
        return ""
    for e in approval.approved:
        if evidence.startswith(e.file):
            return f"  ({e.by_on})"
    return ""


def _approval_lines(result: Verdict, paint: Any) -> list[str]:
    """The approval record's answer: who approved each revision, and what is pending with what changed."""
    a = result.approval
    if a is None or not (a.approved or a.pending):
        return []
    out = ["", paint(f"Approval record ({a.record}/<revision>.toml):", "bold")]
    for e in a.approved:
        out.append(f"  - {e.revision}: {e.by_on}" + (f": {e.note}" if e.note else ""))
    never = [p.revision for p in a.pending if p.never_approved]
    for p in a.pending:
        if not p.never_approved:
            out.append(f"  - {p.revision}: pending ({', '.join(p.triggers)}): {'; '.join(p.changes)}")
    if never:
        out.append(f"  - never approved: {', '.join(never)} (a human: db-migrate approve REV --by NAME --note ...)")
    if a.written is not None:
        out.append(f"  appended: {a.written.revision} {a.written.by_on}")
    return out


def approvals_apart(results: Iterable[Verdict], *, color: bool = False) -> str:
    """Every escalating revision of ``results``, approved ones and pending ones apart (``--changed-since``)."""
    paint = _Paint(color)
    approved: dict[str, str] = {}
    pending: dict[str, str] = {}
    for r in results:
        if r.approval is not None:
            for e in r.approval.approved:
                approved.setdefault(e.revision, f"{e.by_on}" + (f": {e.note}" if e.note else ""))
            for p in r.approval.pending:
                pending.setdefault(p.revision, f"{', '.join(p.triggers)}: {'; '.join(p.changes)}")
    if not (approved or pending):
        return ""
    out = [paint(f"Escalations approved ({len(approved)}):", "bold", "green")]
    out += [f"  - {rev}: {text}" for rev, text in approved.items()] or ["  (none)"]
    out.append(paint(f"Escalations pending ({len(pending)}):", "bold", "magenta"))
    out += [f"  - {rev}: {text}" for rev, text in pending.items()] or ["  (none)"]
    return "\n".join(out)


def brief(result: Verdict, *, max_chars: int = 24_000) -> str:
    """An MCP tool's text content: everything an agent needs to act when a client shows only text.

    Every error finding with its ``file:line``, message, fix and patch; every
    escalation trigger with its evidence; what was not checked; then warnings and
    notes, each with its fix and patch too (a client that shows only text must not
    lose a warning's remedy), while they fit in ``max_chars`` (about 6,000 tokens,
    well under the size at which Claude Code warns).  What does not fit is counted,
    never silently dropped.
    """
    head = result.summary if result.summary.startswith(result.decision) else f"{result.decision}: {result.summary}"
    lines = [head]
    if result.escalation is not None and result.escalation.triggers and not result.escalation.required:
        lines.append("The escalation below was approved by a human (approval record); nothing to ask:")
        lines.extend(f"- approved: {t.trigger}: " + "; ".join(t.evidence) for t in result.escalation.triggers)
    elif result.escalation is not None and result.escalation.triggers:
        lines.append("STOP: a human must decide. Show the user each trigger with its evidence:")
        for t in result.escalation.triggers:
            lines.append(f"- needs a human: {t.trigger}: {t.reason}")
            lines.extend(f"    {ev}" for ev in t.evidence)
    for p in result.approval.pending if result.approval is not None else []:
        lines.append(f"- approval pending for {p.revision}: {'; '.join(p.changes)}")
    errors = [f for f in result.findings if f.severity == "error"]
    others = sorted((f for f in result.findings if f.severity != "error"), key=lambda f: SEVERITY_ORDER[f.severity])
    if errors:
        lines.append(f"Errors to fix ({len(errors)}){_how_to_fix(errors)}, then call again:")
    for f in errors:
        where = location(f)
        lines.append(f"- error [{f.rule}] {where + ': ' if where else ''}{f.message}")
        lines.extend(_remedy(f))
    if result.engine is not None:
        lines.append(f"- ran on {describe_engine(result.engine)}")
    for u in result.unchecked:
        where = " ".join(x for x in (u.revision, u.path) if x)
        lines.append(f"- not checked: {u.what}: {u.reason}" + (f" ({where})" if where else ""))
    left_out = getattr(result, "left_out", None) or []
    lines.extend(f"- left out of this result: {x}" for x in left_out)
    size = sum(len(x) + 1 for x in lines)
    shown = 0
    for f in others:
        where = location(f)
        block = [f"- {f.severity} [{f.rule}] {where + ': ' if where else ''}{f.message}", *_remedy(f)]
        cost = sum(len(x) + 1 for x in block)
        if size + cost > max_chars:
            break
        lines.extend(block)
        size += cost
        shown += 1
    if shown < len(others):
        lines.append(f"- ... {len(others) - shown} more warning(s)/note(s) in structuredContent.findings")
    return "\n".join(lines)


def _remedy(f: Finding) -> list[str]:
    """A finding's fix (indented under it) and its patch (a unified diff, when the finding carries one)."""
    lines: list[str] = []
    if f.fix:
        lines.append("  fix:")
        lines.extend(_indent(f.fix, 4))
    if f.patch:
        # not indented: the fenced diff is what `git apply` takes, copied as it stands
        lines += [f"  patch (`git apply` it in the project root; checked: {', '.join(f.patch_checked)}):",
                  "```diff", *f.patch.rstrip("\n").splitlines(), "```"]
    return lines


def _how_to_fix(errors: list[Finding]) -> str:
    """What the header over the errors asks for: only what the errors under it carry."""
    patches, fixes = sum(1 for f in errors if f.patch), sum(1 for f in errors if f.fix and not f.patch)
    asks = []
    if patches:
        asks.append("apply each patch with `git apply` from the project root, as its first line says when there is one (checked: " +
                    ", ".join(sorted({c for f in errors for c in f.patch_checked})) + ")")
    if fixes:
        asks.append("edit the revision as each fix says")
    if len(asks) < 2 and patches + fixes < len(errors):
        asks.append("fix the others as their messages say")
    return "; " + "; ".join(asks) if asks else ""


def describe_engine(engine: Any) -> str:
    """``postgresql 18.6 (embedded)``."""
    return f"{engine.name} {engine.version}" + (" (embedded)" if engine.embedded else "")


def render_error(info: Any, *, color: bool = False) -> str:
    """An :class:`~db_migrate.verdict.ErrorInfo` as ``error [code]: message`` plus its hint."""
    paint = _Paint(color)
    text = f"{paint('error', 'bold', 'red')} [{info.code}]: {info.message}"
    if info.hint:
        text += f"\n  {paint('hint:', 'dim')} {info.hint}"
    return text


def render_rules(rules: Iterable[Any], *, color: bool = False, principle: str | None = None) -> str:
    """The rule catalogue as text: the severity principle (when given), then per rule id, severity, title, why."""
    paint = _Paint(color)
    out: list[str] = [paint("Severities", "bold"), *_indent(principle, 4), ""] if principle else []
    for r in rules:
        out.append(f"{paint(r.id, 'bold')}  {paint(r.severity, _SEVERITY_COLOR.get(r.severity, 'dim'))}  {r.title}")
        why = getattr(r, "why", None)
        if why:
            out.extend(_indent(why, 4))
    return "\n".join(out)


def _extras(result: Verdict) -> Iterable[tuple[str, str | list[str]]]:
    """The subclass's own fields (heads, steps, reviews...) as lines for people, for the report header.

    Each known list gets its own sentence-like line per item (:data:`_ITEM_TEXT`);
    nested models (the policy in effect...) and internal flags belong to the JSON output.
    """
    for name in type(result).model_fields:
        if name in _VERDICT_FIELDS or name in _SHOWN_ELSEWHERE:
            continue
        value = getattr(result, name)
        if value is None or value == [] or value == {} or value is False:
            continue
        label = name.replace("_", " ")
        if name in _ITEM_TEXT and isinstance(value, list):
            cap = len(value) if name in _EVERY_ITEM else _MAX_ITEMS  # a report lists every revision it covers
            lines = [_ITEM_TEXT[name](v) for v in value[:cap]]
            if len(value) > cap:
                lines.append(f"... and {len(value) - cap} more (--format json lists them all)")
            yield f"{label} ({len(value)})", lines
        elif name in _MAPPING_TEXT and isinstance(value, dict):
            yield label, ", ".join(_MAPPING_TEXT[name](k, v) for k, v in list(value.items())[:_MAX_ITEMS]) + (
                f", ... and {len(value) - _MAX_ITEMS} more" if len(value) > _MAX_ITEMS else "")
        elif isinstance(value, bool):
            yield label, "yes"
        elif isinstance(value, (str, int, float)):
            yield label, str(value)
        elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            yield label, ", ".join(str(v) for v in value)
        # anything else (nested models, lists of models without a sentence) is left to --format json


_MAX_ITEMS = 12
_EVERY_ITEM = {"reviews"}
#: Fields every report already shows another way (failures are findings; the review inside a
#: generate verdict is merged into its findings; code is in the file) or that only a program needs.
_SHOWN_ELSEWHERE = {"failures", "review", "suppressed", "policy", "upgrade_code", "downgrade_code", "human_approval"}


def _review_line(r: Any) -> str:
    ops = getattr(r, "operations", []) or []
    upgrade = [o for o in ops if o.phase == "upgrade"]
    what = ", ".join(_op_text(o.kind, o.table, o.column) for o in upgrade[:4]) + (" ..." if len(upgrade) > 4 else "")
    text = f"{r.revision or r.path}  {r.message or ''}".rstrip()
    return f"{text}: {what or 'no upgrade operations'}" + ("; reads data" if r.reads_data else "")


def _op_text(kind: str, table: str | None, column: str | None) -> str:
    target = ".".join(x for x in (table, column) if x)
    return f"{kind} {target}".strip()


def _step_line(s: Any) -> str:
    return f"{s.revision} {s.step}: {'ok' if s.ok else 'FAILED'} ({s.seconds:.2f} s)"


def _classified_line(o: Any) -> str:
    where = f" ({o.path}:{o.line})" if getattr(o, "path", None) and getattr(o, "line", None) else ""
    verdict = f"agent may apply ({o.auto_class})" if o.auto_class else "needs review"
    return f"{_op_text(o.kind, o.table, o.column)}: {verdict}" + (f" - {o.note}" if o.note else "") + where


def _operation_line(o: Any) -> str:
    if hasattr(o, "auto_class"):
        return _classified_line(o)
    return getattr(o, "text", None) or _op_text(getattr(o, "op", "?"), getattr(o, "table", None), getattr(o, "name", None))


_ITEM_TEXT: dict[str, Any] = {"reviews": _review_line, "steps": _step_line, "operations": _operation_line}


def _rows_text(table: str, v: Any) -> str:
    rows = getattr(v, "rows", v)
    return f"{table}: {'~' if getattr(v, 'estimate', False) else ''}{rows:,} rows"


_MAPPING_TEXT: dict[str, Any] = {
    "row_counts": _rows_text,
    "seeded": lambda table, n: f"{table}: {n}",
    "timings": lambda what, sec: f"{what} {sec:.2f} s",
    "column_has_data": lambda col, has: f"{col}: {'has data' if has else 'empty'}",
}


def _indent(text: str, n: int) -> list[str]:
    return [" " * n + line for line in str(text).splitlines()] or [" " * n]
