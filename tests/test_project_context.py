"""The project's own context (issue 8 §3) and findings a maintainer would not call noise.

End-to-end tests write a small Alembic project and review it through the sandbox worker, because what
they are about lives in env.py and the models (the naming convention, a lock_timeout set once).  The
rest review one revision in process.
"""

from __future__ import annotations

import textwrap

import pytest
import sqlalchemy as sa
from projectfactory import CONVENTION_METADATA, DEFAULT_ENV_PY, make_project

from db_migrate.capture.context import ProjectContext, lock_timeout_setting
from db_migrate.policy import Policy, classify
from db_migrate.project import load_project
from db_migrate.review import review_migration
from db_migrate.review.engine import review_source
from db_migrate.review.model import ReviewResult


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("DB_MIGRATE_ENV", raising=False)


def revision(up: str, down: str = "pass", head: str = "") -> str:
    return head + f"def upgrade():\n{textwrap.indent(up, '    ')}\n\n\ndef downgrade():\n{textwrap.indent(down, '    ')}\n"


def rules(outcome) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in outcome.findings:
        out.setdefault(f.rule, []).append(f)
    return out


def review_project(root, revisions, **kw):
    make_project(root, revisions, **kw)
    return review_migration(load_project(cwd=root), "head")


CONVENTION_MODELS = "import sqlalchemy as sa\n" + CONVENTION_METADATA

UNNAMED = revision(
    "op.create_foreign_key(None, 'orders', 'users', ['user_id'], ['id'], postgresql_not_valid=True)\n"
    "op.add_column('orders', sa.Column('code', sa.String(20), unique=True))",
    "op.drop_column('orders', 'code')\nop.drop_constraint('fk_orders_user_id_users', 'orders', type_='foreignkey')",
)


# --- naming convention from env.py's target_metadata --------------------------------------------------


def test_naming_convention_from_the_models_names_unnamed_constraints(tmp_path):
    r = review_project(tmp_path, [UNNAMED], models=CONVENTION_MODELS)
    assert "unnamed-constraint" not in {f.rule for f in r.findings}
    # the review shows the names alembic gives them, as the real run will
    sql = " ".join(s for op in r.reviews[0].operations for s in op.sql)
    assert "fk_orders_user_id_users" in sql and "uq_orders_code" in sql


def test_without_a_convention_the_same_revision_is_flagged(tmp_path):
    r = review_project(tmp_path, [UNNAMED], models="import sqlalchemy as sa\ntarget_metadata = sa.MetaData()\n")
    # PostgreSQL names both (orders_user_id_fkey, orders_code_key); the downgrade drops the key under another name
    (f,) = [f for f in r.findings if f.rule == "unnamed-constraint"]
    assert "foreign key on orders" in f.message and "'orders_user_id_fkey'" in f.message


def test_a_check_convention_that_needs_the_constraint_name_does_not_name_it():
    md = sa.MetaData(naming_convention={"ck": "ck_%(table_name)s_%(constraint_name)s"})
    ctx = ProjectContext(metadata=md, naming_convention={"ck": "ck_%(table_name)s_%(constraint_name)s"})
    assert not ctx.names("ck")
    assert ProjectContext(naming_convention={"fk": "fk_%(table_name)s_%(column_0_name)s"}).names("fk")


def test_env_py_that_connects_before_configure_is_not_allowed_to_connect(tmp_path):
    # an online-only env.py: no offline branch, it builds an engine and connects straight away
    db = tmp_path / "app.db"
    env_py = DEFAULT_ENV_PY.replace(
        "if context.is_offline_mode():\n    run_migrations_offline()\nelse:\n    run_migrations_online()\n",
        "run_migrations_online()\n",
    )
    r = review_project(tmp_path, [UNNAMED], models=CONVENTION_MODELS, env_py=env_py, url=f"sqlite:///{db}")
    assert not db.exists(), "env.py reached the database"
    assert "unnamed-constraint" not in {f.rule for f in r.findings}  # module-level target_metadata was read


