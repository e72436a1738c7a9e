"""Patterns seen in real-world Alembic revisions that the review or the classifier got wrong.

Each test is a minimal migration written for this suite that reproduces one
pattern found while field-testing on public projects' revision files, and
asserts the corrected behaviour.  Reviews run in-process (``review_source``);
the classifier runs on that review (pure, no worker).
"""

from __future__ import annotations

import pytest

from db_migrate.policy import Policy, classify
from db_migrate.review.engine import review_source
from db_migrate.review.model import ReviewResult


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("DB_MIGRATE_ENV", raising=False)


def body(up: str, down: str = "pass", head: str = "") -> str:
    """A revision body: ``head`` (imports, helpers) then upgrade()/downgrade() with the given lines."""

    def fn(name: str, text: str) -> str:
        return f"def {name}():\n" + "".join(f"    {line}\n" for line in text.strip("\n").splitlines()) + "\n\n"

    return _HEADER + head + fn("upgrade", up) + fn("downgrade", down)


_HEADER = "from alembic import op\nimport sqlalchemy as sa\n\nrevision = 'f1e1d0000001'\ndown_revision = 'f1e1d0000000'\n\n"


def line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), start=1) if text in line)


def review(source: str, dialect: str = "postgresql"):
    return review_source(source, dialect=dialect)


def by_rule(outcome) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in outcome.findings:
        out.setdefault(f.rule, []).append(f)
    return out


def classified(outcome, dialect: str = "postgresql"):
    result = ReviewResult(
        decision="proceed", summary="", revisions=[outcome.review.revision or "r"], findings=outcome.findings,
        unchecked=outcome.unchecked, dialect=dialect, reviews=[outcome.review],
    )
    return classify(result, Policy())


# --- statements run through op.get_bind().execute(...) ---------------------------------------------


def test_bind_execute_is_recorded_like_op_execute():
    """``op.get_bind().execute(sa.text("DELETE ..."))`` used to leave no trace: no finding, no trigger."""
    source = body("conn = op.get_bind()\nconn.execute(sa.text('DELETE FROM login_attempts'))")
    out = review(source)
    line = line_of(source, "DELETE FROM")
    kinds = [(o.phase, o.kind, o.table, o.line) for o in out.review.operations]
    assert kinds == [("upgrade", "execute", "login_attempts", line)]
    [f] = by_rule(out)["destructive-sql"]
    assert f.severity == "warning" and f.line == line  # it escalates below: the rows are a human's call
    assert "unclear-rollback" in {t.trigger for t in classified(out).escalation.triggers}


def test_bind_execute_on_mysql_records_updates():
    out = review(
        body("bind = op.get_bind()\nbind.execute(sa.text('UPDATE votes SET score = 1 WHERE score > 2'))",
             "bind = op.get_bind()\nbind.execute(sa.text('UPDATE votes SET score = 3 WHERE score = 1'))"),
        dialect="mysql",
    )
    assert [(o.phase, o.kind, o.table) for o in out.review.operations] == [
        ("upgrade", "execute", "votes"), ("downgrade", "execute", "votes"),
    ]


def test_enum_created_through_the_bind_is_recorded():
    out = review(body(
        "status = postgresql.ENUM('open', 'closed', name='ticket_status')\n"
        "status.create(op.get_bind(), checkfirst=True)\n"
        "op.add_column('tickets', sa.Column('status', status, nullable=True))",
        "op.drop_column('tickets', 'status')\nop.execute('DROP TYPE ticket_status')",
        head="from sqlalchemy.dialects import postgresql\n\n",
    ))
    first = out.review.operations[0]
    assert first.kind == "execute" and "CREATE TYPE ticket_status" in first.sql[0]


# --- revisions whose upgrade() takes the runner's arguments ------------------------------------------


def test_upgrade_taking_op_as_an_argument_is_recorded_not_a_crash():
    """Some projects' env.py call ``upgrade(op, tables, tester)``: calling it bare raised TypeError."""
    source = _HEADER + (
        "def upgrade(op, tables, tester):\n"
        "    op.add_column('repo', sa.Column('mirror', sa.Boolean(), nullable=True))\n\n"
        "def downgrade(op, tables, tester):\n"
        "    op.drop_column('repo', 'mirror')\n"
    )
    out = review(source, dialect="mysql")
    assert "migration-raises" not in by_rule(out)
    assert [(o.phase, o.kind) for o in out.review.operations] == [("upgrade", "add_column"), ("downgrade", "drop_column")]
    assert any("upgrade(op, tables, tester)" in u.what for u in out.unchecked)


# --- stand-ins for modules that are not installed ----------------------------------------------------


def test_stand_in_type_failing_at_batch_flush_is_unchecked_not_migration_raises():
    """A column type from an uninstalled package breaks rendering offline: that is ours, not the migration's."""
    out = review(body(
        "with op.batch_alter_table('log') as batch_op:\n"
        "    batch_op.add_column(sa.Column('run_ref', appkit_types.RefType(), nullable=True))",
        "with op.batch_alter_table('log') as batch_op:\n    batch_op.drop_column('run_ref')",
        head="import appkit_types\n\n",
    ))
    assert "migration-raises" not in by_rule(out)
    assert any("not available here" in u.reason for u in out.unchecked if u.what.startswith("upgrade()"))


def test_a_stand_in_column_type_renders_under_its_own_name_so_the_tables_sql_is_read():
    out = review(body(
        "op.create_table('reports', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('meta', apptypes.JSONType),\n"
        "                sa.Column('refs', postgresql.ARRAY(apptypes.RefId)))\n"
        "op.add_column('scans', sa.Column('meta', apptypes.JSONType(), nullable=True))",
        "op.drop_column('scans', 'meta')\nop.drop_table('reports')",
        head="import apptypes\nfrom sqlalchemy.dialects import postgresql\n\n",
    ))
    assert not [u for u in out.unchecked if u.what.startswith("SQL of")], out.unchecked
    sql = [s for o in out.review.operations for s in o.sql]
    assert any("meta JSONType" in s and "refs RefId[]" in s for s in sql) and any("ADD COLUMN meta JSONType" in s for s in sql), sql


def test_a_value_set_on_an_untyped_column_renders_with_the_type_of_its_value():
    """``sa.table('infos', sa.column('version'))``: the column has no type, so a literal value had no renderer
    offline ("No literal value renderer ... NULL"); the statement is read with the type its value has."""
    out = review(body("op.execute(infos.update().values(version='26.08'))", head="infos = sa.table('infos', sa.column('version'))\n\n"))
    assert not [u for u in out.unchecked if u.what.startswith("SQL of")], out.unchecked
    assert [s for o in out.review.operations for s in o.sql] == ["UPDATE infos SET version='26.08'"]


def test_a_fix_renders_a_stand_in_type_under_the_projects_own_name():
    out = review(body("op.add_column('post', sa.Column('lang', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False, "
                      "default='en-US'))", "op.drop_column('post', 'lang')", head="import sqlmodel\n\n"))
    fix = by_rule(out)["add-column-not-null-no-default"][0].fix
    assert "sqlmodel.sql.sqltypes.AutoString()" in fix and "db_migrate" not in fix


def test_stand_in_type_in_alter_column_is_named_not_rendered_as_a_module():
    out = review(body(
        "op.alter_column('orgs', 'slug', existing_type=sa.String(50), type_=fancytypes.CaseInsensitive())",
        "op.alter_column('orgs', 'slug', existing_type=fancytypes.CaseInsensitive(), type_=sa.String(50))",
        head="import fancytypes\n\n",
    ))
    [f] = by_rule(out)["alter-column-type"]
    assert f.severity == "warning"
    assert "fancytypes.CaseInsensitive()" in f.message and "<module" not in f.message
    assert "without existing_type" not in f.message
    assert "lossy-downgrade" not in by_rule(out)


# --- interpolated SQL ---------------------------------------------------------------------------------


def test_execute_of_text_fstring_is_reported_once():
    # (a value spliced in: a table name alone would be an identifier, which no bind parameter replaces)
    out = review(body("op.execute(\n    sa.text(\n        f\"UPDATE accounts SET flag = {FLAG} WHERE flag IS NULL\"\n    )\n)",
                      head="FLAG = 'false'\n\n"))
    assert len(by_rule(out)["raw-sql-interpolation"]) == 1


def test_fstring_over_the_migrations_own_names_is_a_note():
    """``f"ALTER INDEX {old}_pkey RENAME TO {new}_pkey"`` over a literal list of names: not an injection path, and
    nothing the tool lacks decides what it runs (each statement is one of the literals written out)."""
    out = review(body(
        "op.rename_table('coupons', 'vouchers')\n"
        "for old, new in (('coupons', 'vouchers'),):\n"
        "    op.execute(f'ALTER INDEX {old}_pkey RENAME TO {new}_pkey')",
        "op.rename_table('vouchers', 'coupons')\nop.execute('ALTER INDEX vouchers_pkey RENAME TO coupons_pkey')",
    ))
    [f] = by_rule(out)["raw-sql-interpolation"]
    assert f.severity == "info" and "constants only" in f.message


def test_fstring_fed_by_rows_read_at_run_time_stays_an_error():
    out = review(body(
        "conn = op.get_bind()\n"
        "for (name,) in conn.execute(sa.text('SELECT table_name FROM information_schema.tables')).fetchall():\n"
        "    conn.execute(sa.text(f'ALTER TABLE {name} ADD COLUMN note text'))",
    ), dialect="mysql")
    [f] = by_rule(out)["raw-sql-interpolation"]
    assert f.severity == "error" and "run time" in f.message


def test_a_value_read_from_rows_and_compared_unquoted_is_a_number_and_a_note():
    """``WHERE id = {row.id}``: text in that slot would be read as a name and fail on the first run, so it is a
    number, which carries no quote. Quoted (``'{row.kind}'``) or as a name (``ALTER TABLE {name}``), it stays."""
    reads = "conn = op.get_bind()\nrows = conn.execute(sa.text('SELECT id, owner_id FROM projects')).fetchall()\nfor row in rows:\n"
    compared = reads + "    conn.execute(sa.text(f'UPDATE tasks SET owner = {row.owner_id} WHERE project_id = {row[0]}'))"
    [f] = by_rule(review(body(compared)))["raw-sql-interpolation"]
    assert f.severity == "info" and "number" in f.message
    quoted = reads + "    conn.execute(sa.text(f\"UPDATE tasks SET owner = '{row.owner_id}' WHERE project_id = {row.id}\"))"
    assert [f.severity for f in by_rule(review(body(quoted)))["raw-sql-interpolation"]] == ["error"]
    listed = reads + "    conn.execute(sa.text(f'INSERT INTO archive ({row.owner_id}) VALUES (1)'))"
    assert [f.severity for f in by_rule(review(body(listed)))["raw-sql-interpolation"]] == ["error"]


