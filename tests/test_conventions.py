"""The project's conventions: read from the history, stated in verdicts, honoured by rules and the policy."""

from __future__ import annotations

from pathlib import Path

from projectfactory import make_project

from db_migrate.heads import check_heads
from db_migrate.project import load_history, load_project


def _label_from_constant(root: Path, rev: str, constant: str) -> None:
    """Make revision ``rev`` take its branch label from a constant of the project's own package."""
    f = next((root / "migrations" / "versions").glob(f"{rev}_*.py"))
    text = f.read_text().replace("branch_labels = None", f"from shop.migration import cli\nbranch_labels = (cli.{constant},)")
    f.write_text(text)


def _expand_contract(tmp_path: Path) -> Path:
    root = make_project(tmp_path, [
        {"id": "base00000001"},
        {"id": "expa00000001", "down": "base00000001"},
        {"id": "expa00000002", "down": "expa00000001"},
        {"id": "cont00000001", "down": "base00000001", "depends_on": "expa00000001"},
    ])
    pkg = root / "shop" / "migration"
    pkg.mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("import os\n\nEXPAND_BRANCH = 'expand'\nCONTRACT_BRANCH = 'contract'\n")
    _label_from_constant(root, "expa00000001", "EXPAND_BRANCH")
    _label_from_constant(root, "cont00000001", "CONTRACT_BRANCH")
    return root


def test_branch_labels_from_a_constant_are_read_without_running_anything(tmp_path):
    root = _expand_contract(tmp_path)
    labels = {h.revision: h.branch_labels for h in load_history(load_project(root)).headers}
    assert labels["expa00000001"] == ("expand",) and labels["cont00000001"] == ("contract",)


def test_expand_and_contract_heads_are_not_a_multiple_heads_error(tmp_path):
    r = check_heads(load_project(_expand_contract(tmp_path)), drift=False)
    assert r.decision == "proceed"
    (f,) = [f for f in r.findings if f.rule == "multiple-heads"]
    assert f.severity == "info" and "expand" in f.message and "contract" in f.message
    assert not [f for f in r.findings if f.rule == "malformed-header"]


def test_two_heads_on_the_same_labelled_branch_still_need_a_merge(tmp_path):
    root = _expand_contract(tmp_path)
    (root / "migrations" / "versions" / "expa00000003_rev.py").write_text(
        (root / "migrations" / "versions" / "expa00000002_rev.py").read_text().replace("expa00000002", "expa00000003")
    )
    r = check_heads(load_project(root), drift=False)
    (f,) = [f for f in r.findings if f.rule == "multiple-heads"]
    assert f.severity == "error" and r.decision == "revise"


# ---------------------------------------------------------------- downgrade practice

from db_migrate.classify import classify_escalation  # noqa: E402
from db_migrate.review import review_migration  # noqa: E402

_ADD = "def upgrade():\n    op.add_column('hosts', sa.Column('c{n}', sa.Integer(), nullable=True))\n\n\n"
_DROP = "def upgrade():\n    op.drop_column('hosts', 'legacy')\n\n\n"


def _history(tmp_path: Path, downgrade: str | None, n: int = 6, last: str | None = None, settings: str = "") -> Path:
    """``n`` revisions adding a column each, with ``downgrade`` as their downgrade() (None: no function)."""
    down = "" if downgrade is None else downgrade
    revs = [{"body": _ADD.format(n=i) + down} for i in range(n)]
    if last is not None:
        revs.append({"body": last + down})
    root = make_project(tmp_path, revs)
    if settings:
        (root / "pyproject.toml").write_text(f"[tool.db-migrate]\n{settings}\n")
    return root


def _rules(result) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in result.findings:
        out.setdefault(f.rule, []).append(f)
    return out


def test_a_project_that_never_writes_downgrades_gets_one_note_and_no_escalation(tmp_path):
    r = review_migration(load_project(_history(tmp_path, None)), all_revisions=True)
    assert r.conventions.downgrades == "never" and "6 of 6" in r.conventions.evidence[0]
    rules = _rules(r)
    assert "missing-downgrade" not in rules
    (note,) = rules["project-conventions"]
    assert note.severity == "info" and "no downgrades" in note.message
    assert r.decision == "proceed" and not r.escalation.required


_BASE = ("def upgrade():\n    op.create_table('hosts', sa.Column('id', sa.Integer, primary_key=True))\n\n\n"
         "def downgrade():\n    pass\n")


