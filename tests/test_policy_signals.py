"""production_signal and the policy configuration (no database needed)."""

from __future__ import annotations

import pytest

from db_migrate.errors import ConfigInvalid
from db_migrate.policy import Policy, policy_from_settings, production_signal


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("DB_MIGRATE_ENV", raising=False)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://app:s3cret@db.prod.example.com/app",
        "postgresql://app@prod-db:5432/app",
        "postgresql://app@localhost/app_prod",
        "mysql+pymysql://root@localhost/production_copy",
        "postgresql://app@PROD/app",
    ],
)
def test_default_patterns_flag_production_urls(url):
    reason = production_signal(url, {}, None)
    assert reason is not None and "production pattern" in reason
    assert "s3cret" not in reason  # never print a password


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app@localhost/products",
        "postgresql://app@reproduce-host/app",
        "sqlite:////tmp/prod/scratch.db",  # a directory named prod is not a production database
        "sqlite://",
        None,
    ],
)
def test_default_patterns_leave_other_urls_alone(url):
    assert production_signal(url, {}, None) is None


def test_environment_argument_signals_production():
    assert "environment='production'" in production_signal(None, {}, "production")
    assert production_signal("sqlite://", {}, "Prod") is not None
    assert production_signal("sqlite://", {}, "staging") is None


def test_env_var_signals_production(monkeypatch):
    monkeypatch.setenv("DB_MIGRATE_ENV", "production")
    reason = production_signal("sqlite://", {}, None)
    assert reason is not None and "DB_MIGRATE_ENV" in reason
    monkeypatch.setenv("DB_MIGRATE_ENV", "dev")
    assert production_signal("sqlite://", {}, None) is None


def test_configured_patterns_replace_defaults():
    settings = {"production_url_patterns": ["*.rds.amazonaws.com*"]}
    assert production_signal("postgresql://u@x.eu-west-1.rds.amazonaws.com/app", settings, None) is not None
    # the defaults no longer apply once the key is set
    assert production_signal("postgresql://u@prod-db/app", settings, None) is None


def test_configured_production_environments(monkeypatch):
    settings = {"production_environments": ["live"]}
    assert production_signal(None, settings, "LIVE") is not None
    assert production_signal(None, settings, "production") is None


def test_accepts_a_validated_policy():
    policy = Policy(production_url_patterns=["*secret-host*"])
    assert production_signal("postgresql://u@secret-host/x", policy, None) is not None


def test_defaults_cover_the_skill():
    p = Policy()
    assert "acgme*" in p.protected_tables
    assert {"audit_log", "*_audit", "*_history"} <= set(p.audit_tables)
    from db_migrate.policy.classify import _matches

    assert _matches("user_audit", p.audit_tables) and _matches("orders_history", p.audit_tables)
    assert not _matches("itemaudit", p.audit_tables) and not _matches("auditorsettings", p.audit_tables)
    assert p.large_table_rows == 100_000
    assert len(p.auto_classes) == 5


def test_fixture_settings_validate():
    import tomllib

    from pathlib import Path

    fixtures = Path(__file__).resolve().parent.parent / "fixtures"
    settings = tomllib.loads((fixtures / "residency" / "pyproject.toml").read_text())["tool"]["db-migrate"]
    p = policy_from_settings(settings)
    assert p.audit_tables == ["audit_log"]


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"large_table_rows": "many"}, "large_table_rows"),
        ({"large_table_rows": 0}, "large_table_rows"),
        ({"protected_tables": "acgme*"}, "protected_tables"),
        ({"protected_tables": [""]}, "protected_tables"),
        ({"auto_classes": ["drop-table"]}, "auto_classes"),
        ({"protected_table": ["x"]}, "did you mean 'protected_tables'"),
        ({"database_timeout_seconds": -1}, "database_timeout_seconds"),
    ],
)
def test_invalid_settings_raise_config_invalid(settings, needle):
    with pytest.raises(ConfigInvalid) as exc:
        policy_from_settings(settings)
    assert needle in exc.value.message
    assert exc.value.code == "config-invalid"


def test_unrelated_keys_of_other_tools_are_ignored():
    assert policy_from_settings({"roundtrip_rows": 50}).large_table_rows == 100_000


