"""Altering an existing column: SET NOT NULL and type changes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic.operations import ops

from sqlalchemy.sql.elements import conv

from db_migrate.capture.dialects import type_sql
from db_migrate.capture.source import fills_column, parsed
from db_migrate.capture.sql import VALIDATE
from db_migrate.rules import _fixes as fx
from db_migrate.rules._helpers import (
    alters_nothing,
    classify_type_change,
    is_known_type,
    is_new_column,
    is_transient_table,
    reverts_upgrade_alter,
    spell,
    type_before,
    type_change_risk,
    updated_columns,
)
from db_migrate.rules._fixes import known
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding, SourceEdit

_VALIDATED = re.compile(r"\bVALIDATE\s+CONSTRAINT\s+([\w\"]+)", re.IGNORECASE)


def _alters(rule: Rule, cap) -> Iterator:
    for rec in rule.ops(cap):
        if isinstance(rec.op, ops.AlterColumnOp) and not is_transient_table(cap, rec) and not reverts_upgrade_alter(cap, rec):
            yield rec, rec.op


@fx.tailored
def _expand_contract(cap, rec) -> str:
    """A new column of the new type next to the old one, backfilled; the old one dropped later."""
    op = rec.op
    new_col = f"{op.column_name}_new"
    tsql = fx.table_sql(op.table_name, op.schema, cap.dialect)
    old_sql, new_sql = fx.ident(op.column_name, cap.dialect), fx.ident(new_col, cap.dialect)
    # PostgreSQL needs an explicit cast across type families; MySQL/SQLite convert on assignment.
    value = f"CAST({old_sql} AS {spell(op.modify_type, cap.dialect)})" if cap.dialect == "postgresql" else old_sql
    widen = None
    if known(op.existing_type) is None:
        widen = "# or, if this only widens the column, keep the alter_column and add existing_type=<the current type>"
    return fx.render(
        "# expand/contract: a new column, written by the application alongside the old one",
        ops.AddColumnOp(op.table_name, sa.Column(new_col, op.modify_type, nullable=True), schema=op.schema),
        fx.execute(f"UPDATE {tsql} SET {new_sql} = {value} WHERE {new_sql} IS NULL AND {old_sql} IS NOT NULL"),
        f"# (in batches on a large table), switch reads to {new_col}, then drop {op.column_name} in a later revision",
        # the models must say what the database has meanwhile, or check_heads reports drift and generate
        # writes the same alter_column again
        f"# meanwhile the model keeps {op.column_name} as it is and gains {new_col} "
        f"({spell(op.modify_type, cap.dialect)}, nullable); the later revision drops {op.column_name} and renames "
        f"{new_col} to {op.column_name}, in the model too",
        widen,
    )


class SetNotNull(Rule):
    id = "set-not-null"
    title = "SET NOT NULL on an existing column"
    severity = "error"
    phases = ("upgrade", "downgrade")
    why = (
        "PostgreSQL scans the whole table to check for NULLs while holding an ACCESS EXCLUSIVE lock (reads and "
        "writes blocked), and the migration fails if any row is NULL. MySQL/MariaDB rebuild the table. "
        "PostgreSQL 12+ skips the scan when a validated CHECK (col IS NOT NULL) constraint exists."
    )
    fix = (
        "# fill the NULL rows with the column's stated default (never an invented value), add the check without\n"
        "# scanning (brief lock), then, committed apart from the ADD, validate it (SHARE UPDATE EXCLUSIVE: reads and\n"
        "# writes go on) and set NOT NULL (PostgreSQL 12+ uses the valid check: no scan)\n"
        "op.execute(\"UPDATE users SET email = '<the default>' WHERE email IS NULL\")\n"
        "op.create_check_constraint('ck_users_email_nn', 'users', 'email IS NOT NULL', postgresql_not_valid=True)\n"
        "with op.get_context().autocommit_block():\n"
        "    op.execute('ALTER TABLE users VALIDATE CONSTRAINT ck_users_email_nn')\n"
        "    op.alter_column('users', 'email', nullable=False)\n"
        "    op.drop_constraint('ck_users_email_nn', 'users', type_='check')"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.alter_column('users', 'email', existing_type=sa.String(200), nullable=False)\n\n"
            "def downgrade():\n    op.alter_column('users', 'email', existing_type=sa.String(200), nullable=True)\n",
            good="def upgrade():\n    op.alter_column('users', 'email', existing_type=sa.String(200), nullable=True)\n\n"
            "def downgrade():\n    op.alter_column('users', 'email', existing_type=sa.String(200), nullable=False)\n",
        ),
        Example(
            bad="def upgrade():\n    op.add_column('users', sa.Column('tier', sa.String(10), nullable=True))\n"
            "    op.alter_column('users', 'tier', existing_type=sa.String(10), nullable=False)\n\n"
            "def downgrade():\n    op.drop_column('users', 'tier')\n",
            good="def upgrade():\n    op.add_column('users', sa.Column('tier', sa.String(10), nullable=True))\n"
            "    op.execute(\"UPDATE users SET tier = 'free'\")\n"
            "    op.alter_column('users', 'tier', existing_type=sa.String(10), nullable=False)\n\n"
            "def downgrade():\n    op.drop_column('users', 'tier')\n",
        ),
        Example(
            bad="def upgrade():\n    op.alter_column('users', 'tier', existing_type=sa.String(10), nullable=False,\n"
            "                    existing_server_default='free')\n\n"
            "def downgrade():\n    op.alter_column('users', 'tier', existing_type=sa.String(10), nullable=True)\n",
            good="def upgrade():\n    op.execute(\"UPDATE users SET tier = 'free' WHERE tier IS NULL\")\n"
            "    op.create_check_constraint('ck_users_tier_nn', 'users', 'tier IS NOT NULL', postgresql_not_valid=True)\n"
            "    with op.get_context().autocommit_block():\n"
            "        op.execute('ALTER TABLE users VALIDATE CONSTRAINT ck_users_tier_nn')\n"
            "        op.alter_column('users', 'tier', existing_type=sa.String(10), nullable=False)\n"
            "        op.drop_constraint('ck_users_tier_nn', 'users', type_='check')\n\n"
            "def downgrade():\n    op.alter_column('users', 'tier', existing_type=sa.String(10), nullable=True)\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec, op in _alters(self, cap):
            if op.modify_nullable is not False or op.existing_nullable is False:
                continue
            if cap.dialect == "sqlite" and rec.batch_table:
                continue  # batch mode copies the table anyway; the copy fails on NULLs, not a lock problem
            if cap.dialect in ("mysql", "mariadb") and op.modify_type is not None and op.existing_nullable is None:
                continue  # MySQL's MODIFY restates the whole column: a type change must repeat NOT NULL to keep it
            col = f"{rec.table}.{op.column_name}"
            if is_new_column(cap, rec):
                # Added in this revision: fine once backfilled (small window, the column is new);
                # without values every existing row is NULL and the ALTER fails.
                if not self._backfilled(cap, rec, op.column_name):
                    unknown = next((line for phase, line in cap.went_on if phase == rec.phase and rec.line and line < rec.line), None) or \
                        next((r.line for r, stmt in cap.statements(rec.phase) if r.index < rec.index and stmt.parse_error
                              and (not stmt.tables or rec.table in stmt.tables)), None)
                    tree = parsed(cap.source)
                    if unknown and tree is not None and fills_column(tree, rec.phase, unknown, rec.line, rec.table, op.column_name):
                        continue  # the code fills it where recording could not follow (rows read offline): the review's unchecked
                    if unknown:  # what failed offline there may be the UPDATE that fills it: unknown, not absent
                        yield self.finding(
                            cap, f"Sets {col} NOT NULL right after adding it without a server default; line {unknown}, "
                            "which could not be recorded or read offline, may fill it. If it does not, every existing row is NULL "
                            "there and this fails on a non-empty table.", rec=rec, severity="warning", fix=self._fix_new(cap, rec),
                        )
                        continue
                    yield self.finding(
                        cap,
                        f"Sets {col} NOT NULL right after adding it without a server default or an UPDATE: every "
                        f"existing row is NULL there, so this fails on a non-empty table.",
                        rec=rec,
                        severity="error",
                        fix=self._fix_new(cap, rec),
                    )
                continue
            if cap.dialect == "postgresql" and self._proven_not_null(cap, rec):
                continue  # a validated CHECK (col IS NOT NULL), validated outside the ADD's transaction: no scan
            if rec.phase == "upgrade" and (rec.table, op.column_name) in cap.context.not_null_before.get(cap.revision or "", ()):
                continue  # NOT NULL since an earlier revision made it so: restated, the server checks nothing
            how = {
                "postgresql": f"the check scans all of {rec.table} under an ACCESS EXCLUSIVE lock (reads and writes blocked)",
                "sqlite": f"SQLite copies {rec.table} to change it",
            }.get(cap.dialect, f"MySQL/MariaDB rebuild {rec.table} to change it")
            # PostgreSQL blocks reads and writes for the scan and a safe form exists (a NOT VALID check, validated):
            # an error; MySQL/MariaDB rebuild in place with writes going on: the harm is whether rows are NULL
            value = fx.default_sql(op.modify_server_default) or fx.default_sql(op.existing_server_default)
            filled = f" Rows that are NULL get the column's server default {value} first." if value and cap.dialect == "postgresql" else ""
            gone = _no_null_left(cap, rec, op.column_name)
            if gone:  # no NULL row is left to fail it; the scan (and its lock) is what remains
                how, filled = f"line {gone[0]} {gone[1]}, but {how}", ""
            yield self.finding(
                cap, f"Sets {col} NOT NULL: {how}" + ("" if gone else ", and it fails if any row is NULL") + (f".{filled}" if cap.dialect == "postgresql" else
                f" (whether any is, and how large {rec.table} is, needs the data: give database_url)."),
                rec=rec, fix=self._fix(cap, rec, value), severity="error" if cap.dialect == "postgresql" else "warning",
                edit=self._edit(cap, rec, value),
            )

    @staticmethod
    def _backfill(cap, op) -> str:
        return fx.backfill(op.table_name, op.schema, op.column_name, op.existing_type, cap.dialect)

    @classmethod
    @fx.tailored
    def _fix_new(cls, cap, rec) -> str:
        """The column was just added: give its rows a value before SET NOT NULL."""
        return fx.render(
            "# give the new column a value first (or a constant server_default= in its add_column)",
            cls._backfill(cap, rec.op),
            rec.op,
            batch=cap.dialect == "sqlite",
        )

    @classmethod
    @fx.tailored
    def _fix(cls, cap, rec, value: str | None = None) -> str:
        op = rec.op
        if cap.dialect != "postgresql":
            return fx.render("# backfill the NULLs first (in batches on a large table), then", cls._backfill(cap, op), op, batch=cap.dialect == "sqlite")
        return cls._in_place(cap, rec, value)

    @staticmethod
    def _only_nullable(op) -> bool:
        return (op.modify_type is None and op.modify_server_default is False and op.modify_name is None
                and op.modify_comment is False)

    @classmethod
    def _in_place(cls, cap, rec, value: str | None) -> str:
        """The statement's replacement: the NULL rows filled with the column's server default (only a value the
        revision states: never an invented one), a NOT VALID check, and, committed apart from the ADD so that
        its scan blocks no writes, VALIDATE, SET NOT NULL (PostgreSQL 12+: no scan) and the check dropped."""
        op = rec.op
        name = fx.conv_name("ck", op.table_name, op.column_name, "not_null")
        check = ops.CreateCheckConstraintOp(
            conv(name), op.table_name, f"{fx.ident(op.column_name, cap.dialect)} IS NOT NULL", schema=op.schema,
            postgresql_not_valid=True,
        )
        fill = (fx.backfill(op.table_name, op.schema, op.column_name, op.existing_type, cap.dialect, value=value)
                + "  # the column's server default; in batches on a large table") if value else \
            "# rows that are NULL need a value the project chooses (UPDATE ... WHERE ... IS NULL), or VALIDATE fails"
        return fx.render(
            fill,
            check,
            "# VALIDATE outside the ADD's transaction: it scans under SHARE UPDATE EXCLUSIVE (writes go on)",
            fx.autocommit(
                fx.execute(f"ALTER TABLE {fx.table_sql(op.table_name, op.schema, cap.dialect)} VALIDATE CONSTRAINT {fx.ident(name, cap.dialect)}"),
                op,
                ops.DropConstraintOp(conv(name), op.table_name, type_="check", schema=op.schema),
            ),
        )

    @classmethod
    def _edit(cls, cap, rec, value: str | None) -> SourceEdit | None:
        """The in-place replacement as an edit of the file (PostgreSQL, an alter_column that only sets NOT NULL)."""
        if cap.dialect != "postgresql" or rec.from_sql or rec.batch_table or rec.in_autocommit_block or not cls._only_nullable(rec.op):
            return None
        code = fx.tailored(cls._in_place)(cap, rec, value)
        if code is None:
            return None
        return SourceEdit(mode="replace-statement", function=rec.phase, line=rec.line, code=code,
                          settles=["preflight-not-null"] if value else [])

    @staticmethod
    def _proven_not_null(cap, rec) -> bool:
        """An earlier CHECK (col IS NOT NULL) on the table, validated in an autocommit block: SET NOT NULL skips its scan."""
        op = rec.op
        names = set()
        for r in cap.ops(rec.phase)[: rec.index]:
            if isinstance(r.op, ops.CreateCheckConstraintOp) and r.op.table_name == op.table_name and r.op.constraint_name:
                cond = re.sub(r"[\s\"()]+", " ", str(r.op.condition)).strip().lower()
                if cond == f"{op.column_name.lower()} is not null":
                    names.add(str(r.op.constraint_name).lower())
        for r, stmt in cap.statements(rec.phase):
            if r.index < rec.index and r.in_autocommit_block and stmt.kind.upper() == VALIDATE:
                m = _VALIDATED.search(stmt.text)
                if m and m.group(1).strip('"').lower() in names:
                    return True
        return False

    @staticmethod
    def _backfilled(cap, rec, column: str) -> bool:
        """The column got values before ``rec``: a server default when added, or an UPDATE setting it."""
        for r in cap.ops(rec.phase)[: rec.index]:
            if isinstance(r.op, ops.AddColumnOp) and r.op.column.name == column and r.op.table_name == rec.table:
                if r.op.column.server_default is not None:
                    return True
            if isinstance(r.op, ops.AlterColumnOp) and r.op.column_name == column and r.op.modify_server_default not in (False, None):
                return True
        for r, stmt in cap.statements(rec.phase):
            if r.index < rec.index and stmt.kind == "UPDATE" and rec.table in stmt.tables:
                cols = updated_columns(stmt)
                if cols is None or column in cols:
                    return True
        return False


def _no_null_left(cap, rec, column: str) -> tuple[int, str] | None:
    """(line, what it did) of an earlier statement of ``rec``'s phase after which ``column`` holds no NULL: a DELETE
    of ``rec``'s table whose WHERE removes every row where it is NULL (``WHERE col IS NULL``, or such a test among
    OR-ed conditions), or an UPDATE that sets it to a literal in every row (no WHERE) or in every NULL row."""
    from sqlglot import exp

    from db_migrate.capture.sql import sqlglot_tree

    def is_null(t: Any) -> bool:
        return isinstance(t, exp.Is) and isinstance(t.this, exp.Column) and t.this.name == column and isinstance(t.expression, exp.Null)

    filled = None
    for r, stmt in cap.statements(rec.phase):
        if r.index >= rec.index or stmt.kind not in ("DELETE", "UPDATE"):
            continue
        if stmt.kind == "DELETE" and rec.table not in stmt.tables or stmt.kind == "UPDATE" and stmt.tables[:1] != [rec.table]:
            continue
        tree = sqlglot_tree(stmt.text)  # unreadable (None): proves nothing
        where = tree.args.get("where") if tree is not None else None
        cond = where.this if where is not None else None
        if stmt.kind == "DELETE":
            terms = cond.flatten() if isinstance(cond, exp.Or) else [cond] if cond is not None else []
            if any(is_null(t) for t in terms):
                return r.line, "deleted the rows where it is NULL"  # said first: nothing NULL can remain
        elif filled is None and isinstance(tree, exp.Update) and (cond is None or is_null(cond)) and any(
                isinstance(e, exp.EQ) and isinstance(e.this, exp.Column) and e.this.name == column
                and isinstance(e.expression, (exp.Literal, exp.Boolean)) for e in tree.args.get("expressions") or []):
            filled = (r.line, "gave every row a value")
    return filled


class AlterColumnType(Rule):
    id = "alter-column-type"
    title = "Column type change that rewrites the table or may lose data"
    severity = "error"
    phases = ("upgrade", "downgrade")
    why = (
        "Except for widening varchar(n) to varchar(m > n) or text, or raising a numeric precision, PostgreSQL "
        "rewrites the whole table and its indexes under an ACCESS EXCLUSIVE lock (no reads, no writes) to change "
        "a column type; MySQL/MariaDB copy the table (ALGORITHM=COPY, writes blocked). Narrowing fails on values "
        "that do not fit (or truncates them), and the application may still write the old type."
    )
    fix = (
        "# expand/contract: a new column, written by the application alongside the old one\n"
        "op.add_column('users', sa.Column('score_big', sa.BigInteger(), nullable=True))\n"
        "# backfill in batches, switch reads, then drop the old column in a later revision\n"
        "# (widening varchar(n) -> varchar(m > n) / text is fine as an alter_column on PostgreSQL)"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.alter_column('users', 'name', existing_type=sa.String(200), type_=sa.String(50))\n\n"
            "def downgrade():\n    op.alter_column('users', 'name', existing_type=sa.String(50), type_=sa.String(200))\n",
            good="def upgrade():\n    op.alter_column('users', 'name', existing_type=sa.String(50), type_=sa.String(200))\n\n"
            "def downgrade():\n    op.alter_column('users', 'name', existing_type=sa.String(200), type_=sa.String(50))\n",
        ),
        Example(
            bad="def upgrade():\n    op.alter_column('users', 'score', existing_type=sa.Integer(), type_=sa.BigInteger())\n\n"
            "def downgrade():\n    op.alter_column('users', 'score', existing_type=sa.BigInteger(), type_=sa.Integer())\n",
            good="def upgrade():\n    op.alter_column('users', 'bio', existing_type=sa.String(200), type_=sa.Text())\n\n"
            "def downgrade():\n    op.alter_column('users', 'bio', existing_type=sa.Text(), type_=sa.String(200))\n",
        ),
        Example(
            # neither existing_type= nor a downgrade restoring the column says what bio was
            bad="def upgrade():\n    op.alter_column('users', 'bio', type_=sa.Text())\n\n"
            "def downgrade():\n    pass\n",
        ),
        Example(  # one CHANGE that renames and retypes copies the table; the rename alone is instant
            bad="def upgrade():\n    op.execute('ALTER TABLE orders CHANGE amount total BIGINT NOT NULL')\n\n"
            "def downgrade():\n    op.execute('ALTER TABLE orders CHANGE total amount INT NOT NULL')\n",
            good="def upgrade():\n    op.execute('ALTER TABLE orders CHANGE amount total INT NOT NULL')\n\n"
            "def downgrade():\n    op.execute('ALTER TABLE orders CHANGE total amount INT NOT NULL')\n",
            dialect="mysql",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        raw_unknown: dict[tuple[int | None, str | None], list] = {}  # one raw ALTER changing several columns: one finding
        for rec, op in _alters(self, cap):
            if op.modify_type is None or is_new_column(cap, rec, column=op.column_name):
                continue
            before = type_before(cap, rec)  # existing_type=, or what the downgrade restores
            change = classify_type_change(before, op.modify_type, cap.dialect)
            col, new = f"{rec.table}.{op.column_name}", spell(op.modify_type, cap.dialect)
            if change == "unknown" and rec.from_sql and before is None and _using_computes(op):
                # USING that computes a new value (``col AT TIME ZONE 'UTC'``) rewrites every row whatever the old type
                yield self.finding(
                    cap, f"Changes {col} to {new} USING {op.kw['postgresql_using']}: a value computed anew for every "
                    f"row, so PostgreSQL rewrites {rec.table} and its indexes under an ACCESS EXCLUSIVE lock (reads "
                    "and writes blocked) whatever the old type.", rec=rec, fix=_expand_contract(cap, rec))
                continue
            if change == "unknown" and rec.from_sql and before is None:
                raw_unknown.setdefault((rec.line, rec.table), []).append((rec, op, new))
                continue
            if change == "unknown":
                if cap.dialect == "sqlite" and rec.batch_table:
                    continue  # batch mode reflects the table and copies it anyway: existing_type adds nothing
                foreign = next((t for t in (op.modify_type, before) if t is not None and not is_known_type(t)), None)
                if foreign is None:
                    why = "without existing_type=: whether this rewrites the table or loses data cannot be told. " \
                          "Give existing_type= (also needed by some dialects to render the ALTER)."
                else:
                    was = f"from {spell(before, cap.dialect)}" if before is not None else "(the type before not stated)"
                    why = f"{was}: {type_sql(foreign, cap.dialect)} comes from a module not installed here, so whether " \
                          "this rewrites the table or loses data cannot be told offline."
                yield self.finding(cap, f"Changes {col} to {new} {why}", rec=rec, severity="warning", fix=_expand_contract(cap, rec))
                continue
            swapped = cap.dialect == "postgresql" and _swapped_enum(cap, rec)
            if swapped or (cap.dialect == "postgresql" and change == "enum"
                           and type_sql(before, cap.dialect) != type_sql(op.modify_type, cap.dialect)):
                change = "rewrite"  # another enum type (or one re-created under the name): every row is cast, a rewrite
            if change in ("same", "widen", "enum") or (change == "rewrite" and cap.dialect == "sqlite"):
                continue
            old = spell(before, cap.dialect)
            if swapped:
                old, new = f"the old {new} (renamed away)", f"the {new} this revision creates"
            if op.modify_name and cap.dialect in ("mysql", "mariadb"):  # one CHANGE: the rename alone is instant
                col = f"{col} (renamed to {op.modify_name} in the same CHANGE)"
            lock = {
                "postgresql": f"rewrites {rec.table} and its indexes under an ACCESS EXCLUSIVE lock (reads and writes blocked)",
                "sqlite": "needs batch mode, which copies the table",
            }.get(cap.dialect, f"copies {rec.table} (ALGORITHM=COPY; writes blocked for the duration: INSTANT, INPLACE "
                               f"and LOCK=NONE are refused for a type change)")
            risk = type_change_risk(before, op.modify_type, change)
            yield self.finding(cap, f"Changes {col} from {old} to {new}: this {lock}{risk}.", rec=rec, fix=_expand_contract(cap, rec))
        for (_, table), changes in raw_unknown.items():
            cols = ", ".join(f"{op.column_name} to {op.modify_name + ' ' if op.modify_name else ''}{new}" for _, op, new in changes)
            # raw SQL states only the new type: whether the column already has it (a metadata-only change) is a
            # fact of the schema at this revision, which the finding names
            rewrite = {"postgresql": "PostgreSQL rewrites it under an ACCESS EXCLUSIVE lock",
                       "sqlite": "SQLite copies it"}.get(cap.dialect, "MySQL/MariaDB copy it (ALGORITHM=COPY, writes blocked)")
            yield self.finding(
                cap, f"Raw SQL changes {table}: {cols}. Unless each column already has that type, {rewrite}; the old "
                f"types are not stated, so which applies is not known here"
                + (" (a CHANGE that renames and restates the type is instant)." if any(op.modify_name for _, op, _ in changes)
                   and cap.dialect in ("mysql", "mariadb") else "."),
                rec=changes[0][0], severity="warning", fix=None,
            )


def _swapped_enum(cap, rec) -> bool:
    """The phase renamed or dropped the column's enum type and created one under its name before this change (the
    swap that edits an enum's labels on PostgreSQL): the column moves to a new type, whatever the names say."""
    name = type_sql(rec.op.modify_type, cap.dialect) if rec.op.modify_type is not None else None
    if not name or not re.fullmatch(r"[\w.\"]+", name):
        return False
    name = name.replace('"', "").rpartition(".")[2]
    before = [s for r, s in cap.statements(rec.phase) if r.index < rec.index]
    return any(s.kind.upper().startswith(("CREATE TYPE", "CREATEENUM")) and name in s.text for s in before) and \
        any(s.kind.upper().startswith(("ALTER TYPE", "RENAME", "DROP TYPE")) and name in s.text for s in before)


