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
    assert stopped[0].line == line_of(src, "if _already_there(")  # upgrade()'s own line; the helper's is in the reason
    assert f"at line {line_of(src, 'sa.inspect(engine)')}, in what that line calls" in stopped[0].reason


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


# --- a phase whose recording stopped is not a phase that does nothing --------------------------------------


def test_an_operation_alembic_does_not_define_is_recorded_and_the_phase_goes_on():
    src = body(
        "op.add_column('badges', sa.Column('issuer', sa.String(80), nullable=True))\n"
        "op.reconcile_enum('public', 'badge_kind', ['gold'], ['gold', 'silver'])",
        "op.reconcile_enum('public', 'badge_kind', ['gold', 'silver'], ['gold'])\n"
        "op.drop_column('badges', 'issuer')",
    )
    out = review_source(src)
    kinds = [(o.phase, o.kind, o.line) for o in out.review.operations]
    assert kinds == [
        ("upgrade", "add_column", line_of(src, "'issuer', sa.String")),
        ("upgrade", "unknown_operation", line_of(src, "['gold'], ['gold', 'silver']")),
        ("downgrade", "unknown_operation", line_of(src, "['gold', 'silver'], ['gold']")),
        ("downgrade", "drop_column", line_of(src, "drop_column('badges'")),
    ]
    assert out.review.stopped == []
    said = [u for u in out.unchecked if u.what.startswith("op.reconcile_enum")]
    assert [u.line for u in said] == [kinds[1][2], kinds[2][2]] and "not checked" in said[0].reason
    assert {"migration-raises", "missing-downgrade", "downgrade-not-inverse"}.isdisjoint(rules(out))
    assert not evidence(decided(out), "unclear-rollback")


def test_an_unknown_operation_outside_a_phase_is_still_an_attribute_error():
    from alembic import op

    with pytest.raises(AttributeError):
        op.reconcile_enum  # noqa: B018  (nothing is being recorded: alembic's own answer)


_DOWNGRADE_READS_FIRST = body(
    "op.add_column('badges', sa.Column('issuer', sa.String(80), nullable=True))",
    "rows = op.get_bind().execute(sa.text('SELECT id FROM badges WHERE issuer IS NOT NULL')).fetchall()\n"
    "op.execute('ALTER TABLE badges DROP COLUMN issuer')",
)


def test_a_downgrade_stopped_by_a_data_read_is_not_said_to_do_nothing():
    out = review_source(_DOWNGRADE_READS_FIRST)
    stop = line_of(_DOWNGRADE_READS_FIRST, "SELECT id FROM badges")
    assert [(s.phase, s.line) for s in out.review.stopped] == [("downgrade", stop)]
    result = decided(out)
    assert not any("performs no operation" in e for e in evidence(result, "unclear-rollback")), result.escalation
    # recording went on past the read: the downgrade's own DROP COLUMN is there, undoing the upgrade
    assert [(o.phase, o.kind) for o in out.review.operations if o.kind != "execute"] == [
        ("upgrade", "add_column"), ("downgrade", "drop_column")]  # the read itself is an execute of a SELECT
    assert not evidence(result, "unclear-rollback")


def test_a_downgrade_that_completes_empty_is_still_said_to_do_nothing():
    """The policy's own check (the review's rollback rules may be switched off): a phase that ran to its end and
    recorded nothing does nothing."""
    src = body(
        "op.add_column('badges', sa.Column('issuer', sa.String(80), nullable=True))",
        "if False:\n    op.drop_column('badges', 'issuer')",
    )
    out = review_source(src)
    assert out.review.stopped == []
    out = out.model_copy(update={"findings": [f for f in out.findings if f.rule != "downgrade-not-inverse"]})
    assert any("performs no operation" in e for e in evidence(decided(out), "unclear-rollback"))


