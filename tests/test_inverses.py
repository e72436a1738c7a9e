"""What a downgrade must undo, as the database sees it, and failures that are the tool's, not the revision's."""

from __future__ import annotations

import pytest

from db_migrate.review.engine import review_source


def _source(up: str, down: str = "pass") -> str:
    def fn(name: str, body: str) -> str:
        return f"def {name}():\n" + "".join(f"    {line}\n" for line in body.strip().splitlines()) + "\n\n"

    return ('"""r"""\nfrom alembic import op\nimport sqlalchemy as sa\n\nrevision = "v1"\ndown_revision = "v0"\n'
            "branch_labels = None\ndepends_on = None\n\n\n" + fn("upgrade", up) + fn("downgrade", down))


def _rules(source: str, dialect: str = "postgresql") -> set[str]:
    return {f.rule for f in review_source(source, dialect=dialect).findings}


@pytest.mark.parametrize("statement", [
    "VACUUM ANALYZE orders", "ANALYZE orders", "REINDEX INDEX ix_orders_total",
    "SELECT setval('orders_id_seq', (SELECT max(id) FROM orders))", "REFRESH MATERIALIZED VIEW order_totals",
    "ALTER TABLE orders VALIDATE CONSTRAINT fk_orders_user",
])
def test_statements_with_nothing_to_undo_need_no_downgrade(statement):
    found = _rules(_source(f'op.execute("{statement}")'))
    assert not found & {"missing-downgrade", "downgrade-not-inverse"}, found


def test_something_real_still_needs_its_downgrade():
    assert "missing-downgrade" in _rules(_source('op.execute("ALTER TABLE orders ADD COLUMN note text")'))


def test_indexes_of_a_dropped_materialized_view_go_with_it():
    up = ('op.execute("CREATE MATERIALIZED VIEW order_totals AS SELECT user_id, sum(total) AS t FROM orders GROUP BY user_id")\n'
          'op.execute("CREATE UNIQUE INDEX ix_order_totals_user ON order_totals (user_id)")')
    assert "downgrade-not-inverse" not in _rules(_source(up, 'op.execute("DROP MATERIALIZED VIEW order_totals")'))
    # dropping something else leaves the index (and the view) behind
    assert "downgrade-not-inverse" in _rules(_source(up, 'op.execute("DROP MATERIALIZED VIEW other_view")'))


def test_raw_sql_index_undone_by_an_alembic_operation():
    up = 'op.execute("CREATE INDEX ix_orders_note ON orders (note)")'
    assert "downgrade-not-inverse" not in _rules(_source(up, "op.drop_index('ix_orders_note', table_name='orders')"))
    assert "downgrade-not-inverse" in _rules(_source(up, "op.drop_index('ix_orders_other', table_name='orders')"))


def test_an_api_only_our_sqlalchemy_lacks_is_unchecked_not_the_revisions_error():
    out = review_source(_source("meta = sa.MetaData(bind=op.get_bind())\nop.add_column('orders', sa.Column('x', sa.Integer()))",
                                "op.drop_column('orders', 'x')"))
    assert "migration-raises" not in {f.rule for f in out.findings}
    (u,) = [u for u in out.unchecked if u.what.startswith("upgrade()")]
    assert "SQLAlchemy" in u.reason and "bind" in u.reason and "not the revision's" in u.reason


def test_a_name_only_our_sqlalchemy_lacks_is_a_stand_in_and_the_revision_is_still_judged():
    """``from sqlalchemy.engine import LegacyCursorResult`` (SQLAlchemy 1.4, which the project pins): the import fails
    only here, so the name is a stand-in while the file loads and its operations are recorded and judged."""
    src = "from sqlalchemy.engine import LegacyCursorResult\n" + _source(
        "op.drop_column('orders', 'legacy_total')", "op.add_column('orders', sa.Column('legacy_total', sa.Integer()))")
    out = review_source(src)
    assert out.load_error is None and "drop-column" in {f.rule for f in out.findings}
    (u,) = [u for u in out.unchecked if "LegacyCursorResult" in u.what]
    assert "SQLAlchemy" in u.reason and "pins" in u.reason
    import sqlalchemy.engine

    assert not hasattr(sqlalchemy.engine, "LegacyCursorResult")  # lent for the load only
    # a name missing from the project's own code is still its error
    assert review_source("from os.path import no_such_helper\n" + _source("pass", "pass")).load_error


def test_a_real_bug_still_raises():
    out = review_source(_source("raise ValueError('the orders table must be empty first')", "pass"))
    assert "migration-raises" in {f.rule for f in out.findings}