def test_sql_built_into_a_local_before_execute_is_read_where_it_is_built():
    up = ("conn = op.get_bind()\nfor (name, plan) in conn.execute(sa.text('SELECT name, plan FROM accounts')).fetchall():\n"
          "    statement = f\"UPDATE billing SET plan = '{plan}' WHERE account = '{name}'\"\n"
          "    conn.execute(sa.text(statement))")
    [f] = by_rule(review(body(up)))["raw-sql-interpolation"]
    assert "statement = f" in body(up).splitlines()[f.line - 1] and f.severity == "error"


def test_keys_read_from_rows_in_a_values_list_are_numbers_and_a_reviewed_marker_is_honoured():
    reads = "conn = op.get_bind()\nunit = conn.execute(sa.text(\"SELECT id FROM units WHERE name = 'tags'\")).scalar()\n"
    values = reads + "op.execute(\n    f'INSERT INTO grants (unit_id, role_id) VALUES ({unit}, 1), ({unit}, 2)'\n)"
    [f] = by_rule(review(body(values)))["raw-sql-interpolation"]
    assert f.severity == "info" and "number" in f.message  # the f-string on a line of its own inside the call
    columns = reads + "op.execute(f'INSERT INTO grants ({unit}) VALUES (1)')"
    assert [f.severity for f in by_rule(review(body(columns)))["raw-sql-interpolation"]] == ["error"]
    marked = reads + "op.execute(\n    f\"DELETE FROM grants WHERE unit_name = '{unit}'\"  # nosec B608\n)"
    [f] = by_rule(review(body(marked)))["raw-sql-interpolation"]
    assert f.severity == "info" and "nosec B608" in f.message
    other = reads + "op.execute(f\"DELETE FROM grants WHERE unit_name = '{unit}'\")  # nosec B101"
    assert [f.severity for f in by_rule(review(body(other)))["raw-sql-interpolation"]] == ["error"]


def test_the_bound_fix_keeps_the_callee_and_is_not_offered_for_a_joined_list():
    up = ("session = sa.orm.Session(bind=op.get_bind())\n"
          "rows = session.execute(sa.text('SELECT name FROM plans')).fetchall()\n"
          "for (name,) in rows:\n"
          "    session.execute(f\"UPDATE plans SET tier = 'x' WHERE name = '{name}'\")\n"
          "names = ', '.join(f\"'{n}'\" for (n,) in rows)\n"
          "op.execute(f'DELETE FROM plans WHERE name IN ({names})')")
    found = by_rule(review(body(up)))["raw-sql-interpolation"]
    assert [f.severity for f in found] == ["error", "error"]
    assert found[0].fix.startswith("session.execute(sa.text(") and ":name" in found[0].fix
    assert found[1].fix is None or ":names" not in found[1].fix


def test_a_foreign_key_recreated_without_a_name_gets_the_name_postgresql_gives_it():
    """Autogenerate's cascade change: drop the key by its name, create it again with None. PostgreSQL names the new
    one ``<table>_<column>_fkey`` again, so the downgrade that drops that name and re-creates the old key undoes it."""
    up = ("op.drop_constraint('invoices_customer_id_fkey', 'invoices', type_='foreignkey')\n"
          "op.create_foreign_key(None, 'invoices', 'customers', ['customer_id'], ['id'], ondelete='CASCADE')")
    down = ("op.drop_constraint('invoices_customer_id_fkey', 'invoices', type_='foreignkey')\n"
            "op.create_foreign_key(None, 'invoices', 'customers', ['customer_id'], ['id'])")
    assert "downgrade-not-inverse" not in by_rule(review(body(up, down)))
    lost = by_rule(review(body(up, "op.drop_constraint('invoices_customer_id_fkey', 'invoices', type_='foreignkey')")))
    assert "re-create" in lost["downgrade-not-inverse"][0].message  # the old key is really not put back


def test_a_constraint_name_wrapped_by_the_projects_convention_is_the_one_the_downgrade_drops():
    up = "op.create_check_constraint('positive_amount', 'refunds', 'amount > 0')"
    assert "downgrade-not-inverse" not in by_rule(review(body(up, "op.drop_constraint('ck__refunds__positive_amount', 'refunds')")))
    other = by_rule(review(body(up, "op.drop_constraint('ck__payments__positive_amount', 'payments')")))
    assert "downgrade-not-inverse" in other  # another table's constraint is not this one


def test_a_downgrade_that_cuts_values_before_narrowing_runs_and_says_what_it_costs():
    up = "op.alter_column('hosts', 'label', existing_type=sa.String(50), type_=sa.Text())"
    cut = ("op.execute('UPDATE hosts SET label = LEFT(label, 50) WHERE length(label) > 50')\n"
           "op.alter_column('hosts', 'label', existing_type=sa.Text(), type_=sa.String(50))")
    [f] = by_rule(review(body(up, cut)))["downgrade-tightens-column"]
    assert f.severity == "info" and "line" in f.message and "lost" in f.message
    bare = "op.alter_column('hosts', 'label', existing_type=sa.Text(), type_=sa.String(50))"
    [f] = by_rule(review(body(up, bare)))["downgrade-tightens-column"]
    assert f.severity == "warning" and "fail" in f.message


def test_a_parent_table_is_free_to_drop_once_its_referencing_column_is_gone_or_before_the_reference_exists():
    up = ("op.create_table('scores', sa.Column('id', sa.Integer(), primary_key=True))\n"
          "op.add_column('findings', sa.Column('score_id', sa.Integer(), sa.ForeignKey('scores.id')))\n"
          "op.create_foreign_key('findings_score_fk', 'findings', 'scores', ['score_id'], ['id'])")
    down_ok = "op.drop_column('findings', 'score_id')\nop.drop_table('scores')"
    assert "drop-table-still-referenced" not in by_rule(review(body(up, down_ok)))
    down_bad = "op.drop_table('scores')\nop.drop_column('findings', 'score_id')"
    assert "drop-table-still-referenced" in by_rule(review(body(up, down_bad)))
    later = ("op.drop_table('secrets')\n"
             "op.create_table('secrets', sa.Column('id', sa.Integer(), primary_key=True))\n"
             "op.create_table('secret_links', sa.Column('secret_id', sa.Integer(), sa.ForeignKey('secrets.id')))")
    assert "drop-table-still-referenced" not in by_rule(review(body(later)))


def test_a_surrogate_key_dropped_for_a_new_primary_key_is_one_change_of_key():
    up = ("with op.batch_alter_table('blobs') as batch_op:\n"
          "    batch_op.drop_column('id')\n"
          "    batch_op.create_primary_key('blobs_pk', ['digest'])")
    found = by_rule(review(body(up), dialect="mysql"))
    assert "drop-column" not in found
    [f] = found["change-primary-key"]
    assert "dropping its column id" in f.message and "digest" in f.message
    assert "drop-column" in by_rule(review(body("op.drop_column('blobs', 'id')"), dialect="mysql"))


@pytest.mark.parametrize(("dialect", "delete"), [
    ("mysql", "DELETE d FROM drafts d LEFT JOIN tasks t ON d.task_guid = t.guid WHERE t.guid IS NULL"),
    ("postgresql", "DELETE FROM drafts WHERE task_guid NOT IN (SELECT guid FROM tasks)"),
])
def test_deleting_the_orphans_a_new_foreign_key_forbids_is_cleanup_not_a_loss(dialect, delete):
    up = f'op.execute("{delete}")\nop.create_foreign_key("drafts_task_fk", "drafts", "tasks", ["task_guid"], ["guid"])'
    out = review(body(up, 'op.drop_constraint("drafts_task_fk", "drafts", type_="foreignkey")'), dialect=dialect)
    [f] = by_rule(out)["destructive-sql"]
    assert f.severity == "info" and "forbids" in f.message
    assert not classified(out).escalation.required  # (PostgreSQL still asks for NOT VALID: the key's own lock)
    plain = review(body(f'op.execute("{delete}")', "pass"), dialect=dialect)  # no key follows: rows are lost
    assert by_rule(plain)["destructive-sql"][0].severity == "warning" and classified(plain).decision == "escalate"


def test_dropping_a_cache_table_is_no_drop_with_data_and_the_pattern_is_the_projects_to_change():
    out = review(body("op.drop_table('spec_reference_cache')", "op.create_table('spec_reference_cache', sa.Column('id', sa.Integer()))"))
    assert "drop-table" in by_rule(out)  # the review still says a table goes
    assert "drop-with-data" not in [t.trigger for t in classified(out).escalation.triggers]
    result = ReviewResult(decision="proceed", summary="", revisions=["r"], findings=out.findings, unchecked=out.unchecked,
                          dialect="postgresql", reviews=[out.review])
    strict = classify(result, Policy(derived_tables=[]))
    assert "drop-with-data" in [t.trigger for t in strict.escalation.triggers]


def test_an_enum_type_created_only_where_missing_needs_no_drop_in_the_downgrade():
    """``enum.create(bind, checkfirst=True)``: the type a downgrade leaves is found by the re-upgrade, which goes on;
    created unconditionally, the re-upgrade fails on it, and the rollback is unclear."""
    head = "from sqlalchemy.dialects import postgresql\n\n"
    up = ('kind = postgresql.ENUM("open", "shut", name="gate_state")\nkind.create(op.get_bind(){})\n'
          'op.add_column("gates", sa.Column("state", kind, nullable=True))')
    down = 'op.drop_column("gates", "state")'
    assert not classified(review(body(up.format(", checkfirst=True"), down, head=head))).escalation.required
    assert "unclear-rollback" in [t.trigger for t in classified(review(body(up.format(""), down, head=head))).escalation.triggers]


def test_a_column_moved_into_a_link_table_before_its_drop_keeps_its_values():
    up = ("op.create_table('report_workspaces', sa.Column('report_id', sa.Integer()), sa.Column('workspace_id', sa.Integer()))\n"
          "op.execute('INSERT INTO report_workspaces (report_id, workspace_id) SELECT id, workspace_id FROM reports')\n"
          "op.drop_column('reports', 'workspace_id')")
    out = review(body(up, "op.add_column('reports', sa.Column('workspace_id', sa.Integer()))\nop.drop_table('report_workspaces')"))
    assert "drop-column" not in by_rule(out)
    assert "drop-with-data" not in [t.trigger for t in classified(out).escalation.triggers]
    other = up.replace("SELECT id, workspace_id FROM reports", "SELECT id, owner_id FROM reports")
    assert "drop-column" in by_rule(review(body(other)))


def test_the_word_duplicate_in_a_docstring_is_no_check_for_duplicates():
    up = "op.create_unique_constraint('uq_tokens_value', 'tokens', ['value'])"
    said = by_rule(review(body(up, head='"""Remove the duplicate constraint on tokens."""\n\n')))["add-unique-constraint"]
    assert "checks for duplicates itself" not in said[0].message
    checked = ("dups = op.get_bind().execute(sa.text('SELECT value FROM tokens GROUP BY value HAVING count(*) > 1')).fetchall()\n"
               "if dups:\n    raise RuntimeError('duplicate tokens')\n" + up)
    assert "checks for duplicates itself" in by_rule(review(body(checked)))["add-unique-constraint"][0].message


