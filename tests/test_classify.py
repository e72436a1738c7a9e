"""classify(): every trigger and auto class, on reviews built by hand (no database, no worker)."""

from __future__ import annotations

import pytest

from db_migrate.policy import DatabaseFacts, Policy, RowCount, classify, facts_needed
from db_migrate.review.model import Operation, ReviewResult, RevisionReview
from db_migrate.verdict import Finding

PATH = "alembic/versions/r1_x.py"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("DB_MIGRATE_ENV", raising=False)


def op(kind, table=None, column=None, *, phase="upgrade", line=10, created=False, revision="r1", rendered=(), **detail):
    return Operation(
        revision=revision, phase=phase, kind=kind, table=table, column=column, line=line,
        detail=detail, sql=list(rendered), table_created_here=created,
    )


def review(*ops, findings=(), dialect="postgresql", downgrade=True):
    """A one-revision review; unless told otherwise, give it a downgrade so unclear-rollback stays quiet."""
    ops = list(ops)
    if downgrade and not any(o.phase == "downgrade" for o in ops):
        ops.append(op("drop_index", "t", phase="downgrade", line=99))
    return ReviewResult(
        decision="proceed", summary="", revisions=["r1"], findings=list(findings), dialect=dialect,
        reviews=[RevisionReview(revision="r1", path=PATH, operations=ops)],
    )


def facts(rows=None, has_data=None, missing=()):
    return DatabaseFacts(
        database="postgresql://u@localhost/app", dialect="postgresql",
        row_counts={t: RowCount(rows=n, estimate=False) for t, n in (rows or {}).items()},
        column_has_data=has_data or {}, missing=list(missing),
    )


def finding(rule, severity="warning", phase="upgrade"):
    return Finding(rule=rule, severity=severity, phase=phase, message=f"{rule} here", revision="r1", path=PATH, line=12)


def triggers(result):
    return {t.trigger: t for t in result.escalation.triggers}


# --- auto classes ---------------------------------------------------------------------------------


def test_add_nullable_column_proceeds_automatically():
    r = classify(review(op("add_column", "persons", "middle_name", nullable=True)), Policy())
    assert r.decision == "proceed"
    assert r.escalation.required is False
    assert r.escalation.auto_classes == ["add-nullable-column"]
    assert r.all_automatic is True
    assert r.tool == "classify_escalation"


def test_not_null_column_fits_no_auto_class():
    r = classify(review(op("add_column", "persons", "flag", nullable=False)), Policy())
    assert r.decision == "proceed"  # no trigger, no error finding
    assert r.all_automatic is False
    [c] = r.operations
    assert c.auto_class is None and "NOT NULL" in c.note
    assert "fit no auto class" in r.summary


def test_add_index_and_create_table_classes():
    r = classify(
        review(
            op("create_table", "shifts", columns=["id"]),
            op("create_index", "shifts", created=True, columns=["id"]),
            op("create_index", "persons", columns=["email"]),
        ),
        Policy(),
    )
    assert r.escalation.auto_classes == ["add-index", "create-table"]
    assert [c.auto_class for c in r.operations] == ["create-table", "create-table", "add-index"]
    assert r.decision == "proceed" and r.all_automatic


def test_rename_column_is_auto_with_verification():
    r = classify(review(op("alter_column", "rotations", "rotation_type", new_column_name="category", existing_type="VARCHAR(50)")), Policy())
    assert r.escalation.auto_classes == ["rename-column"]
    assert "test_roundtrip" in r.operations[0].note
    assert "verify" in r.summary


def test_rename_plus_type_change_is_not_a_plain_rename():
    r = classify(review(op("alter_column", "rotations", "rotation_type", new_column_name="category", type="TEXT")), Policy())
    assert r.operations[0].auto_class is None


def test_foreign_key_on_column_added_in_same_revision_is_auto():
    r = classify(
        review(
            op("add_column", "assignments", "room_id", nullable=True),
            op("create_foreign_key", "assignments", columns=["room_id"], referent_table="rooms"),
        ),
        Policy(),
    )
    assert r.operations[1].auto_class == "add-foreign-key-empty-column"


