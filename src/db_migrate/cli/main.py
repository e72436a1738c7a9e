"""``db-migrate``: the command-line adapter over the service functions.

Every verdict command prints either a report for people (``--format text``,
the default) or exactly the MCP tool's structured content (``--format json``),
and exits 0 proceed, 1 revise, 3 escalate, 2 usage or input error.  Heavy
modules (alembic, SQLAlchemy, mcp) are imported only by the command that needs
them, and a sandbox worker is started in a thread while the parent parses
arguments and reads the project, so a review starts warm.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

from db_migrate.tools import EXIT_REVISE, EXIT_USAGE
from db_migrate.errors import DbMigrateError, InternalError, UsageError

#: Commands that run project code in a sandbox worker: start one early.
_WORKER_COMMANDS = {"review", "classify", "heads", "generate", "roundtrip", "approve"}


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, hint=f"Run '{self.prog} --help' for usage.")


_MAX_TIMEOUT = 7 * 24 * 3600


def _seconds(text: str) -> float:
    """A --timeout value: a finite number of seconds, more than 0 and at most a week (not nan, inf, 1e308)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0 or value > _MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {_MAX_TIMEOUT} seconds (a week), not {text!r}")
    return value


def _interrupt_on_sigterm() -> None:
    """SIGTERM cleans up like Ctrl-C: the job is killed and the scratch database dropped on the way out."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, interrupt)
    except ValueError:
        pass  # not the main thread (main() called from a test's thread): leave signals alone


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="PATH", help="alembic.ini, pyproject.toml or a directory holding one (default: found from the working directory)")
    common.add_argument("--name", "-n", metavar="SECTION", default="alembic",
                        help="section of alembic.ini to use, as alembic's own -n/--name (default: alembic)")
    common.add_argument(
        "--format", "-f", choices=("text", "json", "sarif"), default="text",
        help="text for people (default), the tool's JSON result, or SARIF 2.1.0 for code scanning",
    )
    common.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="limit for running project code (default: DB_MIGRATE_TIMEOUT or 60)")

    parser = _Parser(
        prog="db-migrate",
        description="Change database schemas safely with Alembic: review, roundtrip-test, check heads, generate, classify.",
        epilog="Exit codes: 0 proceed/passed, 1 revise/failed, 3 escalate (ask a human), 2 usage or input error.",
    )
    from db_migrate import __version__

    parser.add_argument("--version", action="version", version=f"db-migrate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    # CI options of the verdict commands (db_migrate.cli.verdicts)
    gate = argparse.ArgumentParser(add_help=False)
    gate.add_argument("--fail-on", choices=("error", "warning"), default="error",
                      help="lowest finding severity that fails the run (exit 1); default: error")
    targets = argparse.ArgumentParser(add_help=False)
    targets.add_argument("targets", nargs="*", metavar="REV|PATH", help="revision ids, unique prefixes, 'head' or file paths (default: head)")
    targets.add_argument("--changed-since", metavar="REF", help="only the revision files added or changed since git REF (its merge base with HEAD)")
    targets.set_defaults(revision="head")

    p = sub.add_parser("review", parents=[common, gate, targets],
                       help="lint revisions (or all); with --database-url also check them against the data (read-only)")
    p.add_argument("--all", action="store_true", dest="all_revisions", help="review every revision")
    p.add_argument("--database-url", metavar="URL", help="also check each change against this database's data (read-only)")

    p = sub.add_parser("classify", parents=[common, gate, targets], help="decide whether revisions need a human (escalation policy)")
    p.add_argument("--database-url", metavar="URL", help="database to read row counts from and preflight against (read-only)")
    p.add_argument("--environment", metavar="ENV", help="target environment name, e.g. production")

    p = sub.add_parser("approve", parents=[common],
                       help="record a human's approval of an escalating revision (appended to <script_location>/approvals/REV.toml)")
    p.add_argument("revision", metavar="REV", help="revision id, unique prefix or 'head'")
    p.add_argument("--by", required=True, metavar="NAME", help="who approves (recorded)")
    p.add_argument("--note", default="", metavar="TEXT", help="why, under which conditions (recorded)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation (required without a terminal)")
    p.add_argument("--database-url", metavar="URL", help="classify with this database's rows and preflight (read-only), as classify does")
    p.add_argument("--environment", metavar="ENV", help="target environment name, e.g. production")

    p = sub.add_parser("heads", parents=[common, gate], help="check the revision graph, model drift and database state")
    p.add_argument("--database-url", metavar="URL", help="database whose current revision to compare (read-only)")
    p.add_argument("--scratch-url", metavar="URL", help="server for the drift check's scratch database (default: the project's engine: embedded PostgreSQL for PostgreSQL projects, else a temporary SQLite file)")
    p.add_argument("--create-merge", action="store_true", help="write a merge revision when there are several heads")
    p.add_argument("-m", "--message", dest="merge_message", metavar="MSG", help="message of the merge revision")
    p.add_argument("--no-drift", action="store_true", help="skip the model-drift check (no autogenerate)")

    p = sub.add_parser("generate", parents=[common, gate], help="autogenerate a revision from the models on a scratch database")
    p.add_argument("-m", "--message", required=True, metavar="MESSAGE", help="revision message")
    p.add_argument("--scratch-url", metavar="URL", help="server for the scratch database at head (default: the project's engine: embedded PostgreSQL for PostgreSQL projects, else a temporary SQLite file)")
    p.add_argument("--database-url", metavar="URL", help="compare with this database as it is (read-only) instead of a scratch database")
    p.add_argument("--rewrite-renames", action="store_true", help="write probable renames (drop+add of a column or table) as renames, replacing generate's own unapplied revision that holds them")

    p = sub.add_parser("roundtrip", parents=[common, gate], help="upgrade, downgrade, upgrade on a scratch database with seeded rows")
    p.add_argument("revision", nargs="?", default="head", metavar="REV")
    p.add_argument("--database-url", metavar="URL", help="scratch database server (default: the project's engine: embedded PostgreSQL for PostgreSQL projects, else a temporary SQLite file)")
    p.add_argument("--rows", type=int, default=20, metavar="N", help="rows to seed per table (default: 20)")
    p.add_argument("--from", dest="from_revision", metavar="REV", help="first revision of a range")
    p.add_argument("--to", dest="to_revision", metavar="REV", help="last revision of a range")
    p.add_argument("--all", action="store_true", dest="all_revisions", help="every revision, base to head")
    p.add_argument(
        "--purge-templates", action="store_true",
        help="remove this project's cached parent-schema templates (SQLite files, and its dbm_tpl_* databases on --database-url) and its kept drift answers, and exit",
    )

    p = sub.add_parser("rules", parents=[common], help="list the review rules")

    p = sub.add_parser("serve", parents=[common], help="run the MCP server (stdio by default)")
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP host (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default: 8000)")
    p.add_argument("--token-file", metavar="PATH", help="file (mode 600) holding the bearer token HTTP clients must send "
                   "(default: $DB_MIGRATE_HTTP_TOKEN); required for a --host other than loopback")
    p.add_argument("--allowed-host", metavar="HOST[:PORT]", action="append", default=[],
                   help="a Host header value HTTP clients may use (repeatable; the bound address and loopback are always allowed)")
    p.add_argument("--project", metavar="DIR", help="project root (default: the working directory)")

    p = sub.add_parser("scratch", parents=[common], help="the embedded PostgreSQL scratch server: status, or stop it now")
    p.add_argument("action", choices=["status", "stop"])

    p = sub.add_parser("init", parents=[common], help="register the server in .mcp.json, install the skill, the /db-migrate command and config")
    p.add_argument("--project", metavar="DIR", help="project root (default: the working directory)")
    p.add_argument("--plugin", metavar="DIR", help="write a Claude Code plugin (server, skill, command) into DIR instead")
    return parser


def _call_args(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Tool name and service keyword arguments for a verdict command."""
    t = {"timeout": args.timeout}
    match args.command:
        case "review":
            return "review_migration", {**t, "revision": args.revision, "all_revisions": args.all_revisions, "database_url": args.database_url}
        case "classify":
            return "classify_escalation", {**t, "revision": args.revision, "database_url": args.database_url, "environment": args.environment}
        case "heads":
            return "check_heads", {**t, "database_url": args.database_url, "scratch_url": args.scratch_url, "create_merge": args.create_merge,
                                   "merge_message": args.merge_message, "drift": not args.no_drift}
        case "generate":
            return "generate_migration", {**t, "message": args.message, "database_url": args.database_url,
                                          "scratch_url": args.scratch_url, "rewrite_renames": args.rewrite_renames}
        case "roundtrip":
            if args.all_revisions and (args.from_revision or args.to_revision):
                raise UsageError("--all cannot be combined with --from/--to.")
            if args.rows < 0:
                raise UsageError("--rows must be 0 or more.")
            return "test_roundtrip", {**t, "revision": args.revision, "database_url": args.database_url, "rows": args.rows,
                                      "from_revision": args.from_revision, "to_revision": args.to_revision,
                                      "all_revisions": args.all_revisions}
    raise UsageError(f"Unknown command {args.command}.")


