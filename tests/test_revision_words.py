"""Escalation reads the revision: row counts it states, and the trigger functions of audited tables."""

from __future__ import annotations

from projectfactory import make_project

from db_migrate.capture.source import stated_one_way, stated_rows
from db_migrate.classify import classify_escalation
from db_migrate.project import load_project
from db_migrate.review import review_migration


def test_row_counts_are_read_from_docstrings_and_comments_only():
    src = ('"""Backfill plans.\n\nTouches ~2.4M rows in production.\n"""\n'
           "def upgrade():\n    # about 1,200 rows per tenant\n    op.execute('SELECT * FROM t LIMIT 50000000 rows')\n")
    rows, line, words = stated_rows(src)
    assert rows == 2_400_000 and line == 1 and "2.4M rows" in words
    assert stated_rows("def upgrade():\n    op.execute(\"DELETE FROM t WHERE n > 5000000\")\n") is None


_BACKFILL = ("def upgrade():\n    # the accounts table holds ~2.4M rows in production\n"
             "    op.execute(\"UPDATE accounts SET plan = 'free' WHERE plan IS NULL\")\n\n\n"
             "def downgrade():\n    op.execute(\"UPDATE accounts SET plan = NULL WHERE plan = 'free'\")\n")


def test_a_stated_row_count_feeds_large_data_migration(tmp_path):
    project = load_project(make_project(tmp_path, [{"body": _BACKFILL}]))
    r = classify_escalation(project, "000000000001")
    (t,) = [t for t in r.escalation.triggers if t.trigger == "large-data-migration"]
    assert "2.4M rows" in t.evidence[0] and "accounts" in t.evidence[0]
    # a count under the threshold is not a reason
    small = load_project(make_project(tmp_path / "s", [{"body": _BACKFILL.replace("~2.4M", "~300")}]))
    assert "large-data-migration" not in {t.trigger for t in classify_escalation(small, "000000000001").escalation.triggers}


_AUDIT = ('def upgrade():\n    op.execute("""CREATE FUNCTION log_change() RETURNS trigger AS $$ BEGIN\n'
          '        INSERT INTO change_audit VALUES (now()); RETURN NEW; END $$ LANGUAGE plpgsql""")\n'
          '    op.execute("CREATE TRIGGER orders_audit AFTER UPDATE ON change_audit FOR EACH ROW EXECUTE FUNCTION log_change()")\n\n\n'
          'def downgrade():\n    op.execute("DROP TRIGGER orders_audit ON change_audit")\n    op.execute("DROP FUNCTION log_change()")\n')
_REPLACE = ('def upgrade():\n    op.execute("""CREATE OR REPLACE FUNCTION log_change() RETURNS trigger AS $$ BEGIN\n'
            '        RETURN NEW; END $$ LANGUAGE plpgsql""")\n\n\n'
            'def downgrade():\n    op.execute("""CREATE OR REPLACE FUNCTION log_change() RETURNS trigger AS $$ BEGIN\n'
            '        INSERT INTO change_audit VALUES (now()); RETURN NEW; END $$ LANGUAGE plpgsql""")\n')


def test_replacing_an_audit_tables_trigger_function_touches_the_audit_trail(tmp_path):
    project = load_project(make_project(tmp_path, [{"body": _AUDIT}, {"body": _REPLACE}]))
    r = review_migration(project, "000000000002")
    assert r.conventions.trigger_functions == {"log_change": ["change_audit"]}
    (t,) = [t for t in r.escalation.triggers if t.trigger == "audit-trail"]
    assert "log_change" in t.evidence[0] and "change_audit" in t.evidence[0]
    assert r.decision == "escalate"


_RENAME_HANDLES = ("def upgrade():\n    # names with dashes become underscores; {words}\n"
                   "    op.execute(\"UPDATE accounts SET handle = replace(handle, '-', '_') WHERE handle LIKE '%-%'\")\n\n\n"
                   "def downgrade():\n    op.execute(\"UPDATE accounts SET handle = replace(handle, '_', '-') WHERE handle LIKE '%\\\\_%'\")\n")


def test_a_revision_that_says_it_cannot_be_undone_escalates_though_its_downgrade_runs(tmp_path):
    """The downgrade applies another function to the rows (names that always had underscores get dashes): only the
    author's own words tell that it is no way back, and they are read."""
    said = load_project(make_project(tmp_path, [{"body": _RENAME_HANDLES.format(words="sadly this is not reversible")}]))
    (t,) = [t for t in classify_escalation(said, "000000000001").escalation.triggers if t.trigger == "unclear-rollback"]
    assert "not reversible" in t.evidence[0] and "accounts" in t.evidence[0]
    plain = load_project(make_project(tmp_path / "p", [{"body": _RENAME_HANDLES.format(words="see the ticket")}]))
    assert "unclear-rollback" not in {t.trigger for t in classify_escalation(plain, "000000000001").escalation.triggers}
    assert stated_one_way("def upgrade():\n    op.execute('-- not reversible')\n") is None  # SQL text is not words