def test_sql_without_an_inverse_is_unchecked_when_the_downgrade_stopped_before_its_end():
    src = body(
        "op.execute(\"UPDATE badges SET issuer = 'unknown' WHERE issuer = ''\")",
        "rows = op.get_bind().execute(sa.text('SELECT badge_id FROM badge_history')).fetchall()\n"
        "op.execute(\"UPDATE badges SET issuer = '' WHERE issuer = 'unknown'\")",
    )
    result = decided(review_source(src))
    assert not any("has no inverse" in e for e in evidence(result, "unclear-rollback")), result.escalation


# --- drops after the point where recording stopped ----------------------------------------------------------

_READS_THEN_DROPS = body(
    "op.add_column('orders', sa.Column('total_cents', sa.BigInteger(), nullable=True))\n"
    "rows = op.get_bind().execute(sa.text('SELECT id, total FROM orders')).fetchall()\n"
    "for row in rows:\n"
    "    op.execute(sa.text('UPDATE orders SET total_cents = :c WHERE id = :i').bindparams(c=int(row.total * 100), i=row.id))\n"
    "op.drop_column('orders', 'total')\n"
    "with op.batch_alter_table('invoices') as batch:\n"
    "    batch.drop_column('legacy_total')\n"
    "op.drop_table('order_totals_backup')",
    "op.add_column('orders', sa.Column('total', sa.Numeric(), nullable=True))\n"
    "op.drop_column('orders', 'total_cents')",
)


def test_drops_after_a_data_read_escalate_as_recorded_drops_would():
    src = _READS_THEN_DROPS
    out = review_source(src)
    stop = line_of(src, "SELECT id, total FROM orders")
    assert [(s.phase, s.line) for s in out.review.stopped] == [("upgrade", stop)]
    result = decided(out)
    assert result.decision == "escalate"
    said = evidence(result, "drop-with-data")
    expected = [
        (line_of(src, "drop_column('orders', 'total')"), "orders.total"),
        (line_of(src, "drop_column('legacy_total')"), "invoices.legacy_total"),
        (line_of(src, "drop_table('order_totals_backup')"), "order_totals_backup"),
    ]
    assert len(said) == len(expected)
    for (line, what), text in zip(expected, said):
        assert what in text and f":{line} " in text, text


def test_the_drops_after_the_read_are_recorded_not_only_read_from_the_source():
    """Recording goes on past the statements that failed offline (the read and the loop over its rows)."""
    out = review_source(_READS_THEN_DROPS)
    drops = [(o.kind, o.table) for o in out.review.operations if o.phase == "upgrade" and o.kind.startswith("drop")]
    assert drops == [("drop_column", "orders"), ("drop_column", "invoices"), ("drop_table", "order_totals_backup")]
    assert not [o for o in out.review.operations if o.detail.get("unrecorded_after_line")]


def test_names_built_at_run_time_are_not_guessed_and_tables_made_here_hold_nothing():
    """The read and the drops share one statement (a with block), so recording cannot go on past it: the drops are
    read from the source, literal names only."""
    src = body(
        "op.create_table('order_totals_tmp', sa.Column('id', sa.Integer, primary_key=True))\n"
        "with op.get_context().autocommit_block():\n"
        "    rows = op.get_bind().execute(sa.text('SELECT id FROM orders')).fetchall()\n"
        "    for name in ('a', 'b'):\n"
        "        op.drop_column('orders', f'legacy_{name}')\n"
        "    op.drop_table('order_totals_tmp')",
        "pass",
    )
    out = review_source(src)
    late = [(o.kind, o.table, o.table_created_here) for o in out.review.operations if o.detail.get("unrecorded_after_line")]
    assert late == [("drop_table", "order_totals_tmp", True)]
    assert not evidence(decided(out), "drop-with-data")


# --- a package folder whose code is not here -----------------------------------------------------------------


