"""Verdicts as text for people: the CLI's text output and the MCP tool's text block.

:func:`render` gives the full report (grouped by revision, each finding with
``file:line``, message and fix, then escalation triggers and what was not
checked); :func:`brief` the few lines an MCP tool puts beside its structured
content.  Colour only when asked (:func:`use_color`: a terminal, no ``NO_COLOR``).
"""

from __future__ import annotations

import os
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
            out.extend(f"    - {line}" for line in value)
        else:
            out.append(f"  {paint(name + ':', 'dim')} {value}")

    groups: dict[str, list[Finding]] = {}
    for f in result.findings:
        groups.setdefault(f.revision or "(project)", []).append(f)
    for rev, findings in groups.items():
        path = next((f.path for f in findings if f.path), None)
        out.append("")
        out.append(paint(f"{rev}" + (f"  {path}" if path else ""), "bold"))
        for f in sorted(findings, key=lambda f: (f.line or 0, SEVERITY_ORDER[f.severity], f.rule)):
            where = location(f)
            head = f"  {paint(f.severity, _SEVERITY_COLOR[f.severity])} [{f.rule}] ({f.phase})"
            out.append(f"{head} {where}" if where else head)
            out.extend(_indent(f.message, 6))
            if f.fix:
                out.append(f"      {paint('fix:', 'green')}")
                out.extend(_indent(f.fix, 8))

    if result.escalation is not None and result.escalation.triggers:
        out.append("")
        out.append(paint("Needs a human:", "bold", "magenta"))
        for t in result.escalation.triggers:
            out.append(f"  - {t.trigger}: {t.reason}")
            for ev in t.evidence:
                out.append(f"      {paint(ev, 'dim')}")
    if result.escalation is not None and result.escalation.auto_classes:
        out.append(f"{paint('Agent may handle:', 'dim')} {', '.join(result.escalation.auto_classes)}")

    if result.unchecked:
        out.append("")
        out.append(paint("Not checked:", "bold"))
        for u in result.unchecked:
            where = " ".join(x for x in (u.revision, f"{u.path}:{u.line}" if u.path and u.line else u.path) if x)
            out.append(f"  - {u.what}: {u.reason}" + (f" ({where})" if where else ""))

    out.append("")
    out.append(paint(describe_counts(result.findings), "dim"))
    return "\n".join(out)


def brief(result: Verdict, *, limit: int = 8) -> str:
    """A few lines for an MCP tool's text content; the structured content has the rest."""
    head = result.summary if result.summary.startswith(result.decision) else f"{result.decision}: {result.summary}"
    lines = [head]
    shown = sorted(result.findings, key=lambda f: SEVERITY_ORDER[f.severity])[:limit]
    for f in shown:
        where = location(f)
        lines.append(f"- {f.severity} [{f.rule}] {where + ' ' if where else ''}{f.message}")
    if len(result.findings) > limit:
        lines.append(f"- ... {len(result.findings) - limit} more in structuredContent.findings")
    if result.escalation is not None:
        for t in result.escalation.triggers:
            lines.append(f"- needs a human: {t.trigger}: {t.reason}")
    if result.engine is not None:
        lines.append(f"- ran on {describe_engine(result.engine)}")
    if result.unchecked:
        lines.append(f"- {len(result.unchecked)} thing(s) not checked: see structuredContent.unchecked")
    return "\n".join(lines)


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


def render_rules(rules: Iterable[Any], *, color: bool = False) -> str:
    """The rule catalogue as text: id, severity, title, then why and fix indented."""
    paint = _Paint(color)
    out: list[str] = []
    for r in rules:
        out.append(f"{paint(r.id, 'bold')}  {paint(r.severity, _SEVERITY_COLOR.get(r.severity, 'dim'))}  {r.title}")
        why = getattr(r, "why", None)
        if why:
            out.extend(_indent(why, 4))
    return "\n".join(out)


def _extras(result: Verdict) -> Iterable[tuple[str, str]]:
    """The subclass's own fields (heads, path, steps...), compact, for the report header."""
    for name in type(result).model_fields:
        if name in _VERDICT_FIELDS or name in _SHOWN_AS_FINDINGS:
            continue
        value = getattr(result, name)
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, (str, int, float, bool)):
            yield name, str(value)
        elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            yield name, ", ".join(str(v) for v in value)
        elif isinstance(value, list):
            lines = [_item_line(v) for v in value[:_MAX_ITEMS]]
            if len(value) > _MAX_ITEMS:
                lines.append(f"... {len(value) - _MAX_ITEMS} more (see --format json)")
            yield name, lines
        elif isinstance(value, dict):
            yield name, ", ".join(f"{k}={_scalar(v)}" for k, v in list(value.items())[:_MAX_ITEMS])
        elif hasattr(value, "model_fields"):
            continue  # nested models (the policy in effect...) belong to the JSON output
        else:
            yield name, str(value)


_MAX_ITEMS = 12
#: Lists whose items every verdict also reports as findings: not repeated in the header.
_SHOWN_AS_FINDINGS = {"failures"}


def _scalar(v: Any) -> str:
    if hasattr(v, "model_dump"):
        v = v.model_dump(exclude_none=True)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={_scalar(x)}" for k, x in v.items() if not isinstance(x, (list, dict))) + "}"
    return str(v)


def _item_line(item: Any, width: int = 160) -> str:
    """One list item on one line: its scalar fields as ``key=value`` (nested lists are left to JSON)."""
    if hasattr(item, "model_dump"):
        data = item.model_dump(exclude_none=True)
        text = ", ".join(f"{k}={v}" for k, v in data.items() if not isinstance(v, (list, dict)) and v != "")
    else:
        text = _scalar(item)
    return text if len(text) <= width else text[: width - 1] + "…"


def _indent(text: str, n: int) -> list[str]:
    return [" " * n + line for line in str(text).splitlines()] or [" " * n]