def test_an_empty_downgrade_of_a_base_the_history_builds_on_is_a_note(tmp_path):
    """Rolling back past the first revision is dropping the database: a note, not a revise or an escalation. The same
    base alone (a new project's first revision, about to be the history) still gets the downgrade written."""
    down = "def downgrade():\n    op.drop_column('hosts', 'c{n}')\n"
    revs = [{"body": _BASE}] + [{"body": _ADD.format(n=i) + down.format(n=i)} for i in range(3)]
    r = review_migration(load_project(make_project(tmp_path, revs)), all_revisions=True)
    (f,) = _rules(r)["missing-downgrade"]
    assert f.severity == "info" and f.revision == "000000000001" and "dropping the database" in f.message
    assert r.decision == "proceed" and not r.escalation.required
    alone = review_migration(load_project(make_project(tmp_path / "new", [{"body": _BASE}])), "head")
    assert alone.decision == "revise" and _rules(alone)["missing-downgrade"][0].edit.code == "op.drop_table('hosts')"


def test_a_downgrade_dropping_a_table_no_revision_creates_is_a_note(tmp_path):
    """The project creates some tables outside its migrations (metadata.create_all) and its downgrades drop them: a
    note that the rollback destroys them, not an error telling it to remove the drop. A table an earlier revision
    created is still the error: this revision's rollback would destroy what it did not make."""
    base = "def upgrade():\n    op.create_table('hosts', sa.Column('id', sa.Integer, primary_key=True))\n\n\n" \
           "def downgrade():\n    op.drop_table('hosts')\n"
    workers = "def upgrade():\n    pass  # worker tables are created by the application\n\n\n" \
              "def downgrade():\n    op.drop_table('worker')\n    op.drop_table('hosts')\n"
    r = review_migration(load_project(make_project(tmp_path, [{"body": base}, {"body": workers}])), "head")
    found = {f.table: f for f in _rules(r)["downgrade-not-inverse"]}
    assert found["worker"].severity == "info" and "no revision of the history creates" in found["worker"].message
    assert found["hosts"].severity == "error"


def test_without_downgrades_a_revision_that_destroys_data_still_escalates(tmp_path):
    root = _history(tmp_path, None, last=_DROP)
    project = load_project(root)
    r = review_migration(project, all_revisions=True)
    assert r.decision == "escalate"
    rollback = next(t for t in r.escalation.triggers if t.trigger == "unclear-rollback")
    assert len(rollback.evidence) == 1 and "only a restore" in rollback.evidence[0]
    c = classify_escalation(project, "000000000007")
    assert c.decision == "escalate" and {t.trigger for t in c.escalation.triggers} >= {"unclear-rollback", "drop-with-data"}
    assert c.conventions is not None and c.conventions.downgrades == "never"  # classify states what it assumed
    assert classify_escalation(project, "000000000003").decision == "proceed"


def test_filling_only_nulls_destroys_nothing_with_or_without_downgrades(tmp_path):
    fill = "def upgrade():\n    op.execute(\"UPDATE hosts SET c0 = 0 WHERE c0 IS NULL\")\n\n\n"
    never = review_migration(load_project(_history(tmp_path / "never", None, last=fill)), "000000000007")
    assert never.decision == "proceed", never.escalation
    written = review_migration(load_project(_history(tmp_path / "written", "def downgrade():\n    pass\n", n=0, last=fill)),
                               "000000000001")
    assert "unclear-rollback" not in {t.trigger for t in written.escalation.triggers}
    # a data fix of selected rows is how such projects work; overwriting every row is data only a restore brings back
    fix = "def upgrade():\n    op.execute(\"UPDATE hosts SET c0 = 0 WHERE c0 < 0\")\n\n\n"
    assert review_migration(load_project(_history(tmp_path / "fix", None, last=fix)), "000000000007").decision == "proceed"
    overwrite = "def upgrade():\n    op.execute(\"UPDATE hosts SET c0 = 0\")\n\n\n"
    assert review_migration(load_project(_history(tmp_path / "over", None, last=overwrite)), "000000000007").decision == "escalate"
    # a marker (no operation recorded) in such a project needs no downgrade either
    marker = "def upgrade():\n    pass\n\n\n"
    assert review_migration(load_project(_history(tmp_path / "mark", None, last=marker)), "000000000007").decision == "proceed"


