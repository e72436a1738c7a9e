"""Every rule's own examples, run through the real review: the bad one fires, the good one does not."""

from __future__ import annotations

import pytest

from db_migrate.review.engine import review_source
from db_migrate.rules import all_rules

CASES = [
    pytest.param(rule, i, ex, id=f"{rule.id}-{i}")
    for rule in all_rules()
    for i, ex in enumerate(rule.examples)
]


def _findings(source: str, dialect: str, files=()):
    out = review_source(source, dialect=dialect, files=files)
    assert out.load_error is None, out.load_error
    broken = [u for u in out.unchecked if u.what.startswith("rule ")]
    assert not broken, broken  # a rule that crashes hides its findings
    return out.findings


@pytest.mark.parametrize(("rule", "i", "example"), CASES)
def test_bad_example_fires(rule, i, example):
    found = [f for f in _findings(example.bad, example.dialect, example.files) if f.rule == rule.id]
    assert found, f"{rule.id} example {i} (bad) did not fire"
    for f in found:
        assert f.message and f.line, f  # anchored and explained
        assert f.path == "example_revision.py"


@pytest.mark.parametrize(("rule", "i", "example"), [c for c in CASES if c.values[2].good])
def test_good_example_is_clean(rule, i, example):
    found = [f for f in _findings(example.good, example.dialect, example.files) if f.rule == rule.id]
    assert not found, [f.message for f in found]
