"""Constraints added to existing tables: validating scans, unique builds, primary key changes."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

from alembic.operations import ops

from db_migrate.capture.sql import sqlglot_tree
from db_migrate.rules import _fixes as fx
from db_migrate.rules.naming import created_name
from db_migrate.rules._helpers import (
    adds_primary_key,
    is_new_column,
    is_transient_table,
    is_new_table,
    locked_earlier,
    old_key_column,
    recreated_primary_keys,
    tables_created_before,
)
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding, SourceEdit


def _not_valid(rec) -> bool:
    return bool(rec.op.kw.get("postgresql_not_valid")) or "NOT VALID" in " ".join(rec.sql).upper()


@fx.tailored
def _not_valid_fix(cap, rec, stmt_text: str | None = None, table: str | None = None) -> str:
    """Add the constraint NOT VALID (op keyword, or appended to the raw ALTER TABLE), VALIDATE it next revision."""
    if stmt_text is not None:
        m = re.search(r"\bADD\s+CONSTRAINT\s+([\w\"]+)", stmt_text, re.IGNORECASE)
        add = fx.execute(stmt_text.strip().rstrip(";") + " NOT VALID")
        if not m or not table:
            return add
        return fx.not_valid_then_validate(add, m.group(1), table, None, cap.dialect)
    op = rec.op
    table = rec.table
    name = op.constraint_name
    if not name:
        # the name it would have got: the convention's or the database's, so the downgrade's drop still finds it
        if isinstance(op, ops.CreateForeignKeyOp):
            name = created_name(cap, "fk", table, list(op.local_cols), op.referent_table) or \
                fx.conv_name("fk", table, *op.local_cols, op.referent_table)
        else:
            name = fx.conv_name("ck", table, "check")
    add = fx.with_(op, {"postgresql_not_valid": True}, constraint_name=name)
    schema = getattr(op, "schema", None) or getattr(op, "kw", {}).get("source_schema")  # a foreign key keeps it in kw
    return fx.not_valid_then_validate(add, name, table, schema, cap.dialect)


def _raw_adds(rule: Rule, cap, pattern: str) -> Iterator:
    """(rec, table, statement) for raw ``ALTER TABLE ... ADD ... <pattern>`` without NOT VALID on an existing table."""
    for phase in rule.phases:
        for rec, stmt in cap.statements(phase):
            text = stmt.text.upper()
            if stmt.kind == "ALTER TABLE" and re.search(r"\bADD\b.*" + pattern, text, re.DOTALL) and "NOT VALID" not in text:
                table = next(iter(stmt.tables), None)
                if table and table not in tables_created_before(cap, rec):
                    yield rec, table, stmt


class AddForeignKeyValidating(Rule):
    id = "add-foreign-key-validating"
    title = "Foreign key added to an existing table with validation"
    severity = "error"
    phases = ("upgrade", "downgrade")
    dialects = ("postgresql", "mysql", "mariadb")
    why = (
        "ADD FOREIGN KEY checks every existing row while holding SHARE ROW EXCLUSIVE locks on both tables: "
        "inserts, updates and deletes on the table and on the referenced table wait for the whole scan, and "
        "the migration fails on one orphan row. NOT VALID adds it instantly (new rows are checked); "
        "VALIDATE CONSTRAINT later scans without blocking writes. On MySQL/MariaDB, with foreign_key_checks on, "
        "adding one copies the table (ALGORITHM=COPY), blocking writes to it for the whole copy."
    )
    fix = (
        "op.create_foreign_key('fk_orders_user_id', 'orders', 'users', ['user_id'], ['id'], postgresql_not_valid=True)\n"
        "# next revision:\n"
        "op.execute('ALTER TABLE orders VALIDATE CONSTRAINT fk_orders_user_id')"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.create_foreign_key('fk_orders_user_id', 'orders', 'users', ['user_id'], ['id'])\n\n"
            "def downgrade():\n    op.drop_constraint('fk_orders_user_id', 'orders', type_='foreignkey')\n",
            good="def upgrade():\n    op.create_foreign_key('fk_orders_user_id', 'orders', 'users', ['user_id'], ['id'], postgresql_not_valid=True)\n\n"
            "def downgrade():\n    op.drop_constraint('fk_orders_user_id', 'orders', type_='foreignkey')\n",
        ),
        Example(
            bad="def upgrade():\n    op.create_foreign_key('fk_orders_user_id', 'orders', 'users', ['user_id'], ['id'])\n\n"
            "def downgrade():\n    op.drop_constraint('fk_orders_user_id', 'orders', type_='foreignkey')\n",
            good="def upgrade():\n    op.execute('SET foreign_key_checks = 0')\n"
            "    op.create_foreign_key('fk_orders_user_id', 'orders', 'users', ['user_id'], ['id'])\n"
            "    op.execute('SET foreign_key_checks = 1')\n\n"
            "def downgrade():\n    op.drop_constraint('fk_orders_user_id', 'orders', type_='foreignkey')\n",
            dialect="mysql",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            if isinstance(rec.op, ops.CreateForeignKeyOp) and not is_transient_table(cap, rec) and not _not_valid(rec):
                if cap.dialect in ("mysql", "mariadb"):
                    if not _checks_off_before(cap, rec):
                        yield self._copied(cap, rec)
                elif cap.dialect == "postgresql":
                    yield self._finding(cap, rec, rec.table, rec.op.referent_table, _not_valid_fix(cap, rec))
        if cap.dialect == "postgresql":
            for rec, table, stmt in _raw_adds(self, cap, r"FOREIGN\s+KEY"):
                yield self._finding(cap, rec, table, None, _not_valid_fix(cap, rec, stmt.text, table))

    def _finding(self, cap, rec, table, referent, fix) -> Finding:
        both = f"{table} and {referent}" if referent else f"{table} and the referenced table"
        # the rows satisfied the key it replaces (same name, dropped just before), or the columns are new (all NULL)
        new_columns = _all_new_columns(cap, rec)
        kept = new_columns or _rows_satisfied_it(cap, rec)
        risk = "" if kept else ", and one orphan row fails the migration"
        if new_columns and referent and is_new_table(cap, rec, referent):
            # no row can fail, and no other session sees the referenced table before this transaction commits: only
            # the scan of the table is left, which blocks no one new once the table is locked (its new column)
            since = locked_earlier(cap, rec, table)
            return self.finding(
                cap, f"Adds a foreign key on {table} over a column added in this {_phase_word(rec)} (NULL in every row) "
                f"to {referent}, created in this transaction: no row fails it and no other session writes {referent} "
                f"yet; the check scans {table}" + (f", locked since line {since}." if since else "."),
                rec=rec, table=table, fix=None, severity="info",
            )
        held = locked_earlier(cap, rec, table) if rec.phase == "upgrade" and new_columns else None
        if held and referent:
            # the table is already locked (its new column), and no row can fail: what is left is the referenced
            # table's writes waiting for one scan, whose length is the table's size, a fact the tool lacks
            return self.finding(
                cap, f"Adds a foreign key on {table} over a column added in this revision (NULL in every row), so no row "
                f"fails it, and {table} is locked since line {held}; writes to {referent} wait for the scan of {table}.",
                rec=rec, table=table, fix=fix, severity="warning",
            )
        both_held = _both_locked(cap, rec, table, referent) if rec.phase == "upgrade" else None
        if both_held:
            # a key dropped earlier in this transaction left both tables under ACCESS EXCLUSIVE: the scan of every row
            # holds it, reads blocked too, where NOT VALID + VALIDATE later would hold it for an instant
            return self.finding(
                cap, f"Adds a validated foreign key on {table}: {both} are locked (ACCESS EXCLUSIVE, reads blocked too) since "
                f"line {both_held} (the key dropped there), and the scan that checks every row holds that lock{risk}. Add it "
                "NOT VALID, then VALIDATE CONSTRAINT in a later revision.",
                rec=rec, table=table, fix=fix,
            )
        if rec.phase == "downgrade":
            # no later revision follows a downgrade; when it runs, the table's size decides whether the scan matters
            return self.finding(
                cap, f"The downgrade adds a validated foreign key on {table}: every row is checked while writes to {both} "
                f"wait{risk}. On a large table add it NOT VALID and VALIDATE it in an autocommit block (no later "
                f"revision follows a downgrade).", rec=rec, table=table, fix=_validated_in_phase(cap, rec), severity="warning",
            )
        return self.finding(
            cap,
            f"Adds a validated foreign key on {table}: every row is checked while writes to {both} wait{risk}. "
            f"Add it NOT VALID, then VALIDATE CONSTRAINT in a later revision.",
            rec=rec,
            table=table,
            fix=fix,
        )

    def _copied(self, cap, rec) -> Finding:
        # InnoDB adds a foreign key in place only with foreign_key_checks off (existing rows then go unchecked);
        # otherwise it copies the table. How long that blocks writes depends on the table's size: a warning.
        return self.finding(
            cap, f"Adds a foreign key on {rec.table} with foreign_key_checks on: MySQL/MariaDB copy the table "
            f"(ALGORITHM=COPY) and block writes to it for the whole copy. On a large table use an online schema "
            f"change tool, or SET foreign_key_checks = 0 first (in place, but existing rows go unchecked).",
            rec=rec, table=rec.table, severity="warning",
        )


def _checks_off_before(cap, rec) -> bool:
    """The phase turned foreign_key_checks off before ``rec`` (and not on again): InnoDB adds the key in place."""
    off = False
    for r, stmt in cap.statements(rec.phase):
        if r.index >= rec.index:
            break
        m = re.search(r"\bforeign_key_checks\s*=\s*(\w+)", stmt.text, re.IGNORECASE)
        if m:
            off = m.group(1).lower() in ("0", "off", "false")
    return off


def _unique_already_held(cap, rec) -> str | None:
    """A UNIQUE constraint dropped from the table earlier in the phase held over a subset of these columns (its
    columns read from the other phase, which re-creates it): rows unique on fewer columns are unique on more."""
    cols = set(fx.column_names(rec.op.columns))
    for r in cap.ops(rec.phase)[: rec.index]:
        if isinstance(r.op, ops.DropConstraintOp) and r.table == rec.table and r.op.constraint_type in ("unique", None) \
                and r.op.constraint_name:
            old = _as_before(cap, rec, ops.CreateUniqueConstraintOp, r.op.constraint_name)
            was = set(fx.column_names(old.columns)) if old is not None else None
            if was and was <= cols:
                return f"UNIQUE ({', '.join(sorted(was))}), dropped on line {r.line}"
        if isinstance(r.op, ops.DropIndexOp) and r.op.index_name:
            # a unique index the history created (or the other phase re-creates) over a subset of these columns
            known = cap.context.indexes.get(str(r.op.index_name))
            again = _as_before_index(cap, rec, r.op.index_name)
            table, was_cols, unique = known if known else (r.table, (), False)
            if again is not None:
                was_cols, unique = tuple(fx.column_names(again.columns)), bool(again.unique)
            if unique and table in (rec.table, r.table) and was_cols and set(was_cols) <= cols:
                return f"the unique index {r.op.index_name} ({', '.join(was_cols)}), dropped on line {r.line}"
    return None


def _as_before_index(cap, rec, name: Any) -> Any:
    """The index named ``name`` that the other phase creates (the downgrade restores what the upgrade replaced)."""
    other = cap.downgrade if rec.phase == "upgrade" else cap.upgrade
    return next((o.op for o in other if isinstance(o.op, ops.CreateIndexOp) and str(o.op.index_name) == str(name)), None)


def _as_before(cap, rec, kind: type, name: Any) -> Any:
    """The constraint of ``kind`` named ``name`` on ``rec``'s table that the other phase creates: what it was before
    ``rec``'s phase (the downgrade restores what the upgrade replaced), or None."""
    other = cap.downgrade if rec.phase == "upgrade" else cap.upgrade
    return next((o.op for o in other if isinstance(o.op, kind) and name and str(o.op.constraint_name) == str(name)
                 and o.table == rec.table), None)


