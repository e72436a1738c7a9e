"""Adding a column to an existing table: NOT NULL without a default, and defaults that rewrite the table."""

from __future__ import annotations

import re
from collections.abc import Iterator

import sqlalchemy as sa
from alembic.operations import ops

from db_migrate.rules import _fixes as fx
from db_migrate.rules._helpers import default_sql, is_new_table, is_volatile_sql, tables_emptied_before
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding, SourceEdit

_DOWN = "\n\ndef downgrade():\n    op.drop_column('users', 'age')\n"


def _column_like(col: sa.Column, **changes) -> sa.Column:
    """A copy of ``col`` (type, comment...) with some attributes changed: what the fix adds instead."""
    new = col._copy()
    new.identity = new.computed = None
    for k, v in changes.items():
        setattr(new, k, v)
    return new


@fx.tailored
def _add_nullable_then_fill(cap, rec, then: str, fill: str | None = None) -> str:
    """add_column(nullable=True), a backfill, and what completes the change (``then`` lines)."""
    op, col = rec.op, rec.op.column
    return fx.render(
        ops.AddColumnOp(op.table_name, _column_like(col, nullable=True, server_default=None), schema=op.schema),
        fx.backfill(op.table_name, op.schema, col.name, col.type, cap.dialect, fill),
        then,
    )


@fx.tailored
def _plain_nullable(cap, rec, then: str) -> str:
    """A plain nullable column instead of one every existing row must be computed for."""
    op = rec.op
    plain = _column_like(op.column, nullable=True, server_default=None)
    return fx.render(f"# a plain nullable column; {then}", ops.AddColumnOp(op.table_name, plain, schema=op.schema))


#: Where a fix needs a value only the project can choose.
CHOOSE = "<value existing rows get>"


def _literal(value: object, dialect: str) -> sa.DefaultClause | None:
    """A constant Python default as a server default, or None when it is not a plain constant."""
    if isinstance(value, bool):
        return sa.DefaultClause(sa.text(("true" if value else "false") if dialect == "postgresql" else str(int(value))))
    if isinstance(value, (int, float)) or type(value).__name__ == "Decimal":
        return sa.DefaultClause(sa.text(str(value)))
    if isinstance(value, str):
        return sa.DefaultClause(sa.text("'" + value.replace("'", "''") + "'"))
    return None


def needs_model(cap) -> bool:
    """A NOT NULL column is added without a server default: the model may say what existing rows get."""
    return any(
        isinstance(r.op, ops.AddColumnOp) and r.op.column.nullable is False and r.op.column.server_default is None
        and not is_new_table(cap, r) for r in cap.upgrade
    )


def model_default(cap, rec) -> tuple[str, sa.DefaultClause, bool] | None:
    """What existing rows get, as the project said it: (where it was said, server default, keep it in the database).

    The column's own ``default=`` in the revision, else the model's ``server_default=`` (kept: the model has it),
    else the model's ``default=`` (a constant; the server default only fills existing rows and is dropped again).
    """
    col = rec.op.column
    scalar = getattr(col.default, "arg", None) if getattr(col.default, "is_scalar", False) else None
    if scalar is not None and (clause := _literal(scalar, cap.dialect)) is not None:
        return f"the column's default= ({scalar!r})", clause, False
    metadata = getattr(cap.context, "metadata", None)
    tables = getattr(metadata, "tables", None) or {}
    key = f"{rec.op.schema}.{rec.op.table_name}" if rec.op.schema else rec.op.table_name
    model = tables.get(key)
    mcol = model.c.get(col.name) if model is not None else None
    if mcol is None:
        return None
    server = mcol.server_default
    if isinstance(server, sa.DefaultClause) and isinstance(server.arg, (str, sa.TextClause)):
        arg = server.arg if isinstance(server.arg, sa.TextClause) else sa.text("'" + server.arg.replace("'", "''") + "'")
        return f"the model's server_default ({getattr(arg, 'text', arg)})", sa.DefaultClause(arg), True
    scalar = getattr(mcol.default, "arg", None) if getattr(mcol.default, "is_scalar", False) else None
    if scalar is not None and (clause := _literal(scalar, cap.dialect)) is not None:
        return f"the model's default= ({scalar!r})", clause, False
    return None


def _added_columns(rule: Rule, cap) -> Iterator:
    """(rec, column) for every add_column on a table that already existed."""
    for rec in rule.ops(cap):
        if isinstance(rec.op, ops.AddColumnOp) and not is_new_table(cap, rec) and rec.table not in tables_emptied_before(cap, rec):
            yield rec, rec.op.column


