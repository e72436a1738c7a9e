"""The db-migrate command line: output formats, exit codes, errors, start-up cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import own_databases  # noqa: E402

from db_migrate.cli import main  # noqa: E402
from db_migrate.tools.render import render, use_color
from db_migrate.verdict import Escalation, Finding, Trigger, Unchecked, Verdict

EXIT = {"proceed": 0, "revise": 1, "escalate": 3}
SCRIPT = Path(sys.executable).parent / "db-migrate"


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main([*args, "--format", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_review_json_and_exit_code_follow_the_decision(residency: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_json(["review", "9692142c98f0", "--config", str(residency)], capsys)
    assert out["tool"] == "review_migration" and out["revisions"] == ["9692142c98f0"]
    assert code == EXIT[out["decision"]]


def test_review_all_covers_every_revision(residency: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_json(["review", "--all", "--config", str(residency)], capsys)
    assert len(out["revisions"]) == 16 and code == EXIT[out["decision"]]


def test_classify_escalates_with_exit_3_and_the_tool_shape(residency: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_json(["classify", "9692142c98f0", "--config", str(residency)], capsys)
    assert out["decision"] == "escalate" and code == 3
    assert out["human_approval"] is None  # same shape as the MCP tool; the CLI asks nobody
    assert out["escalation"]["triggers"]


def test_classify_of_several_revisions_reports_one_that_cannot_load_beside_the_others(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from projectfactory import make_project

    good = "def upgrade():\n    op.add_column('t', sa.Column('c', sa.Integer(), nullable=True))\n\n\ndef downgrade():\n    op.drop_column('t', 'c')\n"
    broken = "LIMIT = undefined_setting_of_the_app * 2\n\n\ndef upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"
    root = make_project(tmp_path, [{"body": good}, {"body": broken}, {"body": good.replace("'c'", "'d'")}])
    code, out = run_json(["classify", "000000000001", "000000000002", "000000000003", "--config", str(root)], capsys)
    decided = [r for r in out if "decision" in r]
    errors = [r["error"] for r in out if "error" in r]
    assert [r["revisions"] for r in decided] == [["000000000001"], ["000000000003"]]
    assert len(errors) == 1 and errors[0]["code"] and "000000000002" in json.dumps(errors[0])
    assert code == 2  # no escalation among the others: the error is what the exit code says


def test_classify_of_several_revisions_says_what_each_alone_says(residency: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One review job serves all the revisions named (CI's ``classify A B C``); each verdict is the one that revision
    gets when classified alone."""
    revs = ["c8335fa6c848", "37001f9082a5", "9692142c98f0", "b0cfaa3c85b2"]
    code, together = run_json(["classify", *revs, "--config", str(residency)], capsys)
    alone = [run_json(["classify", r, "--config", str(residency)], capsys)[1] for r in revs]
    assert [r["revisions"] for r in together] == [[r] for r in revs]
    # (conventions.naming may say more together: a convention read on demand for one is known for all; isolation
    # counts the jobs run, and in one process the alone calls reuse the reviews cached by the first)
    for each in (*together, *alone):
        each.pop("conventions", None)
        each.pop("isolation", None)
    assert together == alone
    assert code == 3