def _found(source: str, dialect: str = "postgresql") -> dict[str, list]:
    out: dict[str, list] = {}
    for f in review_source(source, dialect=dialect).findings:
        out.setdefault(f.rule, []).append(f)
    return out


def test_a_session_over_the_revisions_own_tables_is_not_an_orm_import():
    own = ("ports = sa.Table('ports', sa.MetaData(), sa.Column('id', sa.String(36)))\n"
           "session = sa.orm.Session(bind=op.get_bind())\nrows = session.query(ports.c.id).all()")
    assert "orm-import-in-migration" not in _found(_source(own))
    # bound to alembic's connection, the session joins its transaction: commit() ends no outer one (1.4 and 2.x)
    assert "orm-import-in-migration" not in _found(_source(own + "\nsession.commit()"))


def test_an_empty_revision_explained_in_a_comment_is_a_marker():
    src = _source("# a no-op kept so that databases which ran the old version still resolve it\npass")
    (f,) = _found(src)["empty-migration"]
    assert f.severity == "info"


def test_a_unique_constraint_after_the_revisions_own_duplicate_check(tmp_path):
    checked = ("dupes = op.get_bind().execute(sa.text('SELECT code FROM orders GROUP BY code HAVING count(*) > 1'))\n"
               "op.create_unique_constraint('uq_orders_code', 'orders', ['code'])")
    (f,) = _found(_source(checked), "mysql")["add-unique-constraint"]
    assert f.severity == "info" and "checks for duplicates" in f.message


def test_mysql_not_null_column_filled_by_a_later_update_is_fine():
    src = _source("op.add_column('pf', sa.Column('port_start', sa.Integer(), nullable=False))\n"
                  "op.execute('UPDATE pf SET port_start = port')", "op.drop_column('pf', 'port_start')")
    assert "add-column-not-null-no-default" not in _found(src, "mysql")


def test_identifiers_spliced_into_sql_are_not_interpolated_values():
    prefixed = "schema = 'app.'\nop.execute('ALTER TABLE ' + schema + 'replicas DROP CONSTRAINT replicas_chk')"
    assert "raw-sql-interpolation" not in _found(_source(prefixed))
    valued = "plan = 'free'\nop.execute(\"UPDATE users SET plan = '\" + plan + \"'\")"
    assert "raw-sql-interpolation" in _found(_source(valued))


def test_a_drop_through_the_projects_own_helper_counts():
    up = "op.create_check_constraint('REQUESTS_STATE_CHK', 'requests', \"state in ('Q', 'W')\")"
    helper = "try_drop_constraint('REQUESTS_STATE_CHK', 'requests')"
    src = _source(up, helper).replace("def upgrade", "def try_drop_constraint(name, table):\n    pass\n\n\ndef upgrade")
    assert "downgrade-not-inverse" not in _found(src)
    assert "downgrade-not-inverse" in _found(_source(up, "op.execute('SELECT 1')"))


def test_an_empty_revision_that_orders_branches_is_a_marker():
    src = _source("pass").replace('"""r"""\n', "").replace("depends_on = None", "depends_on = 'expand01'")
    (f,) = _found(src)["empty-migration"]
    assert f.severity == "info"


def test_a_table_name_from_the_revisions_own_list_spliced_across_lines():
    loop = ("for table in ('volumes', 'snapshots'):\n    op.execute(\n        'ALTER TABLE %s ENGINE=InnoDB'\n        % table\n    )")
    assert "raw-sql-interpolation" not in _found(_source(loop), "mysql")


def test_an_empty_downgrade_the_author_explained_is_a_declared_one_way_step():
    explained = _source("op.execute(\"DELETE FROM block_types WHERE name = 'old'\")",
                        "# Purely a data migration. No downgrade necessary.\npass")
    found = _found(explained)
    assert "missing-downgrade" not in found
    (f,) = found["irreversible-by-design"]
    assert "No downgrade necessary" in f.message
    todo = _source("op.execute(\"UPDATE block_types SET name = 'new' WHERE name = 'old'\")", "# TODO: restore the rows\npass")
    assert "missing-downgrade" in _found(todo)
    autogen = _source("op.add_column('t', sa.Column('c', sa.Integer()))",
                      "# ### commands auto generated by Alembic - please adjust! ###\npass\n# ### end Alembic commands ###")
    assert "missing-downgrade" in _found(autogen)


