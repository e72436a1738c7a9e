"""``[tool.db-migrate]``: rule switches, severities, excluded paths, a baseline and the target server (issue 8 §4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from projectfactory import make_project

from db_migrate.cli.init import config_template
from db_migrate.errors import ConfigInvalid
from db_migrate.policy import Policy, policy_from_settings
from db_migrate.classify import classify_escalation
from db_migrate.policy.settings import known_rule_ids, parse_target_version
from db_migrate.project import load_project
from db_migrate.review import review_migration
from db_migrate.rules import all_rules

NOT_NULL = (
    "def upgrade():\n    op.add_column('users', sa.Column('age', sa.Integer(), nullable=False))\n\n"
    "def downgrade():\n    op.drop_column('users', 'age')\n"
)
CONSTANT_DEFAULT = (
    "def upgrade():\n    op.add_column('users', sa.Column('level', sa.Integer(), server_default='1'))\n\n"
    "def downgrade():\n    op.drop_column('users', 'level')\n"
)
DROP = "def upgrade():\n    op.drop_table('invoices')\n\ndef downgrade():\n    pass\n"


def project_with(tmp_path: Path, revisions: list, settings: str = "", **kw):
    root = make_project(tmp_path, revisions, **kw)
    (root / "pyproject.toml").write_text("[tool.db-migrate]\n" + settings)
    return load_project(cwd=root)


def _rules(result) -> set[str]:
    return {f.rule for f in result.findings}


def test_rule_ids_read_from_source_are_the_catalogue() -> None:
    assert list(known_rule_ids()) == sorted(r.id for r in all_rules())


def test_disable_enable_and_severity(tmp_path: Path) -> None:
    plain = review_migration(project_with(tmp_path / "a", [NOT_NULL]), "head")
    assert {"add-column-not-null-no-default", "missing-lock-timeout"} <= _rules(plain) and plain.decision == "revise"

    off = review_migration(project_with(tmp_path / "b", [NOT_NULL], 'disable = ["missing-lock-*"]\n'), "head")
    assert "missing-lock-timeout" not in _rules(off) and "add-column-not-null-no-default" in _rules(off)

    only = review_migration(
        project_with(tmp_path / "c", [NOT_NULL], 'disable = ["*"]\nenable = ["add-column-not-null-no-default"]\n'), "head"
    )
    assert _rules(only) == {"add-column-not-null-no-default"}

    softer = review_migration(
        project_with(tmp_path / "d", [NOT_NULL], '[tool.db-migrate.severity]\nadd-column-not-null-no-default = "warning"\n'),
        "head",
    )
    (f,) = [f for f in softer.findings if f.rule == "add-column-not-null-no-default"]
    assert f.severity == "warning" and softer.decision == "proceed"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"disable": ["missing-lock-timeut"]}, "did you mean 'missing-lock-timeout'"),
        ({"severity": {"set-not-nul": "info"}}, "did you mean 'set-not-null'"),
        ({"severity": {"set-not-null": "fatal"}}, "severity.set-not-null"),
        ({"target_version": "postgres eleven"}, "e.g. 'postgresql 11'"),
        ({"baselin": "abc"}, "did you mean 'baseline'"),
    ],
)
def test_bad_keys_are_refused_with_what_was_meant(settings: dict, expected: str) -> None:
    with pytest.raises(ConfigInvalid) as e:
        policy_from_settings(settings)
    assert expected in e.value.message


def test_exclude_skips_files_in_review_all_and_says_so(tmp_path: Path) -> None:
    project = project_with(
        tmp_path, [{"body": NOT_NULL, "name": "legacy_0001.py"}, {"body": CONSTANT_DEFAULT}],
        'exclude = ["migrations/versions/legacy_*.py"]\n',
    )
    r = review_migration(project, all_revisions=True)
    assert r.revisions == ["000000000002"]
    assert any("excluded" in u.reason and u.what.startswith("1 ") for u in r.unchecked)


def test_baseline_makes_older_revisions_history(tmp_path: Path) -> None:
    revisions = [DROP, NOT_NULL, CONSTANT_DEFAULT]
    project = project_with(tmp_path, revisions, 'baseline = "000000000002"\n')
    r = review_migration(project, all_revisions=True)
    assert r.revisions == ["000000000003"] and r.decision == "proceed"
    assert any("baseline" in u.what for u in r.unchecked)
    # classify on a revision before the baseline: no trigger fires, and it says why
    old = classify_escalation(project, "000000000001")
    assert old.decision != "escalate" and not old.escalation.triggers
    assert any("baseline" in u.reason for u in old.unchecked)
    # without the baseline the same revision escalates
    assert classify_escalation(project_with(tmp_path / "plain", revisions), "000000000001").decision == "escalate"


def test_a_baseline_that_is_no_revision_is_a_config_error(tmp_path: Path) -> None:
    project = project_with(tmp_path, [CONSTANT_DEFAULT], 'baseline = "feedfacefeed"\n')
    with pytest.raises(ConfigInvalid) as e:
        review_migration(project, "head")
    assert "feedfacefeed" in e.value.message


def test_target_version_decides_whether_a_constant_default_rewrites(tmp_path: Path) -> None:
    rule = "add-column-volatile-default"
    assert rule not in _rules(review_migration(project_with(tmp_path / "now", [CONSTANT_DEFAULT]), "head"))
    eleven = project_with(tmp_path / "pg11", [CONSTANT_DEFAULT], 'target_version = "postgresql 11"\n')
    assert rule not in _rules(review_migration(eleven, "head"))
    ten = project_with(tmp_path / "pg10", [CONSTANT_DEFAULT], 'target_version = "postgresql 10.4"\n')
    (f,) = [f for f in review_migration(ten, "head").findings if f.rule == rule]
    assert "10.4" in f.message and "target_version" in f.message
    # a version for another engine does not apply to a PostgreSQL review
    other = project_with(tmp_path / "my", [CONSTANT_DEFAULT], 'target_version = "mysql 5.7"\n')
    assert rule not in _rules(review_migration(other, "head"))
    assert parse_target_version("MariaDB 10.6") == ("mysql", (10, 6))


def test_suppression_comments_keep_their_reason(tmp_path: Path) -> None:
    body = (
        "def upgrade():\n"
        "    # db-migrate: ignore[add-column-not-null-no-default] users is empty in every environment\n"
        "    op.add_column('users', sa.Column('age', sa.Integer(), nullable=False))\n\n"
        "def downgrade():\n    op.drop_column('users', 'age')\n"
    )
    r = review_migration(project_with(tmp_path, [body]), "head")
    (s,) = [s for s in r.suppressed if s.rule == "add-column-not-null-no-default"]
    assert s.reason == "users is empty in every environment"
    assert "add-column-not-null-no-default" not in _rules(r)


def test_init_template_names_every_new_key() -> None:
    text = config_template()
    for key in ("disable", "enable", "severity", "exclude", "baseline", "target_version"):
        assert f"# {key} = " in text
    assert Policy().target is None
