"""Verdicts as SARIF 2.1.0, for code-scanning upload (``--format sarif``).

One run per log.  ``tool.driver.rules`` is the whole rule catalogue (generated
from the rule classes, with ``help`` text made of why and fix), plus a
descriptor for every other id a result uses (graph checks, roundtrip steps,
escalation triggers), so every result's ``ruleIndex`` resolves.  Each result
has its rule id, level (error / warning / note), one physical location
relative to the repository root, and ``partialFingerprints`` computed from
what does not move when lines do (rule, revision, file, phase, table,
column, plus an occurrence number for repeats): code scanning keeps an alert
open across unrelated edits of the file instead of closing and reopening it.
An escalation a human approved (the approval record) is a result with an
``external`` suppression whose justification names who approved it and when.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from db_migrate.tools.locations import Item

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT_KEY = "dbMigrateFinding/v1"
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
INFORMATION_URI = "https://github.com/db-migrate/db-migrate"


def sarif_log(found: Sequence[Item], rules: Iterable[Any], *, version: str) -> dict[str, Any]:
    """The SARIF log (a JSON-able dict) for ``found``, with ``rules`` (RuleInfo) as the driver's catalogue."""
    descriptors: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for r in rules:
        index[r.id] = len(descriptors)
        descriptors.append(_descriptor(r.id, r.title, r.severity, why=r.why, fix=r.fix))
    for it in found:
        if it.rule not in index:
            index[it.rule] = len(descriptors)
            descriptors.append(_descriptor(it.rule, it.title, it.severity, why=None, fix=None))

    seen: dict[str, int] = {}
    results = []
    for it in found:
        n = seen.get(it.identity, 0)
        seen[it.identity] = n + 1
        text = it.message if not it.fix else f"{it.message}\nFix:\n{it.fix}"
        result: dict[str, Any] = {
            "ruleId": it.rule,
            "ruleIndex": index[it.rule],
            "level": _LEVEL.get(it.severity, "warning"),
            "message": {"text": text},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": it.location.uri},
                    "region": {"startLine": it.location.line},
                },
            }],
            "partialFingerprints": {FINGERPRINT_KEY: fingerprint(it.identity, n)},
        }
        if it.revision:
            result["properties"] = {"revision": it.revision}
        if it.suppressed:  # an approval in the repository's record: code scanning shows it as dismissed
            result["suppressions"] = [{"kind": "external", "status": "accepted", "justification": it.suppressed}]
        results.append(result)

    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "db-migrate",
                "semanticVersion": version,
                "informationUri": INFORMATION_URI,
                "rules": descriptors,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }


def fingerprint(identity: str, occurrence: int = 0) -> str:
    """A stable hash of what identifies a finding (never its line), with its occurrence number."""
    return hashlib.sha256(f"{identity}|{occurrence}".encode()).hexdigest()[:32]


def _descriptor(rule_id: str, title: str, severity: str, *, why: str | None, fix: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": rule_id,
        "name": _pascal(rule_id),
        "shortDescription": {"text": title},
        "defaultConfiguration": {"level": _LEVEL.get(severity, "warning")},
    }
    if why:
        d["fullDescription"] = {"text": why}
    if why or fix:
        text = "\n\n".join(x for x in (why, f"Fix:\n{fix}" if fix else None) if x)
        md = "\n\n".join(x for x in (why, f"**Fix:**\n\n```python\n{fix}\n```" if fix else None) if x)
        d["help"] = {"text": text, "markdown": md}
    return d


def _pascal(rule_id: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in rule_id.replace("/", "-").split("-") if part)