def test_a_widened_column_left_wide_by_the_downgrade_is_a_note_and_a_narrowed_one_is_not():
    up = "op.alter_column('hosts', 'ip', existing_type=sa.String(15), type_=sa.String(255))"
    wide = body(up + "\nop.add_column('hosts', sa.Column('port', sa.Integer()))", "op.drop_column('hosts', 'port')")
    [f] = by_rule(review(wide))["downgrade-not-inverse"]
    assert f.severity == "info" and "leaves it wide" in f.message
    assert not classified(review(wide)).escalation.required
    [f] = by_rule(review(body(up)))["missing-downgrade"]  # downgrade() is pass
    assert f.severity == "info" and "only widens" in f.message and not classified(review(body(up))).escalation.required
    narrow = body("op.alter_column('hosts', 'ip', existing_type=sa.String(255), type_=sa.String(15))\n"
                  "op.add_column('hosts', sa.Column('port', sa.Integer()))", "op.drop_column('hosts', 'port')")
    assert by_rule(review(narrow))["downgrade-not-inverse"][0].severity == "error"


def test_a_name_read_from_the_catalogue_spliced_where_sql_takes_a_name_is_a_note():
    reads = ("bind = op.get_bind()\nfk = bind.execute(sa.text(\"SELECT CONSTRAINT_NAME FROM information_schema.KEY_COLUMN_USAGE "
             "WHERE TABLE_NAME = 'evidence'\")).scalar()\n")
    for sql in ("ALTER TABLE evidence DROP FOREIGN KEY `{fk}`", "ALTER TABLE evidence DROP CONSTRAINT {fk}"):
        [f] = by_rule(review(body(reads + f'bind.execute(sa.text(f"{sql}"))'), dialect="mysql"))["raw-sql-interpolation"]
        assert f.severity == "info" and "takes a name" in f.message and f.fix is None
    value = reads + "bind.execute(sa.text(f\"DELETE FROM evidence WHERE note = '{fk}'\"))"
    assert by_rule(review(body(value), dialect="mysql"))["raw-sql-interpolation"][0].severity == "error"


def test_values_merged_into_one_are_lost_to_a_downgrade_even_with_a_where():
    """``SET alg = 'sha256' WHERE alg = 'sha1'``: afterwards nobody can tell which rows held sha1, unless the author
    maps the value back in the downgrade (their word that it was a rename of the value, not a merge)."""
    up = "op.execute(\"UPDATE ikepolicies SET alg = 'sha256' WHERE alg = 'sha1'\")"
    out = review(body(up, "op.create_index('ix_ikepolicies_alg', 'ikepolicies', ['alg'])"))
    assert by_rule(out)["destructive-sql"][0].severity == "warning" and "merged" in by_rule(out)["destructive-sql"][0].message
    assert "unclear-rollback" in [t.trigger for t in classified(out).escalation.triggers]
    back = review(body(up, "op.execute(\"UPDATE ikepolicies SET alg = 'sha1' WHERE alg = 'sha256'\")"))
    assert "destructive-sql" not in by_rule(back) and not classified(back).escalation.required
    fix = review(body("op.execute(\"UPDATE ikepolicies SET note = 'checked' WHERE alg = 'sha1'\")"))
    assert "destructive-sql" not in by_rule(fix)  # another column's test gives a value: no merge


@pytest.mark.parametrize("then", ["op.drop_table('daily_stats')", "op.execute('DROP MATERIALIZED VIEW daily_stats')"])
def test_an_index_dropped_just_before_its_relation_adds_no_wait_of_its_own(then):
    up = "op.drop_index('ix_daily_stats_day', table_name='daily_stats')\n" + then
    assert "drop-index-non-concurrent" not in by_rule(review(body(up)))


def test_a_drop_column_given_a_column_object_is_no_drop_of_the_column_and_no_rule_fails_on_it():
    out = review(body("op.add_column('agents', sa.Column('last_event', sa.String(100)))",
                      "op.drop_column('agents', sa.Column('last_event', sa.Integer))"))
    assert not [u for u in out.unchecked if u.what.startswith("rule ")], out.unchecked
    assert "does not drop it" in by_rule(out)["downgrade-not-inverse"][0].message


def test_a_downgrade_that_raises_first_has_no_way_back_whatever_follows_the_raise():
    dead = review(body("op.add_column('files', sa.Column('sha', sa.Text()))", "raise NotImplementedError()\nop.drop_column('files', 'sha')"))
    assert "missing-downgrade" in by_rule(dead)
    deleted = review(body("op.execute(\"DELETE FROM grants WHERE reason = 'legacy'\")", "raise NotImplementedError"))
    assert "unclear-rollback" in [t.trigger for t in classified(deleted).escalation.triggers]


def test_add_column_with_primary_key_true_makes_no_key_and_a_downgrade_undoing_a_key_is_no_change_of_its_own():
    """alembic renders no PRIMARY KEY in ADD COLUMN: ``add_column(Column('id', primary_key=True))`` adds a serial
    column, not a key; the key comes from create_primary_key, and dropping it again in the downgrade only undoes it."""
    up = ("op.add_column('links', sa.Column('id', sa.Integer(), primary_key=True))\n"
          "op.drop_column('links', 'id')\n"
          "op.create_primary_key('links_pkey', 'links', ['item_id', 'tag_id'])")
    out = review(body(up, "op.drop_constraint('links_pkey', 'links', type_='primary')"))
    [f] = by_rule(out)["change-primary-key"]
    assert f.phase == "upgrade" and "Sets the primary key of links to (item_id, tag_id)" in f.message
    assert [t.trigger for t in classified(out).escalation.triggers] == ["primary-key-change"]  # no drop-with-data for id
    raw = review(body("op.execute('ALTER TABLE links ADD id INT PRIMARY KEY AUTO_INCREMENT')"), dialect="mysql")
    assert "change-primary-key" in by_rule(raw)


def test_an_index_on_a_table_the_transaction_already_holds_is_built_in_a_revision_of_its_own():
    """After add_column and a backfill the table is held ACCESS EXCLUSIVE: the build blocks reads too, and making it
    concurrent in place (an autocommit block) would commit the first half of the revision: no in-place patch."""
    up = ("op.add_column('objects', sa.Column('kind', sa.Text()))\nop.execute(\"UPDATE objects SET kind = 'file'\")\n"
          "op.create_index('ix_objects_kind', 'objects', ['kind'])")
    [f] = by_rule(review(body(up, "op.drop_index('ix_objects_kind', table_name='objects')\nop.drop_column('objects', 'kind')")))[
        "create-index-non-concurrent"]
    assert f.severity == "error" and "since line" in f.message and "revision of its own" in f.message
    assert f.patch is None and f.fix.startswith("# remove line")


def test_a_table_whose_rows_were_written_into_another_first_is_moved_not_lost():
    up = ("op.execute('INSERT INTO objects (id, body) SELECT id, body FROM files')\n"
          "op.drop_table('files')")
    out = review(body(up, "op.create_table('files', sa.Column('id', sa.Integer()), sa.Column('body', sa.Text()))"))
    [f] = by_rule(out)["drop-table"]
    assert f.severity == "info" and "wrote its rows into objects" in f.message
    assert "drop-with-data" not in [t.trigger for t in classified(out).escalation.triggers]
    assert "drop-with-data" in [t.trigger for t in classified(review(body("op.drop_table('files')"))).escalation.triggers]


def test_a_column_dropped_and_added_again_under_its_name_loses_its_values():
    """The new column starts empty: the one dropped held the data (an added-then-dropped column held none)."""
    again = review(body("op.drop_column('users', 'notify')\nop.add_column('users', sa.Column('notify', sa.Integer()))"))
    assert "drop-with-data" in [t.trigger for t in classified(again).escalation.triggers]
    scratch = review(body("op.add_column('users', sa.Column('notify', sa.Integer()))\nop.drop_column('users', 'notify')"))
    assert "drop-with-data" not in [t.trigger for t in classified(scratch).escalation.triggers]


def test_every_row_set_to_null_is_undone_only_by_reading_a_copy():
    up = "op.execute('UPDATE events SET refund_policy = NULL')"
    hopeless = review(body(up, "op.execute(\"UPDATE events SET refund_policy = 'default' WHERE refund_policy = NULL\")"))
    assert "destructive-sql" in by_rule(hopeless) and classified(hopeless).escalation.required
    kept = review(body("op.execute('CREATE TABLE events_policy_backup AS SELECT id, refund_policy FROM events')\n" + up,
                       "op.execute('UPDATE events SET refund_policy = b.refund_policy FROM events_policy_backup b WHERE b.id = events.id')"))
    assert "destructive-sql" not in by_rule(kept)


def test_a_rename_restating_not_null_both_ways_tightens_nothing():
    up = "op.alter_column('workspaces', 'label', new_column_name='name', existing_type=sa.String(1024), nullable=False)"
    down = "op.alter_column('workspaces', 'name', new_column_name='label', existing_type=sa.String(1024), nullable=False)"
    assert "downgrade-tightens-column" not in by_rule(review(body(up, down), dialect="mysql"))
    relaxed = up.replace("nullable=False", "nullable=True")
    assert "downgrade-tightens-column" in by_rule(review(body(relaxed, down), dialect="mysql"))


def test_a_column_only_read_in_a_set_expression_is_not_overwritten():
    up = ("op.add_column('users', sa.Column('is_default', sa.Boolean()))\n"
          "op.execute(\"UPDATE users SET is_default = (avatar = '' OR avatar IS NULL)\")")
    assert "destructive-sql" not in by_rule(review(body(up, "op.drop_column('users', 'is_default')"), dialect="mysql"))


def test_a_server_default_the_downgrade_leaves_is_a_note():
    up = ("op.alter_column('events', 'is_map_shown', existing_type=sa.Boolean(), server_default='false')\n"
          "op.add_column('events', sa.Column('note', sa.Text()))")
    out = review(body(up, "op.drop_column('events', 'note')"))
    [f] = by_rule(out)["downgrade-not-inverse"]
    assert f.severity == "info" and "server default" in f.message and not classified(out).escalation.required


def test_a_type_changed_back_under_the_columns_new_name_before_renaming_it_back_is_undone():
    up = ("op.alter_column('events', 'show_map', existing_type=sa.Integer(), type_=sa.Boolean(), postgresql_using='show_map::boolean')\n"
          "op.alter_column('events', 'show_map', new_column_name='is_map_shown')")
    down = ("op.alter_column('events', 'is_map_shown', existing_type=sa.Boolean(), type_=sa.Integer(), postgresql_using='is_map_shown::integer')\n"
            "op.alter_column('events', 'is_map_shown', new_column_name='show_map')")
    assert "downgrade-not-inverse" not in by_rule(review(body(up, down)))
    assert "downgrade-not-inverse" in by_rule(review(body(up, "op.alter_column('events', 'is_map_shown', new_column_name='show_map')")))