def test_a_name_missing_from_a_package_folder_without_its_code_is_a_stand_in(tmp_path, monkeypatch):
    """The application's folder is there without its modules (a checkout of the migrations only): a helper taken
    from it is missing here, not in the project, so it is a stand-in (as for a module not installed) and the
    operations inside its ``with`` block are recorded and judged."""
    (tmp_path / "shopapp" / "db" / "helpers").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    src = body(
        "with helpers.foreign_keys_dropped('orders_customer_fk'):\n"
        "    op.alter_column('orders', 'customer_id', existing_type=sa.Integer(), type_=sa.BigInteger())",
        "pass",
        head="from shopapp.db import helpers\n\n",
    )
    out = review_source(src, root=tmp_path)
    assert "migration-raises" not in rules(out), [f.message for f in out.findings]
    assert not [u for u in out.unchecked if u.what.startswith("upgrade() after line")]
    assert "alter-column-type" in rules(out)  # integer -> bigint: recorded inside the helper's block
    assert any(u.what == "values taken from shopapp" for u in out.unchecked)


def test_a_type_from_an_application_package_without_its_code_is_judged_not_a_stop(tmp_path, monkeypatch):
    """``import forumapp`` finds only the migrations' folder; ``forumapp.utils.database.UTCDateTime(...)`` used as
    a column's new type is a stand-in: every changed column is judged (one stop hid them all, and the revision
    proceeded as if it changed nothing)."""
    (tmp_path / "forumapp" / "migrations").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    src = body(
        "for col in ('created', 'edited'):\n"
        "    op.alter_column('posts', col, existing_type=sa.DateTime(),\n"
        "                    type_=forumapp.utils.database.UTCDateTime(timezone=True))",
        "pass",
        head="import forumapp\n\n",
    )
    out = review_source(src, root=tmp_path)
    assert not [u for u in out.unchecked if u.what.startswith("upgrade() after line")]
    changed = [f for f in out.findings if f.rule == "alter-column-type"]
    assert {f.column for f in changed} == {"created", "edited"} and all(f.severity == "warning" for f in changed)
    assert "UTCDateTime" in changed[0].message and "not installed here" in changed[0].message


def test_a_name_missing_from_the_projects_own_module_is_still_the_revisions_error(tmp_path, monkeypatch):
    (tmp_path / "tillapp" / "db").mkdir(parents=True)
    (tmp_path / "tillapp" / "__init__.py").write_text("")
    (tmp_path / "tillapp" / "db" / "__init__.py").write_text("")
    (tmp_path / "tillapp" / "db" / "helpers.py").write_text("def something_else():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    src = body(
        "with helpers.foreign_keys_dropped('orders_customer_fk'):\n"
        "    op.alter_column('orders', 'customer_id', existing_type=sa.Integer(), type_=sa.BigInteger())",
        "pass",
        head="from tillapp.db import helpers\n\n",
    )
    assert "migration-raises" in rules(review_source(src, root=tmp_path))


def test_a_table_rebuilt_by_hand_past_a_data_read_is_neither_renamed_nor_lost():
    # SQLite's re-creation written out: move the table aside, read its rows (recording stops there), create it
    # again under its name, copy the rows back, drop the moved one
    src = body(
        "conn = op.get_bind()\n"
        "op.rename_table('notes', 'notes_tmp')\n"
        "op.add_column('notes_tmp', sa.Column('uuid', sa.String(36)))\n"
        "for row in conn.execute(sa.text('SELECT id FROM notes_tmp')).fetchall():\n"
        "    conn.execute(sa.text('UPDATE notes_tmp SET uuid = :u WHERE id = :i'), {'u': str(row.id), 'i': row.id})\n"
        "op.create_table('notes', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('uuid', sa.String(36), nullable=False))\n"
        "conn.execute(sa.text('''\n    INSERT INTO notes\n    SELECT id, uuid FROM notes_tmp\n'''))\n"
        "op.drop_table('notes_tmp')",
        "with op.batch_alter_table('notes') as b:\n    b.drop_column('uuid')",
    )
    out = review_source(src, dialect="sqlite")
    found = {f.rule for f in out.findings if f.severity != "info"}
    assert not found & {"rename-table", "downgrade-not-inverse", "drop-table"}, found
    assert "drop-with-data" not in {t.trigger for t in decided(out, "sqlite").escalation.triggers}
    # the same without the copy back loses the moved table's rows: that drop is still seen after the stop
    lost = review_source(src.replace("INSERT INTO notes", "WITH kept AS (SELECT 1)"), dialect="sqlite")
    assert "drop-with-data" in {t.trigger for t in decided(lost, "sqlite").escalation.triggers}


