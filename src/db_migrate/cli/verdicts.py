"""Running a verdict command: which revisions, which output, which exit code.

- **Targets.** ``review`` takes several ``REV|PATH`` (what pre-commit passes) and
  reviews them in one verdict; ``classify`` classifies each.  ``--changed-since
  REF`` picks the revision files changed since the merge base with ``REF``
  (:mod:`db_migrate.project.changes`).  Without ``--config``, the project is
  found from the first file named, so a hook run at the repository root finds
  ``backend/alembic.ini``.
- **Output.** ``text`` (the report, :mod:`db_migrate.tools.render`), ``json``
  (the tool's structured content: one object, or an array for several
  classify verdicts) or ``sarif`` (:mod:`db_migrate.tools.sarif`).  With
  ``GITHUB_ACTIONS=true`` annotations go to stderr as well.
- **Exit code.** The decision's (0 proceed, 1 revise, 3 escalate; the worst of
  several), and with ``--fail-on warning`` a warning also fails (1).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from db_migrate.tools import EACH_AT_ONCE, EXIT_ESCALATE, EXIT_PROCEED, EXIT_REVISE, EXIT_USAGE, exit_code

#: Commands whose positional arguments are revisions that may be files.
MULTI_TARGET = {"review", "classify"}


def project_start(args: argparse.Namespace) -> Path | None:
    """Where to look for the project when ``--config`` is not given: the first named file's folder."""
    if args.config:
        return None
    for ref in getattr(args, "targets", None) or []:
        p = Path(ref)
        if p.suffix == ".py" and p.is_file():
            return p.resolve().parent
    return None


def run(args: argparse.Namespace, out: IO[str], call_args: Callable[[argparse.Namespace], tuple[str, dict[str, Any]]]) -> int:
    """Run the verdict command ``args`` names and write its output; the exit code."""
    from db_migrate.cli.progress import progress_display
    from db_migrate.project import load_history, load_project
    from db_migrate.tools import call

    tool, kwargs = call_args(args)
    project = load_project(args.config, cwd=project_start(args), section=args.name)
    calls: list[tuple[dict[str, Any], str | None]] = [(kwargs, None)]
    if args.command in MULTI_TARGET:
        refs = list(args.targets or [])
        from db_migrate.errors import UsageError

        if getattr(args, "all_revisions", False) and (refs or args.changed_since):
            raise UsageError("--all reviews every revision: name no REV|PATH and no --changed-since with it.")
        if args.changed_since:
            if refs:
                raise UsageError("--changed-since picks the revisions itself: name no REV|PATH with it.")
            from db_migrate.project.changes import changed_revisions

            refs = [str(p) for p in changed_revisions(load_history(project), args.changed_since)]
        if refs or args.changed_since:
            calls = _calls_for(args, project, kwargs, refs)
    from db_migrate.errors import DbMigrateError

    results: list[tuple[Any, str | None]] = []
    failed: list[DbMigrateError] = []
    if len(calls) > 1 and tool in EACH_AT_ONCE:
        from db_migrate.tools import call_each

        base = {k: v for k, v in calls[0][0].items() if k != "revision"}
        with progress_display(sys.stderr):
            verdicts = call_each(tool, project, [kw["revision"] for kw, _ in calls], **base)
        results = [(v, path) for v, (_, path) in zip(verdicts, calls) if not isinstance(v, DbMigrateError)]
        failed = [v for v in verdicts if isinstance(v, DbMigrateError)]
        calls = []
    with progress_display(sys.stderr):
        for kw, default_path in calls:
            try:
                results.append((call(tool, project, **kw), default_path))
            except DbMigrateError as e:
                if len(calls) == 1:
                    raise
                failed.append(e)  # one revision that cannot be analysed does not hide the others' verdicts
    if failed and not results:
        raise failed[0]
    if args.command in MULTI_TARGET and not results:
        results = [(_nothing_changed(tool, project, args.changed_since), None)]
    write(results, args, project, out, failed)
    code = combined_exit_code([r for r, _ in results], fail_on=args.fail_on)
    return code if code == EXIT_ESCALATE or not failed else EXIT_USAGE