def _only_nulls_yet(cap, rec, cols: list[str]) -> bool:
    """A column of the key was added earlier in the phase, nullable and without a server default, and nothing wrote
    to the table since: every row holds NULL there, and a key with a NULL is never a duplicate (unless the index
    says NULLS NOT DISTINCT), so one such column is enough."""
    if rec.op.kw.get("postgresql_nulls_not_distinct"):
        return False
    added = {r.op.column.name: r for r in cap.ops(rec.phase)
             if isinstance(r.op, ops.AddColumnOp) and r.index < rec.index and r.op.table_name == rec.table}
    new = [c for c in cols if c in added and added[c].op.column.nullable is not False and added[c].op.column.server_default is None]
    if not new:
        return False
    first = min(added[c].index for c in new)
    return not any(r.index > first and rec.table in stmt.tables and stmt.kind in ("UPDATE", "INSERT", "MERGE")
                   for r, stmt in cap.statements(rec.phase) if r.index < rec.index) and not any(
        isinstance(r.op, ops.BulkInsertOp) and first < r.index < rec.index for r in cap.ops(rec.phase))


def _replaced_key(cap, rec):
    """The drop, earlier in the phase, of the foreign key this one replaces on the same columns: dropped under this
    key's name, under the name the database or the convention gave such a key (PostgreSQL ``<table>_<col>_fkey``), or
    under a name the other phase re-creates over the same columns and table (autogenerate's ON DELETE change)."""
    if not isinstance(rec.op, ops.CreateForeignKeyOp):
        return None
    op = rec.op
    cols = [str(c) for c in op.local_cols]
    names = {str(n) for n in (op.constraint_name, created_name(cap, "fk", rec.table, cols, op.referent_table),
                              f"{rec.table}_{'_'.join(cols)}_fkey") if n}
    other = cap.downgrade if rec.phase == "upgrade" else cap.upgrade
    same = {str(o.op.constraint_name) for o in other if isinstance(o.op, ops.CreateForeignKeyOp) and o.op.constraint_name
            and o.table == rec.table and [str(c) for c in o.op.local_cols] == cols and o.op.referent_table == op.referent_table}
    return next((r for r in cap.ops(rec.phase) if r.index < rec.index and isinstance(r.op, ops.DropConstraintOp)
                 and r.table == rec.table and str(r.op.constraint_name) in names | same), None)