def _verdict(args: argparse.Namespace, out: Any) -> int:
    from db_migrate.cli.verdicts import run

    return run(args, out, _call_args)


def _rules(args: argparse.Namespace, out: Any) -> int:
    from db_migrate.tools.render import render_rules, use_color
    from db_migrate.rules import SEVERITY_PRINCIPLE, catalogue

    rules = list(catalogue())
    if args.format == "sarif":  # the catalogue alone, e.g. to check what code scanning will show
        from db_migrate import __version__
        from db_migrate.tools.sarif import sarif_log

        out.write(json.dumps(sarif_log([], rules, version=__version__), indent=2) + "\n")
    elif args.format == "json":
        out.write(json.dumps([_jsonable(r) for r in rules]) + "\n")
    else:
        out.write(render_rules(rules, color=use_color(out), principle=SEVERITY_PRINCIPLE) + "\n")
    return 0


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    import dataclasses

    if dataclasses.is_dataclass(obj):
        return json.loads(json.dumps(dataclasses.asdict(obj), default=str))
    return obj


def _serve(args: argparse.Namespace, out: Any) -> int:
    if not args.http:
        # the fork server imports alembic and SQLAlchemy while we import the MCP SDK: the client's first
        # tool call no longer waits for both, one after the other (no token reaches it: job_environment)
        root = Path(args.project or os.getcwd()).resolve()
        if root.is_dir():
            os.chdir(root)  # where serve() runs from, and so the fork server
            _prewarm()
    from db_migrate.server import serve

    serve(project_dir=args.project, config=args.config, section=args.name, http=args.http, host=args.host, port=args.port,
          timeout=args.timeout, token_file=args.token_file, allowed_hosts=args.allowed_host)
    return 0