def test_env_py_that_fails_leaves_the_rules_as_they_were(tmp_path):
    env_py = "import not_installed_anywhere_xyz\n" + DEFAULT_ENV_PY
    r = review_project(tmp_path, [UNNAMED], models=CONVENTION_MODELS, env_py=env_py)
    assert len([f for f in r.findings if f.rule == "unnamed-constraint"]) == 1


# --- lock_timeout set once in env.py ------------------------------------------------------------------

ADD_COLUMN = revision("op.add_column('users', sa.Column('nick', sa.String(40), nullable=True))", "op.drop_column('users', 'nick')")


@pytest.mark.parametrize("how", [
    ("def _run(connection) -> None:\n", "def _run(connection) -> None:\n    connection.exec_driver_sql(\"SET lock_timeout = '4s'\")\n"),
    ("poolclass=pool.NullPool,\n", "poolclass=pool.NullPool,\n        connect_args={'options': '-c lock_timeout=4000'},\n"),
], ids=["SET in run_migrations_online", "connect_args options"])
def test_lock_timeout_set_in_env_py_counts_for_every_revision(tmp_path, how):
    env_py = DEFAULT_ENV_PY.replace(*how)
    assert env_py != DEFAULT_ENV_PY
    r = review_project(tmp_path, [ADD_COLUMN], env_py=env_py)
    assert "missing-lock-timeout" not in {f.rule for f in r.findings}


def test_without_it_the_revision_gets_a_fix_about_its_own_table(tmp_path):
    r = review_project(tmp_path / "p", [ADD_COLUMN])
    [f] = [f for f in r.findings if f.rule == "missing-lock-timeout"]
    assert "users" in f.fix and "SET LOCAL lock_timeout" in f.fix


def test_a_commented_out_lock_timeout_does_not_count():
    assert lock_timeout_setting("# connection.execute(\"SET lock_timeout = '4s'\")\nx = 1\n", "env.py") is None
    assert lock_timeout_setting("x = 1\ny = \"SET lock_timeout = '4s'\"\n", "env.py") == "env.py:2"


# --- tables the same step drops or creates ------------------------------------------------------------


def test_dropping_an_index_of_a_table_dropped_in_the_same_step_is_not_a_lock_finding():
    out = review_source(revision(
        "op.drop_index('ix_sessions_user', table_name='sessions')\n"
        "op.drop_constraint('fk_sessions_user', 'sessions', type_='foreignkey')\n"
        "op.drop_column('sessions', 'legacy')\n"
        "op.drop_table('sessions')",
        "op.create_table('sessions', sa.Column('id', sa.Integer(), primary_key=True))",
    ))
    found = rules(out)
    assert "drop-index-non-concurrent" not in found and "drop-column" not in found
    assert "drop-table" in found  # the drop itself is still judged
    assert found["missing-lock-timeout"][0].table == "sessions"  # and it does lock the table


def test_an_index_on_another_table_is_still_flagged():
    out = review_source(revision(
        "op.drop_index('ix_orders_user', table_name='orders')\nop.drop_table('sessions')",
        "op.create_table('sessions', sa.Column('id', sa.Integer(), primary_key=True))\n"
        "op.create_index('ix_orders_user', 'orders', ['user_id'])",
    ))
    assert "drop-index-non-concurrent" in rules(out)


# --- helper imports are not ORM imports ----------------------------------------------------------------


@pytest.mark.parametrize(("line", "flagged"), [
    ("from myapp.migration_utils import skip_if_sqlite", False),
    ("from myapp.constants import MAX_NAME_LENGTH", False),
    ("from myapp.models import User", True),
    ("from myapp import db", True),
    ("import myapp.models.accounts", True),
    ("from myapp.services import BillingAccount", True),  # a class from the app: taken as a model
    ("from myapp.severity import service as severity_service", True),  # app services query through the ORM
])
def test_project_helpers_are_not_orm_imports(tmp_path, line, flagged):
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    out = review_source(revision("op.add_column('t', sa.Column('c', sa.Integer(), nullable=True))", "op.drop_column('t', 'c')",
                                 head=line + "\n\n"), root=tmp_path)
    assert ("orm-import-in-migration" in rules(out)) is flagged


# --- stand-ins must not decide branches ----------------------------------------------------------------

