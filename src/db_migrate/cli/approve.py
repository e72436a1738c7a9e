"""``db-migrate approve REV --by NAME --note ...``: a human appends an approval to the record.

Thin: classify the revision as CI would (``classify_escalation``, optionally with the
database), show every trigger with its evidence, ask for confirmation on a terminal
(``--yes`` skips the question; without a terminal and without ``--yes`` it refuses),
then :func:`db_migrate.approval.record_approval` appends the entry.  Nothing is
written when the revision does not escalate, or when the record already approves
this content with these triggers.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from db_migrate.errors import Refused


def approve(args: argparse.Namespace, out: IO[str], stdin: IO[str] | None = None) -> int:
    """Run ``approve``; exit 0 when the revision is approved (now or already), 2 on refusal or error."""
    from db_migrate.approval import record_approval
    from db_migrate.approval.record import record_path
    from db_migrate.cli.progress import progress_display
    from db_migrate.project import load_project
    from db_migrate.tools import call

    stdin = stdin or sys.stdin
    project = load_project(args.config, section=args.name)
    with progress_display(sys.stderr):
        verdict = call(
            "classify_escalation", project, revision=args.revision, database_url=args.database_url,
            environment=args.environment, timeout=args.timeout,
        )
    rev = verdict.revisions[0] if verdict.revisions else args.revision
    triggers = verdict.escalation.triggers if verdict.escalation is not None else []
    if triggers and verdict.escalation is not None and not verdict.escalation.required:
        already = verdict.approval.approved[0] if verdict.approval and verdict.approval.approved else None
        return _done(out, args, f"{rev} is already {already.by_on if already else 'approved'} for this content: nothing written", already)
    if not args.yes:
        if not stdin.isatty():
            raise Refused(
                f"approve {rev} asks a human to confirm, and there is no terminal to ask on (stdin is not a tty)",
                hint="Run it in a terminal, or pass --yes if you, a human, have read the triggers (db-migrate classify shows them).",
            )
        sys.stderr.write(_question(rev, verdict, args.by))
        sys.stderr.flush()
        if stdin.readline().strip().lower() not in ("y", "yes"):
            raise Refused(f"approval of {rev} not confirmed: nothing written", hint="Answer 'y' to approve.")
    entry = record_approval(project, verdict, rev, by=args.by, note=args.note or "", via="cli")
    where = project.relpath(record_path(project.script_location, rev))
    return _done(out, args, f"{rev} {entry.by_on}: appended to {where}", entry)


def _question(rev: str, verdict: Any, by: str) -> str:
    lines = [f"{verdict.summary}", "", f"{rev} needs a human's approval for:"]
    for t in verdict.escalation.triggers:
        lines.append(f"- {t.trigger}: {t.reason}")
        lines += [f"    {ev}" for ev in t.evidence]
    lines += ["", f"Record this approval by {by} of the revision as it is now? [y/N] "]
    return "\n".join(lines)


def _done(out: IO[str], args: argparse.Namespace, text: str, entry: Any) -> int:
    if args.format == "json":
        out.write(json.dumps({"summary": text, "approval": entry.model_dump(mode="json") if entry else None}) + "\n")
    else:
        out.write(text + "\n")
    return 0
