"""Tailored fixes: a finding's fix names the migration's own table, columns and types, parses as Python,
and applying it makes the rule quiet (where that is mechanical)."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from db_migrate.review.engine import review_source
from db_migrate.rules import get_rule

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "residency"


def body(up: str, down: str = "pass") -> str:
    return f"def upgrade():\n{textwrap.indent(up, '    ')}\n\n\ndef downgrade():\n{textwrap.indent(down, '    ')}\n"


def fix_of(rule: str, source: str, dialect: str = "postgresql") -> str:
    found = [f for f in review_source(source, dialect=dialect).findings if f.rule == rule]
    assert found, f"{rule} did not fire"
    return found[0].fix


def rules_in(source: str, dialect: str = "postgresql") -> set[str]:
    out = review_source(source, dialect=dialect)
    assert out.load_error is None, out.load_error
    return {f.rule for f in out.findings}


# (rule, upgrade body, downgrade body, dialect, names the fix must contain)
CASES = [
    ("add-column-not-null-no-default", "op.add_column('shifts', sa.Column('is_active', sa.Boolean(), nullable=False))",
     "op.drop_column('shifts', 'is_active')", "postgresql", ["is_active", "sa.Boolean()", "UPDATE shifts SET is_active"]),
    ("set-not-null", "op.alter_column('shifts', 'ends_at', existing_type=sa.DateTime(), nullable=False)",
     "op.alter_column('shifts', 'ends_at', existing_type=sa.DateTime(), nullable=True)", "postgresql",
     ["ck_shifts_ends_at_not_null", "VALIDATE CONSTRAINT", "ends_at IS NOT NULL"]),
    ("create-index-non-concurrent", "op.create_index('ix_shifts_starts_at', 'shifts', ['starts_at', 'person_id'])",
     "op.drop_index('ix_shifts_starts_at', table_name='shifts')", "postgresql",
     ["ix_shifts_starts_at", "['starts_at', 'person_id']", "postgresql_concurrently=True", "autocommit_block"]),
    ("concurrent-index-in-transaction",
     "op.create_index('ix_shifts_starts_at', 'shifts', ['starts_at'], postgresql_concurrently=True)",
     "op.drop_index('ix_shifts_starts_at', table_name='shifts')", "postgresql", ["ix_shifts_starts_at", "autocommit_block"]),
    ("alter-column-type", "op.alter_column('shifts', 'hours', existing_type=sa.Integer(), type_=sa.BigInteger())",
     "op.alter_column('shifts', 'hours', existing_type=sa.BigInteger(), type_=sa.Integer())", "postgresql",
     ["hours_new", "sa.BigInteger()", "CAST(hours AS BIGINT)"]),
    ("add-foreign-key-validating", "op.create_foreign_key('fk_shifts_person_id_persons', 'shifts', 'persons', ['person_id'], ['id'])",
     "op.drop_constraint('fk_shifts_person_id_persons', 'shifts', type_='foreignkey')", "postgresql",
     ["postgresql_not_valid=True", "ALTER TABLE shifts VALIDATE CONSTRAINT fk_shifts_person_id_persons", "person_id"]),
    ("add-check-constraint-validating", "op.create_check_constraint('ck_shifts_hours', 'shifts', 'hours >= 0')",
     "op.drop_constraint('ck_shifts_hours', 'shifts', type_='check')", "postgresql", ["ck_shifts_hours", "hours >= 0"]),
    ("add-unique-constraint", "op.create_unique_constraint('uq_shifts_code', 'shifts', ['code'])",
     "op.drop_constraint('uq_shifts_code', 'shifts', type_='unique')", "postgresql",
     ["UNIQUE USING INDEX uq_shifts_code", "GROUP BY code"]),
    ("rename-column", "op.alter_column('shifts', 'note', new_column_name='remark', existing_type=sa.Text())",
     "op.alter_column('shifts', 'remark', new_column_name='note', existing_type=sa.Text())", "postgresql",
     ["remark", "sa.Text()", "SET remark = note"]),
    ("rename-table", "op.rename_table('shifts', 'work_shifts')", "op.rename_table('work_shifts', 'shifts')", "postgresql",
     ["CREATE VIEW shifts AS SELECT * FROM work_shifts"]),
    ("drop-column", "op.drop_column('shifts', 'notes')", "op.add_column('shifts', sa.Column('notes', sa.Text(), nullable=True))",
     "postgresql", ["op.drop_column('shifts', 'notes')", "shifts_notes_backup"]),
    ("drop-table", "op.drop_table('shifts')", "op.create_table('shifts', sa.Column('id', sa.Integer(), primary_key=True))",
     "postgresql", ["shifts_deprecated"]),
    ("lossy-downgrade", "op.alter_column('shifts', 'hours', existing_type=sa.Numeric(6, 2), type_=sa.Integer())",
     "op.alter_column('shifts', 'hours', existing_type=sa.Integer(), type_=sa.Numeric(6, 2))",
     "postgresql", ["SELECT id, hours FROM shifts", "UPDATE shifts SET hours = b.hours"]),
    ("missing-downgrade", "op.add_column('shifts', sa.Column('notes', sa.Text(), nullable=True))\n"
     "op.create_index('ix_shifts_notes', 'shifts', ['notes'])", "pass", "postgresql",
     ["def downgrade():", "op.drop_index('ix_shifts_notes', table_name='shifts')", "op.drop_column('shifts', 'notes')"]),
    ("downgrade-not-inverse", "op.add_column('shifts', sa.Column('notes', sa.Text(), nullable=True))",
     "op.execute('SELECT 1')", "postgresql", ["op.drop_column('shifts', 'notes')"]),
    ("destructive-sql", "op.execute('DELETE FROM shifts WHERE ends_at < now()')", "pass", "postgresql",
     ["CREATE TABLE shifts_backup AS SELECT * FROM shifts WHERE ends_at < now()", "INSERT INTO shifts SELECT"]),
    ("raw-sql-interpolation", "op.execute(f\"UPDATE shifts SET plan = '{PLAN}' WHERE plan IS NULL\")", "pass", "postgresql",
     ["sa.text('UPDATE shifts SET plan = :plan WHERE plan IS NULL').bindparams(plan=PLAN)"]),
    ("unnamed-constraint", "op.create_foreign_key(None, 'shifts', 'persons', ['person_id'], ['id'])",
     "op.drop_constraint('fk_shifts_person_id_persons', 'shifts', type_='foreignkey')", "postgresql",
     ["'fk_shifts_person_id_persons', 'shifts', 'persons'"]),
    ("sqlite-alter-needs-batch", "op.alter_column('shifts', 'note', existing_type=sa.String(20), nullable=False)",
     "pass", "sqlite", ["batch_alter_table('shifts'", "batch_op.alter_column('note'"]),
    ("drop-index-non-concurrent", "op.drop_index('ix_shifts_notes', table_name='shifts')",
     "op.create_index('ix_shifts_notes', 'shifts', ['notes'])", "postgresql", ["ix_shifts_notes", "postgresql_concurrently=True"]),
]


@pytest.mark.parametrize(("rule", "up", "down", "dialect", "names"), CASES, ids=[c[0] for c in CASES])
def test_fix_is_tailored_and_valid_python(rule, up, down, dialect, names):
    source = ("PLAN = 'free'\n\n" if "PLAN" in up else "") + body(up, down)
    fix = fix_of(rule, source, dialect)
    assert fix != get_rule(rule).fix, "fell back to the catalogue snippet"
    assert "shifts" in fix and "users" not in fix, fix
    for name in names:
        assert name in fix, (name, fix)
    ast.parse(textwrap.dedent(fix))  # ready to paste


def _halves(fix: str) -> tuple[str, str]:
    """The upgrade and downgrade parts of an index fix (split at its '# downgrade():' line)."""
    up, _, down = fix.partition("# downgrade():\n")
    return up, down or "pass"


@pytest.mark.parametrize("extra", ["", ", postgresql_concurrently=True"])
def test_applying_the_index_fix_silences_both_index_rules(extra):
    bad = body(f"op.create_index('ix_shifts_starts_at', 'shifts', ['starts_at']{extra})",
               "op.drop_index('ix_shifts_starts_at', table_name='shifts')")
    rule = "concurrent-index-in-transaction" if extra else "create-index-non-concurrent"
    fixed = body(*_halves(fix_of(rule, bad)))
    found = rules_in(fixed)
    assert not found & {"create-index-non-concurrent", "concurrent-index-in-transaction", "downgrade-not-inverse"}, found


def test_raw_index_fix_silences_the_rule():
    bad = body("op.execute('CREATE INDEX ix_shifts_b ON shifts (b)')", "op.execute('DROP INDEX ix_shifts_b')")
    fix = fix_of("create-index-non-concurrent", bad)
    # the raw CREATE INDEX is a create_index operation: the fix is that operation, concurrently, outside the transaction
    assert "op.create_index('ix_shifts_b', 'shifts', ['b']" in fix and "postgresql_concurrently=True" in fix
    assert not rules_in(body(*_halves(fix))) & {"create-index-non-concurrent", "concurrent-index-in-transaction"}


def test_add_column_fix_takes_the_value_from_the_project_and_silences_the_rule():
    # issue 18: the value existing rows get is the project's; the column's default= says it here
    bad = body("op.add_column('shifts', sa.Column('is_active', sa.Boolean(), nullable=False, default=False))",
               "op.drop_column('shifts', 'is_active')")
    fix = fix_of("add-column-not-null-no-default", bad)
    code = "\n".join(line for line in fix.splitlines() if not line.startswith("#"))
    assert "server_default=sa.text('false')" in code and "server_default=None" in code  # filled, then as the model says
    assert "add-column-not-null-no-default" not in rules_in(body(code, "op.drop_column('shifts', 'is_active')"))


def test_add_column_fix_without_a_project_value_invents_none():
    bad = body("op.add_column('shifts', sa.Column('is_active', sa.Boolean(), nullable=False))", "op.drop_column('shifts', 'is_active')")
    out = review_source(bad)
    finding = next(f for f in out.findings if f.rule == "add-column-not-null-no-default")
    assert finding.edit is None  # nothing db-migrate could patch
    assert "choose the value" in finding.fix and "false" not in finding.fix and "''" not in finding.fix
    # the nullable + backfill + NOT NULL variant, once the agent put its value in
    rest = "\n".join(line for line in finding.fix.splitlines() if not line.startswith("#")).replace("<value existing rows get>", "true")
    found = rules_in(body(rest, "op.drop_column('shifts', 'is_active')"))
    assert not found & {"add-column-not-null-no-default", "set-not-null"}, found


@pytest.mark.parametrize(("rule", "up", "down", "dialect"), [
    ("add-foreign-key-validating", "op.create_foreign_key('fk_shifts_person_id_persons', 'shifts', 'persons', ['person_id'], ['id'])",
     "op.drop_constraint('fk_shifts_person_id_persons', 'shifts', type_='foreignkey')", "postgresql"),
    ("add-check-constraint-validating", "op.create_check_constraint('ck_shifts_hours', 'shifts', 'hours >= 0')",
     "op.drop_constraint('ck_shifts_hours', 'shifts', type_='check')", "postgresql"),
    ("unnamed-constraint", "op.create_foreign_key(None, 'shifts', 'persons', ['person_id'], ['id'])",
     "op.drop_constraint('fk_shifts_person_id_persons', 'shifts', type_='foreignkey')", "postgresql"),
    ("sqlite-alter-needs-batch", "op.alter_column('shifts', 'note', existing_type=sa.String(20), nullable=False)",
     "pass", "sqlite"),
])
def test_applying_the_fix_silences_the_rule(rule, up, down, dialect):
    """The fix's code (up to the 'next revision' part) replaces the flagged line."""
    fix = fix_of(rule, body(up, down), dialect).split("# next revision")[0]
    assert rule not in rules_in(body(fix, down), dialect)


