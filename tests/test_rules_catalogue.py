"""The rule catalogue itself: every rule documented, ids stable, the issue's rules all present."""

from __future__ import annotations

import re

import pytest

from db_migrate.rules import all_rules, catalogue

REQUIRED = {
    "add-column-not-null-no-default", "add-column-volatile-default", "set-not-null", "alter-column-type",
    "create-index-non-concurrent", "drop-index-non-concurrent", "concurrent-index-in-transaction",
    "add-foreign-key-validating", "add-check-constraint-validating", "add-unique-constraint", "change-primary-key",
    "drop-column", "drop-table", "rename-column", "rename-table", "destructive-sql", "raw-sql-interpolation",
    "missing-downgrade", "downgrade-not-inverse", "lossy-downgrade", "orm-import-in-migration", "empty-migration",
    "unnamed-constraint", "missing-lock-timeout", "enum-value-change", "sqlite-alter-needs-batch",
}
KNOWN_DIALECTS = {"postgresql", "mysql", "mariadb", "sqlite"}


def test_required_rules_present():
    assert REQUIRED - {r.id for r in all_rules()} == set()


def test_ids_unique_and_kebab_case():
    ids = [r.id for r in all_rules()]
    assert len(ids) == len(set(ids))
    for i in ids:
        assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)+", i), i


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.id)
def test_rule_is_documented(rule):
    assert rule.title and rule.title[0].isupper()
    assert rule.severity in ("error", "warning", "info")
    assert set(rule.phases) <= {"upgrade", "downgrade"} and rule.phases
    assert rule.dialects is None or set(rule.dialects) <= KNOWN_DIALECTS
    assert len(rule.why) > 80, "why must say concretely what goes wrong"
    assert "op." in rule.fix or "MetaData" in rule.fix or "raise" in rule.fix.lower(), "fix should be an Alembic snippet"
    assert rule.examples and all(e.bad for e in rule.examples)
    assert any(e.good for e in rule.examples), "at least one safe alternative"
    for e in rule.examples:
        assert rule.applies_to(e.dialect), f"example for {e.dialect} but rule applies to {rule.dialects}"


def test_catalogue_is_generated_from_rules():
    cat = catalogue()
    assert [c.id for c in cat] == sorted(r.id for r in all_rules())
    entry = next(c for c in cat if c.id == "concurrent-index-in-transaction")
    assert entry.severity == "error" and entry.dialects == ["postgresql"]
    assert entry.examples and entry.examples[0]["bad"]
    # JSON-serialisable as the MCP resource / `db-migrate rules` will emit it
    assert all(c.model_dump(mode="json") for c in cat)