def _both_locked(cap, rec, table: str, referent: str | None) -> int | None:
    """The line of the key this one replaces, dropped earlier in the transaction (locking its table and the table it
    references), when ``table`` is still held from then: the re-created key's tables are already locked."""
    drop = _replaced_key(cap, rec)
    return drop.line if drop is not None and referent and locked_earlier(cap, rec, table) else None


def _rows_satisfied_it(cap, rec) -> bool:
    """Every row already satisfied this key: the key it replaces on the same columns was dropped just before, in this
    phase (a new ON DELETE rule, say), and nothing between rewrote the rows; or, in a downgrade, the upgrade created a
    key over the same columns and table, which every row written since satisfies."""
    if not isinstance(rec.op, ops.CreateForeignKeyOp):
        return False
    op = rec.op
    drop = _replaced_key(cap, rec)
    if drop is not None:
        # only if nothing between may have rewritten the keys (a statement, or code recording could not follow)
        written = any(drop.index < r.index < rec.index and stmt.kind in ("UPDATE", "INSERT", "DELETE", "MERGE")
                      for r, stmt in cap.statements(rec.phase))
        unknown = any(p == rec.phase and drop.line and rec.line and drop.line < line < rec.line
                      for p, line in [*cap.went_on, *cap.skipped_statements])
        return not (written or unknown)
    same = (rec.table, tuple(op.local_cols), op.referent_table)
    return rec.phase == "downgrade" and any(
        isinstance(u.op, ops.CreateForeignKeyOp) and (u.table, tuple(u.op.local_cols), u.op.referent_table) == same
        for u in cap.upgrade
    )