def test_foreign_key_on_existing_column_depends_on_its_contents():
    rev = review(op("create_foreign_key", "assignments", columns=["room_id"], referent_table="rooms"))
    assert facts_needed(rev) == (["assignments"], [("assignments", "room_id")])
    unknown = classify(rev, Policy())
    assert unknown.operations[0].auto_class is None and "unknown" in unknown.operations[0].note
    empty = classify(rev, Policy(), facts(has_data={"assignments.room_id": False}))
    assert empty.operations[0].auto_class == "add-foreign-key-empty-column"
    full = classify(rev, Policy(), facts(has_data={"assignments.room_id": True}))
    assert full.operations[0].auto_class is None and "holds data" in full.operations[0].note


def test_policy_can_disable_an_auto_class():
    r = classify(review(op("alter_column", "t", "a", new_column_name="b")), Policy(auto_classes=["add-index"]))
    assert r.operations[0].auto_class is None
    assert "leave it out" in r.operations[0].note
    assert r.all_automatic is False


# --- triggers -------------------------------------------------------------------------------------


def test_drop_column_without_database_assumes_data():
    r = classify(review(op("drop_column", "persons", "pager_number", line=22)), Policy())
    assert r.decision == "escalate"
    t = triggers(r)["drop-with-data"]
    assert any("assumed: no database_url given" in e for e in t.evidence)
    assert any(f"{PATH}:22" in e for e in t.evidence)


def test_drop_column_with_and_without_data_in_database():
    rev = review(op("drop_column", "persons", "pager_number"))
    assert facts_needed(rev) == (["persons"], [("persons", "pager_number")])
    empty = classify(rev, Policy(), facts(rows={"persons": 50}, has_data={"persons.pager_number": False}))
    assert "drop-with-data" not in triggers(empty)
    assert empty.decision == "proceed"
    full = classify(rev, Policy(), facts(rows={"persons": 50}, has_data={"persons.pager_number": True}))
    assert "holds non-NULL values" in triggers(full)["drop-with-data"].evidence[0]
    assert full.row_counts["persons"].rows == 50


def test_drop_of_column_the_database_lacks_is_still_assumed():
    rev = review(op("drop_column", "persons", "pager_number"))
    r = classify(rev, Policy(), facts(missing=["persons.pager_number"]))
    assert "treated as holding data" in triggers(r)["drop-with-data"].evidence[0]
    assert any("persons.pager_number" in u.what for u in r.unchecked)


def test_drop_table_uses_row_counts():
    rev = review(op("drop_table", "old_pagers"))
    assert "drop-with-data" not in triggers(classify(rev, Policy(), facts(rows={"old_pagers": 0})))
    r = classify(rev, Policy(), facts(rows={"old_pagers": 3}))
    assert "3 rows" in triggers(r)["drop-with-data"].evidence[0]


def test_truncate_via_execute_counts_as_drop_with_data():
    rev = review(
        op("execute", sql_kind="TRUNCATE", sql="TRUNCATE old_pagers"),
        op("execute", phase="downgrade", sql="INSERT INTO old_pagers SELECT * FROM pager_backup"),
    )
    assert "drop-with-data" in triggers(classify(rev, Policy()))


def test_primary_key_change_from_ops_and_findings():
    r = classify(review(op("drop_constraint", "persons", constraint_type="primary", name="persons_pkey")), Policy())
    assert "primary-key-change" in triggers(r)
    r = classify(review(op("create_primary_key", "persons", columns=["uuid"])), Policy())
    assert "primary-key-change" in triggers(r)
    r = classify(review(op("alter_column", "persons", "id", type="BIGINT"), findings=[finding("change-primary-key")]), Policy())
    assert "primary-key-change" in triggers(r)
    # a primary key on a table created in the same revision is part of creating it
    r = classify(review(op("create_primary_key", "new_t", created=True, columns=["id"])), Policy())
    assert "primary-key-change" not in triggers(r)


def test_large_data_migration_needs_rows_over_threshold():
    rev = review(
        op("execute", "persons", sql="UPDATE persons SET role = 'faculty' WHERE role = 'attending'", sql_kind="UPDATE"),
        op("execute", "persons", phase="downgrade", sql="UPDATE persons SET role = 'attending' WHERE role = 'faculty'"),
    )
    policy = Policy(large_table_rows=1000)
    assert "large-data-migration" not in triggers(classify(rev, policy, facts(rows={"persons": 999})))
    r = classify(rev, policy, facts(rows={"persons": 1000}))
    assert "1,000 rows" in triggers(r)["large-data-migration"].evidence[0]
    # without a database the size is unknown: reported, not guessed
    r = classify(rev, policy)
    assert "large-data-migration" not in triggers(r)
    assert any("rows of persons" in u.what for u in r.unchecked)