def test_a_project_that_writes_downgrades_still_gets_missing_downgrade(tmp_path):
    revs = [{"body": _ADD.format(n=i) + f"def downgrade():\n    op.drop_column('hosts', 'c{i}')\n"} for i in range(6)]
    revs.append({"body": _ADD.format(n=9) + "def downgrade():\n    pass\n"})
    r = review_migration(load_project(make_project(tmp_path, revs)), all_revisions=True)
    assert r.conventions.downgrades == "written"
    (f,) = _rules(r)["missing-downgrade"]
    # an error; and a way back db-migrate writes (drop the column it added), so revise with that, not escalate
    assert f.severity == "error" and f.edit is not None and r.decision == "revise"


def test_the_convention_can_be_set_in_the_policy(tmp_path):
    # two revisions are too few to call it a habit; the project says so itself
    r = review_migration(load_project(_history(tmp_path, None, n=2, settings='conventions = {downgrades = "never"}')), all_revisions=True)
    assert r.conventions.downgrades == "never" and "set in [tool.db-migrate]" in r.conventions.evidence[-1]
    assert "missing-downgrade" not in _rules(r) and r.decision == "proceed"
    r = review_migration(load_project(_history(tmp_path / "b", None, n=2)), all_revisions=True)
    assert r.conventions.downgrades == "written" and "missing-downgrade" in _rules(r)
    # and the project can insist on downgrades where the history would say otherwise
    r = review_migration(load_project(_history(tmp_path / "c", None, settings='conventions = {downgrades = "written"}')), all_revisions=True)
    assert r.conventions.downgrades == "written" and "missing-downgrade" in _rules(r)


def test_a_short_history_counts_only_when_every_revision_follows_the_habit(tmp_path):
    assert review_migration(load_project(_history(tmp_path, None, n=3)), all_revisions=True).conventions.downgrades == "never"
    revs = [{"body": _ADD.format(n=i)} for i in range(3)]
    revs.append({"body": _ADD.format(n=9) + "def downgrade():\n    op.drop_column('hosts', 'c9')\n"})
    r = review_migration(load_project(make_project(tmp_path / "m", revs)), all_revisions=True)
    assert r.conventions.downgrades == "written"  # 3 of 4: mixed, too short to call


def test_downgrades_that_raise_by_design_are_irreversible_not_failures(tmp_path):
    raising = "def downgrade():\n    raise Exception('Downgrade not supported: restore from backup')\n"
    r = review_migration(load_project(_history(tmp_path, raising)), all_revisions=True)
    assert r.conventions.downgrades == "raise"
    rules = _rules(r)
    assert "migration-raises" not in rules and "missing-downgrade" not in rules
    assert len(rules["irreversible-by-design"]) == 6
    assert all("restore from backup" in f.message and f.severity == "info" for f in rules["irreversible-by-design"])
    assert r.decision == "proceed"


def test_not_implemented_downgrades_by_convention_are_irreversible_too(tmp_path):
    r = review_migration(load_project(_history(tmp_path, "def downgrade():\n    raise NotImplementedError('one-way')\n")), all_revisions=True)
    assert r.conventions.downgrades == "raise"
    rules = _rules(r)
    assert "missing-downgrade" not in rules and {f.severity for f in rules["irreversible-by-design"]} == {"info"}


def test_one_deliberate_raise_in_a_project_that_writes_downgrades(tmp_path):
    revs = [{"body": _ADD.format(n=i) + f"def downgrade():\n    op.drop_column('hosts', 'c{i}')\n"} for i in range(6)]
    revs.append({"body": "def upgrade():\n    op.execute(\"UPDATE hosts SET c1 = 0 WHERE c1 IS NULL\")\n\n\n"
                 "def downgrade():\n    raise RuntimeError('cannot tell which rows were NULL')\n"})
    r = review_migration(load_project(make_project(tmp_path, revs)), "000000000007")
    rules = _rules(r)
    assert "migration-raises" not in rules
    (f,) = rules["irreversible-by-design"]
    assert "cannot tell which rows were NULL" in f.message
    # declared one-way, and it destroys nothing (only NULLs filled): noted, not a question for a human
    assert r.decision == "proceed" and f.severity == "info"
    revs[-1] = {"body": "def upgrade():\n    op.execute(\"UPDATE hosts SET c1 = 0\")\n\n\n"
                "def downgrade():\n    raise RuntimeError('the old values are gone')\n"}
    r = review_migration(load_project(make_project(tmp_path / "b", revs)), "000000000007")
    assert r.decision == "escalate"  # one-way and every row overwritten: only a restore brings them back