def test_a_column_whose_valued_rows_were_deleted_first_holds_only_nulls_when_dropped():
    up = "op.execute('DELETE FROM tickets WHERE deleted_at IS NOT NULL')\nop.drop_column('tickets', 'deleted_at')"
    out = review(body(up, "op.add_column('tickets', sa.Column('deleted_at', sa.DateTime()))"))
    assert "drop-column" not in by_rule(out) and "destructive-sql" in by_rule(out)  # the DELETE says what is lost
    evidence = [e for t in classified(out).escalation.triggers for e in t.evidence]
    assert not any("drop_column" in e and "deleted_at" in e and "holding data" in e for e in evidence), evidence


def test_a_unique_constraint_replacing_a_unique_index_on_its_columns_meets_no_duplicate():
    up = "op.drop_index('sources_name_uc', table_name='hub_sources')\nop.create_unique_constraint('hub_sources_name_uc', 'hub_sources', ['name'])"
    down = "op.drop_constraint('hub_sources_name_uc', 'hub_sources', type_='unique')\nop.create_index('sources_name_uc', 'hub_sources', ['name'], unique=True)"
    assert "add-unique-constraint" not in by_rule(review(body(up, down), dialect="mysql"))
    plain = down.replace("unique=True", "unique=False")
    assert "add-unique-constraint" in by_rule(review(body(up, plain), dialect="mysql"))


def test_a_column_moved_aside_and_added_again_empty_is_a_rename_the_application_sees():
    moved = ("op.alter_column('notifications', 'params', new_column_name='secret_params', type_=sa.JSON(), nullable=True)\n"
             "op.add_column('notifications', sa.Column('params', sa.JSON(), nullable=True))")
    assert "rename-column" in by_rule(review(body(moved), dialect="mysql"))
    copied = moved + "\nop.execute('UPDATE notifications SET params = secret_params')"
    assert "rename-column" not in by_rule(review(body(copied), dialect="mysql"))


def test_a_declared_one_way_step_whose_upgrade_was_not_all_recorded_is_a_humans_call():
    """The author says the deleted data cannot come back, and the deletes run where recording could not follow: it
    escalates, as the same revision with an uncommented pass does (it proceeded, the words silencing it)."""
    up = ("ids = [r[0] for r in op.get_bind().execute(sa.text('SELECT id FROM connector WHERE legacy')).fetchall()]\n"
          "op.get_bind().execute(sa.text('DELETE FROM connector WHERE id = ANY(:ids)'), {'ids': ids})")
    out = review(body(up, "# cannot restore deleted data\npass"))
    assert "irreversible-by-design" in by_rule(out)
    assert classified(out).escalation.required


def test_a_non_native_enum_is_the_varchar_it_renders_not_an_enum_type():
    """``Enum(..., native_enum=False)`` is VARCHAR(longest label): a new label widens it (catalogue only on PostgreSQL);
    there is no type to ALTER TYPE ... ADD VALUE to, so enum-value-change has nothing to say."""
    old, new = "sa.Enum('BASIC', 'ADMIN', native_enum=False)", "sa.Enum('BASIC', 'ADMIN', 'CURATOR', native_enum=False)"
    out = review(body(f"op.alter_column('user', 'role', existing_type={old}, type_={new})",
                      f"op.alter_column('user', 'role', existing_type={new}, type_={old})"))
    assert "enum-value-change" not in by_rule(out) and "alter-column-type" not in by_rule(out)
    native = review(body("op.alter_column('user', 'role', existing_type=sa.Enum('BASIC', 'ADMIN', name='role'), "
                         "type_=sa.Enum('BASIC', 'ADMIN', 'CURATOR', name='role'))"))
    assert "enum-value-change" in by_rule(native)


def test_a_loop_over_the_databases_constraints_may_drop_what_the_downgrade_must():
    """``for c in inspector.get_check_constraints('docs'): op.drop_constraint(c['name'], ...)``: offline no pass of
    the loop is recorded, so the downgrade's drop of the upgrade's constraint is unknown, not missing."""
    head = ("def _drop_checks():\n    for c in sa.inspect(op.get_bind()).get_check_constraints('docs'):\n"
            "        op.drop_constraint(c['name'], 'docs', type_='check')\n\n\n")
    up = "_drop_checks()\nop.create_check_constraint('ck_docs_state', 'docs', \"state IN ('a', 'b')\")"
    down = "_drop_checks()\nop.create_check_constraint('ck_docs_state_old', 'docs', \"state IN ('a')\")"
    out = review(body(up, down, head=head))
    assert "downgrade-not-inverse" not in by_rule(out) and not [u for u in out.unchecked if u.what.startswith("rule ")]
    assert "downgrade-not-inverse" in by_rule(review(body(up, "op.execute('SELECT 1')", head=head)))


def test_an_empty_revision_whose_message_names_its_job_is_a_marker_despite_autogenerates_comment():
    stub = "def upgrade():\n    # ### commands auto generated by Alembic - please adjust! ###\n    pass\n\n\ndef downgrade():\n    pass\n"
    from db_migrate.rules.empty import is_marker

    assert is_marker("Add placeholder migration for Train", stub) and is_marker("Tracim V2", stub)
    assert not is_marker("add user columns", stub)


def test_the_columns_of_a_table_the_upgrade_re_creates_are_its_own_to_drop_in_the_downgrade():
    up = ("op.drop_table('user_stats')\n"
          "op.create_table('user_stats', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('reply_ranked', sa.Integer()))")
    down = "op.drop_column('user_stats', 'reply_ranked')\nop.add_column('user_stats', sa.Column('old_rank', sa.Integer()))"
    messages = [f.message for f in by_rule(review(body(up, down))).get("downgrade-not-inverse", [])]
    assert not any("does not create" in m for m in messages), messages


def test_mysql_fills_a_not_null_enum_with_its_first_member():
    up = "op.add_column('devices', sa.Column('state', sa.Enum('enabled', 'disabled'), nullable=False, default='{}'))"
    assert "add-column-not-null-no-default" not in by_rule(review(body(up.format("enabled")), dialect="mysql"))
    [f] = by_rule(review(body(up.format("disabled")), dialect="mysql"))["add-column-not-null-no-default"]
    assert "its first member, 'enabled'" in f.message


def test_a_fix_for_a_line_that_runs_for_several_tables_is_said_for_the_loop():
    up = ("for t in ['groups_v2', 'rules_v2']:\n    op.add_column(t, sa.Column('std_id', sa.Integer()))\n"
          "    op.create_foreign_key(None, t, 'std', ['std_id'], ['id'])")
    found = by_rule(review(body(up), dialect="mysql"))["unnamed-constraint"]
    assert found and all(f.fix.startswith("# line") and "groups_v2, rules_v2" in f.fix and f.patch is None for f in found)


def test_a_whole_row_restore_says_to_name_the_columns_when_the_revision_reshapes_the_table():
    out = review(body("op.execute('DELETE FROM journal')\nop.drop_column('journal', 'person_id')",
                      "op.add_column('journal', sa.Column('person_id', sa.Integer()))"))
    assert "name them" in by_rule(out)["destructive-sql"][0].fix
    assert "name them" not in by_rule(review(body("op.execute('DELETE FROM journal')")))["destructive-sql"][0].fix


# --- classifier: raw SQL with an inverse, extensions -------------------------------------------------


def test_raw_index_rename_undone_by_the_downgrade_is_not_unclear_rollback():
    out = review(body("op.execute('ALTER INDEX ix_coupons_code RENAME TO ix_vouchers_code')",
                      "op.execute('ALTER INDEX ix_vouchers_code RENAME TO ix_coupons_code')"))
    assert "unclear-rollback" not in {t.trigger for t in classified(out).escalation.triggers}


def test_create_extension_needs_no_inverse():
    out = review(body("op.execute('CREATE EXTENSION IF NOT EXISTS citext')\n"
                      "op.add_column('orgs', sa.Column('nick', sa.Text(), nullable=True))",
                      "op.drop_column('orgs', 'nick')"))
    assert "unclear-rollback" not in {t.trigger for t in classified(out).escalation.triggers}


# --- type changes ---------------------------------------------------------------------------------------


def test_numeric_to_integer_is_a_narrowing_not_a_failed_cast():
    out = review(body(
        "op.alter_column('payments', 'amount', existing_type=sa.Numeric(20, 6), type_=sa.BigInteger())",
        "op.alter_column('payments', 'amount', existing_type=sa.BigInteger(), type_=sa.Numeric(20, 6))",
    ))
    [f] = by_rule(out)["alter-column-type"]
    assert "do not fit" in f.message and "cannot convert" not in f.message


def test_text_to_mediumtext_copies_the_table_on_mysql():
    out = review(body(
        "op.alter_column('notes', 'body', existing_type=sa.Text(), type_=mysql.MEDIUMTEXT())",
        "op.alter_column('notes', 'body', existing_type=mysql.MEDIUMTEXT(), type_=sa.Text())",
        head="from sqlalchemy.dialects import mysql\n\n",
    ), dialect="mysql")
    [f] = by_rule(out)["alter-column-type"]
    assert "ALGORITHM=COPY" in f.message


def test_sqlite_batch_type_change_needs_no_existing_type():
    out = review(body(
        "with op.batch_alter_table('samples') as batch_op:\n"
        "    batch_op.alter_column('reading', type_=sa.Float(precision=53))",
        "with op.batch_alter_table('samples') as batch_op:\n"
        "    batch_op.alter_column('reading', type_=sa.Float())",
    ), dialect="sqlite")
    assert "alter-column-type" not in by_rule(out)


# --- messages ------------------------------------------------------------------------------------------


def test_set_not_null_on_mysql_does_not_speak_of_postgresql_locks():
    out = review(body("op.alter_column('uploads', 'size', existing_type=sa.BigInteger(), nullable=False)",
                      "op.alter_column('uploads', 'size', existing_type=sa.BigInteger(), nullable=True)"),
                 dialect="mysql")
    [f] = by_rule(out)["set-not-null"]
    assert "ACCESS EXCLUSIVE" not in f.message and "rebuild" in f.message


def test_orm_data_migration_with_empty_downgrade_is_a_warning_with_a_real_sentence():
    out = review(body(
        "session = orm.Session(bind=op.get_bind())\n"
        "for row in session.execute(sa.text('SELECT id, owner FROM jobs')).fetchall():\n"
        "    session.execute(sa.text('INSERT INTO job_tags (job_id, v) VALUES (1, 2)'))\n"
        "session.commit()",
        head="from sqlalchemy import orm\n\n",
    ))
    [f] = by_rule(out)["missing-downgrade"]
    assert f.severity == "warning"
    assert "does changes" not in f.message and "data migration" in f.message


def test_update_reversed_by_the_downgrade_is_not_destructive():
    out = review(body("op.execute('UPDATE prices SET cents = cents * 100')",
                      "op.execute('UPDATE prices SET cents = cents / 100')"))
    assert "destructive-sql" not in by_rule(out)


