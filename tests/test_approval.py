"""Human approval that travels with the repository: the record, the CLI's `approve`, MCP elicitation, CI.

Each acceptance path runs over both interfaces: approve then CI passes; an edit escalates again and names
the change; a preflight's new `data-loss` escalates again (real PostgreSQL with rows); an approval through
a tool argument is refused; `approve` without a terminal and without --yes is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import ElicitResult

from db_migrate.approval.match import evidence_digest, place
from db_migrate.approval.model import ApprovalEntry, ApprovedTrigger
from db_migrate.approval.record import append_entry, read_entries
from db_migrate.server import build_server

from databases import throwaway_database
from projectfactory import make_project
from test_ci import BIN, DROP, NOTES, ROOT, cli, git, repo, validate  # noqa: F401  (repo: the fixture)

DROP_REV = "9692142c98f0"
NOTES_REV = "f956808bc5df"
RECORD = f"alembic/approvals/{DROP_REV}.toml"


def _json(p: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(p.stdout)


def _one_way(path: Path) -> None:
    """NOTES' upgrade also deletes every assignment: its data gone (drop-with-data) and a way back nobody can write
    (unclear-rollback)."""
    add = 'op.add_column("assignments", sa.Column("notes", sa.Text(), nullable=True))'
    path.write_text(path.read_text().replace(add, add + '\n    op.execute("DELETE FROM assignments")'))


def _edit(path: Path, text: str = "\n# edited after the approval\n") -> None:
    path.write_text(path.read_text() + text)


# --- the record ----------------------------------------------------------------------------------------


def _entry(note: str, sha: str = "a" * 64) -> ApprovalEntry:
    return ApprovalEntry(
        revision="r1", file="v/r1.py", file_sha256=sha, approved_by="Zoë \"Z\" O'Neil", approved_at="2026-12-07T17:40:00Z",
        note=note, via="cli",
        triggers=[ApprovedTrigger(id="drop-with-data", evidence_sha256="b" * 64, at=["v/r1.py:3 upgrade drop_column t.c"],
                                  evidence=["v/r1.py:3 upgrade drop_column t.c: table t has 5 rows"])],
    )


def test_the_record_is_appended_to_never_rewritten_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "approvals" / "r1.toml"
    first = _entry('backed up\nline two \\ "quoted" \t tab')
    append_entry(path, first)
    before = path.read_bytes()
    second = _entry("again", sha="c" * 64)
    append_entry(path, second)
    after = path.read_bytes()
    assert after.startswith(before) and len(after) > len(before)  # old entries stay byte for byte
    assert read_entries(path) == [first, second]
    assert not [p for p in path.parent.iterdir() if p.name != "r1.toml"]  # no temporary file left behind


def test_the_evidence_digest_covers_places_not_measurements_or_order() -> None:
    counted = "alembic/versions/x.py:22 upgrade drop_column persons.pager: column persons.pager holds non-NULL values in postgresql://h/db"
    assumed = "alembic/versions/x.py:22 upgrade drop_column persons.pager: assumed: no database_url given; treated as holding data"
    assert place(counted) == place(assumed) == "alembic/versions/x.py:22 upgrade drop_column persons.pager"
    other = "alembic/versions/x.py:30 upgrade drop_column persons.fax: assumed"
    assert evidence_digest([place(counted), place(other)]) == evidence_digest([place(other), place(assumed), place(other)])
    assert evidence_digest([place(counted)]) != evidence_digest([place(counted), place(other)])


def test_matching_names_what_changed(tmp_path: Path) -> None:
    from db_migrate.approval import Book, RevisionFile, evaluate
    from db_migrate.approval.match import approved_triggers, file_digest
    from db_migrate.verdict import Trigger

    (tmp_path / "r1.py").write_text("content")
    drop = Trigger(trigger="drop-with-data", reason="r", evidence=["v/r1.py:3 upgrade drop_column t.c: table t has 5 rows"])
    entry = ApprovalEntry(
        revision="r1", file="v/r1.py", file_sha256=file_digest(b"content"), approved_by="Ana", approved_at="2026-12-07T10:00:00Z",
        via="cli", triggers=approved_triggers({"drop-with-data": drop.evidence}),
    )
    record = tmp_path / "r1.toml"
    append_entry(record, entry)

    def state(*triggers: Trigger) -> Any:
        return evaluate(list(triggers), Book("approvals", (RevisionFile("r1", "v/r1.py", tmp_path / "r1.py", record),)))

    # the same place with another measurement: approved
    same = drop.model_copy(update={"evidence": ["v/r1.py:3 upgrade drop_column t.c: assumed: no database_url given"]})
    assert [e.approved_by for e in state(same).approved] == ["Ana"]
    # the trigger fires at one more place: pending, naming it
    moved = drop.model_copy(update={"evidence": [*drop.evidence, "v/r1.py:9 upgrade drop_column t.d: table t has 5 rows"]})
    (pending,) = state(moved).pending
    assert pending.triggers == ["drop-with-data"] and "now at v/r1.py:9 upgrade drop_column t.d" in pending.changes[0]
    # a new trigger (a production target: evidence that names no file concerns every revision)
    prod = Trigger(trigger="production-database", reason="r", evidence=["DB_MIGRATE_ENV=production"])
    (pending,) = state(drop, prod).pending
    assert pending.triggers == ["production-database"] and pending.changes[0].startswith("new trigger production-database")
    # the file changed
    (tmp_path / "r1.py").write_text("content, edited")
    (pending,) = state(drop).pending
    assert pending.changes == ["the revision changed since Ana approved it on 2026-12-07: its file digest differs"]


# --- the CLI -------------------------------------------------------------------------------------------


def test_cli_approve_then_ci_passes_and_an_edit_escalates_again_naming_the_change(repo: Path, tmp_path: Path) -> None:
    assert cli(["classify", DROP_REV], repo).returncode == 3

    # no terminal and no --yes: refused, nothing written
    p = subprocess.run([str(BIN / "db-migrate"), "approve", DROP_REV, "--by", "Ana", "--format", "json"], cwd=repo,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and _json(p)["error"]["code"] == "refused" and "--yes" in _json(p)["error"]["hint"]
    assert not (repo / "alembic/approvals").exists()
    # an approval is not something a verdict command takes
    p = cli(["classify", DROP_REV, "--approved-by", "Ana", "--format", "json"], repo)
    assert p.returncode == 2 and _json(p)["error"]["code"] == "usage"
    assert not (repo / "alembic/approvals").exists()

    p = cli(["approve", DROP_REV, "--by", "Ana", "--note", "pager numbers archived", "--yes"], repo)
    assert p.returncode == 0 and RECORD in p.stdout, p.stderr
    (entry,) = read_entries(repo / RECORD)
    assert (entry.approved_by, entry.via, entry.note) == ("Ana", "cli", "pager numbers archived")
    assert {t.id for t in entry.triggers} == {"drop-with-data"}  # re-added empty by the downgrade: the same fact

    # CI passes: classify and review exit 0 and say who approved; the escalation stays on record
    p = cli(["classify", DROP_REV, "--format", "json"], repo)
    out = _json(p)
    assert p.returncode == 0 and out["decision"] == "proceed" and "approved by Ana on" in out["summary"]
    assert out["escalation"]["required"] is False and out["approval"]["approved"][0]["file_sha256"] == entry.file_sha256
    assert cli(["review", DROP], repo).returncode == 0
    # approving again what is approved writes nothing
    p = cli(["approve", DROP_REV, "--by", "Bo", "--yes"], repo)
    assert p.returncode == 0 and "already approved by Ana" in p.stdout and len(read_entries(repo / RECORD)) == 1

    # SARIF: the escalation is a suppressed result with the approval as justification, under its own revision
    p = cli(["review", DROP, NOTES, "--format", "sarif"], repo)
    log = json.loads(p.stdout)
    validate(log)
    escalations = [r for r in log["runs"][0]["results"] if r["ruleId"].startswith("escalate/")]
    suppressed = [r for r in escalations if r.get("suppressions")]
    assert {r["properties"]["revision"] for r in suppressed} == {DROP_REV}
    assert all(r["suppressions"][0]["kind"] == "external" and r["suppressions"][0]["justification"].startswith("approved by Ana")
               for r in suppressed)
    # NOTES' empty downgrade is one db-migrate writes as a patch: an error to fix (revise), never an escalation
    assert {r["properties"]["revision"] for r in escalations if not r.get("suppressions")} == set()
    assert p.returncode == 1
    for r in escalations:  # each escalation belongs to the revision whose file holds it
        assert r["properties"]["revision"] in r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]

    # an edit voids it: escalate again, naming the change
    before = (repo / RECORD).read_bytes()
    _edit(repo / DROP)
    p = cli(["classify", DROP_REV, "--format", "json"], repo)
    out = _json(p)
    assert p.returncode == 3 and "the revision changed since Ana approved it on" in out["summary"], out["summary"]
    assert out["approval"]["pending"][0]["revision"] == DROP_REV
    assert cli(["review", DROP], repo).returncode == 3
    # a new approval of the new content is a new entry; the old one stays, byte for byte
    assert cli(["approve", DROP_REV, "--by", "Bo", "--yes"], repo).returncode == 0
    assert (repo / RECORD).read_bytes().startswith(before)
    old, new = read_entries(repo / RECORD)
    assert old == entry and new.approved_by == "Bo" and new.file_sha256 != old.file_sha256
    assert cli(["classify", DROP_REV], repo).returncode == 0


def test_changed_since_lists_approved_and_pending_apart_and_the_action_follows(repo: Path, tmp_path: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    _edit(repo / DROP, "\n# reviewed on the branch\n")
    _one_way(repo / NOTES)
    assert cli(["approve", DROP_REV, "--by", "Ana", "--yes"], repo).returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "branch")

    p = cli(["classify", "--changed-since", "main"], repo)
    assert p.returncode == 3
    apart = p.stdout[p.stdout.index("Escalations approved"):]
    assert f"Escalations approved (1):\n  - {DROP_REV}: approved by Ana" in apart
    assert f"Escalations pending (1):\n  - {NOTES_REV}: drop-with-data, unclear-rollback: never approved" in apart

    def action(revisions: str) -> tuple[dict[str, str], dict[str, Any]]:
        outputs = tmp_path / "github_output"
        outputs.unlink(missing_ok=True)
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "GITHUB_OUTPUT": str(outputs),
               "DBM_REVISIONS": revisions, "DBM_SARIF": "out.sarif"}
        env.pop("GITHUB_ACTIONS", None)
        p = subprocess.run(["bash", str(ROOT / "scripts" / "action-review.sh")], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        return dict(line.split("=", 1) for line in outputs.read_text().splitlines()), json.loads((repo / "out.sarif").read_text())

    got, log = action(DROP)
    assert got["exit-code"] == "0"  # approved: the step passes
    assert all(r.get("suppressions") for r in log["runs"][0]["results"] if r["ruleId"].startswith("escalate/"))
    _edit(repo / DROP)
    got, log = action(DROP)
    assert got["exit-code"] == "3"  # edited: it fails again
    assert not any(r.get("suppressions") for r in log["runs"][0]["results"])


PREFLIGHT_REVISION = '''
def upgrade():
    op.execute("DELETE FROM persons WHERE score < 2")


def downgrade():
    pass  # db-migrate: irreversible the deleted rows were test data
'''
ROWS = ["CREATE TABLE persons (id INTEGER PRIMARY KEY, score NUMERIC(10, 2))",
        "INSERT INTO persons (id, score) VALUES (1, 2), (2, 1.5), (3, 4)"]


@pytest.fixture
def data_loss_db(pg_url: str) -> Any:
    """A PostgreSQL database of our own holding rows the revision's DELETE removes (data-loss)."""
    yield from throwaway_database(pg_url, ROWS, prefix="dbm_approval")