def test_missing_downgrade_fix_is_a_working_downgrade():
    up = "op.add_column('shifts', sa.Column('notes', sa.Text(), nullable=True))\nop.create_index('ix_shifts_notes', 'shifts', ['notes'])"
    fix = fix_of("missing-downgrade", body(up))
    fixed = f"def upgrade():\n{textwrap.indent(up, '    ')}\n\n\n{fix}\n"
    assert not rules_in(fixed) & {"missing-downgrade", "downgrade-not-inverse"}


def test_missing_downgrade_names_what_cannot_be_undone():
    up = "op.add_column('shifts', sa.Column('notes', sa.Text(), nullable=True))\nop.execute('UPDATE shifts SET notes = 1')"
    fix = fix_of("missing-downgrade", body(up))
    assert "op.drop_column('shifts', 'notes')" in fix and "# execute" in fix and "undo by hand" in fix
    # nothing alembic can reverse: no fix (the catalogue's example names another table)
    only_drop = fix_of("missing-downgrade", body("op.drop_column('shifts', 'notes')"))
    assert only_drop is None


def test_expand_contract_fixes_are_not_flagged_themselves():
    for rule, up in [
        ("alter-column-type", "op.alter_column('shifts', 'hours', existing_type=sa.Integer(), type_=sa.BigInteger())"),
        ("rename-column", "op.alter_column('shifts', 'note', new_column_name='remark', existing_type=sa.Text())"),
    ]:
        fix = fix_of(rule, body(up)).split("# later revision")[0]
        assert rule not in rules_in(body(fix)), rule