# --- enum values, COMMIT in op.execute ------------------------------------------------------------------


def test_enum_values_added_in_autocommit_block_need_no_downgrade():
    """PostgreSQL cannot drop an enum value: an empty downgrade is the right one, not an unclear rollback."""
    out = review(body(
        "with op.get_context().autocommit_block():\n"
        "    op.execute(\"ALTER TYPE shipment_state ADD VALUE IF NOT EXISTS 'lost'\")"
    ))
    assert not out.findings
    assert not classified(out).escalation.required


def test_commit_through_op_execute_is_reported_and_not_a_rollback_trigger():
    source = body("op.execute('COMMIT')\nop.execute(\"ALTER TYPE shipment_state ADD VALUE 'lost'\")")
    out = review(source)
    [f] = by_rule(out)["commit-in-migration"]
    assert f.line == line_of(source, "'COMMIT'") and "autocommit_block" in f.message
    assert "missing-downgrade" not in by_rule(out)
    assert not classified(out).escalation.required


def test_a_commit_before_anything_is_changed_commits_nothing_early_and_is_a_note():
    first = body("op.execute('COMMIT')\nop.create_index('ix_notes_author', 'notes', ['author'], postgresql_concurrently=True)",
                 "op.drop_index('ix_notes_author', table_name='notes')")
    [f] = by_rule(review(first))["commit-in-migration"]
    assert f.severity == "info" and "nothing is committed early" in f.message
    after = body("op.add_column('notes', sa.Column('author', sa.Text()))\nop.execute('COMMIT')\n"
                 "op.create_index('ix_notes_author', 'notes', ['author'], postgresql_concurrently=True)",
                 "op.drop_index('ix_notes_author', table_name='notes')\nop.drop_column('notes', 'author')")
    [f] = by_rule(review(after))["commit-in-migration"]
    assert f.severity == "warning" and "half-changed" in f.message


def test_raw_drop_statements_are_named_and_classified(tmp_path) -> None:
    """pglast reports DROP's object type as an enum: it must read 'DROP TABLE', not 'DROP 41'."""
    from db_migrate.classify import classify_escalation
    from db_migrate.project import load_project
    from db_migrate.review import review_migration
    from projectfactory import make_project

    body = (
        "def upgrade():\n    op.execute('DROP INDEX ix_shifts_day')\n    op.execute('DROP TABLE old_shifts')\n\n"
        "def downgrade():\n    pass\n"
    )
    make_project(tmp_path, [body])
    project = load_project(cwd=tmp_path)
    ops = review_migration(project, "head").reviews[0].operations
    # both are alembic operations written as SQL: they reach the rules as drop_index / drop_table
    assert [(o.kind, o.detail.get("from_sql")) for o in ops if o.phase == "upgrade"] == [("drop_index", True), ("drop_table", True)]
    rules = {f.rule for f in review_migration(project, "head").findings}
    assert {"drop-index-non-concurrent", "drop-table"} <= rules
    result = classify_escalation(project, "head")
    assert "drop-with-data" in [t.trigger for t in result.escalation.triggers]


def test_one_notion_of_what_a_downgrade_may_leave_in_place(tmp_path) -> None:
    """Review and classify agree: CREATE EXTENSION IF NOT EXISTS may stay; a plain CREATE EXTENSION may not
    (the re-upgrade would fail on the extension the downgrade left)."""
    from db_migrate.classify import classify_escalation
    from db_migrate.project import load_project
    from db_migrate.review import review_migration
    from projectfactory import make_project

    def verdicts(sql: str):
        root = make_project(tmp_path / sql.replace(" ", "_"), [f"def upgrade():\n    op.execute('{sql}')\n\ndef downgrade():\n    pass\n"])
        project = load_project(cwd=root)
        rules = {f.rule for f in review_migration(project, "head").findings}
        triggers = {t.trigger for t in classify_escalation(project, "head").escalation.triggers}
        return "missing-downgrade" in rules, "unclear-rollback" in triggers

    assert verdicts("CREATE EXTENSION IF NOT EXISTS citext") == (False, False)
    assert verdicts("CREATE EXTENSION citext") == (True, True)
    assert verdicts("COMMIT") == (False, False)


# --- patterns from the field test of issue 8 (three public histories) ----------------------------------


def test_index_dropped_if_exists_then_rebuilt_is_undone_by_dropping_it():
    # guard against an INVALID leftover of an interrupted concurrent build, then build it
    out = review(body(
        "with op.get_context().autocommit_block():\n"
        "    op.drop_index('ix_files_path', table_name='files', if_exists=True, postgresql_concurrently=True)\n"
        "    op.create_index('ix_files_path', 'files', ['path'], postgresql_concurrently=True)",
        "with op.get_context().autocommit_block():\n"
        "    op.drop_index('ix_files_path', table_name='files', if_exists=True, postgresql_concurrently=True)",
    ))
    assert "downgrade-not-inverse" not in by_rule(out)


def test_a_rebuilt_index_the_downgrade_forgets_is_still_reported():
    out = review(body(
        "op.drop_index('ix_files_path', table_name='files', if_exists=True)\n"
        "op.create_index('ix_files_path', 'files', ['path'])",
        "pass\nop.execute('SELECT 1')",
    ))
    [f] = by_rule(out)["downgrade-not-inverse"]
    assert "creates index ix_files_path" in f.message


def test_an_operation_registered_by_a_plugin_is_unchecked_not_a_crash():
    # alembic_utils' op.create_entity exists only once env.py has imported the plugin
    out = review(body("op.create_entity(some_view)\nop.add_column('t', sa.Column('c', sa.Integer()))", "op.drop_entity(some_view)",
                      head="some_view = object()  # the project's view definition\n\n"))
    assert "migration-raises" not in by_rule(out)
    assert any("plugin" in u.reason for u in out.unchecked)
    # recorded where it runs, and what follows it is recorded too
    assert [o.kind for o in out.review.operations if o.phase == "upgrade"] == ["unknown_operation", "add_column"]


def test_a_project_column_type_is_not_an_orm_import(tmp_path):
    (tmp_path / "hubapp").mkdir()
    (tmp_path / "hubapp" / "__init__.py").write_text("")
    (tmp_path / "hubapp" / "orm.py").write_text("")
    head = "from hubapp.orm import JSONDict, JSONList\n\nCOLUMNS = [{'name': 'env', 'type': JSONDict()}]\n\n"
    src = body(
        "op.add_column('users', sa.Column('state', JSONDict(), nullable=True))\n"
        "op.alter_column('users', 'cmd', type_=JSONList(), existing_type=sa.Text())\n"
        "for c in COLUMNS:\n    op.add_column('spawners', sa.Column(c['name'], c['type']))",
        "op.drop_column('users', 'state')", head=head,
    )
    assert "orm-import-in-migration" not in by_rule(review_source(src, root=tmp_path))
    # the same module used for a model is
    src = body("op.execute(sa.select(User.id))", head="from hubapp.orm import User\n\n")
    assert "orm-import-in-migration" in by_rule(review_source(src, root=tmp_path))


def test_a_module_of_column_types_used_through_its_name_is_not_an_orm_import(tmp_path):
    (tmp_path / "nfvo" / "db").mkdir(parents=True)
    for f in ("nfvo/__init__.py", "nfvo/db/__init__.py"):
        (tmp_path / f).write_text("")
    (tmp_path / "nfvo" / "db" / "types.py").write_text("import sqlalchemy as sa\nUuid = sa.String\nJson = sa.Text\n")
    head = "from nfvo.db import types\n\n"
    src = body("op.add_column('vnfs', sa.Column('uid', types.Uuid(36), nullable=True))\n"
               "op.alter_column('vnfs', 'meta', type_=types.Json(), existing_type=sa.Text())",
               "op.drop_column('vnfs', 'uid')", head=head)
    found = by_rule(review_source(src, root=tmp_path))
    assert "orm-import-in-migration" not in found, found.get("orm-import-in-migration")
    # a session over reflected tables next to it is alembic's connection, not today's models
    session = "op.add_column('vnfs', sa.Column('uid', types.Uuid(36), nullable=True))\n" \
              "meta = sa.MetaData()\nvnfs = sa.Table('vnfs', meta, autoload_with=op.get_bind())\n" \
              "s = sa.orm.Session(bind=op.get_bind())\nrows = s.execute(sa.select(vnfs.c.id)).all()"
    assert "orm-import-in-migration" not in by_rule(review_source(body(session, "pass", head=head), root=tmp_path))


def test_settings_classes_are_not_models(tmp_path):
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "__init__.py").write_text("")
    (tmp_path / "svc" / "config.py").write_text("")
    src = body("op.add_column('t', sa.Column('c', sa.Integer(), nullable=True))", "op.drop_column('t', 'c')",
               head="from svc.config import Config, Secret, ENCRYPTION_KEY\n\n")
    assert "orm-import-in-migration" not in by_rule(review_source(src, root=tmp_path))


def test_an_empty_first_revision_is_a_base_not_noise():
    root = body("pass").replace("down_revision = 'f1e1d0000000'", "down_revision = None")
    assert "empty-migration" not in by_rule(review(root))
    assert "empty-migration" in by_rule(review(body("pass")))


def test_a_name_from_an_application_namespace_package_is_stood_in(tmp_path, monkeypatch):
    # the application's package directory exists but holds no code here (only its migrations were checked out)
    (tmp_path / "hubpkg" / "alembic").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    src = body("op.add_column('t', sa.Column('c', sa.Integer(), nullable=True))", "op.drop_column('t', 'c')",
               head="from hubpkg import roles\n\n")
    out = review_source(src, root=tmp_path)
    assert out.load_error is None
    assert [op.kind for op in out.review.operations] == ["add_column", "drop_column"]


def test_an_import_inside_upgrade_of_a_missing_module_is_unchecked():
    out = review(body("from not_installed_plugin_pkg.slack import SlackConfig\nop.execute('UPDATE plugin SET x = 1')"))
    assert "migration-raises" not in by_rule(out)
    assert any("not installed here" in u.reason for u in out.unchecked)


def test_a_stand_in_rejected_by_sqlalchemy_is_unchecked():
    out = review(body("op.execute(sa.select(Feedback).where(Feedback.id == 1))", head="from not_installed_fb_pkg.models import Feedback\n\n"))
    assert "migration-raises" not in by_rule(out)


def test_restating_the_same_nullability_in_both_directions_is_not_a_missed_restore():
    out = review(body(
        "op.alter_column('entity_type', 'field', nullable=False, new_column_name='jpath')",
        "op.alter_column('entity_type', 'jpath', nullable=False, new_column_name='field')",
    ))
    assert "downgrade-not-inverse" not in by_rule(out)
    # with the old state given, a downgrade that keeps NOT NULL is caught
    out = review(body(
        "op.alter_column('entity_type', 'field', nullable=False, existing_nullable=True)",
        "op.alter_column('entity_type', 'field', nullable=False, existing_nullable=True)",
    ))
    assert "downgrade-not-inverse" in by_rule(out)