def test_cli_a_preflight_that_adds_data_loss_escalates_again(tmp_path: Path, data_loss_db: str) -> None:
    root = make_project(tmp_path / "proj", [PREFLIGHT_REVISION])
    rev = "000000000001"
    # without a database: a DELETE nothing can undo (unclear-rollback); a human approves that
    assert cli(["classify", rev], root).returncode == 3
    assert cli(["approve", rev, "--by", "Ana", "--yes"], root).returncode == 0
    assert cli(["classify", rev], root).returncode == 0
    # the data says rows would be deleted: a trigger the approval did not cover
    p = cli(["classify", rev, "--database-url", data_loss_db, "--format", "json"], root)
    out = _json(p)
    assert p.returncode == 3 and "new trigger data-loss since Ana approved it" in out["summary"], out["summary"]
    assert out["approval"]["pending"][0]["triggers"] == ["data-loss"]
    p = cli(["review", rev, "--database-url", data_loss_db, "--format", "json"], root)
    assert p.returncode == 3 and "data-loss" in _json(p)["summary"]
    # approved with the data in view: CI with or without the database passes
    assert cli(["approve", rev, "--by", "Ana", "--yes", "--database-url", data_loss_db], root).returncode == 0
    assert cli(["classify", rev, "--database-url", data_loss_db], root).returncode == 0
    assert cli(["review", rev], root).returncode == 0
    assert len(read_entries(root / "migrations/approvals" / f"{rev}.toml")) == 2