def test_unknown_names_give_no_fix_rather_than_the_catalogue_example():
    # an identifier interpolated into SQL cannot be bound; the catalogue's snippet is about another table
    source = "T = 'shifts'\n\n" + body("op.execute(f'DELETE FROM {T} WHERE id = 1')")
    assert fix_of("raw-sql-interpolation", source) is None


def test_identifiers_are_quoted_for_the_dialect():
    fix = fix_of("set-not-null", body("op.alter_column('Shift Log', 'Ends', existing_type=sa.DateTime(), nullable=False)"))
    assert '"Shift Log"' in fix and '"Ends" IS NOT NULL' in fix
    ast.parse(fix)
    fix = fix_of("set-not-null", body("op.alter_column('shift', 'order', existing_type=sa.Integer(), nullable=False)"), "mysql")
    assert "`order`" in fix


def test_fixture_revision_gets_its_own_names():
    path = next((FIXTURE / "alembic" / "versions").glob("c8335fa6c848_*.py"))
    found = review_source(path.read_text(encoding="utf-8"), root=FIXTURE).findings
    fix = next(f.fix for f in found if f.rule == "add-column-not-null-no-default")
    assert "op.add_column('persons', sa.Column('is_active', sa.Boolean(), nullable=True))" in fix
    assert "UPDATE persons SET is_active = <value existing rows get> WHERE is_active IS NULL" in fix  # nothing invented
    assert "op.alter_column('persons', 'is_active'" in fix and "users" not in fix