def _init(args: argparse.Namespace, out: Any) -> int:
    from db_migrate.cli.init import init_plugin, init_project

    if args.plugin and args.project:
        raise UsageError("--plugin writes a plugin directory; it cannot be combined with --project.")
    report = init_plugin(Path(args.plugin)) if args.plugin else init_project(Path(args.project or os.getcwd()))
    for warning in report.warnings:
        sys.stderr.write(f"db-migrate: warning: {warning}\n")
    if args.format == "json":
        out.write(json.dumps(report.model_dump(mode="json")) + "\n")
    else:
        out.write(report.text() + "\n")
    return 0


def _approve(args: argparse.Namespace, out: Any) -> int:
    from db_migrate.cli.approve import approve

    return approve(args, out)


def _static(args: argparse.Namespace) -> bool:
    """``heads --no-drift`` without a database or a merge to write: the revision graph read from the files only."""
    return args.command == "heads" and args.no_drift and not args.database_url and not args.create_merge


def _share_fork_server() -> None:
    """Jobs fork from the warm parent CLI calls share (sandbox/shared.py): no fork server start-up per call."""
    from db_migrate.sandbox import share_fork_server

    if share_fork_server():
        from db_migrate.sandbox import shared
        from db_migrate.scratch import set_supervisor

        set_supervisor(shared.supervise, shared.release)  # the warm parent drops our scratch databases if we die


