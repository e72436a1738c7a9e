"""Acceptance: a scripted agent makes model changes through the MCP server over stdio and converges (issue 18).

The agent is an MCP client (``mcp.Client`` with ``StdioServerParameters``) that
starts ``db-migrate serve --project DIR`` as a coding agent's host would, and
follows the ``db-migrate`` prompt literally: edit the models, call
``generate_migration``, ``review_migration``, apply what the findings say,
``test_roundtrip``, ``classify_escalation``; at most three rounds of fixes.
"Applying a fix literally" means only what a machine can do without
judgement: ``git apply`` of a finding's ``patch``, or calling
``generate_migration`` again with ``rewrite_renames=true`` when the fix says
so.  A finding whose fix is prose or a snippet without a patch leaves the
agent stuck: that change does not converge.

The app (six tables, a PostgreSQL enum, a naming convention) has rows in a
real PostgreSQL database at 127.0.0.1:5432 that the test creates from a
template and drops: 3,000 customers and orders, 6,000 order items (the
issue's 200,000 with ``DB_MIGRATE_AGENT_ROWS=200000``: the suite checks that
rows exist, the machine is shared).  Each change starts from the same base project and a
fresh copy of that database, so the changes are independent.

Each change states the decision a database engineer would take.  A change
that cannot converge yet is ``xfail(strict=True)`` naming what is missing, so
the test stays honest and turns red (XPASS) once it does converge.

The table of tool calls, rounds and structured characters per change is
printed at the end of the module (run with ``-s``), and written as JSON to
``$DB_MIGRATE_AGENT_TABLE`` when that is set.  ``DB_MIGRATE_AGENT_COMMAND``
names another ``db-migrate`` executable to drive (e.g. an older build, for a
before/after comparison).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from projectfactory import CONVENTION_METADATA, make_project

pytestmark = pytest.mark.postgres

ROUNDS = 3
#: DB_MIGRATE_AGENT_ROWS=200000 runs the issue's scale (about 2 minutes more); the suite uses 3,000
CUSTOMERS = ORDERS = int(os.environ.get("DB_MIGRATE_AGENT_ROWS") or 3_000)
ITEMS = 2 * ORDERS
LARGE = ORDERS >= 100_000  # the policy's large_table_rows: a rewrite of orders is then a human's to plan

MODELS = '''\
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

''' + CONVENTION_METADATA + '''
order_status = sa.Enum("new", "paid", "shipped", "cancelled", name="order_status")

customers = sa.Table(
    "customers", target_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(120), nullable=False),
    sa.Column("name", sa.String(80), nullable=True),
)
products = sa.Table(
    "products", target_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sku", sa.String(40), nullable=False),
    sa.Column("legacy_code", sa.String(20), nullable=True),
    sa.Column("price", sa.Numeric(10, 2), nullable=False),
)
orders = sa.Table(
    "orders", target_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("status", order_status, nullable=False),
    sa.Column("currency", sa.String(3), nullable=True, server_default="EUR"),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False, server_default=sa.text("now()")),
)
order_items = sa.Table(
    "order_items", target_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id"), nullable=False),
    sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
)
addresses = sa.Table(
    "addresses", target_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer, nullable=False),
    sa.Column("city", sa.String(80), nullable=False),
    sa.Column("nickname", sa.String(40), nullable=True),
)
audit_log = sa.Table(
    "audit_log", target_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message", sa.Text, nullable=False),
)
'''

INITIAL = '''\
def upgrade() -> None:
    op.create_table("customers",
        sa.Column("id", sa.Integer, nullable=False), sa.Column("email", sa.String(120), nullable=False),
        sa.Column("name", sa.String(80), nullable=True), sa.PrimaryKeyConstraint("id", name="pk_customers"))
    op.create_table("products",
        sa.Column("id", sa.Integer, nullable=False), sa.Column("sku", sa.String(40), nullable=False),
        sa.Column("legacy_code", sa.String(20), nullable=True), sa.Column("price", sa.Numeric(10, 2), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_products"))
    op.create_table("orders",
        sa.Column("id", sa.Integer, nullable=False), sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("status", sa.Enum("new", "paid", "shipped", "cancelled", name="order_status"), nullable=False),
        sa.Column("currency", sa.String(3), nullable=True, server_default="EUR"),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False, server_default=sa.text("now()")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name="fk_orders_customer_id_customers"),
        sa.PrimaryKeyConstraint("id", name="pk_orders"))
    op.create_table("order_items",
        sa.Column("id", sa.Integer, nullable=False), sa.Column("order_id", sa.Integer, nullable=False),
        sa.Column("product_id", sa.Integer, nullable=False), sa.Column("qty", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_order_items_order_id_orders"),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name="fk_order_items_product_id_products"),
        sa.PrimaryKeyConstraint("id", name="pk_order_items"))
    op.create_table("addresses",
        sa.Column("id", sa.Integer, nullable=False), sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("city", sa.String(80), nullable=False), sa.Column("nickname", sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_addresses"))
    op.create_table("audit_log",
        sa.Column("id", sa.Integer, nullable=False), sa.Column("message", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"))


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("addresses")
    op.drop_table("order_items")
    op.drop_table("orders")
    op.drop_table("products")
    op.drop_table("customers")
    op.execute("DROP TYPE order_status")
'''

ROWS = [
    f"INSERT INTO customers (id, email, name) SELECT g, 'c' || g || '@example.com', "
    f"CASE WHEN g % 10 = 0 THEN NULL ELSE 'Customer ' || g END FROM generate_series(1, {CUSTOMERS}) g",
    "INSERT INTO products (id, sku, legacy_code, price) SELECT g, 'SKU' || g, 'L' || g, g FROM generate_series(1, 50) g",
    f"INSERT INTO orders (id, customer_id, status, currency, quantity) SELECT g, 1 + g % {CUSTOMERS}, "
    "(ARRAY['new','paid','shipped','cancelled'])[1 + g % 3]::order_status, CASE WHEN g % 7 = 0 THEN NULL ELSE 'EUR' END, "
    f"1 + g % 9 FROM generate_series(1, {ORDERS}) g",
    f"INSERT INTO order_items (id, order_id, product_id, qty) SELECT g, 1 + g % {ORDERS}, 1 + g % 50, "
    f"CASE WHEN g IN (17, 4242) THEN 40000 ELSE 1 + g % 5 END FROM generate_series(1, {ITEMS}) g",
    "INSERT INTO addresses (id, customer_id, city, nickname) SELECT g, g, 'City ' || g, 'home' FROM generate_series(1, 500) g",
    "INSERT INTO audit_log (id, message) SELECT g, 'event ' || g FROM generate_series(1, 500) g",
]


@dataclass
class Change:
    """One model change: text edits of models.py and the decision a database engineer would take."""

    id: str
    what: str
    edits: list[tuple[str, str]]
    decision: str
    why: str
    missing: str | None = None
    """Set when the change cannot converge yet: what is missing (the test is xfail, strict)."""


CHANGES = [
    Change("enum-add", "add the order status 'refunded'",
           [('"shipped", "cancelled", name="order_status"', '"shipped", "cancelled", "refunded", name="order_status"')],
           "proceed", "adding an enum value is a catalogue change; nothing to lose, the downgrade recreates the type"),
    Change("enum-rename", "rename the order status 'cancelled' to 'canceled'",
           [('"shipped", "cancelled", name="order_status"', '"shipped", "canceled", name="order_status"')],
           "proceed", "RENAME VALUE is a catalogue change that keeps every row; the downgrade renames back"),
    Change("enum-remove", "remove the order status 'new'",
           [('sa.Enum("new", "paid", "shipped", "cancelled"', 'sa.Enum("paid", "shipped", "cancelled"')],
           "escalate", "a thousand orders hold 'new': the USING cast fails on them; a human chooses where they go"),
    Change("column-rename", "rename addresses.nickname to label",
           [('sa.Column("nickname", sa.String(40), nullable=True)', 'sa.Column("label", sa.String(40), nullable=True)')],
           "proceed", "rename_column keeps every row (the skill: renaming columns, with verification, is automatic)"),
    Change("table-rename", "rename the addresses table to customer_addresses",
           [('"addresses", target_metadata', '"customer_addresses", target_metadata')],
           "proceed", "rename_table keeps every row; the downgrade renames back (audit_log would escalate: audit trail)"),
    Change("widen", "widen orders.quantity to BIGINT",
           [('sa.Column("quantity", sa.Integer, nullable=False)', 'sa.Column("quantity", sa.BigInteger, nullable=False)')],
           "escalate" if LARGE else "proceed",
           "every value fits (nothing to check); rewriting 3,000 rows is short (policy small_table_rows), rewriting "
           "200,000 is a large-data-migration (the skill's rule 3)"),
    Change("narrow", "narrow order_items.qty to SMALLINT",
           [('sa.Column("qty", sa.Integer, nullable=False)', 'sa.Column("qty", sa.SmallInteger, nullable=False)')],
           "escalate", "two rows hold 40,000, beyond SMALLINT: the upgrade would fail; a human decides their fate"),
    Change("not-null-no-default", "make customers.name NOT NULL",
           [('sa.Column("name", sa.String(80), nullable=True)', 'sa.Column("name", sa.String(80), nullable=False)')],
           "escalate", "300 customers have no name and the model gives no value: only a human can choose one"),
    Change("not-null-model-default", "make orders.currency NOT NULL (model default EUR)",
           [('sa.Column("currency", sa.String(3), nullable=True, server_default="EUR")',
             'sa.Column("currency", sa.String(3), nullable=False, server_default="EUR")')],
           "proceed", "the model names the value (EUR): backfill the NULL rows with it, then SET NOT NULL"),
    Change("index", "index orders.created_at",
           [('sa.Column("created_at", sa.DateTime, nullable=False, server_default=sa.text("now()"))',
             'sa.Column("created_at", sa.DateTime, nullable=False, server_default=sa.text("now()"), index=True)')],
           "proceed", "3,000 rows: a plain CREATE INDEX is short (CONCURRENTLY where the table is large)"),
    Change("foreign-key", "link addresses.customer_id to customers",
           [('sa.Column("customer_id", sa.Integer, nullable=False),\n    sa.Column("city"',
             'sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),\n    sa.Column("city"')],
           "proceed", "every address points at an existing customer (the skill: foreign keys are automatic)"),
    Change("unique", "make customers.email unique",
           [('sa.Column("email", sa.String(120), nullable=False)', 'sa.Column("email", sa.String(120), nullable=False, unique=True)')],
           "proceed", "no duplicate emails exist (preflighted); a unique index on 3,000 rows is short"),
    Change("drop-column", "drop products.legacy_code",
           [('    sa.Column("legacy_code", sa.String(20), nullable=True),\n', '')],
           "escalate", "every product has a legacy code: dropping it loses data for good"),
    Change("jsonb", "add customers.preferences JSONB",
           [('sa.Column("name", sa.String(80), nullable=True),\n)',
             'sa.Column("name", sa.String(80), nullable=True),\n    sa.Column("preferences", postgresql.JSONB, nullable=True),\n)')],
           "proceed", "a nullable column without default is a catalogue change"),
    Change("server-default", "change the default currency to USD",
           [('nullable=True, server_default="EUR")', 'nullable=True, server_default="USD")')],
           "proceed", "a new default affects only new rows; the downgrade restores EUR"),
]


# -- the scripted agent -------------------------------------------------------------------------------


@dataclass
class Trace:
    """What the agent did for one change."""

    change: str
    calls: list[str] = field(default_factory=list)
    chars: int = 0
    rounds: int = 0
    decision: str | None = None
    roundtrip: str | None = None
    converged: bool = False
    stuck: str | None = None


class Agent:
    """Calls tools through an MCP session and applies fixes literally (patches; the rewrite_renames call)."""

    def __init__(self, session, root: Path, trace: Trace) -> None:
        self.session, self.root, self.trace = session, root, trace

    async def call(self, tool: str, **args: Any) -> dict[str, Any]:
        result = await self.session.call_tool(tool, args)
        self.trace.calls.append(tool + ("(rewrite_renames)" if args.get("rewrite_renames") else ""))
        assert not result.is_error, f"{tool}: {result.content[0].text}"
        data = result.structured_content
        assert data is not None, f"{tool} returned no structured content"
        self.trace.chars += len(json.dumps(data, separators=(",", ":")))
        return data

    def apply_patches(self, findings: list[dict[str, Any]]) -> int:
        """``git apply`` each finding's patch, as an agent would; the number applied."""
        applied = 0
        for f in findings:
            patch = f.get("patch")
            if not patch:
                continue
            done = subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], input=patch, text=True,
                                  cwd=self.root, capture_output=True)
            assert done.returncode == 0, f"{f.get('rule')}: its patch does not apply: {done.stderr}\n{patch}"
            applied += 1
        return applied