SKIPPING = revision(
    "if skip_based_on_dialect():\n    return\nop.add_column('jobs', sa.Column('owner', sa.String(80), nullable=True))",
    "if skip_based_on_dialect():\n    return\nop.drop_column('jobs', 'owner')",
    head="from not_installed_helpers_pkg import skip_based_on_dialect\n\n",
)


def test_a_guard_on_a_stand_in_records_the_way_that_changes_the_database_and_says_so():
    """``if skip_based_on_dialect(): return`` cannot be decided here: the way that goes on is what a review is for."""
    out = review_source(SKIPPING)
    found = rules(out)
    for rule in ("empty-migration", "missing-downgrade", "downgrade-not-inverse", "lossy-downgrade", "migration-raises"):
        assert rule not in found, rule
    assert [(op.phase, op.kind) for op in out.review.operations] == [("upgrade", "add_column"), ("downgrade", "drop_column")]
    (up,) = [u for u in out.unchecked if u.what.startswith("upgrade()")]
    assert "the way not taken" in up.what and "skip_based_on_dialect" in up.reason and "1 operation(s)" in up.reason


def test_a_guard_on_a_stand_in_before_a_dangerous_step_is_not_a_proceed():
    """Recording used to stop at the guard, and a revision with nothing recorded was 'proceed'."""
    out = review_source(revision(
        "if not settings.database_ready:\n    return\nop.add_column('jobs', sa.Column('owner', sa.String(80), nullable=False))",
        "op.drop_column('jobs', 'owner')", head="from not_installed_settings_pkg import settings\n\n",
    ))
    assert "add-column-not-null-no-default" in rules(out)


def test_a_guard_takes_the_value_the_rest_of_the_history_gives_it(tmp_path):
    """Most revisions go on only where ``settings.on_server`` is set; one made for the other kind of database skips
    there, so on this project it does nothing (recording both ways would have kept its table creations)."""
    head = "from not_installed_conf_pkg import settings\n\n"
    usual = [revision(f"if not settings.on_server:\n    return\nop.add_column('jobs', sa.Column('c{i}', sa.Integer()))",
                      f"if not settings.on_server:\n    return\nop.drop_column('jobs', 'c{i}')", head=head) for i in range(3)]
    other = revision("if settings.on_server:\n    return\nop.create_table('jobs_local', sa.Column('id', sa.Integer, primary_key=True))",
                     "if settings.on_server:\n    return\nraise NotImplementedError('no way back on files')", head=head)
    out = review_project(tmp_path, [*usual, other])
    assert [o.kind for r in out.reviews for o in r.operations] == []
    assert not [f for f in out.findings if f.severity != "info"]
    said = [u.reason for u in out.unchecked if "the way not taken" in u.what]
    assert len(said) == 2 and all("taken as true" in r for r in said)
    alone = review_source(other)  # without the history: the way that goes on
    assert [o.kind for o in alone.review.operations] == ["create_table"]


def test_a_nullability_restated_along_the_chain_is_not_a_scan(tmp_path):
    """The column has been NOT NULL since the base created it: restating it in a type change checks nothing. A column
    created nullable still gets the finding."""
    base = revision("op.create_table('mailbox', sa.Column('id', sa.Integer, primary_key=True),\n"
                    "                sa.Column('email', sa.String(80), nullable=False), sa.Column('note', sa.String(80)))",
                    "op.drop_table('mailbox')")
    widen = revision("op.alter_column('mailbox', 'email', existing_type=sa.String(80), type_=sa.String(255), nullable=False)\n"
                     "op.alter_column('mailbox', 'note', existing_type=sa.String(80), nullable=False)",
                     "op.alter_column('mailbox', 'note', existing_type=sa.String(80), nullable=True)")
    out = review_project(tmp_path, [base, widen])
    assert [(f.column, f.rule) for f in out.findings if f.rule == "set-not-null"] == [("note", "set-not-null")]


