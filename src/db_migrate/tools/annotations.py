"""GitHub Actions annotations: ``::error file=F,line=N,title=T::message`` workflow commands.

Printed (to stderr, so that a SARIF or JSON document on stdout stays intact;
the runner reads workflow commands from both streams) when ``GITHUB_ACTIONS``
is ``true``, whatever ``--format`` says.  GitHub shows at most 10 annotations
of each kind per step, so errors come first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from db_migrate.tools.locations import Item

_COMMAND = {"error": "error", "warning": "warning", "info": "notice"}
_ORDER = {"error": 0, "warning": 1, "info": 2}


def in_github_actions(environ: Mapping[str, str] | None = None) -> bool:
    return (environ if environ is not None else os.environ).get("GITHUB_ACTIONS") == "true"


def annotations(found: Sequence[Item]) -> list[str]:
    """One workflow command per item, errors first, then warnings, then notes; an approved escalation is a notice."""
    lines = []
    for it in sorted(found, key=lambda i: _ORDER.get("info" if i.suppressed else i.severity, 1)):
        if it.suppressed:
            lines.append(f"::notice file={_property(it.location.uri)},line={it.location.line},"
                         f"title={_property(f'db-migrate: {it.title} (approved)')}::{_data(it.suppressed)}")
            continue
        props = ",".join(f"{k}={_property(v)}" for k, v in (
            ("file", it.location.uri), ("line", str(it.location.line)), ("title", f"db-migrate: {it.title}"),
        ))
        text = it.message if not it.fix else f"{it.message}\nFix:\n{it.fix}"
        lines.append(f"::{_COMMAND.get(it.severity, 'warning')} {props}::{_data(text)}")
    return lines


def _data(text: str) -> str:
    # the escaping the runner undoes (actions/toolkit, command.ts)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