def test_a_column_made_by_an_uninstalled_module_does_not_fail_the_review():
    src = body("op.create_table('usersetting', sa.Column('id', sa.Integer(), primary_key=True), models.id_column(), "
               "sa.Column('node', sa.String(255)))",
               "op.drop_table('usersetting')", head="from appnobodyhashere import models\n\n")
    out = review_source(src, dialect="mysql")
    (made,) = [o for o in out.review.operations if o.kind == "create_table"]
    assert all(isinstance(c, str) for c in made.detail["columns"]) and "node" in made.detail["columns"]


# --- a fill the code shows where recording could not follow ---------------------------------------------------

_FILL_IN_A_LOOP = (
    "op.add_column('members', sa.Column('email', sa.String(254), nullable=True))\n"
    "members = sa.table('members', sa.column('id', sa.Integer), sa.column('email', sa.String))\n"
    "conn = op.get_bind()\n"
    "total = conn.scalar(sa.select(sa.func.count()).select_from(members))\n"
    "rows = conn.execute(sa.text('SELECT m.id, a.email FROM members m JOIN addresses a ON a.id = m.address_id'))\n"
    "for row in rows:\n"
    "    conn.execute({write})\n"
    "op.alter_column('members', 'email', nullable=False)"
)


@pytest.mark.parametrize("write", [
    "members.update().where(members.c.id == row.id).values(email=row.email)",
    "sa.update(members).where(members.c.id == row.id).values({'email': row.email})",
    "sa.text(\"UPDATE members SET email = :e WHERE id = :i\"), {'e': row.email, 'i': row.id}",
])
def test_set_not_null_after_a_fill_inside_a_loop_over_read_rows_is_no_finding(write):
    """The loop that fills the new column runs over rows offline recording cannot read: the write is in the code,
    so NOT NULL after it is no warning pointing at the count query before it; what the rows hold stays unchecked."""
    out = review_source(body(_FILL_IN_A_LOOP.format(write=write)))
    assert "set-not-null" not in rules(out), [f.message for f in out.findings]
    assert any("rows" in u.what or "after line" in u.what for u in out.unchecked)


def test_set_not_null_after_a_loop_that_writes_another_column_still_warns():
    write = "members.update().where(members.c.id == row.id).values(address_id=None)"
    out = review_source(body(_FILL_IN_A_LOOP.format(write=write)))
    [f] = [f for f in out.findings if f.rule == "set-not-null"]
    assert f.severity == "warning" and "may fill it" in f.message


# --- Flask-Migrate's multi-database template ---------------------------------------------------------------


def test_each_databases_functions_of_a_multi_database_revision_are_recorded():
    """``upgrade(engine_name='')`` dispatches to ``upgrade_<engine>()`` by name; offline no env.py names the engines,
    so every one of them is the phase (only ``upgrade_()`` ran before, and a revision that created tables on the
    second database was 'no upgrade operations')."""
    src = (
        _HEADER
        + "def upgrade(engine_name=''):\n    globals()['upgrade_%s' % engine_name]()\n\n\n"
        + "def downgrade(engine_name=''):\n    globals()['downgrade_%s' % engine_name]()\n\n\n"
        + "def upgrade_():\n    pass\n\n\ndef downgrade_():\n    pass\n\n\n"
        + "def upgrade_geo():\n    op.drop_column('places', 'legacy_code')\n\n\n"
        + "def downgrade_geo():\n    op.add_column('places', sa.Column('legacy_code', sa.String(8), nullable=True))\n"
    )
    out = review_source(src)
    assert [(o.phase, o.kind) for o in out.review.operations] == [("upgrade", "drop_column"), ("downgrade", "add_column")]
    assert "drop-column" in rules(out)
    said = [u for u in out.unchecked if "one database at a time" in u.what]
    assert len(said) == 2 and "upgrade_, upgrade_geo" in said[0].reason