def test_an_upgrade_that_returns_early_on_this_engine_needs_no_downgrade(tmp_path):
    skip = ("def upgrade():\n    if op.get_context().dialect.name != 'mysql':\n        return\n"
            "    op.execute('ALTER TABLE hosts ENGINE=InnoDB')\n\n\ndef downgrade():\n    pass\n")
    r = review_migration(load_project(make_project(tmp_path, [{"body": skip}, {"body": skip}])), "000000000002")
    assert "missing-downgrade" not in _rules(r) and r.decision == "proceed"
    # on MySQL the statement runs, and the empty downgrade is reported
    r = review_migration(load_project(make_project(tmp_path / "m", [{"body": skip}, {"body": skip}], url="mysql://u@h/db")), "000000000002")
    assert "missing-downgrade" in _rules(r)


def test_marker_revisions_are_noted_not_deleted(tmp_path):
    from db_migrate.review.engine import review_source

    marker = make_project(tmp_path, [{}, {"message": "Queens release marker"}])
    r = review_migration(load_project(marker), "000000000002")
    (f,) = _rules(r)["empty-migration"]
    assert f.severity == "info" and "marker" in f.message and f.fix is None
    assert "000000000002" in r.conventions.markers
    noise = "def upgrade():\n    # ### commands auto generated by Alembic - please adjust! ###\n    pass\n\n\ndef downgrade():\n    pass\n"
    r = review_migration(load_project(make_project(tmp_path / "n", [{}, {"body": noise, "message": "empty message"}])), "000000000002")
    (f,) = _rules(r)["empty-migration"]
    assert f.severity == "warning" and "delete it" in f.message  # harmless to run; the change may be missing
    assert review_source  # the in-process pipeline is the same (used by the rule examples)


def test_the_migrations_own_helpers_are_not_orm_imports():
    from db_migrate.rules.orm_import import is_orm_import

    assert not is_orm_import("neutron.db", ("migration",))
    assert not is_orm_import("ironic.db.migrations.utils", ("column_exists",))
    assert not is_orm_import(".", ("helpers",))
    assert is_orm_import("app.models", ("User",))
    assert is_orm_import("app.migrations.models", ("head",))
    assert is_orm_import("app.db", ("session",))


def _importing(tmp_path: Path, line: str, settings: str = "") -> Path:
    """A project whose package ``shop`` has a migrations helper and a toolbox, and one revision importing ``line``."""
    body = f"{line}\n\n\ndef upgrade():\n    op.add_column('hosts', sa.Column('c', sa.Integer(), nullable=True))\n\n\n" \
           "def downgrade():\n    op.drop_column('hosts', 'c')\n"
    root = make_project(tmp_path, [{"body": body}])
    (root / "shop" / "migrations").mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "migrations" / "__init__.py").write_text("")
    (root / "shop" / "migrations" / "utils.py").write_text("def skip_on_sqlite():\n    return False\n")
    (root / "shop" / "dbtools.py").write_text("class BatchCopier:\n    pass\n")
    if settings:
        (root / "pyproject.toml").write_text(f"[tool.db-migrate]\n{settings}\n")
    return root


def test_the_helper_modules_the_revisions_import_are_stated(tmp_path):
    r = review_migration(load_project(_importing(tmp_path, "from shop.migrations.utils import skip_on_sqlite")), all_revisions=True)
    assert r.conventions.helper_modules == ["shop.migrations.utils"]
    assert any(e.startswith("helper modules:") for e in r.conventions.evidence)
    assert "orm-import-in-migration" not in _rules(r)


def test_a_project_can_name_its_helper_modules(tmp_path):
    line = "from shop.dbtools import BatchCopier"  # a CamelCase name from an ordinary module reads as a model
    assert "orm-import-in-migration" in _rules(review_migration(load_project(_importing(tmp_path / "a", line)), all_revisions=True))
    r = review_migration(load_project(_importing(tmp_path / "b", line, 'conventions = {helper_modules = ["shop.dbtools"]}')),
                         all_revisions=True)
    assert "orm-import-in-migration" not in _rules(r) and r.conventions.helper_modules == ["shop.dbtools"]


# ---------------------------------------------------------------- names the database gives

import pytest  # noqa: E402
from databases import throwaway_database  # noqa: E402
from sqlalchemy import create_engine, inspect  # noqa: E402

