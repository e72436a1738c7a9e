"""Index builds and drops on PostgreSQL: CONCURRENTLY, and CONCURRENTLY inside the migration transaction."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from alembic.operations import ops

from db_migrate.rules import _fixes as fx
from db_migrate.rules._helpers import (
    after_commit,
    is_concurrent,
    is_transient_table,
    locked_earlier,
    locked_later,
    raw_index_statements,
    recreated_primary_keys,
    tables_created_before,
)
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding, SourceEdit

_CONCURRENT_FIX = (
    "with op.get_context().autocommit_block():\n"
    "    op.create_index('ix_users_email', 'users', ['email'], postgresql_concurrently=True, if_not_exists=True)\n"
    "# downgrade:\n"
    "with op.get_context().autocommit_block():\n"
    "    op.drop_index('ix_users_email', table_name='users', postgresql_concurrently=True, if_exists=True)"
)
_GOOD_BODY = (
    "def upgrade():\n    with op.get_context().autocommit_block():\n"
    "        op.create_index('ix_users_email', 'users', ['email'], postgresql_concurrently=True)\n\n"
    "def downgrade():\n    with op.get_context().autocommit_block():\n"
    "        op.drop_index('ix_users_email', table_name='users', postgresql_concurrently=True)\n"
)


@fx.tailored
def _fix(rec, stmt=None) -> str:
    """The operation (or raw statement) with CONCURRENTLY, outside the transaction; its counterpart likewise."""
    if stmt is not None:
        return fx.raw_index_concurrently(stmt.text, rec.phase)
    return fx.index_concurrently(rec.op, rec.phase)


class CreateIndexNonConcurrent(Rule):
    id = "create-index-non-concurrent"
    title = "Index built on an existing table without CONCURRENTLY"
    severity = "error"
    phases = ("upgrade", "downgrade")
    dialects = ("postgresql",)
    why = (
        "CREATE INDEX holds a SHARE lock on the table for the whole build: every INSERT, UPDATE and DELETE waits "
        "(minutes on a large table). CREATE INDEX CONCURRENTLY lets writes go on; it cannot run inside a "
        "transaction, so in Alembic it goes in an autocommit_block(). A primary key dropped and created again on "
        "the same columns (to rename it) builds its index again under ACCESS EXCLUSIVE; RENAME CONSTRAINT does not."
    )
    fix = _CONCURRENT_FIX
    examples = (
        Example(
            bad="def upgrade():\n    op.create_index('ix_users_email', 'users', ['email'])\n\n"
            "def downgrade():\n    op.drop_index('ix_users_email', table_name='users')\n",
            good=_GOOD_BODY,
        ),
        Example(
            bad="def upgrade():\n    op.execute('CREATE INDEX ix_users_email ON users (email)')\n\n"
            "def downgrade():\n    op.execute('DROP INDEX ix_users_email')\n",
            good="def upgrade():\n    op.create_table('users', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('email', sa.String(200)))\n"
            "    op.create_index('ix_users_email', 'users', ['email'])\n\n"
            "def downgrade():\n    op.drop_table('users')\n",
        ),
        Example(  # a primary key re-created on its own columns to rename it: the key's index is built again
            bad="def upgrade():\n    op.drop_constraint('users_pkey', 'users', type_='primary')\n"
            "    op.create_primary_key('pk_users', 'users', ['id'])\n\n"
            "def downgrade():\n    op.drop_constraint('pk_users', 'users', type_='primary')\n"
            "    op.create_primary_key('users_pkey', 'users', ['id'])\n",
            good="def upgrade():\n    op.execute('ALTER TABLE users RENAME CONSTRAINT users_pkey TO pk_users')\n\n"
            "def downgrade():\n    op.execute('ALTER TABLE users RENAME CONSTRAINT pk_users TO users_pkey')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            if isinstance(rec.op, ops.CreateIndexOp) and not is_concurrent(rec) and not is_transient_table(cap, rec):
                # the build itself, in place, made concurrent: a patch (checked before it is offered)
                edit = SourceEdit(mode="replace-statement", function=rec.phase, line=rec.line,
                                  code=fx.concurrent_statement(rec.op)) if rec.line else None
                switch = concurrency_chosen_at_run_time(cap, rec)
                if switch:
                    yield self.finding(
                        cap, f"Builds index {rec.op.index_name} on {rec.table} with CONCURRENTLY chosen at run time "
                        f"({switch}): where it is off, inserts, updates and deletes on {rec.table} wait for the whole "
                        "build (SHARE lock). Whether it is on where this runs is the deployment's fact.",
                        rec=rec, table=rec.table, severity="warning",
                    )
                    continue
                yield self._finding(cap, rec, rec.op.index_name, rec.table, _fix(rec), edit)
        for phase in self.phases:
            for rec, stmt, verb, concurrently in raw_index_statements(cap, phase):
                table = next(iter(stmt.tables), None)
                if verb == "create" and not concurrently and table not in tables_created_before(cap, rec):
                    yield self._finding(cap, rec, None, table, _fix(rec, stmt))
            for table, rec in recreated_primary_keys(cap, phase).items():
                if not is_transient_table(cap, rec):
                    yield self._same_key(cap, rec)

    def _same_key(self, cap, rec) -> Finding:
        """A primary key dropped and created again on its own columns: no key changes, its index is built again."""
        op, table = rec.op, rec.table
        old = next((r.op.constraint_name for r in cap.ops(rec.phase) if isinstance(r.op, ops.DropConstraintOp)
                    and r.op.constraint_type == "primary" and r.table == table), None)
        rename = old and op.constraint_name and old != op.constraint_name
        fix = fx.render(
            f"# only the name changes: a catalogue change, no index build, and foreign keys to the key keep working",
            fx.execute(f"ALTER TABLE {fx.table_sql(table, op.schema, cap.dialect)} RENAME CONSTRAINT "
                       f"{fx.ident(old, cap.dialect)} TO {fx.ident(op.constraint_name, cap.dialect)}"),
        ) if rename else None
        return self.finding(
            cap,
            f"Drops and re-creates the primary key of {table} on the same columns ({', '.join(map(str, op.columns))}): "
            f"no key changes, but PostgreSQL builds its unique index again under an ACCESS EXCLUSIVE lock (reads and "
            f"writes on {table} wait for the build), and the drop fails while foreign keys reference the key."
            + (f" To rename it, RENAME CONSTRAINT {old} TO {op.constraint_name} does it in the catalogue." if rename else ""),
            rec=rec, table=table, fix=fix,
        )

    def _finding(self, cap, rec, name, table, fix, edit: SourceEdit | None = None) -> Finding:
        what = f"Builds {'index ' + name if name else 'an index'} on {table} without CONCURRENTLY"
        held = locked_earlier(cap, rec, table) if table else None
        if held:
            # made concurrent in place, the autocommit block would commit what this transaction did before it, half
            # of the revision: the build moves to a revision of its own
            return self.finding(
                cap, f"{what}, while this transaction holds {table} ACCESS EXCLUSIVE since line {held}: reads and writes "
                f"of {table} wait for the whole build. Build it CONCURRENTLY in a revision of its own after this one "
                "(made concurrent here, it would commit the first half of this revision).",
                rec=rec, table=table, fix=_in_next_revision(rec),
            )
        return self.finding(
            cap,
            f"{what}: inserts, updates and deletes on {table} wait for the whole build (SHARE lock).",
            rec=rec,
            table=table,
            fix=fix,
            edit=edit,
        )


@fx.tailored
def _in_next_revision(rec) -> str | None:
    """The index, built concurrently in a revision of its own (its upgrade and downgrade)."""
    if not isinstance(rec.op, ops.CreateIndexOp):
        return None
    return f"# remove line {rec.line} here; in a new revision after this one:\n# upgrade():\n" + fx.index_concurrently(rec.op, "upgrade")


def concurrency_chosen_at_run_time(cap, rec) -> str | None:
    """``postgresql_concurrently=<expression>`` on the statement's line: the revision decides at run time (an opt-in
    setting), so recording saw one of two ways. The expression's source, or None for a literal or none given."""
    from db_migrate.capture.source import parsed

    tree = parsed(cap.source) if rec.line else None
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Call) and node.lineno <= rec.line <= (node.end_lineno or node.lineno):
            for kw in node.keywords:
                if kw.arg == "postgresql_concurrently" and not isinstance(kw.value, ast.Constant):
                    return ast.get_source_segment(cap.source, kw.value)
    return None


