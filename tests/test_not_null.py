"""SET NOT NULL on a populated PostgreSQL table, as an agent meets it (issue 18, points 3 and 4).

The rows that are NULL need a value.  When the revision states one (the column's server default), the fix
fills them with it and then sets NOT NULL without a blocking scan (a NOT VALID check validated outside the
ADD's transaction); following that patch ends in a revision every tool proceeds with.  When nobody stated a
value, none is invented: the data decides (NULL rows: a human chooses, trigger ``value-needed``).
"""

from __future__ import annotations

import pytest
from databases import throwaway_database
from projectfactory import make_project

from db_migrate.fixes.patches import apply_edit
from db_migrate.project import load_project
from db_migrate.review import review_migration
from db_migrate.review.engine import review_source

SET_NN = ("op.alter_column('orders', 'currency', existing_type=sa.VARCHAR(length=3), nullable=False, "
          "existing_server_default=sa.text(\"'EUR'\"))")
UNSET_NN = ("op.alter_column('orders', 'currency', existing_type=sa.VARCHAR(length=3), nullable=True, "
            "existing_server_default=sa.text(\"'EUR'\"))")
NO_DEFAULT = "op.alter_column('customers', 'name', existing_type=sa.VARCHAR(length=80), nullable=False)"
NO_DEFAULT_DOWN = "op.alter_column('customers', 'name', existing_type=sa.VARCHAR(length=80), nullable=True)"


def _source(up: str, down: str) -> str:
    def fn(name: str, body: str) -> str:
        return f"def {name}():\n" + "".join(f"    {line}\n" for line in body.strip().splitlines()) + "\n\n"

    return ('"""r"""\nfrom alembic import op\nimport sqlalchemy as sa\n\nrevision = "n1"\ndown_revision = None\n'
            "branch_labels = None\ndepends_on = None\n\n\n" + fn("upgrade", up) + fn("downgrade", down))


def _one(source: str, rule: str = "set-not-null"):
    (f,) = [f for f in review_source(source).findings if f.rule == rule]
    return f


def test_the_fix_fills_nulls_with_the_stated_default_and_never_invents_one():
    with_default = _one(_source(SET_NN, UNSET_NN))
    assert with_default.edit is not None and "UPDATE orders SET currency = 'EUR' WHERE currency IS NULL" in with_default.edit.code
    assert with_default.edit.settles == ["preflight-not-null"]
    assert "autocommit_block" in with_default.edit.code and "VALIDATE CONSTRAINT" in with_default.edit.code
    without = _one(_source(NO_DEFAULT, NO_DEFAULT_DOWN))
    assert without.edit is not None and 'op.execute("UPDATE' not in without.edit.code and without.edit.settles == []
    assert "''" not in (without.fix or "") and "the project chooses" in without.fix  # no value made up


OFFLINE = "postgresql://app@localhost/app"


def test_following_the_patch_leaves_nothing_to_fix_or_to_escalate(tmp_path):
    source = _source(SET_NN, UNSET_NN)
    patched = apply_edit(source, _one(source).edit)
    assert patched is not None
    up = patched[patched.index("def upgrade():") + len("def upgrade():\n"):patched.index("def downgrade")].strip()
    r = review_migration(_project(tmp_path, OFFLINE, up, UNSET_NN), "000000000001")
    assert [f.rule for f in r.findings if f.severity != "info"] == []
    assert r.decision == "proceed", r.summary  # the created-and-dropped check and the backfill need no way back


def test_validating_in_the_adds_own_transaction_still_blocks():
    same_tx = ("op.create_check_constraint('ck_nn', 'orders', 'currency IS NOT NULL', postgresql_not_valid=True)\n"
               "op.execute('ALTER TABLE orders VALIDATE CONSTRAINT ck_nn')\n" + SET_NN + "\n"
               "op.drop_constraint('ck_nn', 'orders', type_='check')")
    assert _one(_source(same_tx, UNSET_NN)).severity == "error"  # the ADD's ACCESS EXCLUSIVE lasts through the scan


def test_a_backfill_that_overwrites_values_still_needs_a_way_back(tmp_path):
    overwrite = "op.execute(\"UPDATE orders SET currency = 'EUR'\")\n    " + SET_NN
    r = review_migration(_project(tmp_path, OFFLINE, overwrite, UNSET_NN), "000000000001")
    assert r.decision == "escalate" and any(t.trigger == "unclear-rollback" for t in r.escalation.triggers)


@pytest.fixture()
def shop(pg_url):
    gen = throwaway_database(pg_url, [
        "CREATE TABLE orders (id integer PRIMARY KEY, currency varchar(3) DEFAULT 'EUR')",
        "INSERT INTO orders SELECT g, CASE WHEN g % 4 = 0 THEN NULL ELSE 'EUR' END FROM generate_series(1, 40) g",
        "CREATE TABLE customers (id integer PRIMARY KEY, name varchar(80))",
        "INSERT INTO customers SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'c' || g END FROM generate_series(1, 50) g",
    ])
    yield next(gen)
    next(gen, None)


def _project(tmp_path, url, up, down):
    body = f"def upgrade():\n    {up}\n\n\ndef downgrade():\n    {down}\n"  # up: its lines indented by 4 after the first
    return load_project(make_project(tmp_path, [{"body": body}], url=url))


def test_with_the_data_null_rows_without_a_stated_value_are_a_humans_choice(tmp_path, shop):
    r = review_migration(_project(tmp_path, shop, NO_DEFAULT, NO_DEFAULT_DOWN), "000000000001", database_url=shop)
    assert r.decision == "escalate"
    (t,) = [t for t in r.escalation.triggers if t.trigger == "value-needed"]
    assert "10 rows" in t.evidence[0] and "customers" in t.evidence[0]


def test_with_the_data_null_rows_and_a_stated_default_get_the_patch_that_fills_them(tmp_path, shop):
    r = review_migration(_project(tmp_path, shop, SET_NN, UNSET_NN), "000000000001", database_url=shop)
    assert r.decision == "revise" and not r.escalation.triggers
    (data,) = [f for f in r.findings if f.rule == "preflight-not-null"]
    # the table is small, so the lock finding is relaxed: the data's finding carries the one fix, to act on
    assert data.severity == "error" and data.edit is not None and "'EUR'" in data.edit.code
    (lock,) = [f for f in r.findings if f.rule == "set-not-null"]
    assert lock.severity == "info" and lock.edit is None