def test_what_a_partially_recorded_upgrade_did_must_still_be_undone():
    # the upgrade stops on a row read (offline); the columns it added before that are real
    out = review(body(
        "op.add_column('incident', sa.Column('team', sa.String(), nullable=True))\n"
        "rows = op.get_bind().execute(sa.text('SELECT id FROM incident')).fetchall()\n"
        "op.drop_column('incident', 'legacy_team')",
        "op.add_column('incident', sa.Column('legacy_team', sa.String(), nullable=True))",
    ))
    messages = [f.message for f in by_rule(out).get("downgrade-not-inverse", [])]
    assert any("creates column incident.team" in m for m in messages)
    assert not any("legacy_team" in m for m in messages)  # what came after the stop is not judged


def test_a_rename_after_a_read_is_recorded_and_its_undo_renames_it_back():
    out = review(body(
        "op.add_column('case', sa.Column('_owner_id', sa.Integer()))\n"
        "rows = op.get_bind().execute(sa.text('SELECT id FROM case')).fetchall()\n"
        "op.drop_column('case', 'owner_id')\n"
        "op.alter_column('case', '_owner_id', new_column_name='owner_id')",
        "op.execute('SELECT 1')",
    ))
    (f,) = by_rule(out)["downgrade-not-inverse"]
    assert "op.alter_column('case', 'owner_id'," in f.fix and "new_column_name='_owner_id'" in f.fix


def test_sql_spliced_from_the_codes_own_names_and_constants_is_not_an_injection_path():
    reads = "conn = op.get_bind()\nrows = conn.execute(sa.text('SELECT id FROM recipes')).fetchall()\n"
    table_name = reads + "conn.execute(sa.text(f'UPDATE {Recipe.__tablename__} SET slug = :s WHERE id = :i').bindparams(s='x', i=1))"
    assert "raw-sql-interpolation" not in by_rule(review(body(table_name)))  # an identifier from the code, values bound
    constant = "op.execute(\"UPDATE jobs SET started_at = '%s' WHERE started_at IS NULL\" % datetime.min)"
    [f] = by_rule(review(body(constant, head="import datetime\n\n")))["raw-sql-interpolation"]
    assert f.severity == "info"  # nothing read at run time reaches it
    value = reads + "for (rid,) in rows:\n    conn.execute(sa.text(f\"DELETE FROM tags WHERE recipe_slug = '{rid}'\"))"
    [f] = by_rule(review(body(value)))["raw-sql-interpolation"]
    assert f.severity == "error"  # a value read from rows, quoted: text, which may hold a quote


def test_an_aliased_module_of_column_types_is_not_an_orm_import(tmp_path):
    (tmp_path / "wf" / "db").mkdir(parents=True)
    for f in ("wf/__init__.py", "wf/db/__init__.py"):
        (tmp_path / f).write_text("")
    (tmp_path / "wf" / "db" / "types.py").write_text("import sqlalchemy as sa\nJsonLongDict = sa.Text\n")
    src = body("op.add_column('executions', sa.Column('params', st.JsonLongDict(), nullable=True))\n"
               "s = sa.orm.Session(bind=op.get_bind())",
               "op.drop_column('executions', 'params')", head="from wf.db import types as st\n\n")
    assert "orm-import-in-migration" not in by_rule(review_source(src, root=tmp_path))


def test_one_session_over_the_models_is_one_finding_and_a_bare_one_none(tmp_path):
    (tmp_path / "tracker").mkdir()
    (tmp_path / "tracker" / "__init__.py").write_text("")
    (tmp_path / "tracker" / "models.py").write_text("class Issue:\n    status = None\n")
    session = ("Session = orm.scoped_session(orm.sessionmaker())\nsession = Session(bind=op.get_bind())\n"
               "for issue in session.query(Issue).all():\n    issue.status = 'Open'\nsession.commit()")
    found = by_rule(review_source(body(session, head="from sqlalchemy import orm\nfrom tracker.models import Issue\n\n"),
                                  root=tmp_path))["orm-import-in-migration"]
    assert len([f for f in found if "Creates an ORM" in f.message]) == 1
    bare = session.replace("session.query(Issue)", "session.execute(sa.text('SELECT id FROM issues'))")
    assert "orm-import-in-migration" not in by_rule(review_source(body(bare, head="from sqlalchemy import orm\n\n"), root=tmp_path))


def test_orm_errors_on_rows_offline_recording_lacks_are_unchecked_not_the_revisions():
    """A session over the application's models fails offline (no rows; the models are stand-ins): ours, not theirs."""
    up = ("session = orm.Session(bind=op.get_bind())\nitem = Item(name='x')\nsession.add(item)\nsession.delete(item)\n"
          "session.flush()\nop.drop_column('items', 'legacy')")
    out = review(body(up, head="from sqlalchemy import orm\nfrom not_installed_shop_pkg.models import Item\n\n"))
    assert "migration-raises" not in by_rule(out)
    assert any("rows offline recording does not have" in u.reason for u in out.unchecked)


def test_an_orm_error_without_any_data_read_stays_the_revisions():
    """Without a session or a read, an SQLAlchemy error is the revision's own mistake."""
    out = review(body("sa.orm.relationship('Nothing')()\nop.drop_column('items', 'legacy')", head="import sqlalchemy.orm\n\n"))
    assert "migration-raises" in by_rule(out)


def test_an_upgrade_that_starts_by_refusing_is_a_declaration_not_a_bug():
    out = review(body("raise RuntimeError('upgrade to release 4.0 with the 4.x tools first')\nop.drop_table('legacy')"))
    raises = by_rule(out)["migration-raises"]
    assert [f.severity for f in raises] == ["info"] and "release 4.0" in raises[0].message
    assert classified(out).decision == "proceed"


def test_an_upgrade_that_raises_part_way_is_still_an_error():
    out = review(body("op.add_column('t', sa.Column('c', sa.Integer()))\nraise RuntimeError('oops')"))
    assert [f.severity for f in by_rule(out)["migration-raises"]] == ["error"]


def test_a_backfill_that_only_writes_where_the_column_is_null_needs_no_inverse():
    """Joined to another table and narrowed further, it still changes no value that existed."""
    fill = ("op.execute('UPDATE orders SET region = customers.region FROM customers "
            "WHERE customers.id = orders.customer_id AND orders.region IS NULL')")
    out = review(body(fill))
    assert "unclear-rollback" not in [t.trigger for t in classified(out).escalation.triggers]
    other = fill.replace("AND orders.region IS NULL", "AND customers.region IS NULL")
    assert "unclear-rollback" in [t.trigger for t in classified(review(body(other))).escalation.triggers]


def test_deleted_rows_are_one_finding_and_still_need_a_human():
    """No downgrade can bring deleted rows back: destructive-sql says so (with its backup fix), not missing-downgrade too."""
    out = review(body("op.execute(\"DELETE FROM sessions WHERE created_at < now() - interval '30 days'\")"))
    assert set(by_rule(out)) == {"destructive-sql"}
    assert classified(out).decision == "escalate"
    both = review(body("op.execute('DELETE FROM sessions WHERE expired')\nop.add_column('users', sa.Column('c', sa.Integer()))"))
    assert "missing-downgrade" in by_rule(both)


def test_inspecting_the_database_offline_takes_the_way_that_changes_it():
    """``sa.inspect(bind)`` has nothing to reflect offline: a stand-in inspector, and its guards go on to the change."""
    up = ("insp = sa.inspect(op.get_bind())\nif not insp.has_table('audit'):\n"
          "    op.create_table('audit', sa.Column('id', sa.Integer, primary_key=True))\n"
          "if 'owner' not in [c['name'] for c in insp.get_columns('jobs')]:\n"
          "    op.add_column('jobs', sa.Column('owner', sa.String(80), nullable=False))")
    out = review(body(up, "op.drop_column('jobs', 'owner')\nop.drop_table('audit')"))
    assert [o.kind for o in out.review.operations if o.phase == "upgrade"] == ["create_table", "add_column"]
    assert "add-column-not-null-no-default" in by_rule(out) and "migration-raises" not in by_rule(out)
    assert sum("the way not taken" in u.what for u in out.unchecked) == 2


def test_a_value_added_between_commits_sent_through_the_connection_is_committed_at_once():
    up = ("conn = op.get_bind()\nconn.commit()\nop.execute(\"ALTER TYPE status ADD VALUE 'archived'\")\nconn.commit()\n"
          "op.execute(\"UPDATE jobs SET status = 'archived' WHERE finished\")")
    found = by_rule(review(body(up)))
    assert "enum-value-change" not in found and "commit-in-migration" in found
    inside = up.replace("\nconn.commit()\nop.execute(\"UPDATE", "\nop.execute(\"UPDATE")
    assert [f.severity for f in by_rule(review(body(inside)))["enum-value-change"]] == ["error"]


def test_what_follows_a_read_offline_recording_cannot_do_is_still_recorded():
    """A read stops recording; the column added after it does not depend on the rows, so it is still judged."""
    up = ("rows = op.get_bind().execute(sa.text('SELECT id FROM jobs')).fetchall()\n"
          "op.add_column('jobs', sa.Column('owner', sa.String(80), nullable=False))")
    out = review(body(up, "op.drop_column('jobs', 'owner')"))
    assert "add-column-not-null-no-default" in by_rule(out) and "migration-raises" not in by_rule(out)
    assert classified(out).decision == "revise"
    assert any("went on" in u.reason and "what depends on the values" in u.reason for u in out.unchecked)
    own = review(body("raise_it = {}['missing']\nop.add_column('jobs', sa.Column('owner', sa.String(80), nullable=False))"))
    assert "add-column-not-null-no-default" not in by_rule(own) and "migration-raises" in by_rule(own)


def test_a_drop_of_a_constraint_created_by_name_is_not_paired_with_an_unnamed_one():
    """Autogenerate's key swap: the named key's drop belongs to it; the unnamed one's is drop(None), its own error."""
    up = ("op.drop_constraint('steps_job_id_fkey', 'steps', type_='foreignkey')\n"
          "op.drop_constraint('fk_steps_run', 'steps', type_='foreignkey')\n"
          "op.create_foreign_key('fk_steps_run', 'steps', 'runs', ['run_id'], ['id'], ondelete='CASCADE')\n"
          "op.create_foreign_key(None, 'steps', 'jobs', ['job_id'], ['id'], ondelete='CASCADE')")
    down = ("op.drop_constraint(None, 'steps', type_='foreignkey')\n"
            "op.drop_constraint('fk_steps_run', 'steps', type_='foreignkey')\n"
            "op.create_foreign_key('fk_steps_run', 'steps', 'runs', ['run_id'], ['id'])\n"
            "op.create_foreign_key('steps_job_id_fkey', 'steps', 'jobs', ['job_id'], ['id'])")
    found = by_rule(review(body(up, down)))
    assert "unnamed-constraint" not in found and "drop-constraint-without-name" in found
    assert not any("orphan" in f.message for f in found["add-foreign-key-validating"])