def test_type_change_on_large_table_is_a_rewrite():
    rev = review(op("alter_column", "persons", "email", type="VARCHAR(120)", existing_type="VARCHAR(255)"))
    r = classify(rev, Policy(), facts(rows={"persons": 250_000}))
    assert "table rewrite" in triggers(r)["large-data-migration"].evidence[0]


@pytest.mark.parametrize(("dialect", "old", "new", "rewrites"), [
    ("postgresql", "sa.String(50)", "sa.String(100)", False),  # the catalogue only
    ("postgresql", "sa.String(50)", "sa.Text()", False),
    ("mysql", "sa.String(20)", "sa.String(60)", False),  # the length prefix keeps its size: in place
    ("mysql", "sa.String(50)", "sa.String(100)", True),  # crosses 255 bytes: the table is copied
    ("postgresql", "sa.Integer()", "sa.BigInteger()", True),
])
def test_only_a_type_change_that_rewrites_is_a_large_data_migration(dialect, old, new, rewrites):
    """classify asks the same question of the type change as the review's alter-column-type: a widening the
    database makes in its catalogue touches no row, so a big table is no reason to escalate."""
    from db_migrate.review.engine import review_source

    src = ("from alembic import op\nimport sqlalchemy as sa\nrevision = 'b1'\ndown_revision = 'a1'\n\n"
           f"def upgrade():\n    op.alter_column('persons', 'email', existing_type={old}, type_={new})\n\n"
           f"def downgrade():\n    op.alter_column('persons', 'email', existing_type={new}, type_={old})\n")
    out = review_source(src, dialect=dialect)
    rev = ReviewResult(decision="proceed", summary="", revisions=["b1"], findings=out.findings, unchecked=out.unchecked,
                       dialect=dialect, reviews=[out.review])
    upgrade_only = rev.model_copy(update={"reviews": [out.review.model_copy(update={
        "operations": [o for o in out.review.operations if o.phase == "upgrade"]})]})
    r = classify(upgrade_only, Policy(), facts(rows={"persons": 5_000_000}))
    assert ("large-data-migration" in triggers(r)) is rewrites


def test_insert_select_is_a_data_migration_but_insert_values_is_not():
    down = op("execute", phase="downgrade", sql="DELETE FROM archive WHERE true")
    big = facts(rows={"archive": 500_000, "persons": 500_000})
    r = classify(review(op("execute", sql="INSERT INTO archive SELECT * FROM persons"), down), Policy(), big)
    assert "large-data-migration" in triggers(r)
    r = classify(review(op("execute", sql="INSERT INTO archive (id) VALUES (1)"), down), Policy(), big)
    assert "large-data-migration" not in triggers(r)


def test_production_environment_triggers():
    r = classify(review(op("add_column", "t", "c", nullable=True)), Policy(), environment="production")
    assert r.decision == "escalate"
    assert "production-database" in triggers(r)
    assert r.all_automatic is False


def test_production_env_var_and_url(monkeypatch):
    rev = review(op("add_column", "t", "c", nullable=True))
    assert "production-database" in triggers(classify(rev, Policy(), database_url="postgresql://u:pw@db.prod.internal/app"))
    assert "production-database" in triggers(classify(rev, Policy(), project_url="postgresql://u@localhost/app_prod"))
    assert classify(rev, Policy(), database_url="postgresql://u@localhost/app_dev").decision == "proceed"
    monkeypatch.setenv("DB_MIGRATE_ENV", "production")
    assert "production-database" in triggers(classify(rev, Policy()))


def test_protected_table_any_operation_including_rename():
    r = classify(review(op("create_table", "acgme_duty_hours", columns=["id"])), Policy())
    assert "protected-table" in triggers(r) and r.decision == "escalate"
    r = classify(review(op("rename_table", "duty_hours", new_table_name="ACGME_hours")), Policy())
    assert "protected-table" in triggers(r)
    r = classify(review(op("create_index", "persons")), Policy(protected_tables=["persons"]))
    assert "protected-table" in triggers(r)