def test_the_type_a_column_had_is_read_from_the_history_when_the_revision_does_not_state_it(tmp_path):
    """``type_=`` without ``existing_type=`` (and no downgrade to say it): the revisions before it created the column,
    renamed it and changed its type, so what it was is known. Widening within MySQL's length prefix is in place and
    restating the same type in a rename changes nothing; a narrowing is still one."""
    base = revision("op.create_table('instances', sa.Column('id', sa.Integer, primary_key=True),\n"
                    "                sa.Column('ip', sa.String(15)), sa.Column('job', sa.String(length=100)),\n"
                    "                sa.Column('label', sa.String(80)))", "op.drop_table('instances')")
    renamed = revision("op.alter_column('instances', 'label', new_column_name='title', existing_type=sa.String(80))\n"
                       "op.alter_column('instances', 'title', type_=sa.String(120))")
    later = revision("op.alter_column('instances', 'ip', type_=sa.String(45))\n"
                     "op.alter_column('instances', 'job', new_column_name='engine_job', type_=sa.String(100))\n"
                     "op.alter_column('instances', 'title', type_=sa.String(60))")
    out = review_project(tmp_path, [base, renamed, later], url="mysql+pymysql://u@localhost/app")
    changes = {(f.revision, f.column): f for f in out.findings if f.rule == "alter-column-type"}
    assert set(changes) == {("000000000003", "title")}, [f.message for f in changes.values()]
    assert "from VARCHAR(120) to VARCHAR(60)" in changes[("000000000003", "title")].message


@pytest.mark.parametrize(("said", "url", "found"), [
    ("", "mysql+pymysql://u@localhost/app", True),
    (", existing_autoincrement=True", "mysql+pymysql://u@localhost/app", False),
    ("", "postgresql://u@localhost/app", False),  # ALTER COLUMN TYPE keeps the sequence default
])
def test_restating_a_key_the_history_made_auto_increment_must_say_so_on_mysql(tmp_path, said, url, found):
    """The base created the table with one integer key (AUTO_INCREMENT on MySQL); a later MODIFY of it without
    existing_autoincrement=True drops AUTO_INCREMENT, and inserts without an id fail afterwards."""
    base = revision("op.create_table('bundle', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('uuid', sa.String(63)))",
                    "op.drop_table('bundle')")
    widen = revision(f"op.alter_column('bundle', 'id', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False{said})",
                     f"op.alter_column('bundle', 'id', existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False{said})")
    out = review_project(tmp_path, [base, widen], url=url)
    rules = [(f.phase, f.rule) for f in out.findings if f.rule == "modify-drops-auto-increment"]
    assert rules == ([("upgrade", "modify-drops-auto-increment"), ("downgrade", "modify-drops-auto-increment")] if found else [])


def test_an_index_dropped_without_its_definition_is_re_created_as_the_history_wrote_it(tmp_path):
    """A raw ``DROP INDEX`` (or ``op.drop_index``) does not say what the index was: the downgrade the fix writes takes
    it from the revision that created it (``op.create_index(op.f(...), ...)``), never a placeholder table."""
    base = revision("op.create_table('jobs', sa.Column('id', sa.Integer, primary_key=True), sa.Column('service_id', sa.Integer))\n"
                    "op.create_index(op.f('ix_jobs_service_id'), 'jobs', ['service_id'], unique=False)",
                    "op.drop_index(op.f('ix_jobs_service_id'), table_name='jobs')\nop.drop_table('jobs')")
    drop = revision("op.execute('DROP INDEX IF EXISTS ix_jobs_service_id')\nop.execute('DROP INDEX ix_jobs_unknown')")
    out = review_project(tmp_path, [base, drop])
    (f,) = [f for f in out.findings if f.rule == "missing-downgrade"]
    assert "op.create_index('ix_jobs_service_id', 'jobs', ['service_id'], unique=False)" in f.fix
    assert "no_table" not in f.fix and "undo by hand" in f.fix  # the index no revision defines


