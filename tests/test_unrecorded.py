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


# --- the project's own alembic.ini options, read by a revision --------------------------------------------

_READS_OPTION = '''from alembic import context

def upgrade():
    schema = context.config.get_main_option("tenant_schema")
    op.add_column("notes", sa.Column("pinned", sa.Boolean(), nullable=True), schema=schema)

def downgrade():
    config = op.get_context().config
    op.drop_column("notes", "pinned", schema=config.get_section(config.config_ini_section)["tenant_schema"])
'''

_PROBES_DATABASE = '''from sqlalchemy import engine_from_config

def _already_there(table):
    config = op.get_context().config
    engine = engine_from_config(config.get_section(config.config_ini_section), prefix="sqlalchemy.")
    return sa.inspect(engine).has_table(table)

def upgrade():
    if _already_there("ledgers"):
        return
    op.create_table("ledgers", sa.Column("id", sa.Integer, primary_key=True))

def downgrade():
    op.drop_table("ledgers")
'''


def test_a_revision_reads_the_options_of_the_projects_config_section():
    from db_migrate.capture.context import ProjectContext

    context = ProjectContext(ini_section="tenants", ini_options={"tenant_schema": "acme"})
    out = review_source(_HEADER + _READS_OPTION, context=context)
    assert "migration-raises" not in rules(out)
    sql = {o.phase: o.sql for o in out.review.operations}
    assert sql["upgrade"] == ["ALTER TABLE acme.notes ADD COLUMN pinned BOOLEAN"]
    assert sql["downgrade"] == ["ALTER TABLE acme.notes DROP COLUMN pinned"]


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_an_engine_the_revision_builds_from_its_config_connects_to_nothing_and_that_is_ours(dialect):
    """Without the project's section the revision failed with KeyError 'url', reported as its own error; with it,
    its engine may be built but cannot connect: what depends on the database is unchecked, not a bug."""
    src = _HEADER + _PROBES_DATABASE
    out = review_source(src, dialect=dialect)
    assert "migration-raises" not in rules(out), [f.message for f in out.findings]
    stopped = [u for u in out.unchecked if u.what.startswith("upgrade() after line")]
    assert stopped and "connects to no database" in stopped[0].reason, out.unchecked
    assert stopped[0].line == line_of(src, "sa.inspect(engine)")


def test_the_mirrored_section_holds_no_real_database_url(tmp_path):
    from db_migrate.capture.context import ini_options
    from db_migrate.project import load_project
    from projectfactory import make_project

    make_project(tmp_path, [], url="postgresql://owner:hunter2-secret@db.internal:5432/app")
    ini = tmp_path / "alembic.ini"
    ini.write_text(ini.read_text() + "tenant_schema = acme\nreplica.url = mysql+pymysql://ro:s3cret-too@replica/app\n")
    options = ini_options(load_project(cwd=tmp_path))
    assert options["tenant_schema"] == "acme"
    assert options["script_location"] == str(tmp_path / "migrations")
    assert options["sqlalchemy.url"].startswith("postgresql") and "db.internal" not in options["sqlalchemy.url"]
    assert options["replica.url"].startswith("mysql+pymysql://") and "replica/" not in options["replica.url"]
    assert "secret" not in repr(options) and "s3cret" not in repr(options)


def test_review_records_a_revision_reading_its_config_and_prints_no_password(tmp_path):
    from db_migrate.project import load_project
    from db_migrate.review import review_migration
    from projectfactory import make_project

    make_project(tmp_path, [_READS_OPTION], url="postgresql://owner:hunter2-secret@db.internal:5432/app")
    ini = tmp_path / "alembic.ini"
    ini.write_text(ini.read_text() + "tenant_schema = acme\n")
    result = review_migration(load_project(cwd=tmp_path), "head")
    assert "migration-raises" not in {f.rule for f in result.findings}, result.findings
    ops = [o for r in result.reviews for o in r.operations]
    assert [o.sql for o in ops if o.phase == "upgrade"] == [["ALTER TABLE acme.notes ADD COLUMN pinned BOOLEAN"]]
    assert "hunter2" not in result.model_dump_json() and "db.internal" not in result.model_dump_json()