def _filled_later(cap, rec, column: str) -> bool:
    """A data step of the same phase gives the new column its values: an UPDATE of the table, or rows written
    through the connection or a session (offline recording cannot follow those, so they count)."""
    if cap.facts_of("bind-read") or cap.facts_of("orm-session"):
        return True
    return any(r.index > rec.index and stmt.kind == "UPDATE" and rec.table in stmt.tables for r, stmt in cap.statements(rec.phase))


def _implicit_default(col: sa.Column) -> bool:
    """The column's Python-side default is the value MySQL gives existing rows anyway (False/0 for numbers and
    booleans, '' for strings, an ENUM's first member)."""
    default = getattr(col.default, "arg", None) if col.default is not None and getattr(col.default, "is_scalar", False) else None
    if default is None:
        return False
    if isinstance(col.type, sa.Enum):
        members = list(col.type.enums or [])
        return bool(members) and str(getattr(default, "value", default)) in (members[0], getattr(default, "name", None))
    if isinstance(col.type, (sa.Boolean, sa.Integer, sa.Numeric)) and not isinstance(default, str):
        return default == 0
    return isinstance(col.type, sa.String) and default == ""


def _implicit_value(col: sa.Column) -> str:
    """What MySQL/MariaDB put in existing rows for a NOT NULL column without a default, as a finding says it."""
    if isinstance(col.type, sa.Enum) and col.type.enums:
        return f"its first member, {col.type.enums[0]!r}"
    return "0" if isinstance(col.type, (sa.Boolean, sa.Integer, sa.Numeric)) else "''" if isinstance(col.type, sa.String) else "0 or ''"