def _calls_for(args: argparse.Namespace, project: Any, kwargs: dict[str, Any], refs: list[str]) -> list[tuple[dict[str, Any], str | None]]:
    base = {k: v for k, v in kwargs.items() if k != "revision"}
    if not refs:
        return []
    if args.command == "review":
        return [({**base, "revisions": refs}, None)]
    from db_migrate.project import load_history

    history = load_history(project)
    seen: dict[str, tuple[dict[str, Any], str | None]] = {}
    for ref in refs:
        h = history.resolve(ref)
        seen.setdefault(str(h.path), ({**base, "revision": h.revision}, project.relpath(h.path)))
    return list(seen.values())


def _nothing_changed(tool: str, project: Any, ref: str | None) -> Any:
    from db_migrate.tools import result_model

    what = f"no revision files changed since {ref}" if ref else "no revisions named"
    extra = {"dialect": project.dialect} if tool == "review_migration" else {}
    return result_model(tool)(decision="proceed", summary=f"{what}: proceed", **extra)


def combined_exit_code(results: list[Any], *, fail_on: str | None = None) -> int:
    """The worst decision's exit code; ``fail_on="warning"`` turns a passing run with warnings into 1."""
    codes = [exit_code(r) for r in results] or [EXIT_PROCEED]
    code = EXIT_ESCALATE if EXIT_ESCALATE in codes else max(codes)
    if code == EXIT_PROCEED and fail_on == "warning" and any(f.severity == "warning" for r in results for f in r.findings):
        return EXIT_REVISE
    return code


def write(results: list[tuple[Any, str | None]], args: argparse.Namespace, project: Any, out: IO[str],
          failed: list[Any] | None = None) -> None:
    """Print ``results`` in the chosen format (and ``failed``, the targets that ended in an error: in the JSON list
    as ``{"error": ...}`` objects, otherwise on stderr); annotations on stderr inside GitHub Actions."""
    from db_migrate.tools.annotations import annotations, in_github_actions

    verdicts = [r for r, _ in results]
    failed = failed or []
    if args.format == "json":
        data = [r.model_dump(mode="json") for r in verdicts] + [json.loads(e.to_json("cli")) for e in failed]
        out.write(json.dumps(data[0] if len(data) == 1 else data) + "\n")
    elif args.format == "sarif":
        out.write(json.dumps(sarif(results, project), indent=2) + "\n")
    else:
        from db_migrate.tools.render import approvals_apart, render, use_color

        out.write("\n\n".join(render(r, color=use_color(out)) for r in verdicts) + "\n")
        apart = approvals_apart(verdicts, color=use_color(out)) if getattr(args, "changed_since", None) else ""
        if apart:  # a branch's escalations at a glance: which a human approved, which wait for one
            out.write("\n" + apart + "\n")
    if failed and args.format != "json":
        from db_migrate.tools.render import render_error, use_color

        sys.stderr.write("".join(render_error(e.info("cli"), color=use_color(sys.stderr)) + "\n" for e in failed))
    if in_github_actions():
        out.flush()
        sys.stderr.write("".join(line + "\n" for line in annotations(located(results, project))))


def located(results: list[tuple[Any, str | None]], project: Any) -> list[Any]:
    from db_migrate.tools.locations import Locator, items

    locator = Locator(project.root, project.config_file)
    return [it for r, default_path in results for it in items(r, locator, default_path)]


def sarif(results: list[tuple[Any, str | None]], project: Any) -> dict[str, Any]:
    from db_migrate import __version__
    from db_migrate.rules import catalogue
    from db_migrate.tools.sarif import sarif_log

    return sarif_log(located(results, project), catalogue(), version=__version__)