def _phase_word(rec) -> str:
    return "revision" if rec.phase == "upgrade" else "downgrade"


def _all_new_columns(cap, rec) -> bool:
    """A column of the key was added earlier in the phase, so it is NULL in every row; under MATCH SIMPLE (the
    default) a row with a NULL in its key is not checked, so no row can be an orphan."""
    cols = [c for c in rec.op.local_cols or [] if isinstance(c, str)]
    simple = str(rec.op.kw.get("match") or "SIMPLE").upper() != "FULL"
    new = [c for c in cols if is_new_column(cap, rec, rec.table, c)]
    return bool(cols) and (len(new) == len(cols) or (simple and bool(new)))


@fx.tailored
def _validated_in_phase(cap, rec) -> str:
    """NOT VALID, then VALIDATE in an autocommit block of the same phase (a downgrade has no next revision)."""
    op = rec.op
    name = op.constraint_name or created_name(cap, "fk", rec.table, list(op.local_cols), op.referent_table) or \
        fx.conv_name("fk", rec.table, *op.local_cols, op.referent_table)
    table = fx.table_sql(rec.table, op.kw.get("source_schema"), cap.dialect)
    return fx.render(
        fx.with_(op, {"postgresql_not_valid": True}, constraint_name=name),
        fx.autocommit(fx.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {fx.ident(name, cap.dialect)}")),
    )


class AddCheckConstraintValidating(Rule):
    id = "add-check-constraint-validating"
    title = "CHECK constraint added to an existing table with validation"
    severity = "error"
    phases = ("upgrade", "downgrade")
    dialects = ("postgresql",)
    why = (
        "ADD CHECK scans the whole table under an ACCESS EXCLUSIVE lock (reads and writes blocked) and fails on "
        "the first violating row. NOT VALID adds it instantly; VALIDATE CONSTRAINT later takes only a SHARE "
        "UPDATE EXCLUSIVE lock (reads and writes go on)."
    )
    fix = (
        "op.create_check_constraint('ck_users_age', 'users', 'age >= 0', postgresql_not_valid=True)\n"
        "# next revision:\n"
        "op.execute('ALTER TABLE users VALIDATE CONSTRAINT ck_users_age')"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.create_check_constraint('ck_users_age', 'users', 'age >= 0')\n\n"
            "def downgrade():\n    op.drop_constraint('ck_users_age', 'users', type_='check')\n",
            good="def upgrade():\n    op.create_check_constraint('ck_users_age', 'users', 'age >= 0', postgresql_not_valid=True)\n\n"
            "def downgrade():\n    op.drop_constraint('ck_users_age', 'users', type_='check')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        found = [(rec, rec.table, None) for rec in self.ops(cap) if isinstance(rec.op, ops.CreateCheckConstraintOp) and not is_transient_table(cap, rec) and not _not_valid(rec)]
        for rec, table, stmt in found + list(_raw_adds(self, cap, r"\bCHECK\b")):
            fix = _not_valid_fix(cap, rec, stmt.text if stmt else None, table)
            why = _rows_meet_check(cap, rec) if stmt is None else None
            if why:
                held = locked_earlier(cap, rec, table)
                # no row can fail it; the scan only lengthens a lock the transaction may already hold
                yield self.finding(
                    cap, f"Adds a validated CHECK constraint on {table}: {why}, so no row fails it, but the whole table "
                    f"is scanned under an ACCESS EXCLUSIVE lock" + (f" (held since line {held})." if held else " (reads and writes blocked)."),
                    rec=rec, table=table, fix=fix, severity="warning" if held else None,
                )
                continue
            yield self.finding(
                cap,
                f"Adds a validated CHECK constraint on {table}: the whole table is scanned under an ACCESS EXCLUSIVE "
                f"lock (reads and writes blocked) and one violating row fails the migration.",
                rec=rec,
                table=table,
                fix=fix,
            )


def _check_sql(op) -> str | None:
    """The condition of a create_check_constraint as SQL text."""
    cond = op.condition
    if isinstance(cond, str):
        return cond
    try:
        from sqlalchemy.dialects import postgresql

        return str(cond.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    except Exception:  # a construct that does not compile alone: unknown
        return None


def _allowed(condition: str | None) -> tuple[str, set] | None:
    """(column, values) of ``col IN ('a', 'b')`` (sqlglot), else None."""
    from sqlglot import exp

    tree = sqlglot_tree(condition or "", read="postgres")
    if isinstance(tree, exp.Paren):
        tree = tree.this
    if not (isinstance(tree, exp.In) and isinstance(tree.this, exp.Column)) or not tree.expressions:
        return None
    if not all(isinstance(e, exp.Literal) for e in tree.expressions):
        return None
    return tree.this.name.lower(), {e.this for e in tree.expressions}


def _rows_meet_check(cap, rec) -> str | None:
    """Why every row already meets the CHECK ``rec`` adds, or None: the other phase re-creates a constraint of that
    name (the state before) that allowed no more than this one; or an UPDATE of the whole table just before set the
    column only to values it allows (a literal, a CASE of literals)."""
    from sqlglot import exp

    op = rec.op
    new = _check_sql(op)
    before = _as_before(cap, rec, ops.CreateCheckConstraintOp, op.constraint_name)
    if before is not None and new is not None:
        old = _check_sql(before)
        if old is not None and " ".join(old.split()) == " ".join(new.split()):
            return f"it re-creates {op.constraint_name} as it was"
        was, now = _allowed(old), _allowed(new)
        if was and now and was[0] == now[0] and was[1] <= now[1]:
            return f"it widens {op.constraint_name}, which every row met"
    allowed = _allowed(new)
    if not allowed:
        return None
    column, values = allowed
    for r, stmt in cap.statements(rec.phase):
        if r.index >= rec.index or stmt.kind != "UPDATE" or stmt.has_where is not False or rec.table not in stmt.tables:
            continue
        tree = sqlglot_tree(stmt.text, read="postgres")  # unreadable (None): proves nothing
        for eq in tree.expressions if isinstance(tree, exp.Update) else []:
            if isinstance(eq, exp.EQ) and isinstance(eq.this, exp.Column) and eq.this.name.lower() == column:
                value = eq.expression
                results = [value] if isinstance(value, exp.Literal) else \
                    [i.args.get("true") for i in value.args.get("ifs", [])] + ([value.args["default"]] if value.args.get("default") else []) \
                    if isinstance(value, exp.Case) else []
                if results and all(isinstance(x, exp.Literal) and x.this in values for x in results):
                    return f"line {r.line} set {column} of every row to a value it allows"
    return None


_DUPLICATE_CHECK = re.compile(r"HAVING\s+count\s*\(|\bduplicate", re.IGNORECASE)
_HAVING_CALL = re.compile(r"having\s*\(\s*sa\.func\.count", re.IGNORECASE)


def _checks_duplicates(source: str) -> bool:
    """The revision looks for duplicate rows itself (a GROUP BY ... HAVING count(*) > 1, a "duplicate" error), in its
    code: a docstring or comment saying "remove duplicate constraint" checks nothing."""
    from db_migrate.capture.source import parsed

    tree = parsed(source)
    if tree is None:
        return _DUPLICATE_CHECK.search(source) is not None
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    code = " ".join(
        n.value if isinstance(n, ast.Constant) else n.id if isinstance(n, ast.Name) else n.attr
        for n in ast.walk(tree)
        if (isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings)
        or isinstance(n, (ast.Name, ast.Attribute))
    )
    return _DUPLICATE_CHECK.search(code) is not None or _HAVING_CALL.search(source) is not None


class AddUniqueConstraint(Rule):
    id = "add-unique-constraint"
    title = "UNIQUE constraint added to an existing table"
    severity = "warning"
    phases = ("upgrade", "downgrade")
    why = (
        "The constraint builds a unique index: on PostgreSQL under an ACCESS EXCLUSIVE lock (reads and writes "
        "blocked for the whole build). On every database the migration fails if existing rows hold duplicates, "
        "which an empty development database never shows."
    )
    fix = (
        "# check for duplicates first; on PostgreSQL build the index without blocking, then attach it\n"
        "with op.get_context().autocommit_block():\n"
        "    op.create_index('uq_users_email', 'users', ['email'], unique=True, postgresql_concurrently=True)\n"
        "op.execute('ALTER TABLE users ADD CONSTRAINT uq_users_email UNIQUE USING INDEX uq_users_email')"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.create_unique_constraint('uq_users_email', 'users', ['email'])\n\n"
            "def downgrade():\n    op.drop_constraint('uq_users_email', 'users', type_='unique')\n",
            good="def upgrade():\n    op.create_table('users', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('email', sa.String(200)))\n"
            "    op.create_unique_constraint('uq_users_email', 'users', ['email'])\n\n"
            "def downgrade():\n    op.drop_table('users')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            if isinstance(rec.op, ops.CreateUniqueConstraintOp) and not is_transient_table(cap, rec):
                cols = ", ".join(map(str, rec.op.columns))
                lock = " under an ACCESS EXCLUSIVE lock (reads and writes blocked)" if cap.dialect == "postgresql" else ""
                # PostgreSQL: a lock blocking reads and writes for the build, with a safe form (a concurrent
                # unique index, attached): an error. Elsewhere the build lets writes go on; whether it fails
                # depends on duplicates only the data can tell.
                pg = cap.dialect == "postgresql"
                narrower = _unique_already_held(cap, rec)
                if narrower:
                    held = locked_earlier(cap, rec, rec.table) if pg else None
                    if pg:  # no duplicate can fail it; on PostgreSQL the build still scans (a lock already held, or not)
                        yield self.finding(
                            cap, f"Adds UNIQUE ({cols}) on {rec.table}: every row already met {narrower}, so no duplicate "
                            "can fail it, but the index build scans the table under ACCESS EXCLUSIVE"
                            + (f" (held since line {held})." if held else " (reads and writes blocked)."),
                            rec=rec, fix=self._fix(cap, rec), severity="warning" if held else "error",
                            edit=None if held else self._edit(cap, rec),
                        )
                    continue
                if _only_nulls_yet(cap, rec, fx.column_names(rec.op.columns)):
                    if pg:  # no duplicate can fail it; the build still holds the lock for its scan
                        yield self.finding(
                            cap, f"Adds UNIQUE ({cols}) on {rec.table}: a column of it was just added and holds only "
                            "NULLs, so no duplicate can fail it, but the index build blocks reads and writes (ACCESS EXCLUSIVE).",
                            rec=rec, fix=self._fix(cap, rec), severity="error", edit=self._edit(cap, rec),
                        )
                    continue
                if _checks_duplicates(cap.source):
                    yield self.finding(
                        cap, f"Adds UNIQUE ({cols}) on {rec.table}; the revision checks for duplicates itself"
                        + (", but the build still blocks reads and writes (ACCESS EXCLUSIVE)." if pg else "."),
                        rec=rec, fix=self._fix(cap, rec) if pg else None, severity="error" if pg else "info",
                    )
                    continue
                yield self.finding(
                    cap,
                    f"Adds UNIQUE ({cols}) on {rec.table}: builds a unique index{lock}, and fails if existing rows "
                    + ("hold duplicates." if pg else f"hold duplicates (whether {rec.table} has any needs the data: give database_url)."),
                    rec=rec,
                    fix=self._fix(cap, rec),
                    severity="error" if pg else "warning",
                    edit=self._edit(cap, rec) if pg else None,
                )

    @staticmethod
    @fx.tailored
    def _fix(cap, rec) -> str:
        op, d = rec.op, cap.dialect
        cols = fx.column_names(op.columns)
        name = op.constraint_name or fx.conv_name("uq", op.table_name, *cols)
        tsql, csql = fx.table_sql(op.table_name, op.schema, d), ", ".join(fx.ident(c, d) for c in cols)
        dupes = f"# first check for duplicates (must return no rows): SELECT {csql}, count(*) FROM {tsql} GROUP BY {csql} HAVING count(*) > 1"
        if d != "postgresql":
            return fx.render(dupes, fx.with_(op, constraint_name=name), batch=d == "sqlite")
        return fx.render(dupes, "# build the unique index without blocking writes, then attach it as the constraint (brief lock)",
                         *AddUniqueConstraint._concurrent(op, name, cols, tsql))

    @staticmethod
    def _concurrent(op, name: str, cols: list[str], tsql: str) -> tuple[str, str]:
        """PostgreSQL's safe form: a unique index built concurrently, then attached as the constraint."""
        index = ops.CreateIndexOp(name, op.table_name, cols, schema=op.schema, unique=True, postgresql_concurrently=True)
        return (fx.autocommit(index),
                fx.execute(f"ALTER TABLE {tsql} ADD CONSTRAINT {fx.ident(name, 'postgresql')} UNIQUE USING INDEX {fx.ident(name, 'postgresql')}"))

    @staticmethod
    def _edit(cap, rec) -> SourceEdit | None:
        """The statement replaced in place by the safe form (the duplicates check is the preflight's)."""
        op = rec.op
        cols = fx.column_names(op.columns)
        try:
            name = str(op.constraint_name or fx.conv_name("uq", op.table_name, *cols))
            code = fx.render(*AddUniqueConstraint._concurrent(op, name, cols, fx.table_sql(op.table_name, op.schema, cap.dialect)))
        except Exception:  # a name or column alembic cannot render: the fix text still explains
            return None
        return SourceEdit(mode="replace-statement", function=rec.phase, line=rec.line, code=code) if rec.line and fx.parses(code) else None


class ChangePrimaryKey(Rule):
    id = "change-primary-key"
    title = "Primary key dropped or replaced on an existing table"
    severity = "error"
    phases = ("upgrade", "downgrade")
    why = (
        "A primary key change rebuilds the key index (PostgreSQL: ACCESS EXCLUSIVE lock; MySQL/MariaDB: a full "
        "table copy), breaks every foreign key that points at the old key, and changes what the application and "
        "ORM use as row identity. It needs a human-reviewed plan."
    )
    fix = (
        "# build the new key without blocking, then swap in one short transaction\n"
        "with op.get_context().autocommit_block():\n"
        "    op.create_index('orders_new_pkey', 'orders', ['id', 'tenant_id'], unique=True, postgresql_concurrently=True)\n"
        "op.execute('ALTER TABLE orders DROP CONSTRAINT orders_pkey, "
        "ADD CONSTRAINT orders_pkey PRIMARY KEY USING INDEX orders_new_pkey')\n"
        "# and escalate: foreign keys referencing the old key must be migrated too"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.drop_constraint('orders_pkey', 'orders', type_='primary')\n"
            "    op.create_primary_key('orders_pkey', 'orders', ['id', 'tenant_id'])\n\n"
            "def downgrade():\n    op.drop_constraint('orders_pkey', 'orders', type_='primary')\n"
            "    op.create_primary_key('orders_pkey', 'orders', ['id'])\n",
            good="def upgrade():\n    op.create_table('orders', sa.Column('id', sa.Integer(), nullable=False))\n"
            "    op.create_primary_key('orders_pkey', 'orders', ['id'])\n\n"
            "def downgrade():\n    op.drop_table('orders')\n",
        ),
        Example(  # good: the key re-created on the columns the downgrade restores it with changes no key
            bad="def upgrade():\n    with op.batch_alter_table('orders') as b:\n"
            "        b.drop_constraint('orders_pkey', type_='primary')\n"
            "        b.create_primary_key('pk_orders', ['id', 'tenant_id'])\n\n"
            "def downgrade():\n    with op.batch_alter_table('orders') as b:\n"
            "        b.drop_constraint('pk_orders', type_='primary')\n"
            "        b.create_primary_key('orders_pkey', ['id'])\n",
            good="def upgrade():\n    with op.batch_alter_table('orders') as b:\n"
            "        b.drop_constraint('orders_pkey', type_='primary')\n"
            "        b.create_primary_key('pk_orders', ['id'])\n\n"
            "def downgrade():\n    with op.batch_alter_table('orders') as b:\n"
            "        b.drop_constraint('pk_orders', type_='primary')\n"
            "        b.create_primary_key('orders_pkey', ['id'])\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        same = {phase: recreated_primary_keys(cap, phase) for phase in self.phases}
        drops = [r for r in self.ops(cap) if isinstance(r.op, ops.DropConstraintOp) and r.op.constraint_type == "primary"]
        creates = [r for r in self.ops(cap) if isinstance(r.op, ops.CreatePrimaryKeyOp)]
        # the upgrade's own key changes: a downgrade that drops the key the upgrade made, or makes again the one it
        # dropped, only undoes them (the upgrade's finding says what the change costs)
        made = {(r.table, str(r.op.constraint_name or "")) for r in cap.upgrade if isinstance(r.op, ops.CreatePrimaryKeyOp)}
        unmade = {r.table for r in cap.upgrade if isinstance(r.op, ops.DropConstraintOp) and r.op.constraint_type == "primary"}
        for rec in self.ops(cap):
            op = rec.op
            if is_transient_table(cap, rec) or rec.table in same[rec.phase]:
                continue  # (a key re-created on its own columns changes no key: its index build is create-index's)
            if rec.phase == "downgrade" and (
                    (isinstance(op, ops.DropConstraintOp) and op.constraint_type == "primary"
                     and any(t == rec.table and (not n or not op.constraint_name or n == str(op.constraint_name)) for t, n in made))
                    or (isinstance(op, ops.CreatePrimaryKeyOp) and rec.table in unmade)):
                continue
            if isinstance(op, ops.CreatePrimaryKeyOp):
                dropped = next((d for d in reversed(drops) if d.phase == rec.phase and d.table == rec.table
                                and d.index < rec.index), None)
                # the old key's column dropped in the same phase: the key went with it (drop-column leaves it to this)
                column = next((r for r in self.ops(cap) if isinstance(r.op, ops.DropColumnOp) and r.phase == rec.phase
                               and r.table == rec.table and old_key_column(cap, r)), None)
                what = (f"Replaces primary key {dropped.op.constraint_name} of {rec.table} (dropped on line {dropped.line}) "
                        f"with ({', '.join(map(str, op.columns))})") if dropped else (
                    f"Replaces the primary key of {rec.table}, dropping its column {column.op.column_name} (line {column.line}) "
                    f"and its values, with ({', '.join(map(str, op.columns))})") if column else \
                    f"Sets the primary key of {rec.table} to ({', '.join(map(str, op.columns))})"
            elif isinstance(op, ops.DropConstraintOp) and op.constraint_type == "primary":
                if any(c.phase == rec.phase and c.table == rec.table and c.index > rec.index for c in creates):
                    continue  # one change of key: said once, where the new key is set
                what = f"Drops primary key {op.constraint_name} of {rec.table}"
            elif adds_primary_key(rec):
                # ADD COLUMN id ... PRIMARY KEY: the table gets a key it did not have (or the ALTER fails on the one it has)
                what = f"Adds {rec.table}.{op.column.name} as the table's primary key"
            else:
                continue
            yield self.finding(
                cap,
                f"{what}: rebuilds the key index with the table locked, and breaks foreign keys and code that rely "
                f"on the old key. Escalate to a human.",
                rec=rec,
            )


RULES = (AddForeignKeyValidating, AddCheckConstraintValidating, AddUniqueConstraint, ChangePrimaryKey)
