"""Fixes as verified patches, and escalating only what an agent cannot fix (issue 18, points 3 and 4).

The loop an agent runs: review -> apply the finding's patch with ``git apply`` in the project's own git
repository -> review again -> the right decision, and the revision's roundtrip passes, on the project's
engine (real PostgreSQL and MariaDB, SQLite).  Each test makes and drops its own databases.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from databases import sqlite_database, throwaway_database
from projectfactory import make_project

from db_migrate.classify import classify_escalation
from db_migrate.project import load_project
from db_migrate.fixes import review_with_patches as review_migration  # the tool: findings with checked patches
from db_migrate.fixes.patches import apply_edit, unified_patch
from db_migrate.roundtrip import test_roundtrip as run_roundtrip
from db_migrate.verdict import SourceEdit

GIT = shutil.which("git")
NO_URL = "no database_url given"

ORDERS_WITH_ENUM = '''def upgrade():
    op.create_table("orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.Enum("new", "paid", name="order_status"), nullable=False),
        sa.PrimaryKeyConstraint("id"))


def downgrade():
    op.drop_table("orders")
'''
NOTE_WITHOUT_DOWNGRADE = '''def upgrade():
    op.add_column("orders", sa.Column("note", sa.String(200), nullable=True))


def downgrade():
    pass
'''


def git_repo(root: Path) -> None:
    """The project as its own git repository, everything committed (what an agent works in)."""
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "start"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def git_apply(root: Path, patch: str) -> None:
    """``git apply --check`` then ``git apply``, as an agent would run them; fails the test when git refuses."""
    for args in (["apply", "--check"], ["apply"]):
        done = subprocess.run(["git", *args, "-"], cwd=root, input=patch, text=True, capture_output=True)
        assert done.returncode == 0, done.stderr


def only(findings, rule):
    (f,) = [f for f in findings if f.rule == rule]
    return f


def no_database_notes(verdict) -> list[str]:
    return [f"{u.what}: {u.reason}" for u in verdict.unchecked if NO_URL in u.reason]


# ---------------------------------------------------------------------------- text edits


@pytest.mark.parametrize(("source", "edit", "expected"), [
    ("def upgrade():\n    op.add_column('t', c)\n\ndef downgrade():\n    pass\n",
     SourceEdit(mode="replace-body", code="op.drop_column('t', 'c')"),
     "def downgrade():\n    op.drop_column('t', 'c')\n"),
    ("def downgrade() -> None:\n    \"\"\"Undo.\"\"\"\n    # ### commands ###\n    op.drop_table('t')\n    # ### end ###\n",
     SourceEdit(mode="append", code="op.execute('DROP TYPE IF EXISTS s')"),
     "    op.drop_table('t')\n    op.execute('DROP TYPE IF EXISTS s')\n    # ### end ###\n"),
    ("def upgrade():\n    op.add_column('t', c)\n",  # no downgrade() at all, no final newline
     SourceEdit(mode="replace-body", code="op.drop_column('t', 'c')"),
     "\n\n\ndef downgrade() -> None:\n    op.drop_column('t', 'c')\n"),
    ("def upgrade():\n    with op.batch_alter_table('t') as b:\n        b.add_column(\n            c)\n\ndef downgrade():\n    pass\n",
     SourceEdit(mode="replace-statement", function="upgrade", line=4, code="b.add_column(d)"),
     "    with op.batch_alter_table('t') as b:\n        b.add_column(d)\n\n"),
])
def test_an_edit_lands_in_the_function_at_its_indentation(source, edit, expected):
    new = apply_edit(source, edit)
    assert new is not None and expected in new


def test_an_edit_that_cannot_be_placed_gives_no_text():
    assert apply_edit("def upgrade():\n    pass\n", SourceEdit(mode="append", code="x()")) is None  # no downgrade()
    assert apply_edit("def downgrade(:\n", SourceEdit(mode="append", code="x()")) is None  # not Python


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_a_patch_of_a_file_without_a_final_newline_applies(tmp_path):
    old = "def downgrade():\n    pass"
    (tmp_path / "m.py").write_text(old)
    git_repo(tmp_path)
    git_apply(tmp_path, unified_patch("m.py", old, apply_edit(old, SourceEdit(mode="replace-body", code="op.drop_table('t')"))))
    assert "op.drop_table('t')" in (tmp_path / "m.py").read_text()


# ---------------------------------------------------------------------------- the loop, PostgreSQL


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_postgresql_enum_table_and_empty_downgrade_converge_by_patches(pg_url, tmp_path):
    for user_db in throwaway_database(pg_url, [], prefix="dbm_i18b"):
        root = make_project(tmp_path, [ORDERS_WITH_ENUM, NOTE_WITHOUT_DOWNGRADE], url=user_db)
        git_repo(root)
        project = load_project(cwd=root)

        # 1. the first autogenerated revision of a project with an enum: revise, never unclear-rollback
        first = review_migration(project, "000000000001")
        assert first.decision == "revise", first.summary
        assert not first.escalation.triggers  # no evidence about an op.execute (CREATEENUM) the file does not hold
        left = only(first.findings, "enum-type-left-behind")
        assert left.patch and left.patch_checked == ["git-apply", "review", "roundtrip"]
        assert left.patch.startswith("diff --git a/migrations/versions/000000000001_rev.py")
        # without the patch, re-upgrading fails on the type the downgrade left
        assert run_roundtrip(project, "000000000001", database_url=pg_url).status == "failed"
        git_apply(root, left.patch)
        again = review_migration(project, "000000000001")
        assert again.decision == "proceed", [f.rule for f in again.findings]
        assert run_roundtrip(project, "000000000001", database_url=pg_url).status == "passed"

        # 2. a hand-written nullable column with downgrade(): pass is revise with the downgrade written for it
        second = review_migration(project, "000000000002")
        assert second.decision == "revise" and not second.escalation.triggers, second.summary
        missing = only(second.findings, "missing-downgrade")
        assert "+    op.drop_column('orders', 'note')" in missing.patch and "roundtrip" in missing.patch_checked
        assert classify_escalation(project, "000000000002").decision == "revise"  # one decision
        git_apply(root, missing.patch)
        assert review_migration(project, "000000000002").decision == "proceed"
        assert run_roundtrip(project, "000000000002", database_url=pg_url).status == "passed"


# ---------------------------------------------------------------------------- NOT NULL on a populated table, SQLite


MODELS = '''import sqlalchemy as sa
target_metadata = sa.MetaData()
sa.Table("orders", target_metadata, sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("currency", sa.String(3), nullable=False, default="EUR"),
    sa.Column("region", sa.String(8), nullable=False))
'''
ORDERS = '''def upgrade():
    op.create_table("orders", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade():
    op.drop_table("orders")
'''
NOT_NULL = '''def upgrade():
    op.add_column("orders", sa.Column("currency", sa.String(length=3), nullable=False))
    op.add_column("orders", sa.Column("region", sa.String(length=8), nullable=False))


def downgrade():
    op.drop_column("orders", "region")
    op.drop_column("orders", "currency")
'''


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_not_null_takes_the_models_default_and_invents_no_value(tmp_path):
    root = make_project(tmp_path / "app", [ORDERS, NOT_NULL], url="sqlite:///app.db", models=MODELS)
    git_repo(root)
    project = load_project(cwd=root)
    review = review_migration(project, "head")
    assert review.decision == "revise"
    currency = next(f for f in review.findings if f.column == "currency")
    region = next(f for f in review.findings if f.column == "region")
    # the model says EUR: filled with it, then no server default, as the model has none (no later drift)
    assert "server_default=sa.text(\"'EUR'\")" in currency.patch and "server_default=None" in currency.patch
    assert currency.patch_checked == ["git-apply", "review"]  # region's error is still there: a roundtrip would say nothing
    # nothing says what region's rows get: no patch, no '' or 0 made up
    assert region.patch is None and "choose the value" in region.fix and "''" not in region.fix
    git_apply(root, currency.patch)

    # the patched revision on a copy of a populated database: every existing row gets EUR, no default is left
    rows = sqlite_database(tmp_path / "data.db", [
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "INSERT INTO alembic_version VALUES ('000000000001')",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY)", "INSERT INTO orders VALUES (1), (2), (3)",
    ])
    body = (root / "migrations/versions/000000000002_rev.py").read_text()
    (root / "migrations/versions/000000000002_rev.py").write_text(body.replace(
        '    op.add_column("orders", sa.Column("region", sa.String(length=8), nullable=False))\n', ""
    ).replace('    op.drop_column("orders", "region")\n', ""))
    assert review_migration(project, "head").decision == "proceed"
    from alembic import command

    cfg = project.alembic_config()
    cfg.set_main_option("sqlalchemy.url", rows)
    command.upgrade(cfg, "head")
    eng = sa.create_engine(rows)
    with eng.connect() as c:
        assert c.execute(sa.text("SELECT DISTINCT currency FROM orders")).scalars().all() == ["EUR"]
    (column,) = [c for c in sa.inspect(eng).get_columns("orders") if c["name"] == "currency"]
    assert column["default"] is None and column["nullable"] is False
    eng.dispose()
    assert run_roundtrip(project, "head", rows=5).status == "passed"


# ---------------------------------------------------------------------------- MariaDB


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_mariadb_downgrade_missing_an_index_gets_it_by_patch(mysql_url, tmp_path):
    create = '''def upgrade():
    op.create_table("orders", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("ref", sa.String(40)))


def downgrade():
    op.drop_table("orders")
'''
    forgets_index = '''def upgrade():
    op.add_column("orders", sa.Column("note", sa.String(200), nullable=True))
    op.create_index("ix_orders_ref", "orders", ["ref"])


def downgrade():
    op.drop_column("orders", "note")
'''
    root = make_project(tmp_path, [create, forgets_index], url="mysql+pymysql://u@localhost/app")
    git_repo(root)
    project = load_project(cwd=root)
    review = review_migration(project, "head")
    assert review.decision == "revise" and not review.escalation.triggers, review.summary
    inverse = only(review.findings, "downgrade-not-inverse")
    assert "+    op.drop_index('ix_orders_ref', table_name='orders')" in inverse.patch
    # the check's roundtrip ran where the default scratch engine is for a MariaDB project (SQLite): it says so
    assert inverse.patch_checked == ["git-apply", "review", "roundtrip on sqlite"]
    git_apply(root, inverse.patch)
    assert review_migration(project, "head").decision == "proceed"
    result = run_roundtrip(project, "head", database_url=mysql_url)
    assert result.status == "passed" and result.engine.name in ("mariadb", "mysql")


# ---------------------------------------------------------------------------- narrowing, with the user's database


def test_integer_narrowing_is_preflighted_with_samples(pg_url, tmp_path):
    setup = [
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "INSERT INTO alembic_version VALUES ('000000000001')",
        "CREATE TABLE stock (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL, price NUMERIC(12, 4))",
        "INSERT INTO stock SELECT g, g % 1000, g * 10.0125 FROM generate_series(1, 2000) g",
        "UPDATE stock SET qty = 40000 WHERE id IN (7, 1500)",
    ]
    narrow = '''def upgrade():
    op.alter_column("stock", "qty", existing_type=sa.Integer(), type_=sa.SmallInteger())
    op.alter_column("stock", "price", existing_type=sa.Numeric(12, 4), type_=sa.Numeric(6, 2))


def downgrade():
    op.alter_column("stock", "price", existing_type=sa.Numeric(6, 2), type_=sa.Numeric(12, 4))
    op.alter_column("stock", "qty", existing_type=sa.SmallInteger(), type_=sa.Integer())
'''
    create = '''def upgrade():
    op.create_table("stock", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("qty", sa.Integer(), nullable=False),
                    sa.Column("price", sa.Numeric(12, 4)))


def downgrade():
    op.drop_table("stock")
'''
    for url in throwaway_database(pg_url, setup, prefix="dbm_i18b"):
        project = load_project(cwd=make_project(tmp_path, [create, narrow], url="postgresql://u@localhost/app"))
        review = review_migration(project, "head", database_url=url)
        checks = {(c.columns[0], c.outcome): c for c in review.preflight.checks if c.check == "type-change"}
        qty = checks[("qty", "will-fail")]
        assert qty.count == 2 and sorted(s["id"] for s in qty.samples) == [7, 1500]
        assert checks[("price", "will-fail")].count > 0  # up to 20,025: NUMERIC(6, 2) holds less than 10,000
        assert ("price", "loses-data") in checks  # 4 decimal places rounded to 2
        assert review.decision in ("revise", "escalate") and not no_database_notes(review)
        classify = classify_escalation(project, "head", database_url=url)
        assert classify.decision == review.decision and not no_database_notes(classify)


# ---------------------------------------------------------------------------- the text says what the decision says


def test_text_after_approval_does_not_say_stop_and_headers_stand_over_something(tmp_path):
    from db_migrate.policy.model import HumanApproval
    from db_migrate.tools.render import brief, render

    drop = '''def upgrade():
    op.drop_column("orders", "status")


def downgrade():
    op.add_column("orders", sa.Column("status", sa.String(10), nullable=True))
'''
    project = load_project(cwd=make_project(tmp_path / "a", [ORDERS_WITH_ENUM, drop], url="postgresql://u@localhost/app"))
    asked = classify_escalation(project, "head")
    assert asked.decision == "escalate" and brief(asked).splitlines()[1].startswith("STOP: a human must decide")
    approved = asked.answered(HumanApproval(asked=True, answer="approved"))
    text = brief(approved)
    assert approved.decision != "escalate" and "STOP" not in text and "a human must decide" not in text
    assert "approved by a human" in text.lower() and "Needs a human" not in render(approved)

    # an error with a patch asks for git apply; nothing asks to "apply each fix" where no fix stands
    project = load_project(cwd=make_project(tmp_path / "b", [ORDERS_WITH_ENUM, NOTE_WITHOUT_DOWNGRADE], url="sqlite:///app.db"))
    review = review_migration(project, "head")
    text = brief(review)
    assert "apply each patch with `git apply`" in text and "+    op.drop_column('orders', 'note')" in text
    assert "edit the revision as each fix says" not in text
    bare = review.model_copy(update={"findings": [f.model_copy(update={"patch": None, "fix": None}) for f in review.findings]})
    assert "apply each" not in brief(bare) and "edit the revision" not in brief(bare)


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_a_project_in_a_subfolder_of_its_repository_gets_a_patch_git_applies_there(tmp_path):
    root = make_project(tmp_path / "services" / "billing", [ORDERS, NOTE_WITHOUT_DOWNGRADE], url="sqlite:///app.db")
    git_repo(tmp_path)
    project = load_project(cwd=root)
    patch = only(review_migration(project, "head").findings, "missing-downgrade").patch
    first = patch.splitlines()[0]
    assert first == "From the project root: git apply --directory=services/billing"
    # plain `git apply` here would skip the file and exit 0; the command the patch names applies it
    done = subprocess.run(["git", "apply", "--directory=services/billing", "-"], cwd=root, input=patch, text=True, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert review_migration(project, "head").decision == "proceed"


def test_an_empty_downgrade_of_a_table_with_an_enum_drops_the_type_too(tmp_path):
    forgot = ORDERS_WITH_ENUM.replace('    op.drop_table("orders")\n', "    pass\n")
    project = load_project(cwd=make_project(tmp_path, [forgot], url="postgresql://u@localhost/app"))
    review = review_migration(project, "head")
    assert review.decision == "revise", review.summary
    missing = only(review.findings, "missing-downgrade")
    body = [line[1:].strip() for line in missing.patch.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert body == ["op.drop_table('orders')", 'op.execute("DROP TYPE IF EXISTS order_status")']
    assert "roundtrip" in missing.patch_checked  # re-upgrading after this downgrade worked on PostgreSQL


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_agent_loop_from_generate_converges_in_one_round_per_change(pg_url, tmp_path):
    """generate -> the patch, applied with git -> review proceeds -> roundtrip passes -> models match head."""
    from db_migrate.generate import generate_migration
    from db_migrate.heads import check_heads

    model = '''import sqlalchemy as sa
target_metadata = sa.MetaData()
sa.Table("orders", target_metadata, sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("status", sa.Enum("new", "paid", name="order_status"), nullable=False){extra})
'''
    root = make_project(tmp_path, [], url="postgresql://u@localhost/app", models=model.format(extra=""))
    git_repo(root)
    project = load_project(cwd=root)
    changes = ["", ',\n    sa.Column("currency", sa.String(3), nullable=False, default="EUR")']
    for i, extra in enumerate(changes):
        (root / "models.py").write_text(model.format(extra=extra))
        generated = generate_migration(project, f"change {i}", scratch_url=pg_url)
        assert generated.decision == "revise" and not generated.escalation.triggers, generated.summary
        (fix,) = [f for f in generated.findings if f.severity == "error"]
        assert fix.rule == ("enum-type-left-behind", "add-column-not-null-no-default")[i]
        assert fix.patch_checked == ["git-apply", "review", "roundtrip"]
        git_apply(root, fix.patch)
        assert review_migration(project, "head").decision == "proceed"
        assert run_roundtrip(project, "head", database_url=pg_url, rows=5).status == "passed"
        heads = check_heads(project, scratch_url=pg_url)
        assert heads.decision == "proceed" and "models match head" in heads.summary, heads.summary


@pytest.mark.parametrize(("first", "decision"), [
    # which rows were 'new' is gone: nobody can write that way back
    ("op.execute(\"UPDATE orders SET status = 'paid' WHERE status = 'new'\")", "escalate"),
    # a setting leaves nothing to undo: the downgrade is still one db-migrate can write
    ("op.execute(\"SET LOCAL lock_timeout = '5s'\")", "revise"),
])
def test_only_a_way_back_nobody_can_write_escalates(tmp_path, first, decision):
    revision = f'''def upgrade():
    {first}
    op.add_column("orders", sa.Column("note", sa.Text(), nullable=True))


def downgrade():
    pass
'''
    project = load_project(cwd=make_project(tmp_path, [ORDERS_WITH_ENUM, revision], url="postgresql://u@localhost/app"))
    review = review_migration(project, "head")
    missing = only(review.findings, "missing-downgrade")
    assert review.decision == decision, review.summary
    if decision == "escalate":
        assert [t.trigger for t in review.escalation.triggers] == ["unclear-rollback"] and missing.patch is None
    else:
        assert not review.escalation.triggers and "op.drop_column('orders', 'note')" in missing.patch


def test_an_operation_the_file_does_not_hold_is_neither_evidence_nor_an_operation(tmp_path):
    fixed = ORDERS_WITH_ENUM + '    op.execute("DROP TYPE IF EXISTS order_status")\n'
    project = load_project(cwd=make_project(tmp_path, [fixed], url="postgresql://u@localhost/app"))
    classify = classify_escalation(project, "head")
    assert classify.decision == "proceed" and classify.all_automatic, classify.summary
    assert [o.kind for o in classify.operations] == ["create_table"]  # not the CREATE TYPE create_table ran


def test_a_forgotten_drop_table_comes_back_with_its_enum_type(tmp_path):
    two_tables = ORDERS_WITH_ENUM.replace('    op.drop_table("orders")\n', '    op.drop_table("refunds")\n').replace(
        "def upgrade():\n", 'def upgrade():\n    op.create_table("refunds", sa.Column("id", sa.Integer(), primary_key=True))\n')
    project = load_project(cwd=make_project(tmp_path, [two_tables], url="postgresql://u@localhost/app"))
    inverse = only(review_migration(project, "head").findings, "downgrade-not-inverse")
    assert "+    op.drop_table('orders')\n+    op.execute(\"DROP TYPE IF EXISTS order_status\")" in inverse.patch
    assert "roundtrip" in inverse.patch_checked


def test_the_safe_unique_form_a_patch_writes_is_not_an_unclear_rollback(tmp_path: Path) -> None:
    # the concurrent unique index attached with raw SQL is undone by the drop_constraint alembic wrote:
    # following the patch must not end in an escalation (a loop an agent cannot leave)
    create = ("def upgrade():\n    op.create_table('customers', sa.Column('id', sa.Integer, primary_key=True), "
              "sa.Column('email', sa.String(50)))\ndef downgrade():\n    op.drop_table('customers')\n")
    unique = "def upgrade():\n    op.create_unique_constraint('uq_customers_email', 'customers', ['email'])\n" \
             "def downgrade():\n    op.drop_constraint('uq_customers_email', 'customers', type_='unique')\n"
    project = load_project(cwd=make_project(tmp_path, [create, unique], url="postgresql://u@localhost/app"))
    (f,) = [f for f in review_migration(project, "head").findings if f.rule == "add-unique-constraint"]
    assert f.severity == "error" and f.edit is not None and "USING INDEX uq_customers_email" in f.edit.code
    from db_migrate.fixes.patches import apply_edit

    path = next((project.root / "migrations" / "versions").glob("000000000002_*.py"))
    path.write_text(apply_edit(path.read_text(), f.edit))
    after = review_migration(project, "head")
    assert after.decision == "proceed", (after.summary, after.escalation)