# --- MCP -----------------------------------------------------------------------------------------------


def _human(approve: bool, name: str = "Ana", note: str = "") -> Any:
    async def callback(context: Any, params: Any) -> ElicitResult:
        callback.asked.append(params)  # type: ignore[attr-defined]
        return ElicitResult(action="accept", content={"approve": approve, "name": name, "note": note})

    callback.asked = []  # type: ignore[attr-defined]
    return callback


def _call(root: Path, tool: str, args: dict[str, Any], **client: Any) -> Any:
    async def go() -> Any:
        async with Client(build_server(root), **client) as c:
            return await c.call_tool(tool, args)

    return anyio.run(go)


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def test_mcp_only_a_humans_answer_writes_and_every_tool_honours_it_until_the_revision_changes(residency: Path) -> None:
    args = {"revision": DROP_REV}
    # an approval through a tool argument is refused, and writes nothing
    for extra in ({"approve": True}, {"approved_by": "agent"}, {"human_approval": {"answer": "approved"}}):
        res = _call(residency, "classify_escalation", {**args, **extra})
        assert res.is_error and json.loads(res.content[0].text)["error"]["code"] == "usage"
    assert not (residency / "alembic/approvals").exists()
    # a client that cannot ask, or a human who says no: nothing written, still escalate
    assert _ok(_call(residency, "classify_escalation", args))["decision"] == "escalate"
    assert _ok(_call(residency, "classify_escalation", args, elicitation_callback=_human(False)))["decision"] == "escalate"
    assert not (residency / "alembic/approvals").exists()

    human = _human(True, "Ana", "archived")
    out = _ok(_call(residency, "classify_escalation", args, elicitation_callback=human))
    assert human.asked and out["decision"] == "proceed" and "approved by Ana on" in out["summary"]
    assert out["approval"]["written"]["via"] == "mcp-elicitation"
    (entry,) = read_entries(residency / RECORD)
    assert (entry.approved_by, entry.note, entry.via) == ("Ana", "archived", "mcp-elicitation")

    # later calls, without anyone to ask, and the other tools read the record
    out = _ok(_call(residency, "classify_escalation", args))
    assert out["decision"] == "proceed" and out["approval"]["approved"][0]["approved_by"] == "Ana"
    out = _ok(_call(residency, "review_migration", args))
    assert out["decision"] == "proceed" and "approved by Ana" in out["summary"]
    asked_again = _human(True, "Bo")
    _ok(_call(residency, "classify_escalation", args, elicitation_callback=asked_again))
    assert not asked_again.asked  # nothing left to ask
    # and CI does: the recorded answer passes classify and review on the command line
    assert cli(["classify", DROP_REV], residency).returncode == 0 and cli(["review", DROP], residency).returncode == 0

    _edit(residency / DROP)
    out = _ok(_call(residency, "classify_escalation", args))
    assert out["decision"] == "escalate" and "the revision changed since Ana approved it" in out["summary"]
    out = _ok(_call(residency, "review_migration", args))
    assert out["decision"] == "escalate" and out["approval"]["pending"][0]["revision"] == DROP_REV
    assert cli(["classify", DROP_REV], residency).returncode == 3


def test_mcp_a_preflight_that_adds_data_loss_escalates_again(tmp_path: Path, data_loss_db: str) -> None:
    root = make_project(tmp_path / "proj", [PREFLIGHT_REVISION])
    args = {"revision": "000000000001"}
    out = _ok(_call(root, "classify_escalation", args, elicitation_callback=_human(True, "Ana")))
    assert out["decision"] == "proceed"
    human = _human(False)
    out = _ok(_call(root, "classify_escalation", {**args, "database_url": data_loss_db}, elicitation_callback=human))
    assert out["decision"] == "escalate" and "new trigger data-loss since Ana approved it" in out["summary"]
    assert human.asked and "data-loss" in human.asked[0].message
    out = _ok(_call(root, "review_migration", {**args, "database_url": data_loss_db}))
    assert out["decision"] == "escalate" and any(p["triggers"] == ["data-loss"] for p in out["approval"]["pending"])