class AddColumnNotNullNoDefault(Rule):
    id = "add-column-not-null-no-default"
    title = "NOT NULL column added to an existing table without a server default"
    severity = "error"
    phases = ("upgrade", "downgrade")
    why = (
        "Existing rows have no value for the new column. PostgreSQL and SQLite refuse the ALTER TABLE as soon "
        "as the table has one row (the migration fails in production after passing on an empty dev database); "
        "MySQL/MariaDB silently fill in 0 or ''. A Python-side `default=` does not help: it is not part of the DDL."
    )
    fix = (
        "# either a constant server default (PostgreSQL 11+ stores it in the catalogue: no rewrite)\n"
        "op.add_column('users', sa.Column('age', sa.Integer(), nullable=False, server_default='0'))\n"
        "# or: add nullable, backfill in batches, then set NOT NULL in a later revision\n"
        "op.add_column('users', sa.Column('age', sa.Integer(), nullable=True))"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.add_column('users', sa.Column('age', sa.Integer(), nullable=False))" + _DOWN,
            good="def upgrade():\n    op.add_column('users', sa.Column('age', sa.Integer(), nullable=False, server_default='0'))" + _DOWN,
        ),
        Example(
            bad="def upgrade():\n    op.add_column('users', sa.Column('age', sa.Integer(), nullable=False, default=0))" + _DOWN,
            good="def upgrade():\n    op.create_table('users', sa.Column('id', sa.Integer(), primary_key=True))\n"
            "    op.add_column('users', sa.Column('age', sa.Integer(), nullable=False))\n\n"
            "def downgrade():\n    op.drop_table('users')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec, col in _added_columns(self, cap):
            if col.nullable or col.server_default is not None or col.identity is not None or col.computed is not None:
                continue
            if col.primary_key and col.autoincrement is not False and isinstance(col.type, sa.Integer):
                continue  # SERIAL: the sequence fills it (add-serial-column's business)
            hint = " (default= is Python-side only; the database never sees it)" if col.default is not None else ""
            given = model_default(cap, rec)
            code = self._with_default(cap, rec, given) if given else None
            edit = SourceEdit(mode="replace-statement", function=rec.phase, line=rec.line, code=code) if code else None
            if cap.dialect in ("mysql", "mariadb"):
                # MySQL fills existing rows with the type's implicit value (0, '', False): nothing fails, and when
                # that is the value the Python default gives new rows, nothing is wrong either
                if _implicit_default(col) or _filled_later(cap, rec, col.name):
                    continue
                yield self.finding(
                    cap,
                    f"Adds NOT NULL column {rec.table}.{col.name} without a server_default{hint}: MySQL/MariaDB fill "
                    f"existing rows with the type's implicit value ({_implicit_value(col)}); whether that is right for the rows "
                    f"{rec.table} already has is not known here.",
                    rec=rec, severity="warning", fix=self._fix(cap, rec, given, code), edit=edit,
                )
                continue
            yield self.finding(
                cap,
                f"Adds NOT NULL column {rec.table}.{col.name} without a server_default{hint}: "
                f"on a non-empty table the ALTER TABLE fails on the first existing row.",
                rec=rec,
                fix=self._fix(cap, rec, given, code),
                edit=edit,
            )

    @staticmethod
    @fx.tailored
    def _with_default(cap, rec, given: tuple[str, sa.DefaultClause, bool]) -> str:
        """add_column with the server default the project chose; dropped again right after when the model
        keeps it Python-side only, so the database ends up as the model says (no drift, nothing invented)."""
        op, col = rec.op, rec.op.column
        _, clause, keep = given
        add = ops.AddColumnOp(op.table_name, _column_like(col, server_default=clause), schema=op.schema)
        drop = None if keep else ops.AlterColumnOp(
            op.table_name, col.name, schema=op.schema, modify_server_default=None, existing_type=col.type, existing_nullable=False,
        )
        return fx.render(add, fx.op_code(drop, batch=cap.dialect == "sqlite") if drop else None)

    @staticmethod
    @fx.tailored
    def _fix(cap, rec, given, code: str | None) -> str:
        op, col = rec.op, rec.op.column
        set_not_null = ops.AlterColumnOp(op.table_name, col.name, schema=op.schema, modify_nullable=False, existing_type=col.type)
        if code:
            return f"# existing rows get {given[0]}\n{code}"
        # the value existing rows get is the project's to choose: never a made-up '' or 0
        rest = _add_nullable_then_fill(
            cap, rec, "# then (a later revision on a large table):\n" + fx.op_code(set_not_null, batch=cap.dialect == "sqlite"),
            fill=CHOOSE,
        )
        return (
            f"# choose the value existing rows of {op.table_name} get for {col.name} (the model gives no default= or "
            f"server_default=): put it in the model as server_default=... and generate again, or\n"
            "# add it nullable, backfill with that value, then set NOT NULL\n" + rest
        )


class AddColumnVolatileDefault(Rule):
    id = "add-column-volatile-default"
    title = "Column added with a volatile default (rewrites the table)"
    severity = "error"
    phases = ("upgrade", "downgrade")
    dialects = ("postgresql",)
    why = (
        "PostgreSQL 11+ adds a column with a constant or STABLE default (0, 'x', now()) in the catalogue only. "
        "A VOLATILE default (gen_random_uuid(), random(), clock_timestamp(), uuid_generate_v4()) must be "
        "computed per row, so PostgreSQL rewrites the whole table holding an ACCESS EXCLUSIVE lock: no reads, "
        "no writes until it finishes. When the project's target_version is below 'postgresql 11', every default "
        "rewrites the table."
    )
    fix = (
        "op.add_column('users', sa.Column('token', sa.Uuid(), nullable=True))\n"
        "# backfill in batches (separate revision or script), then:\n"
        "op.alter_column('users', 'token', server_default=sa.text('gen_random_uuid()'))"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.add_column('users', sa.Column('token', sa.Uuid(), server_default=sa.text('gen_random_uuid()')))\n\n"
            "def downgrade():\n    op.drop_column('users', 'token')\n",
            good="def upgrade():\n    op.add_column('users', sa.Column('created', sa.DateTime(), server_default=sa.func.now()))\n\n"
            "def downgrade():\n    op.drop_column('users', 'created')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec, col in _added_columns(self, cap):
            expr = default_sql(col.server_default, cap.dialect)
            if expr is None or "nextval" in expr.lower():
                continue
            if is_volatile_sql(expr):
                why = f"volatile default {expr}: PostgreSQL computes it for every existing row"
            elif cap.target_version is not None and cap.target_version < (11,):
                # the project's target_version: before PostgreSQL 11 every default is written into every row
                version = ".".join(map(str, cap.target_version))
                why = f"default {expr} on PostgreSQL {version} (target_version): before 11 it is written into every existing row"
            else:
                continue
            yield self.finding(
                cap,
                f"Adds {rec.table}.{col.name} with {why}, rewriting {rec.table} under an ACCESS EXCLUSIVE lock "
                "(reads and writes blocked).",
                rec=rec,
                fix=_add_nullable_then_fill(
                    cap, rec,
                    "# then, once backfilled, new rows get the default:\n" + fx.op_code(ops.AlterColumnOp(
                        rec.op.table_name, col.name, schema=rec.op.schema, modify_server_default=col.server_default,
                        existing_type=col.type)),
                    fill=expr,
                ),
            )


_SERIAL_TYPE = re.compile(r"^(SMALL|BIG)?SERIAL(\d)?$", re.IGNORECASE)


def sequence_filled(col: sa.Column, sql: list[str], dialect: str) -> bool:
    """The column draws a value from a sequence for every existing row: IDENTITY, a SERIAL type, nextval(...).

    Judged on the column's definition, never its name (``serial_number VARCHAR`` is a plain column). The rendered
    type is read from the DDL only after the column name, where PostgreSQL writes SERIAL for an autoincrement key.
    A ``sa.Sequence(...)`` default alone is not: SQLAlchemy calls it in INSERTs, the ADD COLUMN has no DEFAULT,
    so existing rows get NULL without a rewrite (the DDL would show ``nextval`` otherwise).
    """
    if col.identity is not None:
        return True
    if "nextval(" in ((default_sql(col.server_default, dialect) or "") + " ".join(sql)).lower():
        return True
    if _SERIAL_TYPE.match(type(col.type).__name__) or _SERIAL_TYPE.match(str(getattr(col.type, "__visit_name__", ""))):
        return True
    for stmt in sql:
        m = re.search(r"\bADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(\"[^\"]+\"|\S+)\s+(\S+)", stmt, re.IGNORECASE)
        if m and _SERIAL_TYPE.match(m.group(2)):
            return True
    return False


class AddSerialColumn(Rule):
    id = "add-serial-column"
    title = "Identity/serial column added to an existing table (rewrites the table)"
    severity = "error"
    phases = ("upgrade", "downgrade")
    dialects = ("postgresql",)
    why = (
        "An IDENTITY or SERIAL column draws a sequence value for every existing row: PostgreSQL rewrites the "
        "whole table under an ACCESS EXCLUSIVE lock (reads and writes blocked for the duration)."
    )
    fix = (
        "# add it while the table is new, or: add a nullable BIGINT, create a sequence, backfill in batches,\n"
        "# then set the default and NOT NULL in later revisions\n"
        "op.add_column('events', sa.Column('seq', sa.BigInteger(), nullable=True))"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.add_column('events', sa.Column('seq', sa.BigInteger(), sa.Identity()))\n\n"
            "def downgrade():\n    op.drop_column('events', 'seq')\n",
            good="def upgrade():\n    op.add_column('events', sa.Column('seq', sa.BigInteger(), nullable=True))\n\n"
            "def downgrade():\n    op.drop_column('events', 'seq')\n",
        ),
        Example(
            bad="def upgrade():\n    op.add_column('events', sa.Column('seq', sa.BigInteger(), server_default=sa.text(\"nextval('events_seq')\")))\n\n"
            "def downgrade():\n    op.drop_column('events', 'seq')\n",
            good="def upgrade():\n    op.add_column('devices', sa.Column('serial_number', sa.String(64), nullable=True))\n\n"
            "def downgrade():\n    op.drop_column('devices', 'serial_number')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec, col in _added_columns(self, cap):
            if sequence_filled(col, rec.sql, cap.dialect):
                yield self.finding(
                    cap,
                    f"Adds sequence-filled column {rec.table}.{col.name}: every existing row gets a value, so "
                    f"PostgreSQL rewrites {rec.table} under an ACCESS EXCLUSIVE lock.",
                    rec=rec,
                    fix=_plain_nullable(cap, rec, "create a sequence, backfill in batches, then set the default and NOT NULL in later revisions"),
                )


class AddStoredGeneratedColumn(Rule):
    id = "add-stored-generated-column"
    title = "Stored generated column added to an existing table (rewrites the table)"
    severity = "error"
    phases = ("upgrade", "downgrade")
    dialects = ("postgresql",)
    why = (
        "A STORED generated column (sa.Computed(...); PostgreSQL before 18 has only STORED) is computed and "
        "written for every existing row: a full table rewrite under an ACCESS EXCLUSIVE lock."
    )
    fix = (
        "# compute it in a view or the application, or add a plain nullable column, backfill in batches,\n"
        "# and keep it current with a trigger\n"
        "op.add_column('orders', sa.Column('total', sa.Numeric(12, 2), nullable=True))"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.add_column('orders', sa.Column('total', sa.Numeric(12, 2), sa.Computed('qty * price')))\n\n"
            "def downgrade():\n    op.drop_column('orders', 'total')\n",
            good="def upgrade():\n    op.add_column('orders', sa.Column('total', sa.Numeric(12, 2), nullable=True))\n\n"
            "def downgrade():\n    op.drop_column('orders', 'total')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec, col in _added_columns(self, cap):
            if col.computed is not None and col.computed.persisted is not False:
                yield self.finding(
                    cap,
                    f"Adds stored generated column {rec.table}.{col.name}: PostgreSQL computes and writes it for "
                    f"every existing row, rewriting {rec.table} under an ACCESS EXCLUSIVE lock.",
                    rec=rec,
                    fix=_plain_nullable(cap, rec, "backfill in batches and keep it current with a trigger (or compute it in a view)"),
                )


RULES = (AddColumnNotNullNoDefault, AddColumnVolatileDefault, AddSerialColumn, AddStoredGeneratedColumn)