def _findings(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in data.get("findings") or [] if f.get("severity") in ("error", "warning")]


def _said(data: dict[str, Any]) -> str:
    """The summary and the findings that stopped the agent (for the failure message)."""
    return data["summary"] + "".join(f"\n  [{f.get('rule')}] {f.get('message', '')[:300]}" for f in _findings(data))


def _wants_rewrite(data: dict[str, Any]) -> bool:
    return any(f.get("rule") == "probable-rename" and "rewrite_renames=true" in (f.get("fix") or "")
               for f in data.get("findings") or [])


async def run_change(command: list[str], root: Path, db_url: str, change: Change) -> Trace:
    """The prompt's steps for one change; returns the trace (assertions are the caller's)."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    trace = Trace(change.id)
    params = StdioServerParameters(command=command[0], args=[*command[1:], "serve", "--project", str(root)],
                                   env=dict(os.environ), cwd=str(root))
    async with Client(params) as session:
        agent = Agent(session, root, trace)
        # the steps below are the prompt's: it must say so (it is what a real agent reads)
        prompt = (await session.get_prompt("db-migrate", {"change": change.what})).messages[0].content.text
        steps = ["check_heads", "generate_migration", "review_migration", "test_roundtrip", "classify_escalation"]
        assert [prompt.index(s) for s in steps] == sorted(prompt.index(s) for s in steps), prompt
        if os.environ.get("DB_MIGRATE_AGENT_COMMAND") is None:  # an older build's prompt may predate it
            assert "rewrite_renames=true" in prompt
        heads = await agent.call("check_heads")
        assert heads["decision"] == "proceed", heads["summary"]
        models = root / "models.py"
        text = models.read_text()
        for old, new in change.edits:
            assert old in text, f"{change.id}: the base models lack {old!r}"
            text = text.replace(old, new)
        models.write_text(text)

        gen = await agent.call("generate_migration", message=change.what)
        if _wants_rewrite(gen):  # the fix of probable-rename: call again with rewrite_renames=true
            gen = await agent.call("generate_migration", message=change.what, rewrite_renames=True)
        if not gen.get("created"):
            trace.stuck = "generate wrote no revision: " + gen["summary"]
            return trace
        for trace.rounds in range(1, ROUNDS + 1):
            review = await agent.call("review_migration", revision="head", database_url=db_url)
            if review["decision"] == "revise":
                if not agent.apply_patches(_findings(review)):
                    trace.stuck = "review says revise and no finding carries a patch: " + _said(review)
                    return trace
                continue
            rt = await agent.call("test_roundtrip", revision="head")
            trace.roundtrip = rt.get("status") if rt.get("status") == "passed" else f"{rt.get('status')}, {rt['decision']}"
            # a roundtrip that fails where only a human can decide (data lost on the way back) is the human's
            # question: classify it; one that fails with something to fix (revise) is fixed first
            if rt.get("status") != "passed" and rt["decision"] != "escalate":
                if not agent.apply_patches(_findings(rt)):
                    trace.stuck = "roundtrip failed and no finding carries a patch: " + _said(rt)
                    return trace
                continue
            cls = await agent.call("classify_escalation", revision="head", database_url=db_url)
            trace.decision = cls["decision"]
            if cls["decision"] == "revise":
                if not agent.apply_patches(_findings(cls)):
                    trace.stuck = "classify says revise and no finding carries a patch: " + _said(cls)
                    return trace
                continue
            after = await agent.call("check_heads")
            trace.converged = not [f for f in after.get("findings") or [] if f.get("rule") == "model-drift"]
            if not trace.converged:
                trace.stuck = "the models still differ from head: " + after["summary"]
            return trace
        trace.stuck = f"no decision within {ROUNDS} rounds"
    return trace


# -- fixtures --------------------------------------------------------------------------------------------


def _command() -> list[str]:
    named = os.environ.get("DB_MIGRATE_AGENT_COMMAND")
    if named:
        return named.split()
    exe = Path(sys.executable).with_name("db-migrate")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "db_migrate.cli"]


@pytest.fixture(scope="module")
def base(tmp_path_factory, pg_url):
    """The base project and a template database at its head holding the rows; both removed at the end."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    root = make_project(tmp_path_factory.mktemp("agent_app"), [{"id": "0001initial", "body": INITIAL}],
                        url="postgresql://app@localhost/app", models=MODELS)
    name = f"dbm_agent_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.engine.make_url(pg_url).set(database=name)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            cfg = Config(str(root / "alembic.ini"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            for stmt in ROWS:
                conn.execute(sa.text(stmt))
        engine.dispose()
        yield root, name, url
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