def test_sql_spliced_from_locals_holding_literals_and_enum_values_is_as_fixed_as_a_literal():
    """Constant folding: a local assigned once from a literal (upgrade and downgrade each have their own), an enum
    member's value, a join over an UPPER_CASE list."""
    head = "from not_installed_tools_pkg import ToolKind\n\nCORE = ('send', 'recall')\n\n"
    up = ("kind = 'external'\ncore = ToolKind.CORE.value\n"
          "op.execute(f\"UPDATE tools SET kind = '{kind}' WHERE tags LIKE '%ext%'\")\n"
          'op.execute(f"""UPDATE tools SET kind = \'{core}\' WHERE name IN ({",".join(f"\'{n}\'" for n in CORE)})""")')
    down = "kind = 'custom'\nop.execute(f\"UPDATE tools SET kind = '{kind}' WHERE tags LIKE '%ext%'\")"
    found = by_rule(review(body(up, down, head=head)))
    assert [f.severity for f in found["raw-sql-interpolation"]] == ["info"] * 3
    changed = up.replace("kind = 'external'\n", "kind = 'external'\nkind = kind.upper()\n")
    assert "warning" in [f.severity for f in by_rule(review(body(changed, down, head=head)))["raw-sql-interpolation"]]


def test_drops_in_a_branch_for_another_engine_are_not_evidence_once_recording_went_on():
    """The read stops recording; what follows is recorded by going on, so the SQLite branch's drop is not taken."""
    up = ("is_sqlite = op.get_bind().dialect.name == 'sqlite'\n"
          "rows = op.get_bind().execute(sa.text('SELECT id FROM passages')).fetchall()\n"
          "if is_sqlite:\n    op.drop_table('passages')\nelse:\n    op.rename_table('passages', 'archived_passages')")
    out = review(body(up, "op.rename_table('archived_passages', 'passages')"))
    assert [o.kind for o in out.review.operations if o.phase == "upgrade" and o.kind != "execute"] == ["rename_table"]
    assert "drop-with-data" not in [t.trigger for t in classified(out).escalation.triggers]


def test_a_loop_over_what_the_database_holds_is_never_summed_up_as_no_operations():
    """Offline the inspector has no foreign keys to give: the loop's body is unknown, not absent."""
    up = ("from sqlalchemy.engine import reflection\ninspector = reflection.Inspector.from_engine(op.get_bind())\n"
          "for fk in inspector.get_foreign_keys('alarm_history'):\n"
          "    op.drop_constraint(fk['name'], 'alarm_history', type_='foreignkey')")
    down = up.replace("op.drop_constraint(fk['name'], 'alarm_history', type_='foreignkey')",
                      "op.create_foreign_key(fk['name'], 'alarm_history', 'alarm', ['alarm_id'], ['id'])")
    result = classified(review(body(up, down)))
    assert "migration-raises" not in [f.rule for f in result.findings]
    assert result.decision == "proceed" and "could not be recorded" in result.summary
    assert "no upgrade operations" not in result.summary


def test_a_table_dropped_after_the_revision_checks_it_is_empty_loses_nothing():
    up = ("n = op.get_bind().execute(sa.text('SELECT COUNT(*) FROM legacy_tokens')).scalar()\n"
          "if n > 0:\n    raise RuntimeError('legacy_tokens still holds rows: migrate them first')\n"
          "op.drop_table('legacy_tokens')")
    out = review(body(up, "op.create_table('legacy_tokens', sa.Column('id', sa.Integer, primary_key=True))"))
    assert [f.severity for f in by_rule(out)["drop-table"]] == ["info"]
    assert "drop-with-data" not in [t.trigger for t in classified(out).escalation.triggers]
    unguarded = up.replace("if n > 0:", "if n == 0:")
    assert "drop-with-data" in [t.trigger for t in classified(review(body(unguarded))).escalation.triggers]


def test_commits_sent_through_the_connection_are_transaction_control_with_nothing_to_undo():
    up = ("connection = op.get_bind()\nconnection.execute(sa.text('COMMIT'))\n"
          "op.execute(\"ALTER TYPE provider ADD VALUE IF NOT EXISTS 'pinecone'\")\nconnection.execute(sa.text('COMMIT'))\n"
          "op.add_column('sources', sa.Column('provider', sa.Text(), nullable=True))")
    out = review(body(up, "op.drop_column('sources', 'provider')"))
    (f,) = by_rule(out)["commit-in-migration"]
    assert "and on line(s)" in f.message
    assert "unclear-rollback" not in [t.trigger for t in classified(out).escalation.triggers]


def test_a_choice_between_fixed_texts_is_fixed_and_a_loop_variable_is_not():
    reads = "rows = op.get_bind().execute(sa.text('SELECT id FROM spans')).fetchall()\n"
    up = (reads + "if len(rows) > 1000:\n    mode = 'CONCURRENTLY '\nelse:\n    mode = ''\n"
          "op.execute(f\"CREATE INDEX {mode}ix_spans_kind ON spans (kind)\")\n"
          "op.execute(f\"DROP INDEX {'CONCURRENTLY ' if len(rows) > 1000 else ''}ix_spans_old\")")
    severities = [f.severity for f in by_rule(review(body(up)))["raw-sql-interpolation"]]
    assert severities == ["info", "info"]
    looped = reads + "for row in rows:\n    op.execute(f\"UPDATE spans SET kind = '{row.kind}' WHERE id = {row.id}\")"
    assert [f.severity for f in by_rule(review(body(looped)))["raw-sql-interpolation"]] == ["error"]


def test_a_loop_over_the_revisions_own_list_of_names_splices_fixed_values():
    """``for old, new in renamed`` over a module-level list of literal pairs (and ``reversed(...)`` of it, or a
    dict's ``.items()``): each name is one of those literals, so the SQL is as fixed as written out."""
    head = "renamed = [('post_pkey', 'update_pkey'), ('post_uuid_key', 'update_uuid_key')]\nIDX = {'ix_a': 'ix_b'}\n\n"
    up = ("for old, new in renamed:\n    op.execute(sa.text(f'ALTER TABLE update RENAME CONSTRAINT \"{old}\" TO \"{new}\"'))\n"
          "for old, new in IDX.items():\n    op.execute(f'ALTER INDEX {old} RENAME TO {new}')")
    down = "for old, new in reversed(renamed):\n    op.execute(sa.text(f'ALTER TABLE update RENAME CONSTRAINT \"{new}\" TO \"{old}\"'))"
    assert [f.severity for f in by_rule(review(body(up, down, head=head)))["raw-sql-interpolation"]] == ["info"] * 3
    read = "renamed = op.get_bind().execute(sa.text('SELECT a, b FROM renames')).fetchall()\n"
    assert "info" not in [f.severity for f in by_rule(review(body(read + up, down, head=head)))["raw-sql-interpolation"]]


def test_a_backfill_that_could_not_be_recorded_is_unknown_not_absent():
    up = ("op.add_column('builders', sa.Column('project_id', sa.Integer(), nullable=True))\n"
          "op.execute(helpers.backfill_statement('builders', 'project_id'))\n"
          "op.alter_column('builders', 'project_id', existing_type=sa.Integer(), nullable=False)")
    out = review(body(up, "op.drop_column('builders', 'project_id')", head="from not_installed_bb_pkg import helpers\n\n"))
    (f,) = by_rule(out)["set-not-null"]
    assert f.severity == "warning" and "could not be recorded" in f.message


def test_the_undo_of_a_column_with_a_foreign_key_drops_the_key_first_on_mysql():
    up = ("op.add_column('builders', sa.Column('project_id', sa.Integer, sa.ForeignKey('projects.id', "
          "name='builders_project_id'), nullable=True))")
    (f,) = by_rule(review(body(up), "mysql"))["missing-downgrade"]
    assert f.fix.index("drop_constraint('builders_project_id'") < f.fix.index("drop_column('builders', 'project_id')")
    (pg,) = by_rule(review(body(up)))["missing-downgrade"]
    assert "drop_constraint" not in pg.fix  # PostgreSQL drops the key with its column


def test_a_batch_failing_on_its_unnamed_drops_is_their_finding_not_a_second_one():
    down = ("with op.batch_alter_table('searches') as batch_op:\n"
            "    batch_op.drop_constraint(None, type_='foreignkey')\n    batch_op.drop_column('facet_id')")
    up = ("with op.batch_alter_table('searches') as batch_op:\n"
          "    batch_op.add_column(sa.Column('facet_id', sa.Integer(), nullable=True))\n"
          "    batch_op.create_foreign_key(None, 'facet', ['facet_id'], ['id'])")
    found = by_rule(review(body(up, down)))
    assert "drop-constraint-without-name" in found and "migration-raises" not in found


def test_a_drop_inside_a_later_statement_that_needed_the_rows_is_still_evidence():
    """The read fails, and so does the ``if`` that uses what it read: the drop inside it is read from the source."""
    up = ("names = [r[0] for r in op.get_bind().execute(sa.text('SELECT name FROM legacy_tables'))]\n"
          "op.add_column('jobs', sa.Column('owner', sa.String(80), nullable=True))\n"
          "if 'legacy_jobs' in names:\n    op.drop_table('legacy_jobs')")
    out = review(body(up, "op.drop_column('jobs', 'owner')"))
    assert [o.kind for o in out.review.operations if o.phase == "upgrade" and o.kind != "execute"][:1] == ["add_column"]
    assert "drop-with-data" in [t.trigger for t in classified(out).escalation.triggers]


def test_keys_dropped_to_rewrite_values_and_created_again_are_no_schema_change_and_no_new_block():
    """Drop the keys, rewrite the key values, create the same keys: both tables are held (ACCESS EXCLUSIVE) since the
    drop and the scan holds that lock over every row, where NOT VALID would not (an error, by the one severity
    principle), whether an orphan appeared depends on the rewrite, and nothing of the schema is left to undo (only
    the data rewrite, a warning)."""
    up = ("op.drop_constraint('alias_domain_fkey', 'alias', type_='foreignkey')\n"
          "op.execute('UPDATE domain SET name = lower(name)')\nop.execute('UPDATE alias SET domain = lower(domain)')\n"
          "op.create_foreign_key('alias_domain_fkey', 'alias', 'domain', ['domain'], ['name'])")
    found = by_rule(review(body(up)))
    (fk,) = found["add-foreign-key-validating"]
    assert fk.severity == "error" and "since line" in fk.message and "orphan" in fk.message
    assert [f.severity for f in found["missing-downgrade"]] == ["warning"]