def test_load_policy_and_classify_refuse_a_bad_pyproject(residency):
    from db_migrate.policy import load_policy
    from db_migrate.classify import classify_escalation
    from db_migrate.project import load_project

    assert load_policy(load_project(residency)).protected_tables == ["acgme*"]
    toml = residency / "pyproject.toml"
    toml.write_text(toml.read_text().replace("large_table_rows = 100000", 'large_table_rows = "lots"'))
    project = load_project(residency)
    with pytest.raises(ConfigInvalid) as exc:
        load_policy(project)
    assert "large_table_rows" in exc.value.message and "pyproject.toml" in exc.value.message
    with pytest.raises(ConfigInvalid):
        classify_escalation(project, "46f760feb10b")


def test_the_names_a_url_gives_are_kept_without_its_credentials(monkeypatch) -> None:
    import sqlalchemy.engine

    from db_migrate.cache import cache_dir
    from db_migrate.policy.signals import url_hosts

    url = "postgresql://deploy:Pr0dPassw0rd@db-prod-7.internal:5432/orders?sslpassword=K3yPass&host=replica-prod"
    fresh = url_hosts(url)
    assert ("host", "db-prod-7.internal") in fresh and ("host", "replica-prod") in fresh and ("database name", "orders") in fresh
    kept = (cache_dir() / "url-parts.json").read_text()
    assert "Pr0dPassw0rd" not in kept and "K3yPass" not in kept and "deploy" not in kept
    monkeypatch.setattr(sqlalchemy.engine, "make_url", lambda *a, **k: (_ for _ in ()).throw(AssertionError("parsed again")))
    assert url_hosts(url) == fresh  # the next call reads what was kept


# --- libpq's environment: what a URL leaves open ------------------------------------------------------


@pytest.fixture
def _no_libpq_env(monkeypatch, tmp_path):
    for name in ("PGHOST", "PGHOSTADDR", "PGDATABASE", "PGSERVICE", "PGSERVICEFILE", "PGSYSCONFDIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGSYSCONFDIR", str(tmp_path))  # no system service file of this machine counts
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "none.conf"))


@pytest.mark.parametrize(("env", "url"), [
    ({"PGHOST": "db.prod.internal"}, "postgresql://"),
    ({"PGHOST": "db.prod.internal"}, "postgresql:///scratch"),
    ({"PGHOSTADDR": "prod-db"}, "postgresql+psycopg://ci@/"),
    ({"PGDATABASE": "orders_prod"}, "postgresql://"),
    ({"PGDATABASE": "production"}, "postgresql://ci@localhost"),
    ({"PGSERVICE": "main"}, "postgresql://"),
    ({}, "postgresql://?service=main"),
])
def test_libpq_defaults_a_url_leaves_open_are_judged(_no_libpq_env, monkeypatch, tmp_path, env, url):
    from db_migrate.errors import Refused
    from db_migrate.scratch import refuse_production

    service_file = tmp_path / "services.conf"
    service_file.write_text("[main]\nhost=pg-prod-1.example.com\nport=5432\n")
    monkeypatch.setenv("PGSERVICEFILE", str(service_file))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert production_signal(url, {}, None) is not None
    with pytest.raises(Refused, match="production"):
        refuse_production(url, {})  # what every scratch database goes through


def test_libpq_defaults_do_not_override_what_the_url_names(_no_libpq_env, monkeypatch):
    monkeypatch.setenv("PGHOST", "db.prod.internal")
    monkeypatch.setenv("PGDATABASE", "orders_prod")
    assert production_signal("postgresql://ci@ci-db:5432/scratch", {}, None) is None  # libpq uses the URL's own
    assert production_signal("mysql+pymysql://root@127.0.0.1/scratch", {}, None) is None  # not libpq
    monkeypatch.delenv("PGHOST")
    monkeypatch.delenv("PGDATABASE")
    assert production_signal("postgresql://", {}, None) is None


def test_a_scratch_tool_refuses_an_empty_postgres_url_aimed_at_production(_no_libpq_env, monkeypatch, residency):
    from db_migrate.errors import Refused
    from db_migrate.project import load_project
    from db_migrate.tools import call

    monkeypatch.setenv("PGHOST", "pg.prod.example.com")
    with pytest.raises(Refused) as e:
        call("test_roundtrip", load_project(None, cwd=residency), database_url="postgresql://")
    assert "pg.prod.example.com" in e.value.message and e.value.code == "refused"
