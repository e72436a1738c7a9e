"""What people and text-only agent clients read: the report, the MCP text block, and the size cap."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from db_migrate.roundtrip.model import RoundtripResult, RoundtripStep
from db_migrate.server import build_server
from db_migrate.tools.limits import MAX_ITEMS, bounded
from db_migrate.tools.render import brief, render
from db_migrate.verdict import Escalation, Finding, Trigger, Verdict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from make_history import make_history  # noqa: E402


def _findings(n_errors: int, n_warnings: int) -> list[Finding]:
    errors = [Finding(rule="bad", severity="error", phase="upgrade", message=f"error number {i}", revision=f"r{i}",
                      path=f"v/r{i}.py", line=i + 1, fix=f"op.fix_{i}()") for i in range(n_errors)]
    warnings = [Finding(rule="meh", severity="warning", phase="upgrade", message=f"warning number {i}", path="v/w.py", line=i + 1)
                for i in range(n_warnings)]
    return errors + warnings


def test_the_text_block_has_every_error_with_its_fix_and_every_trigger_with_evidence() -> None:
    v = Verdict(
        tool="review_migration", decision="escalate", summary="30 revisions", findings=_findings(30, 5),
        escalation=Escalation(required=True, triggers=[
            Trigger(trigger="drop-with-data", reason="data loss", evidence=["v/r1.py:3 drop_column persons.x: 12 rows"]),
        ]),
    )
    text = brief(v)
    for i in range(30):
        assert f"v/r{i}.py:{i + 1}: error number {i}" in text and f"op.fix_{i}()" in text
    assert "drop-with-data" in text and "v/r1.py:3 drop_column persons.x: 12 rows" in text
    assert "warning number 4" in text


def test_the_text_block_counts_what_does_not_fit() -> None:
    v = Verdict(tool="review_migration", decision="revise", summary="many", findings=_findings(1, 400))
    text = brief(v, max_chars=2_000)
    assert "op.fix_0()" in text and len(text) < 2_500
    shown = text.count("warning number")
    assert f"... {400 - shown} more warning(s)/note(s)" in text


def test_bounded_keeps_every_error_and_says_what_it_left_out() -> None:
    v = Verdict(tool="review_migration", decision="revise", summary="big", findings=_findings(20, 600))
    b = bounded(v, max_findings=50)
    assert sum(f.severity == "error" for f in b.findings) == 20 and len(b.findings) == 50
    assert b.left_out == ["findings: 570 of 620 (570 warning(s), 0 note(s); every error kept)"]
    assert bounded(Verdict(tool="t", decision="proceed", summary="s")).left_out == []


def test_bounded_caps_the_approval_lists() -> None:
    from db_migrate.approval import ApprovalState, PendingApproval

    state = ApprovalState(record="a", pending=[PendingApproval(revision=f"r{i}", triggers=["x"]) for i in range(130)])
    b = bounded(Verdict(tool="review_migration", decision="escalate", summary="s", approval=state))
    assert len(b.approval.pending) == MAX_ITEMS and b.left_out == [f"approval.pending: 30 of 130 (first {MAX_ITEMS} kept)"]


def test_people_read_sentences_not_field_dumps() -> None:
    r = RoundtripResult(
        decision="proceed", summary="roundtrip passed", status="passed", dialect="sqlite", database="sqlite://", rows=5,
        revisions=["abc"], steps=[RoundtripStep(revision="abc", step="upgrade", seconds=0.25, ok=True),
                                  RoundtripStep(revision="abc", step="downgrade", seconds=0.5, ok=False)],
    )
    text = render(r)
    assert "abc upgrade: ok (0.25 s)" in text and "abc downgrade: FAILED (0.50 s)" in text
    assert "ok=True" not in text and "seconds=" not in text and "steps (2):" in text


def test_review_all_over_mcp_on_a_big_history_is_capped(tmp_path: Path, residency: Path) -> None:
    make_history(tmp_path / "big", MAX_ITEMS + 30)

    async def go() -> Any:
        async with Client(build_server(tmp_path / "big")) as c:
            return await c.call_tool("review_migration", {"all_revisions": True})

    result = anyio.run(go)
    data = result.structured_content
    assert not result.is_error and len(data["reviews"]) == MAX_ITEMS and len(data["revisions"]) == MAX_ITEMS + 30
    assert data["left_out"] == [f"reviews: 30 of {MAX_ITEMS + 30} (first {MAX_ITEMS} kept)"]
    assert "left out of this result: reviews: 30" in result.content[0].text
    assert "reads_data" not in render(result_model_from(data))


def result_model_from(data: dict[str, Any]) -> Any:
    from db_migrate.tools import result_model

    return result_model("review_migration").model_validate(data)


def test_the_text_block_carries_warning_fixes_and_patches_verbatim() -> None:
    patch = (
        "--- a/v/w.py\n+++ b/v/w.py\n@@ -1,2 +1,2 @@\n def upgrade():\n-    op.add_column('t', sa.Column('c', sa.Text()))\n"
        "+    op.add_column('t', sa.Column('c', sa.Text(), nullable=True))\n"
    )
    warning = Finding(rule="meh", severity="warning", phase="upgrade", message="a warning", path="v/w.py", line=2,
                      fix="op.execute(\"ALTER TYPE mood ADD VALUE 'meh'\")")
    error = Finding(rule="bad", severity="error", phase="upgrade", message="an error", path="v/w.py", line=2, fix="op.fix()")
    # findings with a patch field (added by the verified-patches work) show it unindented, as git apply takes it
    for f in (warning, error):
        object.__setattr__(f, "patch", patch)
    text = brief(Verdict(tool="generate_migration", decision="revise", summary="s", findings=[error, warning]))
    assert "ALTER TYPE mood ADD VALUE 'meh'" in text and "op.fix()" in text
    assert text.count("```diff\n" + patch + "```") == 2


def test_review_all_reads_base_to_head_lists_every_revision_and_says_repeated_advice_once(residency: Path, capsys: Any) -> None:
    from db_migrate.cli import main
    from db_migrate.project import load_history, load_project

    main(["review", "--all", "--config", str(residency)])
    text = capsys.readouterr().out
    history = load_history(load_project(str(residency)))
    listed = text[text.index("reviews (16):"):].splitlines()[1:17]
    order = [line.split()[0] for line in listed]
    assert sorted(order) == sorted(history.by_id)  # every revision, none cut
    for rid in order:  # base to head: each after everything it revises
        assert all(order.index(p) < order.index(rid) for p in history.by_id[rid].down_revisions)
    # revision groups follow the same order
    groups = [line.split()[0] for line in text.splitlines() if line[:12] in history.by_id and "alembic/versions/" in line]
    assert groups == [r for r in order if r in groups]
    # the lock-timeout advice (nine places) is said once, and every place is still named
    assert text.count("SET LOCAL lock_timeout = '5s'") == 1
    assert text.count("[missing-lock-timeout]") == 10 and "Repeated advice #1: [missing-lock-timeout] info, 9 places" in text
    assert len(text.splitlines()) < 180  # 214 lines before, with 4 revisions cut from the list