@pytest.mark.parametrize(("sql", "changes_records"), [
    ("INSERT INTO templates_history (id, version) VALUES (1, 1)", False),  # a record appended
    ("INSERT INTO templates_history SELECT * FROM templates ON CONFLICT DO NOTHING", False),
    ("INSERT INTO templates_history SELECT * FROM t ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body", True),
    ("UPDATE broadcast SET content = h.content FROM templates_history h WHERE broadcast.tid = h.id", False),  # read
    ("CREATE VIEW all_templates AS SELECT * FROM templates UNION ALL SELECT * FROM templates_history", False),
    ("ALTER TABLE templates_history VALIDATE CONSTRAINT ck_templates_history_kind", False),
    ("UPDATE templates_history SET postage = 'second' WHERE postage IS NULL", True),
    ("DELETE FROM templates_history WHERE id = 5", True),
])
def test_only_statements_that_change_an_audit_tables_recorded_rows_are_audit_trail(sql, changes_records):
    """Appending, reading or validating leaves every recorded row as it was; updating, deleting or altering it does."""
    down = op("execute", phase="downgrade", sql="SELECT 1")
    r = classify(review(op("execute", sql=sql), down), Policy())
    assert ("audit-trail" in triggers(r)) is changes_records


def test_audit_trail_defaults_and_config():
    r = classify(review(op("drop_column", "audit_log", "ip")), Policy())
    assert "audit-trail" in triggers(r)
    r = classify(review(op("drop_column", "persons_history", "x")), Policy())
    assert "audit-trail" in triggers(r)
    # configured patterns replace the defaults
    r = classify(review(op("drop_column", "persons_history", "x")), Policy(audit_tables=["audit_log"]))
    assert "audit-trail" not in triggers(r)
    # data changes on an audit table through raw SQL count too
    r = classify(review(op("execute", sql="DELETE FROM audit_log WHERE id < 10"), op("execute", phase="downgrade", sql="SELECT 1")), Policy())
    assert "audit-trail" in triggers(r)


@pytest.mark.parametrize("rule", ["missing-downgrade", "lossy-downgrade", "downgrade-not-inverse"])
def test_unclear_rollback_from_review_findings(rule):
    r = classify(review(op("add_column", "t", "c", nullable=True), findings=[finding(rule, phase="downgrade")]), Policy())
    assert rule in triggers(r)["unclear-rollback"].evidence[0]


def test_unclear_rollback_for_execute_without_inverse():
    up = op("execute", sql="UPDATE persons SET email_verified=false WHERE email LIKE '%@old.example'", sql_kind="UPDATE")
    r = classify(review(up, downgrade=False), Policy())
    evidence = " ".join(triggers(r)["unclear-rollback"].evidence)
    assert "no inverse" in evidence and "performs no operation" in evidence
    # an inverse UPDATE on the same table is enough
    r = classify(review(up, op("execute", phase="downgrade", sql="UPDATE persons SET email_verified = NULL")), Policy())
    assert "unclear-rollback" not in triggers(r)
    # so is dropping the column this revision added and the SQL fills
    r = classify(
        review(
            op("add_column", "persons", "email_verified", nullable=True),
            up,
            op("drop_column", "persons", "email_verified", phase="downgrade"),
        ),
        Policy(),
    )
    assert "unclear-rollback" not in triggers(r)


def test_error_findings_without_triggers_revise():
    r = classify(review(op("add_column", "t", "c", nullable=True), findings=[finding("raw-sql-interpolation", "error")]), Policy())
    assert r.decision == "revise"
    assert r.findings[0].rule == "raw-sql-interpolation"


def test_escalate_beats_revise_and_triggers_are_merged():
    r = classify(
        review(op("drop_column", "acgme_x", "a", line=5), op("drop_column", "acgme_x", "b", line=6), findings=[finding("x", "error")]),
        Policy(),
    )
    assert r.decision == "escalate"
    assert [t.trigger for t in r.escalation.triggers].count("drop-with-data") == 1
    assert len(triggers(r)["drop-with-data"].evidence) == 2