from db_migrate.review.engine import review_source  # noqa: E402
from db_migrate.rules.naming import database_name  # noqa: E402

_LONG = "customer_subscription_billing_adjustments_history"


def _source(up: str, down: str) -> str:
    return ('"""r"""\nfrom alembic import op\nimport sqlalchemy as sa\n\nrevision = "n1"\ndown_revision = "n0"\n'
            "branch_labels = None\ndepends_on = None\n\n\n"
            f"def upgrade():\n    {up}\n\n\ndef downgrade():\n    {down}\n")


def _found(source: str, dialect: str = "postgresql") -> dict[str, list]:
    out: dict[str, list] = {}
    for f in review_source(source, dialect=dialect).findings:
        out.setdefault(f.rule, []).append(f)
    return out


def _pg_setup() -> list[str]:
    return [
        "CREATE TABLE users (id integer PRIMARY KEY, email text UNIQUE, age integer CHECK (age > 0))",
        f"CREATE TABLE {_LONG} (id integer PRIMARY KEY, "
        "account_reference_identifier_for_the_billing_system integer REFERENCES users (id))",
    ]


@pytest.fixture
def pg_names(pg_url):
    gen = throwaway_database(pg_url, _pg_setup())
    url = next(gen)
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            yield {r[0] for r in c.exec_driver_sql("SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace")}
    finally:
        eng.dispose()
        next(gen, None)


def test_postgresql_default_names_are_predicted_exactly(pg_names):
    predicted = {
        database_name("postgresql", "pk", "users", ["id"]),
        database_name("postgresql", "uq", "users", ["email"]),
        database_name("postgresql", "ck", "users", ["age"]),
        database_name("postgresql", "pk", _LONG, ["id"]),
        database_name("postgresql", "fk", _LONG, ["account_reference_identifier_for_the_billing_system"]),
    }
    assert predicted == pg_names
    assert all(len(n.encode()) <= 63 for n in predicted)


def test_mariadb_foreign_keys_are_numbered_per_table(mysql_url):
    gen = throwaway_database(mysql_url, [
        "CREATE TABLE users (id integer PRIMARY KEY)",
        "CREATE TABLE events (id integer PRIMARY KEY, source_id integer, target_id integer, code varchar(20) UNIQUE, "
        "FOREIGN KEY (source_id) REFERENCES users (id), FOREIGN KEY (target_id) REFERENCES users (id))",
    ])
    url = next(gen)
    eng = create_engine(url)
    try:
        insp = inspect(eng)
        fks = {fk["name"] for fk in insp.get_foreign_keys("events")}
        uqs = {u["name"] for u in insp.get_unique_constraints("events")}
    finally:
        eng.dispose()
        next(gen, None)
    assert fks == {database_name("mysql", "fk", "events", ["source_id"], ordinal=1), database_name("mysql", "fk", "events", ["target_id"], ordinal=2)}
    assert uqs == {database_name("mysql", "uq", "events", ["code"])}


def test_no_unnamed_warning_where_the_database_names_it_predictably():
    create = ("op.create_table('user_events', sa.Column('id', sa.Integer(), primary_key=True), "
              "sa.Column('source_id', sa.Integer(), sa.ForeignKey('users.id')), sa.Column('code', sa.String(9), unique=True))")
    source = _source(create, "op.drop_table('user_events')")
    assert "unnamed-constraint" not in _found(source, "postgresql")
    assert "unnamed-constraint" not in _found(source, "mysql")  # user_events_ibfk_1, code
    assert "unnamed-constraint" in _found(source, "sqlite")  # SQLite keeps them unnamed: a drop cannot name them


def test_a_downgrade_dropping_a_name_the_database_never_gave_is_flagged():
    source = _source("op.create_foreign_key(None, 'user_events', 'users', ['source_id'], ['id'])",
                     "op.drop_constraint('fk_user_events_source_id_users', 'user_events', type_='foreignkey')")
    (f,) = _found(source)["unnamed-constraint"]
    assert "'user_events_source_id_fkey'" in f.message and "fk_user_events_source_id_users" in f.message