def _using_computes(op: Any) -> bool:
    """A ``USING`` that is more than the column itself or casts of it: PostgreSQL skips the rewrite only when USING
    leaves the contents as they are and the old type is binary coercible to the new one."""
    using = op.kw.get("postgresql_using")
    if not using:
        return False
    try:
        import pglast

        node = pglast.parse_sql(f"SELECT {using}")[0].stmt.targetList[0].val
    except Exception:
        return False  # not read: not claimed
    while isinstance(node, pglast.ast.TypeCast):
        node = node.arg
    if isinstance(node, pglast.ast.ColumnRef):
        return node.fields[-1].sval != op.column_name
    return True


class DowngradeTightensColumn(Rule):
    id = "downgrade-tightens-column"
    title = "A downgrade that restores NOT NULL or a narrower type over rows written since the upgrade"
    severity = "warning"
    phases = ("downgrade",)
    why = (
        "The upgrade relaxed a column (allowed NULL, widened or changed its type); the downgrade puts the old rule back. "
        "Rows written while the upgrade was live may break it (a NULL, a longer text, a value the old type cannot "
        "hold): then the rollback fails exactly when it is needed, or, on MySQL without strict mode, cuts the values. "
        "Whether any such row exists is the data's fact, which the tool lacks."
    )
    fix = (
        "# before restoring the old rule in downgrade(), make the rows fit it, or stop with a clear message:\n"
        "op.execute(\"UPDATE users SET nickname = '' WHERE nickname IS NULL\")  # the value the old rule implied\n"
        "op.alter_column('users', 'nickname', existing_type=sa.String(40), nullable=False)"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.alter_column('users', 'nickname', existing_type=sa.String(40), nullable=True)\n\n"
            "def downgrade():\n    op.alter_column('users', 'nickname', existing_type=sa.String(40), nullable=False)\n",
            good="def upgrade():\n    op.alter_column('users', 'nickname', existing_type=sa.String(40), nullable=True)\n\n"
            "def downgrade():\n    op.execute(\"UPDATE users SET nickname = '' WHERE nickname IS NULL\")\n"
            "    op.alter_column('users', 'nickname', existing_type=sa.String(40), nullable=False)\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            op = rec.op
            if not isinstance(op, ops.AlterColumnOp) or is_transient_table(cap, rec) or not reverts_upgrade_alter(cap, rec):
                continue
            col = f"{rec.table}.{op.column_name}"
            # the upgrade stating NOT NULL too (a rename restating it) relaxed nothing the downgrade would tighten
            kept = any(isinstance(u.op, ops.AlterColumnOp) and u.op.modify_nullable is False and u.table == rec.table
                       and op.column_name in (u.op.column_name, u.op.modify_name) for u in cap.upgrade)
            if op.modify_nullable is False and not kept and not _no_null_left(cap, rec, op.column_name):
                yield self.finding(cap, f"The downgrade sets {col} NOT NULL again: a NULL written since the upgrade allowed "
                                   "it makes the rollback fail.", rec=rec)
            change = classify_type_change(type_before(cap, rec) or op.existing_type, op.modify_type, cap.dialect) \
                if op.modify_type is not None else "same"
            fitted = next((r.line for r, st in cap.statements(rec.phase) if r.index < rec.index and st.kind == "UPDATE"
                           and st.tables[:1] == [rec.table] and op.column_name in (updated_columns(st) or ())), None)
            if change in ("narrow", "change") and fitted:
                # the author made the values fit first (cut, or set to NULL): the rollback runs, at that cost
                yield self.finding(
                    cap, f"The downgrade changes {col} back to {spell(op.modify_type, cap.dialect)} after rewriting its values "
                    f"on line {fitted} so they fit: the rollback runs, and what that line cuts or clears is lost.",
                    rec=rec, severity="info")
            elif change in ("narrow", "change"):
                yield self.finding(
                    cap, f"The downgrade changes {col} back to {spell(op.modify_type, cap.dialect)}: a value written since the "
                    "upgrade that it cannot hold makes the rollback fail (MySQL without strict mode cuts it instead).", rec=rec)


class ModifyDropsAutoIncrement(Rule):
    id = "modify-drops-auto-increment"
    title = "A MySQL/MariaDB MODIFY or CHANGE that leaves AUTO_INCREMENT out (MySQL/MariaDB)"
    severity = "error"
    dialects = ("mysql", "mariadb")
    phases = ("upgrade", "downgrade")
    why = (
        "MySQL's MODIFY/CHANGE restates the whole column. alter_column renders AUTO_INCREMENT only when told the column "
        "has it (existing_autoincrement=True), so changing the type, nullability or name of a table's counting key "
        "silently drops AUTO_INCREMENT: the migration succeeds, and every INSERT without an id fails afterwards, on "
        "every server."
    )
    fix = "op.alter_column('bundle', 'id', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False,\n" \
          "                existing_autoincrement=True)"
    examples = (
        Example(
            bad="def upgrade():\n    op.create_table('bundle', sa.Column('id', sa.Integer(), primary_key=True))\n"
            "    op.alter_column('bundle', 'id', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)\n\n"
            "def downgrade():\n    op.drop_table('bundle')\n",
            good="def upgrade():\n    op.create_table('bundle', sa.Column('id', sa.Integer(), primary_key=True))\n"
            "    op.alter_column('bundle', 'id', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False,\n"
            "                    existing_autoincrement=True)\n\ndef downgrade():\n    op.drop_table('bundle')\n",
            dialect="mysql",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        counted = set(cap.context.auto_increment_before.get(cap.revision or "", ()))
        for rec in self.ops(cap):
            op = rec.op
            if isinstance(op, ops.CreateTableOp):
                keys = [c for c in op.columns if isinstance(c, sa.Column) and c.primary_key]
                counted |= {(op.table_name, c.name) for c in keys if c.autoincrement is True or (
                    len(keys) == 1 and c.autoincrement == "auto" and isinstance(c.type, sa.Integer))}
                continue
            said = op.kw.get("autoincrement", op.kw.get("existing_autoincrement")) if isinstance(op, ops.AlterColumnOp) else None
            sql = _restatement(rec, counted)
            if sql is None or said is False or "AUTO_INCREMENT" in sql:
                continue
            yield self.finding(
                cap, f"Restates {rec.table}.{op.column_name}, the table's AUTO_INCREMENT key, without "
                "existing_autoincrement=True: the MODIFY leaves AUTO_INCREMENT out, and inserts without an id fail "
                "afterwards.", rec=rec, fix=fx.render(fx.with_(op, {"existing_autoincrement": True})),
            )


def _restatement(rec, columns: set) -> str | None:
    """The SQL (upper-cased) of an alter_column of one of ``columns`` that MySQL runs as MODIFY/CHANGE, restating
    the whole column; None for anything else."""
    op = rec.op
    if not isinstance(op, ops.AlterColumnOp) or (op.table_name, op.column_name) not in columns:
        return None
    sql = " ".join(rec.sql).upper()
    return sql if any(w in sql for w in (" MODIFY ", " CHANGE ")) else None


class ModifyDropsNotNull(Rule):
    id = "modify-drops-not-null"
    title = "A MySQL/MariaDB MODIFY or CHANGE that leaves NOT NULL out (MySQL/MariaDB)"
    severity = "warning"
    dialects = ("mysql", "mariadb")
    phases = ("upgrade", "downgrade")
    why = (
        "MySQL's MODIFY/CHANGE restates the whole column. alter_column renders NOT NULL only when told the column has "
        "it (existing_nullable=False), so changing the type or name of a NOT NULL column silently makes it nullable "
        "(and drops its DEFAULT unless existing_server_default is given): the migration succeeds, and the schema no "
        "longer says what the model does."
    )
    fix = "op.alter_column('users', 'quota', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)"
    examples = (
        Example(
            bad="def upgrade():\n    op.create_table('users', sa.Column('quota', sa.Integer(), nullable=False))\n"
            "    op.alter_column('users', 'quota', existing_type=sa.Integer(), type_=sa.BigInteger())\n\n"
            "def downgrade():\n    op.drop_table('users')\n",
            good="def upgrade():\n    op.create_table('users', sa.Column('quota', sa.Integer(), nullable=False))\n"
            "    op.alter_column('users', 'quota', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)\n\n"
            "def downgrade():\n    op.drop_table('users')\n",
            dialect="mysql",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        # NOT NULL as the history leaves it before this revision, then as this revision's own operations make it
        not_null = set(cap.context.not_null_before.get(cap.revision or "", ()))
        for rec in self.ops(cap):
            op = rec.op
            if isinstance(op, ops.CreateTableOp):
                not_null |= {(op.table_name, c.name) for c in op.columns if isinstance(c, sa.Column) and c.nullable is False}
                continue
            if isinstance(op, ops.AddColumnOp) and op.column.nullable is False:
                not_null.add((op.table_name, op.column.name))
                continue
            sql = _restatement(rec, not_null)
            if sql is None or op.modify_nullable is not None or op.kw.get("existing_nullable") is not None or "NOT NULL" in sql:
                continue
            yield self.finding(
                cap, f"Restates {rec.table}.{op.column_name}, which is NOT NULL, without existing_nullable=False: the "
                "MODIFY makes it nullable (and drops its DEFAULT unless existing_server_default is given).",
                rec=rec, fix=fx.render(fx.with_(op, {"existing_nullable": False})),
            )


_MEANT = {"type": "type_", "default": "server_default", "name": "new_column_name", "null": "nullable", "new_name": "new_column_name"}
_DIALECTS = ("postgresql_", "mysql_", "mariadb_", "sqlite_", "mssql_", "oracle_")


class AlterColumnDoesNothing(Rule):
    id = "alter-column-does-nothing"
    title = "An alter_column with no change alembic knows (a misspelt argument)"
    severity = "error"
    why = (
        "alter_column takes unknown keyword arguments silently (they are kept for dialects): `type=` instead of "
        "`type_=`, `default=` instead of `server_default=`. With no change it knows, alembic emits no SQL, so the "
        "revision runs, changes nothing, and the schema drifts from the model on every server."
    )
    fix = "op.alter_column('token', 'ip', existing_type=sa.String(255), type_=sa.String(4096))"
    examples = (
        Example(
            bad="def upgrade():\n    op.alter_column('token', 'ip', existing_type=sa.String(255), type=sa.String(4096))\n\n"
            "def downgrade():\n    pass\n",
            good="def upgrade():\n    op.alter_column('users', 'bio', existing_type=sa.String(200), nullable=True)\n\n"
            "def downgrade():\n    op.alter_column('users', 'bio', existing_type=sa.String(200), nullable=False)\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            op = rec.op
            if not alters_nothing(op):
                continue
            stray = [k for k in op.kw if not k.startswith(_DIALECTS)]
            if not stray:
                continue
            said = ", ".join(f"{k}= (meant {_MEANT[k]}=?)" if k in _MEANT else f"{k}=" for k in stray)
            yield self.finding(
                cap, f"alter_column on {rec.table}.{op.column_name} changes nothing alembic knows: {said} is not one of "
                "its arguments, so no SQL is emitted and the column stays as it is.", rec=rec,
            )


class AlterColumnTypeNeedsUsing(Rule):
    id = "alter-column-type-needs-using"
    title = "A type change PostgreSQL cannot cast without USING"
    severity = "error"
    dialects = ("postgresql",)
    phases = ("upgrade", "downgrade")
    why = (
        "ALTER COLUMN ... TYPE converts the values with an assignment cast. PostgreSQL has none from text types to "
        "numbers, booleans, dates, UUIDs or JSON, nor between integer and boolean: the ALTER fails with 'cannot be "
        "cast automatically', on every server and even on an empty table. Often this is the downgrade restoring "
        "the type the upgrade replaced, so it is found only on the day of a rollback."
    )
    fix = "op.alter_column('users', 'age', existing_type=sa.String(10), type_=sa.Integer(), postgresql_using='age::integer')"
    examples = (
        Example(
            bad="def upgrade():\n    op.alter_column('users', 'age', existing_type=sa.Integer(), type_=sa.String(10))\n\n"
            "def downgrade():\n    op.alter_column('users', 'age', existing_type=sa.String(10), type_=sa.Integer())\n",
            good="def upgrade():\n    op.alter_column('users', 'age', existing_type=sa.Integer(), type_=sa.String(10))\n\n"
            "def downgrade():\n    op.alter_column('users', 'age', existing_type=sa.String(10), type_=sa.Integer(), "
            "postgresql_using='age::integer')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            op = rec.op
            if not isinstance(op, ops.AlterColumnOp) or op.modify_type is None or op.kw.get("postgresql_using"):
                continue
            if is_new_column(cap, rec, column=op.column_name) and rec.phase == "upgrade":
                continue
            old = type_before(cap, rec)
            if old is None or not _no_assignment_cast(old, op.modify_type):
                continue
            new_sql = spell(op.modify_type, cap.dialect)
            using = f"{op.column_name}::{new_sql.lower()}"
            yield self.finding(
                cap, f"Changes {rec.table}.{op.column_name} from {spell(old, cap.dialect)} to {new_sql}: PostgreSQL has no "
                f"automatic cast for that, so the ALTER fails on every server, even on an empty table. Give "
                f"postgresql_using='{using}' (or the conversion the values need).",
                rec=rec, fix=_with_using(op, using),
            )


@fx.tailored
def _with_using(op, using: str) -> str:
    """The alter_column as alembic renders it, with ``postgresql_using=`` added (op_code leaves dialect keywords out)."""
    code = fx.op_code(op).rstrip()
    return code[:-1].rstrip().rstrip(",") + f",\n           postgresql_using={using!r})"


def _no_assignment_cast(old, new) -> bool:
    """PostgreSQL has no assignment cast from ``old`` to ``new`` (checked on PostgreSQL 15 for each family)."""
    old, new = sa.types.to_instance(old), sa.types.to_instance(new)
    text = isinstance(old, sa.String) and not isinstance(old, sa.Enum)
    if text and isinstance(new, (sa.Integer, sa.Numeric, sa.Boolean, sa.Date, sa.DateTime, sa.Time, sa.Interval,
                                 sa.Uuid, sa.JSON, sa.Enum)):
        return True
    return (isinstance(old, sa.Integer) and isinstance(new, sa.Boolean)) or (isinstance(old, sa.Boolean) and isinstance(new, sa.Integer))


RULES = (SetNotNull, AlterColumnType, AlterColumnDoesNothing, AlterColumnTypeNeedsUsing, DowngradeTightensColumn,
         ModifyDropsAutoIncrement, ModifyDropsNotNull)