def test_sqlite_pragmas_need_no_downgrade():
    src = _source("op.execute('PRAGMA secure_delete = ON')\nop.execute('PRAGMA auto_vacuum = FULL')", "pass")
    assert "missing-downgrade" not in _found(src, "sqlite")


def test_filling_a_column_the_parent_added_overwrites_nothing_and_needs_no_inverse(tmp_path):
    """The parent adds ``teams.region``; the next revision fills it for every row with a pass downgrade: the column
    holds only what was written since the parent, and rolling back past the parent drops it."""
    from projectfactory import make_project

    from db_migrate.classify import classify_escalation
    from db_migrate.project import load_project
    from db_migrate.review import review_migration

    add = ("def upgrade():\n    op.add_column('teams', sa.Column('region', sa.Text(), nullable=True))\n\n"
           "def downgrade():\n    op.drop_column('teams', 'region')\n")
    fill = ("teams = sa.table('teams', sa.column('region', sa.Text()))\n\n"
            "def upgrade():\n    op.execute(teams.update().values(region='eu'))\n\ndef downgrade():\n    pass\n")
    older = ("def upgrade():\n    op.execute(\"UPDATE teams SET name = 'x'\")\n\ndef downgrade():\n    pass\n")
    # revisions with their downgrades written: the project's convention is to write them
    written = [f"def upgrade():\n    op.create_index('ix_teams_{c}', 'teams', ['{c}'])\n\n"
               f"def downgrade():\n    op.drop_index('ix_teams_{c}', table_name='teams')\n" for c in ("name", "owner", "kind")]
    project = load_project(make_project(tmp_path, [add, fill, older, *written]))
    assert review_migration(project, "000000000004").conventions.downgrades == "written"
    filled = review_migration(project, "000000000002")
    assert not [f for f in filled.findings if f.severity in ("error", "warning")], filled.findings
    assert classify_escalation(project, "000000000002").decision == "proceed"
    # a column the schema had before is overwritten: that stays a finding and a human's call
    overwritten = review_migration(project, "000000000003")
    assert "destructive-sql" in {f.rule for f in overwritten.findings}
    assert classify_escalation(project, "000000000003").decision == "escalate"


def test_a_parent_edited_in_place_is_seen_by_the_next_review_of_its_child(tmp_path):
    """The review of a revision depends on its history (here: the column its parent adds); a kept answer must not
    outlive an edit of the parent, as an agent makes between two calls of one server."""
    from projectfactory import make_project

    from db_migrate.project import load_project
    from db_migrate.review import review_migration

    add = ("def upgrade():\n    op.add_column('teams', sa.Column('region', sa.Text(), nullable=True))\n\n"
           "def downgrade():\n    op.drop_column('teams', 'region')\n")
    fill = "def upgrade():\n    op.execute(\"UPDATE teams SET region = 'eu'\")\n\ndef downgrade():\n    pass\n"
    root = make_project(tmp_path, [add, fill])
    project = load_project(root)
    assert "destructive-sql" not in {f.rule for f in review_migration(project, "000000000002").findings}
    parent = next((root / "migrations" / "versions").glob("000000000001_*.py"))
    parent.write_text(parent.read_text().replace("'region', sa.Text()", "'area', sa.Text()").replace("'region')", "'area')"))
    assert "destructive-sql" in {f.rule for f in review_migration(load_project(root), "000000000002").findings}


def test_a_type_a_revision_sets_through_a_module_level_name_is_the_next_revisions_old_type(tmp_path):
    """``auth = sa.Enum(...)`` at module level, then ``alter_column(..., type_=auth)``: the next revision's change of
    that column starts from that Enum, as it would from one written inline (it was 'cannot be told')."""
    from projectfactory import make_project

    from db_migrate.project import load_project
    from db_migrate.review import review_migration

    create = ("def upgrade():\n    op.create_table('policies', sa.Column('id', sa.Integer(), primary_key=True),\n"
              "                    sa.Column('alg', sa.Enum('sha1', name='alg')))\n\ndef downgrade():\n    op.drop_table('policies')\n")
    widen = ("two = sa.Enum('sha1', 'sha256', name='alg')\n\n"
             "def upgrade():\n    op.alter_column('policies', 'alg', type_=two)\n\ndef downgrade():\n    pass\n")
    again = ("def upgrade():\n    op.alter_column('policies', 'alg', type_=sa.Enum('sha1', 'sha256', 'sha512', name='alg'))\n\n"
             "def downgrade():\n    pass\n")
    project = load_project(make_project(tmp_path, [create, widen, again], url="mysql+pymysql://u@localhost/app"))
    found = review_migration(project, "000000000003").findings
    assert not [f for f in found if f.rule == "alter-column-type" and "cannot be told" in f.message], found