def test_a_drop_after_a_read_in_one_databases_function_is_read_from_that_function():
    """The read stops recording inside ``upgrade_verifier()``, not ``upgrade()``: the stop is that function's line,
    and the drop after it is read from there (it proceeded, with the stop placed on a line of db-migrate's own)."""
    src = (
        _HEADER
        + "def upgrade(engine_name=''):\n    globals()['upgrade_%s' % engine_name]()\n\n\n"
        + "def downgrade(engine_name=''):\n    globals()['downgrade_%s' % engine_name]()\n\n\n"
        + "def upgrade_verifier():\n    conn = op.get_bind()\n"
        + "    rows = conn.execute(sa.text('SELECT id, allowlist FROM agents')).fetchall()\n"
        + "    op.bulk_insert(sa.table('allowlists', sa.column('body')), [{'body': r[1]} for r in rows])\n"
        + "    with op.batch_alter_table('agents') as batch_op:\n        batch_op.drop_column('allowlist')\n\n\n"
        + "def downgrade_verifier():\n    pass\n"
    )
    out = review_source(src)
    [stop] = [u for u in out.unchecked if u.what.startswith("upgrade() after line")]
    assert "SELECT id, allowlist" in src.splitlines()[int(stop.what.split("line ")[1]) - 1]
    assert [(o.kind, o.table, o.column) for o in out.review.operations if o.kind == "drop_column"] == [("drop_column", "agents", "allowlist")]


def test_a_membership_test_on_the_inspectors_names_is_a_branch_recorded_both_ways():
    """``if 'legacy_map' not in insp.get_table_names(): return`` offline: the names are unknown, so the guard is
    recorded both ways and the way that goes on to the drop is kept (it returned early, and proceeded)."""
    up = "insp = sa.inspect(op.get_bind())\nif 'legacy_map' not in insp.get_table_names():\n    return\nop.drop_table('legacy_map')"
    out = review_source(body(up), dialect="mysql")
    assert [(o.kind, o.table) for o in out.review.operations] == [("drop_table", "legacy_map")]
    assert any("whether 'legacy_map' is in" in u.reason for u in out.unchecked)
    guarded = "insp = sa.inspect(op.get_bind())\nif 'sessions' in insp.get_table_names():\n    op.drop_table('sessions')"
    out = review_source(body("op.create_table('sessions', sa.Column('id', sa.Integer()))", guarded))
    assert "downgrade-not-inverse" not in rules(out)


def test_sqlalchemy_1_select_of_a_list_is_recorded_as_2_spells_it():
    """``sa.select([col], where)`` is what the project's pinned SQLAlchemy 1.x takes; under the 2.x db-migrate runs
    with it raised, and recording stopped before the DELETE that uses it."""
    head = "features = sa.table('features', sa.column('uuid'), sa.column('name'))\nkeys = sa.table('keys', sa.column('feature_uuid'))\n\n"
    up = ("picked = sa.select([features.c.uuid], features.c.name == 'listen')\n"
          "op.execute(keys.delete().where(keys.c.feature_uuid.in_(picked)))")
    out = review_source(body(up, head=head))
    assert [(o.kind, o.table) for o in out.review.operations] == [("execute", "keys")]
    assert any("SELECT features.uuid" in s and "features.name = 'listen'" in s for o in out.review.operations for s in o.sql)
    assert not [u for u in out.unchecked if "no longer has" in u.reason]


def test_a_type_name_sqlalchemy_2_removed_is_recorded_as_the_type_it_stood_for():
    out = review_source(body("op.add_column('bans', sa.Column('ip', sa.Binary(length=16), nullable=True))",
                             "op.drop_column('bans', 'ip')"), dialect="mysql")
    assert "migration-raises" not in rules(out)
    assert any("ADD COLUMN ip BLOB" in s for o in out.review.operations for s in o.sql)