def test_drop_constraint_none_is_fixed_with_the_names_the_database_gave():
    source = _source(
        "op.create_foreign_key(None, 'user_events', 'users', ['source_id'], ['id'])\n"
        "    op.create_check_constraint(None, 'user_events', 'amount > 0')\n"
        "    op.create_unique_constraint(None, 'user_events', ['code'])",
        "op.drop_constraint(None, 'user_events', type_='unique')\n"
        "    op.drop_constraint(None, 'user_events', type_='check')\n"
        "    op.drop_constraint(None, 'user_events', type_='foreignkey')",
    )
    fixes = [f.fix for f in _found(source)["drop-constraint-without-name"]]
    assert "op.drop_constraint('user_events_code_key', 'user_events', type_='unique')" in fixes
    assert "op.drop_constraint('user_events_source_id_fkey', 'user_events', type_='foreignkey')" in fixes
    assert len(set(fixes)) == len(fixes)  # never the same name on two lines
    assert not any(fix and "uq_" in fix and "check" in fix for fix in fixes)  # no unique-style name for a CHECK


def test_two_unnamed_foreign_keys_dropped_in_reverse_get_distinct_names():
    source = _source(
        "op.create_foreign_key(None, 'edges', 'nodes', ['head_id'], ['id'])\n"
        "    op.create_foreign_key(None, 'edges', 'nodes', ['tail_id'], ['id'])",
        "op.drop_constraint(None, 'edges', type_='foreignkey')\n"
        "    op.drop_constraint(None, 'edges', type_='foreignkey')",
    )
    fixes = [f.fix for f in _found(source)["drop-constraint-without-name"]]
    assert fixes == [
        "op.drop_constraint('edges_tail_id_fkey', 'edges', type_='foreignkey')",
        "op.drop_constraint('edges_head_id_fkey', 'edges', type_='foreignkey')",
    ]


def test_labels_from_a_module_that_is_not_here_still_mark_their_branches(tmp_path):
    root = _expand_contract(tmp_path)
    (root / "shop" / "migration" / "cli.py").unlink()  # only the migrations were checked out
    labels = {h.revision: h.branch_labels for h in load_history(load_project(root)).headers}
    assert labels["expa00000001"] == ("cli.EXPAND_BRANCH",)
    r = check_heads(load_project(root), drift=False)
    assert r.decision == "proceed" and not [f for f in r.findings if f.rule == "malformed-header"]


def test_a_fix_names_an_unnamed_constraint_as_the_database_will():
    up = "op.create_foreign_key(None, 'pending_certs', 'dns_providers', ['dns_provider_id'], ['id'])"
    down = "op.drop_constraint('pending_certs_dns_provider_id_fkey', 'pending_certs', type_='foreignkey')"
    (f,) = _found(_source(up, down))["add-foreign-key-validating"]
    # the NOT VALID form keeps the name PostgreSQL gives, which the downgrade drops: both fixes agree
    assert "'pending_certs_dns_provider_id_fkey'" in f.fix and "VALIDATE CONSTRAINT pending_certs_dns_provider_id_fkey" in f.fix
    assert "fk_pending_certs" not in f.fix


def test_a_batch_fix_of_an_unnamed_drop_carries_the_name_it_means():
    up = ("with op.batch_alter_table('lists') as b:\n"
          "        b.create_foreign_key('fk_lists_user_id_users', 'users', ['user_id'], ['id'])")  # _source indents line 1
    down = "op.drop_constraint(None, 'lists', type_='foreignkey')"
    found = _found(_source(up, down), "sqlite")
    (batch,) = found["sqlite-alter-needs-batch"]
    assert "drop_constraint('fk_lists_user_id_users'" in batch.fix and "drop_constraint(None" not in batch.fix


def test_an_untyped_unnamed_drop_is_fixed_with_the_type_mysql_needs():
    up = "op.create_unique_constraint('uq_tok_serial', 'token', ['serial'])"
    (f,) = _found(_source(up, "op.drop_constraint(None, 'token')"), "mysql")["drop-constraint-without-name"]
    assert f.fix == "op.drop_constraint('uq_tok_serial', 'token', type_='unique')"  # no generic DROP CONSTRAINT on MySQL


def test_a_history_that_wrote_a_downgrade_only_at_first_does_not_write_downgrades(tmp_path):
    """Two thirds without one, the newest among them: the first revision's downgrade was not the practice."""
    revs = [{"body": _ADD.format(n=0) + "def downgrade():\n    op.drop_column('hosts', 'c0')\n"}]
    revs += [{"body": _ADD.format(n=i)} for i in range(1, 4)]
    r = review_migration(load_project(make_project(tmp_path / "m", revs)), all_revisions=True)
    assert r.conventions.downgrades == "never"
    assert "missing-downgrade" not in {f.rule for f in r.findings}