def test_an_unused_import_the_projects_template_puts_in_every_revision_is_its_convention(tmp_path):
    head = "import shopapp.models  # noqa\n\n"
    quiet = revision("op.add_column('orders', sa.Column('note', sa.Text(), nullable=True))", "op.drop_column('orders', 'note')", head=head)
    loud = revision("op.execute(shopapp.models.Order.update().values(note='x'))", head=head)
    make_project(tmp_path, [quiet, loud])
    (tmp_path / "shopapp").mkdir()
    (tmp_path / "shopapp" / "__init__.py").write_text("")
    (tmp_path / "shopapp" / "models.py").write_text("import sqlalchemy as sa\nOrder = sa.table('orders', sa.column('note'))\n")
    mako = tmp_path / "migrations" / "script.py.mako"
    mako.write_text("from alembic import op\nimport sqlalchemy as sa\nimport shopapp.models  # noqa\n" + mako.read_text())
    out = review_migration(load_project(cwd=tmp_path), all_revisions=True)
    found = [(f.revision, f.rule) for f in out.findings if f.rule == "orm-import-in-migration"]
    assert found == [("000000000002", "orm-import-in-migration")]  # only the revision that uses the models


def test_library_code_may_still_use_a_stand_in_value():
    # a type from a missing package passed to alembic: SQLAlchemy's own checks on it keep working
    out = review_source(revision(
        "op.add_column('geo', sa.Column('shape', Geometry('POINT'), nullable=True))", "op.drop_column('geo', 'shape')",
        head="from not_installed_geo_pkg import Geometry\n\n",
    ))
    assert out.load_error is None
    assert [op.kind for op in out.review.operations] == ["add_column", "drop_column"]


# --- renames within a revision -------------------------------------------------------------------------


def test_downgrade_recreating_a_key_under_the_old_table_name_is_inverse():
    out = review_source(revision(
        "op.rename_table('member', 'members')\n"
        "op.drop_constraint('member_email_key', 'members', type_='unique')\n"
        "op.create_unique_constraint('members_email_key', 'members', ['email'])",
        "op.drop_constraint('members_email_key', 'members', type_='unique')\n"
        "op.rename_table('members', 'member')\n"
        "op.create_unique_constraint('member_email_key', 'member', ['email'])",
    ))
    assert "downgrade-not-inverse" not in rules(out)


def test_a_downgrade_that_forgets_the_key_is_still_caught():
    out = review_source(revision(
        "op.rename_table('member', 'members')\n"
        "op.drop_constraint('member_email_key', 'members', type_='unique')",
        "op.rename_table('members', 'member')",
    ))
    assert "downgrade-not-inverse" in rules(out)


# --- add-serial-column ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("column", "flagged"), [
    ("sa.Column('serial_number', sa.String(64), nullable=True)", False),
    ("sa.Column('serial', sa.Integer(), nullable=True)", False),
    ("sa.Column('n', sa.BigInteger(), sa.Identity())", True),
    ("sa.Column('n', sa.Integer(), server_default=sa.text(\"nextval('t_n_seq')\"))", True),
    ("sa.Column('n', sa.Integer(), primary_key=True)", True),  # PostgreSQL writes SERIAL for it
])
def test_add_serial_column_is_about_sequences_not_names(column, flagged):
    out = review_source(revision(f"op.add_column('devices', {column})", "op.drop_column('devices', 'n')"))
    assert ("add-serial-column" in rules(out)) is flagged


# --- UNIQUE ... USING INDEX ------------------------------------------------------------------------------


def test_dropping_a_constraint_created_using_an_index_drops_the_index():
    out = review_source(revision(
        "with op.get_context().autocommit_block():\n"
        "    op.create_index('ix_users_email_uniq', 'users', ['email'], unique=True, postgresql_concurrently=True)\n"
        "op.execute('ALTER TABLE users ADD CONSTRAINT uq_users_email UNIQUE USING INDEX ix_users_email_uniq')",
        "op.drop_constraint('uq_users_email', 'users', type_='unique')",
    ))
    assert "downgrade-not-inverse" not in rules(out)


# --- drop_constraint(None) --------------------------------------------------------------------------------


def test_drop_constraint_without_a_name_is_an_error_with_the_name_to_use():
    out = review_source(revision(
        "op.create_foreign_key('fk_orders_user_id_users', 'orders', 'users', ['user_id'], ['id'])",
        "op.drop_constraint(None, 'orders', type_='foreignkey')",
    ))
    found = rules(out)
    [f] = found["drop-constraint-without-name"]
    assert f.severity == "error" and f.phase == "downgrade"
    assert f.fix == "op.drop_constraint('fk_orders_user_id_users', 'orders', type_='foreignkey')"
    assert "unnamed-constraint" not in found
    assert not any("drop_constraint" in u.what for u in out.unchecked)  # said once, as the error