def test_a_name_missing_from_the_installed_sqlalchemy_is_ours_not_the_revisions():
    out = review_source(body("op.add_column('bans', sa.Column('ip', sa.NoSuchLegacyType(), nullable=True))"))
    assert "migration-raises" not in rules(out)
    assert any("no longer has" in u.reason for u in out.unchecked)


def test_a_question_put_to_a_person_at_the_terminal_is_the_projects_gate_not_its_bug():
    """``if input('Type OKAY: ') != 'OKAY': sys.exit(1)`` before a drop: offline nobody answers (it was reported as
    migration-raises, EOFError, with a fix that removes the gate); the answer is a stand-in, both ways recorded."""
    up = "if input('Type OKAY to drop the archive: ') != 'OKAY':\n    sys.exit(1)\nop.drop_table('archive')"
    out = review_source(body(up, head="import sys\n\n"))
    assert "migration-raises" not in rules(out) and "drop-table" in rules(out)
    assert any("types at input()" in u.reason for u in out.unchecked)


def test_a_class_built_on_a_type_not_here_is_a_column_type_and_a_1x_call_is_ours():
    head = "from depot_fields import UploadedFileField\n\n\nclass Thumbnail(UploadedFileField):\n    pass\n\n\n"
    out = review_source(body("op.add_column('users', sa.Column('avatar', Thumbnail(), nullable=True))",
                             "op.drop_column('users', 'avatar')", head=head))
    assert "migration-raises" not in rules(out)
    assert any("ADD COLUMN avatar Thumbnail" in s for o in out.review.operations for s in o.sql)
    legacy = review_source(body("users = sa.table('users', sa.column('email'))\n"
                                "op.get_bind().execute(users.update(values={'email': sa.func.lower(users.c.email)}))"))
    assert "migration-raises" not in rules(legacy) and any("no longer has" in u.reason for u in legacy.unchecked)


def test_a_guard_that_returns_and_a_second_guard_after_it_are_both_answered_to_reach_the_operation():
    """``if 't' not in names: return``, then ``if not pk['constrained_columns']: create_primary_key``: the way past the
    first guard stops at the second (no operation yet); the early return ends with none either. The way that may go
    on is kept, and the key is recorded (it was 'no upgrade operations', proceed)."""
    up = ("insp = sa.inspect(op.get_bind())\nif 'links' not in insp.get_table_names():\n    return\n"
          "pk = insp.get_pk_constraint('links')\nif not pk['constrained_columns']:\n"
          "    op.create_primary_key('pk_links', 'links', ['group_id', 'port_id'])")
    out = review_source(body(up), dialect="mysql")
    assert [(o.kind, o.table) for o in out.review.operations] == [("create_primary_key", "links")]
    assert "change-primary-key" in rules(out)


def test_a_drop_after_a_read_in_a_loop_over_a_literal_list_is_read_for_each_table():
    head = "tables = ['groups_v2', 'rules_v2']\n\n\n"
    up = ("for table in tables:\n    rows = op.get_bind().execute(sa.text(f'SELECT id, description FROM {table}')).fetchall()\n"
          "    op.drop_column(table, 'description')")
    out = review_source(body(up, head=head), dialect="mysql")
    assert [(o.kind, o.table, o.column) for o in out.review.operations if o.kind == "drop_column"] == [
        ("drop_column", "groups_v2", "description"), ("drop_column", "rules_v2", "description")]


def test_two_mixins_not_here_are_two_bases_and_a_schema_not_here_joins_a_name():
    """``class Model(MixinA, MixinB)`` of two names not installed loaded as 'duplicate base class'; a schema constant
    from a module not here was added to "." by SQLAlchemy and every statement on it lost its SQL."""
    head = ("from app_models import MixinA, MixinB, SCHEMA\n\n\nclass Row(MixinA, MixinB):\n    pass\n\n\n")
    out = review_source(body("op.add_column('hosts', sa.Column('c', sa.Integer()), schema=SCHEMA)",
                             "op.drop_column('hosts', 'c', schema=SCHEMA)", head=head))
    assert out.load_error is None and "migration-raises" not in rules(out)
    assert not [u for u in out.unchecked if u.what.startswith(("SQL of", "rule "))], out.unchecked
    assert any("ADD COLUMN c INTEGER" in s for o in out.review.operations for s in o.sql)


