"""What offline recording could not see is not absent, and failures of the recording are not the project's.

Each test is a small revision written for this suite after a pattern seen when field-testing public histories:
an operation a plugin adds to ``op``, a read of the project's own alembic.ini options, a data read that stops
recording before later DDL, an index naming a column twice.  Reviews run in-process (``review_source``); the
policy runs on that review (pure).
"""

from __future__ import annotations

import pytest

from db_migrate.policy import Policy, classify
from db_migrate.review.engine import review_source
from db_migrate.review.model import ReviewResult


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("DB_MIGRATE_ENV", raising=False)


_HEADER = "from alembic import op\nimport sqlalchemy as sa\n\nrevision = 'c0ffee000002'\ndown_revision = 'c0ffee000001'\n\n"


def body(up: str, down: str = "pass", head: str = "") -> str:
    def fn(name: str, text: str) -> str:
        return f"def {name}():\n" + "".join(f"    {line}\n" for line in text.strip("\n").splitlines()) + "\n\n"

    return _HEADER + head + fn("upgrade", up) + fn("downgrade", down)


def line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), start=1) if text in line)


def rules(outcome) -> set[str]:
    return {f.rule for f in outcome.findings}


def decided(outcome, dialect: str = "postgresql"):
    result = ReviewResult(
        decision="proceed", summary="", revisions=[outcome.review.revision or "r"], findings=outcome.findings,
        unchecked=outcome.unchecked, dialect=dialect, reviews=[outcome.review],
    )
    return classify(result, Policy())


def evidence(result, trigger: str) -> list[str]:
    return [e for t in result.escalation.triggers if t.trigger == trigger for e in t.evidence]


# --- an index that names a column twice ------------------------------------------------------------------


def test_index_naming_a_column_twice_is_recorded_and_judged():
    src = body(
        "op.create_index('ix_visits_day_twice', 'visits', ['day', 'day'])",
        "op.drop_index('ix_visits_day_twice', table_name='visits')",
    )
    out = review_source(src)
    assert not [u for u in out.unchecked if "Duplicate" in u.reason], out.unchecked
    create = next(o for o in out.review.operations if o.kind == "create_index")
    assert create.sql == ["CREATE INDEX ix_visits_day_twice ON visits (day, day)"]
    found = [f for f in out.findings if f.rule == "create-index-non-concurrent"]
    assert found and found[0].line == line_of(src, "ix_visits_day_twice', 'visits'")