TABLE: list[Trace] = []


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if not TABLE:
        return
    lines = [f"{'change':24} {'calls':>5} {'rounds':>6} {'chars':>8}  decision   roundtrip         result",
             "-" * 90]
    for t in TABLE:
        result = "converged" if t.converged else f"stuck: {t.stuck or '?'}"
        lines.append(f"{t.change:24} {len(t.calls):5d} {t.rounds:6d} {t.chars:8d}  {t.decision or '-':10} "
                     f"{t.roundtrip or '-':17} {result[:120]}")
    print("\n" + "\n".join(lines))
    out = os.environ.get("DB_MIGRATE_AGENT_TABLE")
    if out:
        Path(out).write_text(json.dumps([t.__dict__ for t in TABLE], indent=1))


def _params():
    for c in CHANGES:
        marks = [pytest.mark.xfail(strict=True, reason=f"needs {c.missing}")] if c.missing else []
        yield pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("change", list(_params()))
def test_change_converges_to_the_right_decision(change: Change, base, tmp_path, pg_url):
    import sqlalchemy as sa

    root_base, template, url = base
    root = tmp_path / "app"
    shutil.copytree(root_base, root)
    name = f"dbm_agent_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE {template}")
    db_url = url.set(database=name).render_as_string(hide_password=False)
    try:
        trace = anyio.run(run_change, _command(), root, db_url, change)
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
    TABLE.append(trace)
    assert trace.converged, f"{change.id}: {trace.stuck} (calls: {trace.calls})"
    if change.decision == "escalate":  # e.g. the data a dropped column held cannot come back: the human's call
        assert trace.roundtrip in ("passed", "failed, escalate"), trace.roundtrip
    else:
        assert trace.roundtrip == "passed", trace.roundtrip
    assert trace.decision == change.decision, f"{change.id}: {trace.decision}, but {change.why}"