# --- rows deleted where recording could not follow -----------------------------------------------------------

_CLEARS_AFTER_A_READ = (
    "CLEAR_CONFIGS = 'DELETE FROM experience_config;'\n\n\n"
    "def clear(bind):\n    log.info('delete from the old experiences first')\n"
    "    bind.execute(sa.text('DELETE FROM experience'))\n    bind.execute(sa.text(CLEAR_CONFIGS))\n\n\n"
    "def migrate(bind):\n    rows = bind.execute(sa.text('SELECT id FROM experience')).fetchall()\n"
    "    backup(rows)\n    clear(bind)\n\n\n"
)


def test_rows_a_helper_deletes_after_a_read_are_read_from_the_source_and_escalate():
    """The upgrade's one statement calls a helper that reads rows (recording stops there), then one that clears two
    tables: the literal DELETEs (one in a module constant) are what the upgrade does, so they are judged."""
    src = body("migrate(op.get_bind())", "pass", head="import logging\nlog = logging.getLogger(__name__)\n\n"
               + _CLEARS_AFTER_A_READ)
    out = review_source(src)
    deletes = [o for o in out.review.operations if o.kind == "execute" and o.detail.get("unrecorded_after_line")]
    assert sorted(o.table for o in deletes) == ["experience", "experience_config"]  # not the log line's "the"
    result = decided(out)
    assert {"drop-with-data", "unclear-rollback"} <= {t.trigger for t in result.escalation.triggers}
    assert any("experience_config" in e for e in evidence(result, "drop-with-data"))


def test_an_item_of_a_value_not_here_is_a_stand_in_and_sql_built_from_it_still_parses():
    """``current_app.config['SENDER']`` at import time and spliced into SQL: the revision loads (it was 'no upgrade
    operations' though it inserts rows), and the statement is read for its kind and table."""
    head = "from flask import current_app\n\nSENDER = current_app.config['NOTIFY_SENDER']\n\n"
    src = body(f"op.execute(f\"INSERT INTO sms_senders (id, sender) VALUES (1, '{{SENDER}}')\")",
               "op.execute(f\"DELETE FROM sms_senders WHERE sender = '{SENDER}'\")", head=head)
    out = review_source(src)
    assert out.load_error is None
    assert [(o.kind, o.detail.get("sql_kind"), o.table or (o.detail.get("tables") or [None])[0])
            for o in out.review.operations if o.phase == "upgrade"] == [("execute", "INSERT", "sms_senders")]
    assert not [u for u in out.unchecked if "parser cannot read" in u.reason]
    assert "unclear-rollback" not in [t.trigger for t in decided(out).escalation.triggers]


def test_a_revision_that_cannot_be_loaded_here_is_never_said_to_have_no_operations():
    out = review_source(body("op.drop_table('legacy')", head="import app_models_pkg_missing\n\nX = 1 / app_models_pkg_missing.ZERO\n\n"))
    assert out.load_error
    summary = decided(out).summary
    assert "no upgrade operations" not in summary and "could not be recorded" in summary


def test_the_table_of_a_model_that_is_not_here_is_a_stand_in():
    """``op.bulk_insert(LetterRate.__table__, rows)`` with the application's model not installed: the rows are still
    recorded as inserted, not a migration-raises error about ``__table__``."""
    src = body("op.bulk_insert(LetterRate.__table__, [{'id': 1, 'rate': 0.3}])", "op.execute('DELETE FROM letter_rates WHERE id = 1')",
               head="from app_pkg_not_installed.models import LetterRate\n\n")
    out = review_source(src)
    assert "migration-raises" not in rules(out), [f.message for f in out.findings]
    assert not [u for u in out.unchecked if u.what.startswith("upgrade() after line")]
