"""Every fix a finding carries is Python an agent can paste: it parses, and every name it uses exists.

"Exists" means: defined at module level in the revision the finding is about (``op``, ``sa``, its own
imports and constants), a builtin, or defined by the fix itself (its own imports, assignments, functions).
A fix that writes ``server_default=false`` or ``postgresql.ENUM`` without the import would raise NameError
the moment the agent runs the migration.

Checked over every rule's catalogue examples (bad and good), and over revisions chosen to reach the fix
builders that render values (booleans, enums, dialect types).
"""

from __future__ import annotations

import ast
import builtins
import textwrap

import pytest

from db_migrate.review.engine import _EXAMPLE_HEADER, review_source
from db_migrate.rules import all_rules


def defined_names(tree: ast.AST) -> set[str]:
    """Names a piece of code binds anywhere: imports, assignment and loop targets, functions, arguments, with-as."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            out.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
    return out


def module_names(source: str) -> set[str]:
    """What the revision module defines at its top level (what a pasted snippet can use)."""
    tree = ast.parse(source)
    out: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.add(stmt.name)  # a function's body binds only locals
        else:
            out |= defined_names(stmt)
    return out


def undefined_names(fix: str, revision_source: str) -> set[str]:
    tree = ast.parse(textwrap.dedent(fix))
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return used - defined_names(tree) - module_names(revision_source) - set(dir(builtins))


def full_source(body: str) -> str:
    """What review_source reviews for an example body (it adds the header when the body has none)."""
    return body if "revision" in body.split("def ", 1)[0] else _EXAMPLE_HEADER + body


def check_fixes(body: str, dialect: str) -> list[str]:
    source = full_source(body)
    problems = []
    for f in review_source(source, dialect=dialect).findings:
        if f.fix is None:
            continue
        try:
            missing = undefined_names(f.fix, source)
        except SyntaxError as e:
            problems.append(f"{f.rule}: the fix does not parse ({e.msg}):\n{f.fix}")
            continue
        if missing:
            problems.append(f"{f.rule}: the fix uses undefined {sorted(missing)}:\n{f.fix}")
    return problems


EXAMPLES = [
    pytest.param(example, source, id=f"{rule.id}-{i}-{kind}")
    for rule in all_rules()
    for i, example in enumerate(rule.examples)
    for kind, source in (("bad", example.bad), ("good", example.good))
    if source
]


@pytest.mark.parametrize(("example", "body"), EXAMPLES)
def test_every_fix_of_every_rule_example_parses_and_resolves(example, body):
    assert check_fixes(body, example.dialect) == []


def revision(up: str, down: str = "pass", head: str = "") -> str:
    return head + f"def upgrade():\n{textwrap.indent(up, '    ')}\n\n\ndef downgrade():\n{textwrap.indent(down, '    ')}\n"


# Revisions reaching the builders that render types and values into fixes.
VALUE_CASES = [
    ("set-not-null on a boolean", revision(
        "op.alter_column('flags', 'enabled', existing_type=sa.Boolean(), nullable=False)",
        "op.alter_column('flags', 'enabled', existing_type=sa.Boolean(), nullable=True)")),
    ("set-not-null with an expression default", revision(
        "op.alter_column('flags', 'enabled', existing_type=sa.Boolean(), nullable=False, server_default=sa.false())",
        "op.alter_column('flags', 'enabled', existing_type=sa.Boolean(), nullable=True, server_default=None)")),
    ("NOT NULL boolean without a default", revision(
        "op.add_column('flags', sa.Column('archived', sa.Boolean(), nullable=False))", "op.drop_column('flags', 'archived')")),
    ("new column set NOT NULL without values", revision(
        "op.add_column('flags', sa.Column('archived', sa.Boolean(), nullable=True))\n"
        "op.alter_column('flags', 'archived', existing_type=sa.Boolean(), nullable=False)",
        "op.drop_column('flags', 'archived')")),
    ("dialect type from an import", revision(
        "op.add_column('docs', sa.Column('body', postgresql.JSONB(), nullable=False))", "op.drop_column('docs', 'body')",
        head="from sqlalchemy.dialects import postgresql\n\n")),
    ("enum column narrowed", revision(
        "op.alter_column('orders', 'state', existing_type=sa.Enum('a', 'b', name='st'), type_=sa.String(1))",
        "op.alter_column('orders', 'state', existing_type=sa.String(1), type_=sa.Enum('a', 'b', name='st'))")),
    ("volatile default", revision(
        "op.add_column('users', sa.Column('token', sa.Uuid(), server_default=sa.text('gen_random_uuid()')))",
        "op.drop_column('users', 'token')")),
    ("upgrade drops, downgrade empty", revision("op.drop_column('users', 'email')")),
    ("data step with nothing to undo", revision("op.execute(\"UPDATE users SET plan = 'free' WHERE plan IS NULL\")")),
    ("sqlite alter outside batch", revision(
        "op.alter_column('users', 'email', existing_type=sa.String(200), nullable=False)",
        "op.alter_column('users', 'email', existing_type=sa.String(200), nullable=True)")),
]


@pytest.mark.parametrize(("what", "body"), VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_fixes_that_render_values_resolve(what, body, dialect):
    assert check_fixes(body, dialect) == []


def test_the_checker_itself_catches_an_undefined_name():
    # the bug the issue names: a fix writing server_default=false (a Python name, not SQL)
    assert undefined_names("op.add_column('t', sa.Column('b', sa.Boolean(), server_default=false))", full_source("")) == {"false"}
    assert undefined_names("import sqlalchemy as sa\nsa.text('x')", "") == set()
    with pytest.raises(SyntaxError):
        undefined_names("op.execute('x'", "")


def test_a_fix_never_shows_the_catalogue_example_for_another_table():
    # missing-lock-timeout used to show op.add_column('users', ...) on a finding about orders
    body = revision("op.create_index('ix_orders_placed', 'orders', ['placed_at'])", "op.drop_index('ix_orders_placed', table_name='orders')")
    found = {f.rule: f for f in review_source(full_source(body)).findings}
    for rule in all_rules():
        f = found.get(rule.id)
        if f is not None and f.fix:
            assert "users" not in f.fix, (rule.id, f.fix)
    assert "orders" in found["missing-lock-timeout"].fix