def test_heads_json(residency: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(residency / "alembic")  # found from a subdirectory
    code, out = run_json(["heads", "--no-drift"], capsys)
    assert out["heads"] == ["f956808bc5df"] and code == EXIT[out["decision"]]


@pytest.mark.parametrize(
    "args, code",
    [
        (["review", "nope"], "revision-not-found"),
        (["review", "/etc/hosts.py"], "path-outside-project"),
        (["bogus"], "usage"),
        (["review", "--rows", "3"], "usage"),
        (["roundtrip", "--all", "--from", "a"], "usage"),
    ],
)
def test_errors_exit_2_with_error_json(residency: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: str) -> None:
    exit_code, out = run_json([*args, "--config", str(residency)] if args[0] != "bogus" else args, capsys)
    assert exit_code == 2 and out["error"]["code"] == code and out["error"]["message"]


def test_errors_in_text_go_to_stderr_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()  # stop the upward search here
    assert main(["review"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "config-not-found" in captured.err and "Traceback" not in captured.err


def test_unexpected_exception_is_internal_error(residency: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import db_migrate.tools as tools

    def boom(tool: str, project: object, **kw: object) -> None:
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(tools, "call", boom)
    code, out = run_json(["review", "--config", str(residency)], capsys)
    assert code == 2 and out["error"]["code"] == "internal-error" and "kaboom" in out["error"]["message"]
    assert "second line" not in out["error"]["message"]


def test_text_report_groups_by_revision_with_location_and_fix() -> None:
    v = Verdict(
        tool="review_migration", decision="escalate", summary="2 revisions",
        findings=[
            Finding(rule="r1", severity="error", phase="upgrade", message="bad thing", revision="aaa", path="v/a.py", line=7, fix="op.good()"),
            Finding(rule="r2", severity="warning", phase="downgrade", message="meh", revision="bbb", path="v/b.py", line=3),
        ],
        escalation=Escalation(required=True, triggers=[Trigger(trigger="drop-with-data", reason="data loss", evidence=["persons: 12 rows"])]),
        unchecked=[Unchecked(what="row counts", reason="no database_url")],
    )
    text = render(v, color=False)
    assert text.index("aaa  v/a.py") < text.index("v/a.py:7") < text.index("op.good()") < text.index("bbb  v/b.py")
    assert "drop-with-data" in text and "persons: 12 rows" in text and "row counts: no database_url" in text
    assert "\033[" not in text and "\033[" in render(v, color=True)


def test_color_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(Tty()) is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color(Tty()) is False
    assert use_color(open(os.devnull, "w")) is False


def test_rules_lists_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    from db_migrate.rules import catalogue

    assert main(["rules", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in out] == [r.id for r in catalogue()]


def test_cold_start_to_a_verdict_never_imports_mcp(residency: Path) -> None:
    """A fresh CLI process reviews the head without importing the MCP SDK (its speed is measured in bench/).

    Nor alembic: a static review runs project code in jobs of the warm parent, and importing alembic
    (with most of SQLAlchemy) in the CLI process was half of each call's start-up.
    """
    probe = (
        "import sys, runpy; sys.argv=['db-migrate','review','--config',sys.argv[1],'--format','json'];"
        "from db_migrate.cli import main; code=main();"
        "print('loaded:', *sorted(m for m in ('mcp', 'alembic') if m in sys.modules), file=sys.stderr); sys.exit(code)"
    )
    proc = subprocess.run([sys.executable, "-c", probe, str(residency)], capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1, 3), proc.stderr
    assert json.loads(proc.stdout)["tool"] == "review_migration"
    assert "loaded:\n" in proc.stderr, proc.stderr[-2000:]


def test_console_script_is_installed(residency: Path) -> None:
    if not SCRIPT.exists():
        pytest.skip("console script not installed in this interpreter's environment")
    proc = subprocess.run([str(SCRIPT), "heads", "--no-drift", "--format", "json", "--config", str(residency)], capture_output=True, text=True, timeout=60)
    assert json.loads(proc.stdout)["heads"] == ["f956808bc5df"]


def test_heads_drift_on_a_scratch_server(residency: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_json(["heads", "--config", str(residency), "--scratch-url", pg_url], capsys)
    assert code == 0 and out["decision"] == "proceed", out
    assert not any(f["rule"] == "model-drift" for f in out["findings"])
    # this run's scratch databases only: other processes use the same server meanwhile
    assert own_databases(pg_url, "heads") == [] and own_databases(pg_url, "drift") == []


def test_roundtrip_templates_can_be_purged(residency: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from sqlalchemy import create_engine, text

    from db_migrate.project import load_history, load_project
    from db_migrate.scratch.templates import TEMPLATE_PREFIX, project_tag, template_key

    # A comment unique to this run makes its template key unique: another run cannot build
    # (or purge) the same template meanwhile, and only this one is looked for afterwards.
    ini = residency / "alembic.ini"
    ini.write_text(ini.read_text() + f"\n# test run {uuid.uuid4().hex}\n")
    project = load_project(cwd=residency)
    history = load_history(project)
    parent = history.by_id[history.heads[0]].down_revisions[0]
    ours = f"{TEMPLATE_PREFIX}{project_tag(project)}_{template_key(project, history, parent, 'postgresql')}"

    code, out = run_json(["roundtrip", "--config", str(residency), "--database-url", pg_url], capsys)
    assert out["tool"] == "test_roundtrip" and out["template"] is True, out
    code, out = run_json(["roundtrip", "--purge-templates", "--config", str(residency), "--database-url", pg_url], capsys)
    assert code == 0 and ours in out["removed"], out
    eng = create_engine(pg_url)
    with eng.connect() as c:
        left = c.execute(text("select datname from pg_database where datname = :n"), {"n": ours}).all()
    eng.dispose()
    assert left == []


def test_a_closed_pipe_is_not_a_traceback(residency: Path) -> None:
    import subprocess
    import sys as _sys

    cli = Path(_sys.executable).parent / "db-migrate"
    p = subprocess.run(f"'{cli}' review --all --format json | true", shell=True, cwd=residency, capture_output=True, text=True)
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr


def test_db_migrate_mcp_is_the_same_console_script() -> None:
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts") if e.name.startswith("db-migrate")}
    assert scripts.get("db-migrate-mcp") == scripts.get("db-migrate") == "db_migrate.cli:main"


def test_progress_shows_on_a_terminal_only_and_is_cleared() -> None:
    import io

    from db_migrate.cli.progress import ProgressLine, progress_display
    from db_migrate.sandbox import progress

    line = ProgressLine(io.StringIO(), quiet_seconds=0)
    line("reviewing", 3, 12)
    assert line.stream.getvalue().endswith("[3/12] reviewing")
    line.clear()
    assert line.stream.getvalue().endswith("\r\033[K")

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        with progress_display(stream):
            progress("step", 1, 2)  # within the quiet start: not drawn, and nothing left behind
    assert pipe.getvalue() == "" and "step" not in tty.getvalue()


def test_a_multi_database_ini_is_used_by_section_as_alembic_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # alembic's multidb layout: no [alembic] section, one section per database (alembic -n core ...)
    from projectfactory import make_project

    core = make_project(tmp_path / "core", [{"id": "c0re00000001", "down": None}], url="sqlite:///core.db")
    audit = make_project(tmp_path / "audit", [{"id": "a0d100000001", "down": None}, {"id": "a0d100000002"}],
                         url="sqlite:///audit.db")
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[core]\nscript_location = {core / 'migrations'}\nsqlalchemy.url = sqlite:///core.db\n\n"
                   f"[audit]\nscript_location = {audit / 'migrations'}\nsqlalchemy.url = sqlite:///audit.db\n")
    code, out = run_json(["heads", "--config", str(ini), "--no-drift", "--format", "json"], capsys)
    assert code == 2 and out["error"]["code"] == "config-invalid"
    assert "core, audit" in out["error"]["hint"] and "--name core" in out["error"]["hint"]
    code, out = run_json(["heads", "--config", str(ini), "--name", "audit", "--no-drift", "--format", "json"], capsys)
    assert code == 0 and out["heads"] == ["a0d100000002"]
    code, out = run_json(["heads", "-c", str(ini), "-n", "core", "--no-drift", "--format", "json"], capsys)
    assert code == 0 and out["heads"] == ["c0re00000001"]

    import anyio

    from db_migrate.server import build_server

    async def heads() -> dict:
        from mcp import Client

        async with Client(build_server(tmp_path, config=str(ini), section="audit")) as c:
            return (await c.call_tool("check_heads", {})).structured_content

    assert anyio.run(heads)["heads"] == ["a0d100000002"]