class DropIndexNonConcurrent(Rule):
    id = "drop-index-non-concurrent"
    title = "Index dropped without CONCURRENTLY"
    severity = "warning"
    phases = ("upgrade",)
    dialects = ("postgresql",)
    why = (
        "DROP INDEX takes an ACCESS EXCLUSIVE lock on the table. The drop itself is quick, but it queues behind "
        "any long-running query on the table, and every read and write queues behind it: a short outage. "
        "DROP INDEX CONCURRENTLY waits without blocking others."
    )
    fix = (
        "with op.get_context().autocommit_block():\n"
        "    op.drop_index('ix_users_email', table_name='users', postgresql_concurrently=True, if_exists=True)"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.drop_index('ix_users_email', table_name='users')\n\n"
            "def downgrade():\n    op.create_index('ix_users_email', 'users', ['email'])\n",
            good="def upgrade():\n    with op.get_context().autocommit_block():\n"
            "        op.drop_index('ix_users_email', table_name='users', postgresql_concurrently=True)\n\n"
            "def downgrade():\n    with op.get_context().autocommit_block():\n"
            "        op.create_index('ix_users_email', 'users', ['email'], postgresql_concurrently=True)\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            if isinstance(rec.op, ops.DropIndexOp) and not is_concurrent(rec) and not is_transient_table(cap, rec):
                if (rec.table and (locked_earlier(cap, rec, rec.table) or locked_later(cap, rec, rec.table))) \
                        or concurrency_chosen_at_run_time(cap, rec):
                    continue  # the transaction holds (or will take) ACCESS EXCLUSIVE on the table; or the deployment chooses
                yield self.finding(
                    cap,
                    f"Drops index {rec.op.index_name} without CONCURRENTLY: the ACCESS EXCLUSIVE lock on "
                    f"{rec.table or 'its table'} waits behind running queries and blocks all reads and writes meanwhile.",
                    rec=rec,
                    fix=_fix(rec),
                )
        for rec, stmt, verb, concurrently in raw_index_statements(cap, "upgrade"):
            if verb == "drop" and not concurrently:
                yield self.finding(
                    cap,
                    f"DROP INDEX {', '.join(stmt.tables)} without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on its table.",
                    rec=rec,
                    fix=_fix(rec, stmt),
                )


class ConcurrentIndexInTransaction(Rule):
    id = "concurrent-index-in-transaction"
    title = "CONCURRENTLY inside the migration transaction"
    severity = "error"
    phases = ("upgrade", "downgrade")
    dialects = ("postgresql",)
    why = (
        "CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction block, and Alembic runs each migration "
        "in one: PostgreSQL raises 'cannot run inside a transaction block' and the migration fails. "
        "op.get_context().autocommit_block() commits first and runs the statement outside the transaction."
    )
    fix = _CONCURRENT_FIX
    examples = (
        Example(
            bad="def upgrade():\n    op.create_index('ix_users_email', 'users', ['email'], postgresql_concurrently=True)\n\n"
            "def downgrade():\n    with op.get_context().autocommit_block():\n"
            "        op.drop_index('ix_users_email', table_name='users', postgresql_concurrently=True)\n",
            good=_GOOD_BODY,
        ),
        Example(
            bad="def upgrade():\n    op.execute('CREATE INDEX CONCURRENTLY ix_users_email ON users (email)')\n\n"
            "def downgrade():\n    with op.get_context().autocommit_block():\n"
            "        op.execute('DROP INDEX CONCURRENTLY ix_users_email')\n",
            good="def upgrade():\n    with op.get_context().autocommit_block():\n"
            "        op.execute('CREATE INDEX CONCURRENTLY ix_users_email ON users (email)')\n\n"
            "def downgrade():\n    with op.get_context().autocommit_block():\n"
            "        op.execute('DROP INDEX CONCURRENTLY ix_users_email')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            if isinstance(rec.op, (ops.CreateIndexOp, ops.DropIndexOp)) and is_concurrent(rec) and not rec.in_autocommit_block \
                    and not after_commit(cap, rec):
                verb = "CREATE" if isinstance(rec.op, ops.CreateIndexOp) else "DROP"
                yield self.finding(
                    cap,
                    f"{verb} INDEX CONCURRENTLY {rec.op.index_name} runs inside the migration transaction: PostgreSQL "
                    f"refuses it ('cannot run inside a transaction block'). Wrap it in op.get_context().autocommit_block().",
                    rec=rec,
                    fix=_fix(rec),
                )
        for phase in self.phases:
            for rec, stmt, verb, concurrently in raw_index_statements(cap, phase):
                if concurrently and not rec.in_autocommit_block and not after_commit(cap, rec):
                    yield self.finding(
                        cap,
                        f"{verb.upper()} INDEX CONCURRENTLY in op.execute runs inside the migration transaction: "
                        f"PostgreSQL refuses it. Wrap it in op.get_context().autocommit_block().",
                        rec=rec,
                        table=next(iter(stmt.tables), None),
                        fix=_fix(rec, stmt),
                    )


RULES = (CreateIndexNonConcurrent, DropIndexNonConcurrent, ConcurrentIndexInTransaction)