def test_a_data_migration_that_reads_then_writes_in_a_loop_is_not_only_its_read():
    """Recording stops at the read; the loop that renames rows is unseen: with an empty downgrade it is a data
    migration a rollback cannot undo, not a revision that 'only reads'."""
    up = ("rows = op.get_bind().execute(sa.text(\"SELECT name FROM project WHERE name LIKE '%.%'\")).fetchall()\n"
          "for row in rows:\n    op.execute(sa.text('UPDATE project SET name = :n WHERE name = :o').bindparams(n=row[0].replace('.', '_'), o=row[0]))")
    out = review(body(up))
    (f,) = by_rule(out)["missing-downgrade"]
    assert "data migration that offline recording cannot follow" in f.message
    assert classified(out).decision == "escalate"


# --- a key to a table this transaction created ------------------------------------------------------------


@pytest.mark.parametrize("phase", ["upgrade", "downgrade"])
def test_a_key_over_a_new_column_to_a_table_created_in_this_transaction_blocks_no_one(phase):
    """No other session sees the new table before the commit, and the new column is NULL in every row: no row fails
    the key and no writer waits; the scan of the (already locked) table is said as a note, in either phase."""
    steps = (
        "op.create_table('teams', sa.Column('id', sa.Integer, primary_key=True))\n"
        "op.add_column('projects', sa.Column('team_id', sa.Integer, nullable=True))\n"
        "op.create_foreign_key('projects_team_id_fkey', 'projects', 'teams', ['team_id'], ['id'])"
    )
    undo = "op.drop_constraint('projects_team_id_fkey', 'projects', type_='foreignkey')\n" \
           "op.drop_column('projects', 'team_id')\nop.drop_table('teams')"
    src = body(steps, undo) if phase == "upgrade" else body(undo, steps)
    [f] = by_rule(review(src))["add-foreign-key-validating"]
    assert f.severity == "info" and "created in this transaction" in f.message, f.message


def test_a_key_over_a_new_column_to_an_existing_table_still_names_its_writers_waiting():
    src = body(
        "op.add_column('projects', sa.Column('team_id', sa.Integer, nullable=True))\n"
        "op.create_foreign_key('projects_team_id_fkey', 'projects', 'teams', ['team_id'], ['id'])",
        "op.drop_constraint('projects_team_id_fkey', 'projects', type_='foreignkey')\nop.drop_column('projects', 'team_id')",
    )
    [f] = by_rule(review(src))["add-foreign-key-validating"]
    assert f.severity == "warning" and "writes to teams wait" in f.message


def test_a_primary_key_dropped_and_set_again_on_other_columns_is_one_finding():
    src = body(
        "op.drop_constraint('rsvp_pkey', 'rsvp', type_='primary')\n"
        "op.drop_column('rsvp', 'old_user_id')\n"
        "op.create_primary_key('rsvp_pkey', 'rsvp', ['project_id', 'user_id'])",
        "op.drop_constraint('rsvp_pkey', 'rsvp', type_='primary')\n"
        "op.add_column('rsvp', sa.Column('old_user_id', sa.Integer(), nullable=True))\n"
        "op.create_primary_key('rsvp_pkey', 'rsvp', ['project_id', 'old_user_id'])",
    )
    found = by_rule(review(src))["change-primary-key"]
    # the downgrade only undoes the upgrade's change of key (the upgrade's finding says what it costs)
    assert [(f.phase, f.severity) for f in found] == [("upgrade", "error")]
    assert "Replaces primary key rsvp_pkey of rsvp" in found[0].message and "(project_id, user_id)" in found[0].message


@pytest.mark.parametrize(("down", "escalates"), [
    ("op.execute('UPDATE consent_history SET notice_name = NULL')", True),  # another statement on the table: no way back
    ("op.execute('DELETE FROM consent_current')", True),
    ("op.execute('INSERT INTO consent_history SELECT * FROM consent_history_removed')", False),  # put back from a copy
])
def test_rows_deleted_come_back_only_if_the_downgrade_puts_them_back(down, escalates):
    up = ("op.execute('CREATE TABLE consent_history_removed AS SELECT * FROM consent_history WHERE notice_id IS NULL')\n"
          "op.execute('DELETE FROM consent_history WHERE notice_id IS NULL')")
    result = classified(review(body(up, down)))
    assert ("unclear-rollback" in [t.trigger for t in result.escalation.triggers]) is escalates


def test_deleting_every_row_is_the_tables_data_gone_and_a_where_is_not():
    everything = classified(review(body("op.execute('DELETE FROM privacy_experience')", "pass")))
    assert any("privacy_experience" in e for t in everything.escalation.triggers if t.trigger == "drop-with-data"
               for e in t.evidence)
    some = classified(review(body("op.execute(\"DELETE FROM privacy_experience WHERE region = 'xx'\")", "pass")))
    assert "drop-with-data" not in [t.trigger for t in some.escalation.triggers]


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_a_unique_key_with_one_column_just_added_meets_no_duplicate(dialect):
    """The new column is NULL in every row and a key holding a NULL is never a duplicate: one such column is enough.
    On PostgreSQL the build's lock is still the finding; elsewhere nothing is left to say."""
    src = body("op.add_column('served_notice', sa.Column('feature', sa.Integer(), nullable=True))\n"
               "op.create_unique_constraint('uq_served_device_feature', 'served_notice', ['device_id', 'feature'])",
               "op.drop_constraint('uq_served_device_feature', 'served_notice', type_='unique')\n"
               "op.drop_column('served_notice', 'feature')")
    found = by_rule(review(src, dialect)).get("add-unique-constraint", [])
    if dialect == "postgresql":
        assert len(found) == 1 and "no duplicate can fail it" in found[0].message and "ACCESS EXCLUSIVE" in found[0].message
    else:
        assert found == []


def test_an_index_dropped_right_before_its_column_waits_for_nothing_the_drop_does_not():
    """DROP COLUMN takes ACCESS EXCLUSIVE on the table in the same transaction anyway: dropping the index
    CONCURRENTLY first would gain nothing. Two index drops alone still get the finding."""
    src = body("op.drop_index('ix_rules_legacy_key', table_name='rules')\nop.drop_column('rules', 'legacy_key')",
               "op.add_column('rules', sa.Column('legacy_key', sa.String(40), nullable=True))\n"
               "op.create_index('ix_rules_legacy_key', 'rules', ['legacy_key'])")
    assert "drop-index-non-concurrent" not in by_rule(review(src))
    two = body("op.drop_index('ix_rules_a', table_name='rules')\nop.drop_index('ix_rules_b', table_name='rules')")
    assert len(by_rule(review(two))["drop-index-non-concurrent"]) == 1  # the second is under the first's lock


def test_dropping_the_key_column_offers_no_copy_keyed_by_it():
    """The copy a drop-column fix offers is keyed by id: for the id column itself it would select id twice, which
    MySQL refuses; the fix keeps the deploy order only."""
    (f,) = by_rule(review(body("op.drop_column('worker_dependency', 'id')"), "mysql"))["drop-column"]
    assert "SELECT id, id" not in f.fix and "CREATE TABLE" not in f.fix and "op.drop_column('worker_dependency', 'id')" in f.fix


def test_values_that_cannot_carry_a_quote_are_as_fixed_as_literals():
    up = ("op.execute(f\"INSERT INTO rates (id, rate) VALUES ('{uuid.uuid4()}', 0.0227)\")\n"
          "op.execute(\"INSERT INTO rates (id, rate) VALUES ('{}', {})\".format(str(uuid.uuid4()), int(20)))")
    found = by_rule(review(body(up, head="import uuid\n\n")))["raw-sql-interpolation"]
    assert [f.severity for f in found] == ["info", "info"]


def test_a_delete_the_downgrade_inserts_back_is_a_note():
    up = "op.execute(\"DELETE FROM permission_types WHERE name = 'choose_postage'\")"
    down = "op.execute(\"INSERT INTO permission_types VALUES ('choose_postage')\")"
    (f,) = by_rule(review(body(up, down)))["destructive-sql"]
    assert f.severity == "info" and "inserts rows into permission_types again" in f.message
    (g,) = by_rule(review(body(up, "pass")))["destructive-sql"]
    assert g.severity == "warning"


def test_set_not_null_after_every_row_got_a_value_is_only_the_scan():
    up = "op.execute(\"UPDATE services SET postage = 'second'\")\nop.alter_column('services', 'postage', nullable=False)"
    (f,) = by_rule(review(body(up)))["set-not-null"]
    assert "line" in f.message and "gave every row a value" in f.message and "fails if any row is NULL" not in f.message
    some = up.replace("'second'\"", "'second' WHERE id < 10\"")
    (g,) = by_rule(review(body(some)))["set-not-null"]
    assert "fails if any row is NULL" in g.message


def test_a_concurrent_index_after_the_revisions_own_commit_runs_outside_the_transaction():
    """``op.execute('COMMIT')`` ends the migration's transaction (commit-in-migration says so): the CONCURRENTLY after
    it is not refused; without that COMMIT it is."""
    idx = "op.execute('CREATE INDEX CONCURRENTLY ix_notifications_job ON notifications (job_id)')"
    assert "concurrent-index-in-transaction" not in by_rule(review(body("op.execute('COMMIT')\n" + idx)))
    assert "concurrent-index-in-transaction" in by_rule(review(body(idx)))
    assert "concurrent-index-in-transaction" in by_rule(review(body("op.execute('COMMIT')\nop.execute('BEGIN')\n" + idx)))


def test_a_downgrade_narrowing_a_type_the_upgrade_widened_warns_and_the_reverse_does_not():
    widened = body("op.alter_column('partners', 'name', existing_type=sa.String(250), type_=sa.String())",
                   "op.alter_column('partners', 'name', existing_type=sa.String(), type_=sa.String(250))")
    (f,) = by_rule(review(widened))["downgrade-tightens-column"]
    assert f.severity == "warning" and f.phase == "downgrade" and "VARCHAR(250)" in f.message
    narrowed = body("op.alter_column('partners', 'name', existing_type=sa.String(), type_=sa.String(250))",
                    "op.alter_column('partners', 'name', existing_type=sa.String(250), type_=sa.String())")
    assert "downgrade-tightens-column" not in by_rule(review(narrowed))


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_a_column_added_as_the_primary_key_changes_the_key(dialect):
    """``ALTER TABLE t ADD id INT PRIMARY KEY AUTO_INCREMENT`` gives an existing table a key: a primary-key change
    like create_primary_key, said by review and escalated by the policy. (add_column with primary_key=True does not:
    alembic renders ``ADD COLUMN id SERIAL NOT NULL``, no key; proved on PostgreSQL.)"""
    raw = "op.execute('ALTER TABLE worker_dependency ADD id INT PRIMARY KEY AUTO_INCREMENT FIRST')" if dialect == "mysql" \
        else "op.execute('ALTER TABLE worker_dependency ADD COLUMN id SERIAL PRIMARY KEY')"
    out = review(body(raw, "op.drop_column('worker_dependency', 'id')"), dialect)
    (f,) = by_rule(out)["change-primary-key"]
    assert "as the table's primary key" in f.message
    assert "primary-key-change" in [t.trigger for t in classified(out, dialect).escalation.triggers]