def test_a_marker_every_revision_sets_to_a_literal_holds_only_what_the_migrations_wrote(tmp_path):
    """``UPDATE infos SET version = '26.08'`` after a revision set it to '26.07': the value overwritten is a
    migration's, so the pass downgrade loses nothing; the first such revision overwrites what came before it."""
    from projectfactory import make_project

    from db_migrate.classify import classify_escalation
    from db_migrate.project import load_project
    from db_migrate.review import review_migration

    bump = ("infos = sa.table('infos', sa.column('version'))\n\n"
            "def upgrade():\n    op.execute(infos.update().values(version='{v}'))\n\ndef downgrade():\n    pass\n")
    written = [f"def upgrade():\n    op.create_index('ix_infos_{c}', 'infos', ['{c}'])\n\n"
               f"def downgrade():\n    op.drop_index('ix_infos_{c}', table_name='infos')\n" for c in ("a", "b", "c")]
    project = load_project(make_project(tmp_path, [*written, bump.replace("{v}", "26.07"), bump.replace("{v}", "26.08")]))
    second = review_migration(project, "000000000005")
    assert not [f for f in second.findings if f.severity in ("error", "warning")], second.findings
    assert classify_escalation(project, "000000000005").decision == "proceed"
    first = review_migration(project, "000000000004")
    assert "destructive-sql" in {f.rule for f in first.findings if f.severity == "warning"}


def test_the_copy_a_fix_keeps_is_keyed_by_the_tables_own_primary_key(tmp_path):
    from projectfactory import make_project

    from db_migrate.project import load_project
    from db_migrate.review import review_migration

    create = ("def upgrade():\n    op.create_table('agents', sa.Column('agent_id', sa.String(80), primary_key=True),\n"
              "                    sa.Column('aik', sa.Text()))\n"
              "    op.create_table('stats', sa.Column('user_id', sa.Integer()), sa.Column('frame', sa.Text()),\n"
              "                    sa.Column('streak', sa.Integer()), sa.PrimaryKeyConstraint('user_id', 'frame'))\n\n"
              "def downgrade():\n    op.drop_table('stats')\n    op.drop_table('agents')\n")
    drop = ("def upgrade():\n    op.drop_column('agents', 'aik')\n    op.drop_column('stats', 'streak')\n\n"
            "def downgrade():\n    op.add_column('stats', sa.Column('streak', sa.Integer()))\n"
            "    op.add_column('agents', sa.Column('aik', sa.Text()))\n")
    project = load_project(make_project(tmp_path, [create, drop]))
    agents, stats = [f for f in review_migration(project, "000000000002").findings if f.rule == "drop-column"]
    assert "SELECT agent_id, aik FROM agents" in agents.fix and " id," not in agents.fix
    assert "SELECT user_id, frame, streak FROM stats" in stats.fix  # autogenerate's PrimaryKeyConstraint(...)


def test_a_defensive_drop_of_a_table_no_other_revision_creates_loses_none_of_the_migrations_data(tmp_path):
    from projectfactory import make_project

    from db_migrate.classify import classify_escalation
    from db_migrate.project import load_project
    from db_migrate.review import review_migration

    first = ("def upgrade():\n    op.create_table('terms', sa.Column('id', sa.Integer(), primary_key=True))\n\n"
             "def downgrade():\n    op.drop_table('terms')\n")
    again = ("def upgrade():\n    op.execute('DROP TABLE IF EXISTS kg_term CASCADE')\n"
             "    op.create_table('kg_term', sa.Column('id', sa.Integer(), primary_key=True))\n"
             "    op.execute('CREATE TEMPORARY TABLE term_map AS SELECT id FROM terms')\n"
             "    op.execute('DROP TABLE IF EXISTS term_map')\n\n"
             "def downgrade():\n    op.drop_table('kg_term')\n")
    ours = "def upgrade():\n    op.execute('DROP TABLE IF EXISTS terms')\n\ndef downgrade():\n    pass\n"
    project = load_project(make_project(tmp_path, [first, again, ours]))
    [f] = [f for f in review_migration(project, "000000000002").findings if f.rule == "drop-table"]
    assert f.severity == "info" and "no other revision" in f.message
    assert not classify_escalation(project, "000000000002").escalation.required
    assert "drop-with-data" in [t.trigger for t in classify_escalation(project, "000000000003").escalation.triggers]