def test_result_refers_to_the_policy_and_names_only_the_settings_that_decided():
    r = classify(review(op("add_column", "t", "c", nullable=True)), Policy(large_table_rows=5))
    data = r.model_dump(mode="json")
    assert data["policy"] == "db-migrate://policy" and data["policy_settings"] == {}  # nothing read, nothing fired
    assert data["escalation"]["auto_classes"] == ["add-nullable-column"]

    protected = classify(review(op("add_column", "acgme_hours", "c", nullable=True)), Policy(disable=["naming-*"]))
    assert protected.decision == "escalate"
    assert protected.policy_settings == {"protected_tables": ["acgme*"], "disable": ["naming-*"]}


def test_execute_known_only_by_its_rendered_sql():
    """op.execute(table.update()...) reaches the review as rendered SQL only."""
    up = op("execute", rendered=["UPDATE persons SET email_verified=false WHERE persons.email_verified IS NULL"])
    rev = review(up, op("execute", phase="downgrade", rendered=["UPDATE persons SET email_verified=NULL"]))
    assert facts_needed(rev)[0] == ["persons"]
    r = classify(rev, Policy(large_table_rows=10), facts(rows={"persons": 10}))
    assert "data migration (UPDATE) on persons" in triggers(r)["large-data-migration"].evidence[0]


def test_protected_evidence_cites_the_upgrade_not_its_mirror():
    r = classify(
        review(op("create_table", "acgme_hours", line=22), op("drop_table", "acgme_hours", phase="downgrade", line=45)),
        Policy(),
    )
    [ev] = triggers(r)["protected-table"].evidence
    assert ":22 upgrade create_table" in ev
    # a downgrade touching a protected table the upgrade leaves alone is still cited
    r = classify(review(op("add_column", "t", "c", nullable=True), op("drop_table", "acgme_old", phase="downgrade")), Policy())
    assert "downgrade drop_table" in triggers(r)["protected-table"].evidence[0]


def test_unknown_sizes_are_listed_once():
    ups = [op("execute", sql=f"UPDATE persons SET role = 'r{i}'", line=31) for i in range(3)]
    r = classify(review(*ups, op("execute", phase="downgrade", sql="UPDATE persons SET role = NULL")), Policy())
    assert [u.what for u in r.unchecked] == ["large-data-migration: rows of persons (data migration (UPDATE))"]
    assert r.unchecked[0].reason == "no database_url given"


def test_a_primary_key_rebuilt_on_its_own_columns_is_not_a_key_change():
    rebuilt = review(
        op("drop_constraint", "orders", constraint_type="primary", name="orders_pkey"),
        op("create_primary_key", "orders", name="pk_orders", columns=["id"]),
        op("drop_constraint", "orders", phase="downgrade", constraint_type="primary", name="pk_orders"),
        op("create_primary_key", "orders", phase="downgrade", name="orders_pkey", columns=["id"]),
    )
    assert "primary-key-change" not in triggers(classify(rebuilt, Policy()))
    widened = review(
        op("drop_constraint", "orders", constraint_type="primary", name="orders_pkey"),
        op("create_primary_key", "orders", name="pk_orders", columns=["id", "tenant_id"]),
        op("drop_constraint", "orders", phase="downgrade", constraint_type="primary", name="pk_orders"),
        op("create_primary_key", "orders", phase="downgrade", name="orders_pkey", columns=["id"]),
    )
    assert "primary-key-change" in triggers(classify(widened, Policy()))


def test_audit_trail_is_about_the_recorded_rows_not_every_schema_change():
    kept = [op("create_index", "order_history", columns=["at"]), op("add_column", "order_history", "note", nullable=True),
            op("alter_column", "order_history", "actor", nullable=True), op("drop_index", "order_history"),
            op("create_table", "order_history")]  # a new trail holds no record yet
    for o in kept:
        assert "audit-trail" not in triggers(classify(review(o), Policy())), o.kind
    touched = [op("drop_column", "order_history", "actor"), op("alter_column", "order_history", "actor", type="VARCHAR(20)"),
               op("execute", "order_history", sql="DELETE FROM order_history WHERE at < now()", sql_kind="DELETE"),
               op("rename_table", "order_history", new_table_name="order_log")]
    for o in touched:
        assert "audit-trail" in triggers(classify(review(o), Policy())), o.kind