def _prewarm() -> None:
    """Start a sandbox worker in the background: it imports alembic while we parse and plan."""
    from db_migrate.sandbox import prewarm

    threading.Thread(target=_quiet(prewarm), daemon=True, name="db-migrate-prewarm").start()


def _quiet(fn: Any) -> Any:
    def run() -> None:
        try:
            fn()
        except Exception:
            pass  # prewarming is an optimisation; the real call reports any failure

    return run


def _wants_json(argv: list[str]) -> bool:
    for i, a in enumerate(argv):
        if a in ("--format=json", "-fjson") or (a in ("--format", "-f") and i + 1 < len(argv) and argv[i + 1] == "json"):
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``db-migrate`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = sys.stdout
    as_json = _wants_json(argv)
    try:
        args = build_parser().parse_args(argv)
        as_json = args.format == "json"
        if args.format == "sarif" and args.command in ("serve", "init", "approve"):
            raise UsageError(f"--format sarif is for verdict commands and rules, not {args.command}.")
        if args.command in _WORKER_COMMANDS:
            _interrupt_on_sigterm()
            if not _static(args):  # a static check runs no project code: no fork server, not even its module
                _share_fork_server()
        # `heads` often needs no worker (static with --no-drift, none when its drift answer is kept:
        # heads/drift_cache.py), and a worker never used costs more at exit than the whole check;
        # on a miss the drift check takes seconds anyway, so the fork server starts on demand there
        if args.command in _WORKER_COMMANDS and args.command != "heads":
            _prewarm()
        if args.command == "roundtrip" and args.purge_templates:
            return _purge_templates(args, out)
        handler = {"rules": _rules, "serve": _serve, "init": _init, "scratch": _scratch, "approve": _approve}.get(args.command, _verdict)
        return handler(args, out)
    except DbMigrateError as e:
        return _fail(e, as_json)
    except BrokenPipeError:
        # The reader went away (`db-migrate review --all | head`): nothing left to say, and
        # Python must not complain again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_REVISE
    except KeyboardInterrupt:
        return _fail(UsageError("Interrupted."), as_json)
    except SystemExit as e:  # --help and --version exit 0 through argparse
        return int(e.code or 0) if isinstance(e.code, int) or e.code is None else EXIT_USAGE
    except Exception as e:
        if os.environ.get("DB_MIGRATE_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        message = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
        return _fail(InternalError(f"internal error: {message}", hint="Set DB_MIGRATE_DEBUG=1 to see the traceback, and report it."), as_json)


def _purge_templates(args: argparse.Namespace, out: Any) -> int:
    """Drop this project's templates (a speed-up only: the next roundtrip rebuilds what it needs)."""
    from db_migrate.heads import drift_cache
    from db_migrate.project import load_project
    from db_migrate.scratch.embedded import running_url
    from db_migrate.scratch.templates import purge_templates

    project = load_project(args.config, section=args.name)
    # without a server named: the SQLite files, and the embedded PostgreSQL server's templates if it runs
    removed = purge_templates(args.database_url or running_url(), project=project) + drift_cache.purge(project)
    if args.format == "json":
        out.write(json.dumps({"removed": removed}) + "\n")
    else:
        out.write(f"removed {len(removed)} template(s)\n" + "".join(f"  {r}\n" for r in removed))
    return 0


def _scratch(args: argparse.Namespace, out: Any) -> int:
    """``scratch status`` / ``scratch stop``: the embedded PostgreSQL server (see db_migrate.scratch.embedded)."""
    from db_migrate.scratch import embedded

    report = embedded.stop() if args.action == "stop" else embedded.status()
    if args.format == "json":
        out.write(json.dumps(report) + "\n")
    elif args.action == "stop":
        out.write(("stopped" if report["stopped"] else "not running") + f": embedded PostgreSQL at {report['data_dir']}\n")
    else:
        out.write("".join(f"{k}: {v}\n" for k, v in report.items()))
    return 0


def _fail(err: DbMigrateError, as_json: bool) -> int:
    if as_json:
        sys.stdout.write(err.to_json("cli") + "\n")
    else:
        from db_migrate.tools.render import render_error, use_color

        sys.stderr.write(render_error(err.info("cli"), color=use_color(sys.stderr)) + "\n")
    return EXIT_USAGE