# --- a deliberate one-way step ----------------------------------------------------------------------------

BACKFILL = "op.execute(\"UPDATE accounts SET region = 'eu' WHERE region = 'europe'\")"
OVERWRITE = "op.execute(\"UPDATE accounts SET region = 'eu'\")"  # every row's old value gone


def _decided(out):
    result = ReviewResult(
        decision="proceed", summary="", revisions=[out.review.revision or "r"], findings=out.findings,
        unchecked=out.unchecked, dialect="postgresql", reviews=[out.review],
    )
    return classify(result, Policy())


def test_a_declared_one_way_data_fix_of_selected_rows_is_noted_not_escalated():
    out = review_source(revision(BACKFILL, '"""No downgrade: europe and eu were the same region."""\nraise NotImplementedError'))
    [f] = rules(out)["irreversible-by-design"]
    assert f.severity == "info" and "europe and eu were the same region" in f.message
    assert "unclear-rollback" not in {t.trigger for t in _decided(out).escalation.triggers}


def test_alembics_template_docstring_explains_nothing():
    out = review_source(revision(BACKFILL, '"""Downgrade schema."""\npass'))
    assert "irreversible-by-design" not in rules(out) and "missing-downgrade" in rules(out)


@pytest.mark.parametrize("down", [
    "# db-migrate: irreversible rows that had no region are not remembered\npass",
])
def test_irreversible_marker_is_a_declared_one_way_step_that_still_escalates(down):
    # declared, but it overwrites every row: the data only a restore brings back is a human's call
    out = review_source(revision(OVERWRITE, down))
    found = rules(out)
    assert "missing-downgrade" not in found
    [f] = found["irreversible-by-design"]
    assert f.severity == "info" and "rows that had no region are not remembered" in f.message
    result = ReviewResult(
        decision="proceed", summary="", revisions=[out.review.revision or "r"], findings=out.findings,
        unchecked=out.unchecked, dialect="postgresql", reviews=[out.review],
    )
    verdict = classify(result, Policy())
    trigger = next(t for t in verdict.escalation.triggers if t.trigger == "unclear-rollback")
    assert any("rows that had no region are not remembered" in e for e in trigger.evidence)


def test_marker_on_the_line_above_downgrade_counts_and_elsewhere_does_not():
    above = revision(BACKFILL, "pass").replace("def downgrade", "# db-migrate: irreversible merged rows\ndef downgrade")
    assert "irreversible-by-design" in rules(review_source(above))
    far = "# db-migrate: irreversible merged rows\n\n\n" + revision(BACKFILL, "pass")
    found = rules(review_source(far))
    assert "irreversible-by-design" not in found and "missing-downgrade" in found


# --- a phase that raised --------------------------------------------------------------------------------


def test_when_upgrade_raises_the_downgrade_is_not_judged_against_a_partial_upgrade():
    out = review_source(revision(
        "op.add_column('users', sa.Column('nick', sa.String(40), nullable=True))\nraise RuntimeError('boom')\n"
        "op.add_column('users', sa.Column('bio', sa.Text(), nullable=True))",
        "op.drop_column('users', 'bio')\nop.drop_column('users', 'nick')",
    ))
    found = rules(out)
    assert "downgrade-not-inverse" not in found and "lossy-downgrade" not in found
    [f] = found["migration-raises"]
    assert "Fix this first" in f.message and f.line is not None


def test_a_declared_one_way_delete_escalates_once_on_the_declaration():
    out = review_source(revision("op.execute(\"DELETE FROM challenge WHERE expiration < now()\")",
                                 '"""Challenges are ephemeral: nothing to restore."""\npass'))
    assert "irreversible-by-design" in rules(out)
    (rollback,) = [t for t in _decided(out).escalation.triggers if t.trigger == "unclear-rollback"]
    # rows deleted are a human's call even when declared; the evidence is the declaration, said once
    assert len(rollback.evidence) == 1 and "ephemeral" in rollback.evidence[0]
