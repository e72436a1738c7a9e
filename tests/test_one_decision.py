"""One decision whichever tool is asked (issue 8 §1).

review_migration, classify_escalation (without a database), test_roundtrip and
generate_migration all apply the project's policy through
``db_migrate.policy.classify.decide_for``.  The invariant checked here, over the
fixture project and over every rule example: for the same revision, review is
never less strict than classify without a database, both name the same
triggers, and no summary says something other than ``decision`` and
``escalation.required``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from projectfactory import make_project

from db_migrate.heads import check_heads
from db_migrate.classify import classify_escalation
from db_migrate.policy.model import ClassifyResult, HumanApproval
from db_migrate.project import load_history, load_project
from db_migrate.review import review_migration
from db_migrate.roundtrip import test_roundtrip as run_roundtrip
from db_migrate.rules import all_rules
from db_migrate.verdict import Verdict

STRICTNESS = {"proceed": 0, "revise": 1, "escalate": 2}
URLS = {"postgresql": "postgresql://u@localhost/app", "mysql": "mysql+pymysql://u@localhost/app", "sqlite": "sqlite:///app.db"}


def _triggers(v: Verdict) -> list[str]:
    return sorted(t.trigger for t in v.escalation.triggers) if v.escalation else []


def assert_consistent(v: Verdict) -> None:
    """The summary, ``decision`` and ``escalation.required`` tell the same story."""
    required = bool(v.escalation and v.escalation.required)
    assert (v.decision == "escalate") == required, (v.decision, v.escalation)
    assert v.decision in v.summary, v.summary
    assert ("escalate" in v.summary) == required, v.summary
    if v.decision == "revise":
        assert any(f.severity == "error" for f in v.findings)


def assert_same_decision(project, revision: str) -> tuple[Verdict, Verdict]:
    review = review_migration(project, revision)
    classify = classify_escalation(project, revision)
    assert STRICTNESS[review.decision] >= STRICTNESS[classify.decision], (revision, review.summary, classify.summary)
    assert _triggers(review) == _triggers(classify), revision
    assert_consistent(review)
    assert_consistent(classify)
    return review, classify


def test_review_and_classify_agree_on_every_fixture_revision(residency: Path) -> None:
    project = load_project(cwd=residency)
    review_migration(project, all_revisions=True)  # one worker run fills the cache for the per-revision calls
    decisions = {}
    for h in load_history(project).headers:
        review, _ = assert_same_decision(project, h.revision)
        decisions[h.path.name] = review.decision
    # the point of the issue: review no longer says proceed on a drop or a protected table
    assert decisions["9692142c98f0_drop_pager_number_from_persons.py"] == "escalate"
    assert decisions["7bfbb393b25f_create_acgme_duty_hours.py"] == "escalate"
    assert "proceed" in decisions.values()  # and it still lets the safe ones through


def _example_projects(tmp_path: Path) -> dict[str, tuple[Path, list[tuple[str, str]]]]:
    """One project per dialect; every rule example (bad and good) is its own root revision."""
    bodies: dict[str, list[tuple[str, str, str]]] = {}
    for rule in all_rules():
        for i, ex in enumerate(rule.examples):
            for kind, body in (("bad", ex.bad), ("good", ex.good)):
                if body:
                    rid = f"{len(bodies.get(ex.dialect, [])):04d}{abs(hash(rule.id)) % 10**8:08d}"
                    bodies.setdefault(ex.dialect, []).append((rid, f"{rule.id} {kind} {i}", body))
    out = {}
    for dialect, items in bodies.items():
        root = make_project(
            tmp_path / dialect, [{"id": rid, "down": None, "body": body} for rid, _, body in items], url=URLS[dialect]
        )
        out[dialect] = (root, [(rid, what) for rid, what, _ in items])
    return out


def test_review_and_classify_agree_on_every_rule_example(tmp_path: Path) -> None:
    seen = set()
    for dialect, (root, items) in _example_projects(tmp_path).items():
        project = load_project(cwd=root)
        review_migration(project, all_revisions=True)
        for rid, what in items:
            review, _ = assert_same_decision(project, rid)
            seen.add(review.decision)
    assert seen == {"proceed", "revise", "escalate"}  # the examples exercise every outcome


def test_review_escalates_on_each_trigger_that_needs_no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    down = "\ndef downgrade():\n    pass\n"
    cases = {
        "drop-with-data": "def upgrade():\n    op.drop_table('invoices')\n" + down,
        "primary-key-change": "def upgrade():\n    op.drop_constraint('users_pkey', 'users', type_='primary')\n"
        "    op.create_primary_key('users_pkey', 'users', ['uuid'])\n" + down,
        "protected-table": "def upgrade():\n    op.add_column('acgme_hours', sa.Column('note', sa.Text()))\n"
        "\ndef downgrade():\n    op.drop_column('acgme_hours', 'note')\n",
        "audit-trail": "def upgrade():\n    op.alter_column('user_audit', 'actor', existing_type=sa.String(80), new_column_name='actor_id')\n"
        "\ndef downgrade():\n    op.alter_column('user_audit', 'actor_id', existing_type=sa.String(80), new_column_name='actor')\n",
        "unclear-rollback": "def upgrade():\n    op.execute(\"UPDATE users SET active = true\")\n" + down,
        # raw SQL reaches the same triggers as the alembic operations it amounts to
        "drop-with-data (raw SQL)": "def upgrade():\n    op.execute(\"DROP TABLE invoices\")\n" + down,
        "primary-key-change (raw SQL)": "def upgrade():\n    op.execute(\"ALTER TABLE users DROP CONSTRAINT users_pkey\")\n"
        "    op.execute(\"ALTER TABLE users ADD PRIMARY KEY (uuid)\")\n" + down,
    }
    for case, body in cases.items():
        trigger = case.split(" ")[0]
        project = load_project(cwd=make_project(tmp_path / case.replace(" ", "_").strip("()"), [body]))
        review = review_migration(project, "head")
        assert review.decision == "escalate" and trigger in _triggers(review), (trigger, review.summary)
        assert_consistent(review)
    # production, from the project's URL or the environment
    safe = "def upgrade():\n    op.add_column('users', sa.Column('nick', sa.Text()))\n\ndef downgrade():\n    op.drop_column('users', 'nick')\n"
    prod = load_project(cwd=make_project(tmp_path / "prod", [safe], url="postgresql://u@db.prod.example.com/app"))
    assert _triggers(review_migration(prod, "head")) == ["production-database"]
    dev = load_project(cwd=make_project(tmp_path / "dev", [safe]))
    assert review_migration(dev, "head").decision == "proceed"
    monkeypatch.setenv("DB_MIGRATE_ENV", "production")
    assert _triggers(review_migration(dev, "head")) == ["production-database"]


def test_approval_makes_summary_required_and_decision_agree() -> None:
    from db_migrate.policy import Policy
    from db_migrate.policy.classify import classify
    from db_migrate.review.model import Operation, ReviewResult, RevisionReview

    op = Operation(revision="r1", phase="upgrade", kind="drop_table", table="invoices", line=3)
    review = ReviewResult(decision="proceed", summary="", revisions=["r1"], dialect="postgresql",
                          reviews=[RevisionReview(revision="r1", path="r1.py", operations=[op])])
    escalated = classify(review, Policy())
    assert escalated.decision == "escalate"
    approved = escalated.answered(HumanApproval(asked=True, answer="approved", note="backup taken"))
    assert approved.decision == "proceed" and approved.escalation.required is False
    assert "drop-with-data" in [t.trigger for t in approved.escalation.triggers]  # still on record
    assert approved.summary.startswith("proceed:") and "backup taken" in approved.summary
    assert_consistent(approved)
    for answer in ("rejected", "declined", "cancelled"):
        kept = escalated.answered(HumanApproval(asked=True, answer=answer))
        assert kept.decision == "escalate" and isinstance(kept, ClassifyResult)
        assert_consistent(kept)


ACGME = (
    "def upgrade():\n    op.add_column('acgme_hours', sa.Column('note', sa.Text()))\n\n"
    "def downgrade():\n    op.drop_column('acgme_hours', 'note')\n"
)
CREATE = (
    "def upgrade():\n    op.create_table('scratchpad', sa.Column('id', sa.Integer(), primary_key=True))\n\n"
    "def downgrade():\n    op.drop_table('scratchpad')\n"
)


def test_a_passed_roundtrip_never_proceeds_where_review_escalates(tmp_path: Path) -> None:
    create = CREATE.replace("scratchpad", "acgme_hours")
    project = load_project(cwd=make_project(tmp_path, [create, ACGME], url="sqlite:///app.db"))
    review = review_migration(project, "head")
    rt = run_roundtrip(project, "head")
    assert rt.status == "passed" and review.decision == "escalate"
    assert rt.decision == "escalate" and _triggers(rt) == _triggers(review) == ["protected-table"]
    assert_consistent(rt)


def test_a_failed_roundtrip_names_the_failing_step_and_agrees_with_review(tmp_path: Path) -> None:
    forgets = "def upgrade():\n    op.add_column('scratchpad', sa.Column('note', sa.Text()))\n\ndef downgrade():\n    pass\n"
    project = load_project(cwd=make_project(tmp_path, [CREATE, forgets], url="sqlite:///app.db"))
    rt = run_roundtrip(project, "head")
    assert rt.status == "failed"
    assert rt.findings and all(f.severity == "error" and f.revision for f in rt.findings)
    # issue 18: the empty downgrade is one db-migrate can write (drop the column it added): every tool says
    # revise, and the review offers the downgrade as a checked patch; it used to escalate as unclear-rollback
    from db_migrate.fixes import review_with_patches

    review = review_with_patches(project, "head")  # what the review_migration tool returns
    assert rt.decision == review.decision == review_migration(project, "head").decision == "revise"
    assert rt.summary.startswith("revise:")
    missing = next(f for f in review.findings if f.rule == "missing-downgrade")
    assert "drop_column('scratchpad', 'note')" in missing.patch and "roundtrip" in missing.patch_checked


def test_a_failed_roundtrip_without_a_trigger_is_revise(tmp_path: Path) -> None:
    not_null = ("def upgrade():\n    op.add_column('scratchpad', sa.Column('note', sa.Text(), nullable=False))\n\n"
                "def downgrade():\n    op.drop_column('scratchpad', 'note')\n")
    project = load_project(cwd=make_project(tmp_path, [CREATE, not_null], url="sqlite:///app.db"))
    rt = run_roundtrip(project, "head", rows=3)
    assert rt.status == "failed" and rt.decision == "revise" and rt.summary.startswith("revise:")
    assert any(f.rule == "upgrade-failed" for f in rt.findings)
    assert review_migration(project, "head").decision == "revise"


def test_check_heads_does_not_proceed_when_a_revision_body_does_not_parse(residency: Path) -> None:
    # the header is fine (it is all check_heads reads statically); the body below it is not Python
    (residency / "alembic" / "versions" / "0bad_notes.py").write_text(
        '"""notes again\n\nRevision ID: 0bad0bad0bad\n"""\n'
        'revision = "0bad0bad0bad"\ndown_revision = "f956808bc5df"\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade():\n    op.add_column('assignments', sa.Column('x', sa.Text())\n\n\ndef downgrade():\n    pass\n"
    )
    r = check_heads(load_project(cwd=residency), drift=False)
    bad = [f for f in r.findings if f.rule == "unparseable-revision"]
    assert r.decision == "revise" and bad and bad[0].path.endswith("0bad_notes.py") and bad[0].line


def test_generate_carries_the_policy_decision_of_its_review(residency: Path) -> None:
    from db_migrate.generate import generate_migration

    person = residency / "app" / "models" / "person.py"
    text = person.read_text()
    line = "    middle_name: Mapped[str | None] = mapped_column(String(100))\n"
    assert line in text
    person.write_text(text.replace(line, ""))  # the model loses a column: autogenerate drops it
    project = load_project(cwd=residency)
    g = generate_migration(project, "drop middle name")
    assert g.created and [o.op for o in g.operations] == ["drop_column"]
    review = review_migration(project, g.revision)
    assert review.decision == "escalate" and g.decision == "escalate"
    assert _triggers(g) == _triggers(review) and "drop-with-data" in _triggers(g)
    assert_consistent(g)
