"""Constraints and indexes created without a name."""

from __future__ import annotations

import re
from collections.abc import Iterator

import sqlalchemy as sa
from alembic.operations import ops

from db_migrate.rules import _fixes as fx
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding

_OP_WHAT = {
    ops.CreateForeignKeyOp: ("foreign key", "fk"),
    ops.CreateUniqueConstraintOp: ("unique constraint", "uq"),
    ops.CreateCheckConstraintOp: ("check constraint", "ck"),
}
_CONSTRAINT_KEY = {sa.UniqueConstraint: "uq", sa.ForeignKeyConstraint: "fk", sa.CheckConstraint: "ck"}

# In rendered DDL: a constraint or index that carries a name (alembic applied the project's naming convention).
_NAMED_SQL = re.compile(
    r"\bADD\s+CONSTRAINT\s|\bCREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(IF\s+NOT\s+EXISTS\s+)?(?!ON\b)[\w\"`.]+\s+ON\b",
    re.IGNORECASE,
)
# In rendered DDL: a constraint without one (ADD UNIQUE (x), FOREIGN KEY(x) without CONSTRAINT <name> before it).
_CONSTRAINT_SQL = re.compile(r"\b(UNIQUE|FOREIGN\s+KEY|CHECK)\s*\(", re.IGNORECASE)
_NAMED_CONSTRAINT_SQL = re.compile(r"\bCONSTRAINT\s+[\w\"`.]+\s+(UNIQUE|FOREIGN\s+KEY|CHECK)\s*\(", re.IGNORECASE)


_Item = tuple[str, str, list[str]]  # (what, convention key, columns)
#: drop_constraint's type_ for each convention key.
_DROP_TYPE = {"fk": "foreignkey", "uq": "unique", "ck": "check", "pk": "primary"}

#: PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes.
_PG_MAX = 63
_PG_SUFFIX = {"fk": "fkey", "uq": "key", "ck": "check", "pk": "pkey", "ix": "idx", "excl": "excl"}


def _pg_name(table: str, columns: list[str], label: str) -> str:
    """PostgreSQL's ``makeObjectName``: ``<table>_<columns>_<label>``, the longer of the first two parts cut
    one byte at a time until the whole fits in 63 bytes."""
    name2 = "_".join(columns)
    avail = _PG_MAX - len(label) - 1 - (1 if name2 else 0)
    n1, n2 = len(table.encode()), len(name2.encode())
    while n1 + n2 > avail:
        if n1 > n2:
            n1 -= 1
        else:
            n2 -= 1
    out = table.encode()[:n1].decode(errors="ignore")
    if name2:
        out += "_" + name2.encode()[:n2].decode(errors="ignore")
    return f"{out}_{label}"


def database_name(dialect: str, key: str, table: str, columns: list[str], ordinal: int | None = None) -> str | None:
    """The name the database gives a constraint created without one, or None when it cannot be told here.

    PostgreSQL: ``<table>_<column>_fkey`` / ``_key`` / ``_check`` / ``_idx``, ``<table>_pkey`` (63 bytes at
    most; a number is added only on a clash). MySQL/MariaDB: a foreign key is ``<table>_ibfk_<n>`` (``n``: its
    place among the table's foreign keys, known when the table is created here), a unique key is named after
    its first column, a primary key is ``PRIMARY``. SQLite keeps unnamed constraints unnamed.
    """
    if dialect == "postgresql" and key in _PG_SUFFIX:
        if key == "ck" and len(columns) != 1:
            return None  # PostgreSQL picks the expression's first column; unknown without parsing it
        return _pg_name(table, [] if key == "pk" else columns, _PG_SUFFIX[key])
    if dialect in ("mysql", "mariadb"):
        if key == "fk" and ordinal:
            return f"{table}_ibfk_{ordinal}"
        if key == "uq" and columns:
            return columns[0]
        if key == "pk":
            return "PRIMARY"
    return None


def created_name(cap, key: str, table: str, columns: list[str], referent: str | None = None) -> str | None:
    """The name a constraint created without one ends up with in this project: the naming_convention's (when it
    names this kind), else the database's own (:func:`database_name`); None when neither can be told."""
    if cap.context.names(key):
        return _convention_name(cap.context.naming_convention[key], table, columns, referent)
    return database_name(cap.dialect, key, table, columns)


def _constraint_columns(item) -> list[str]:
    cols = getattr(item, "column_keys", None) or [getattr(c, "name", c) for c in getattr(item, "_pending_colargs", [])]
    return [str(c) for c in cols]


def _unnamed_in_column(col: sa.Column) -> list[_Item]:
    """What ``Column(...)`` declares inline without a name (unique=True, ForeignKey, CHECK)."""
    out: list[_Item] = []
    if col.unique:
        out.append((f"unique=True on {col.name}", "uq", [col.name]))
    out += [(f"ForeignKey({fk.target_fullname!r}) on {col.name}", "fk", [col.name]) for fk in col.foreign_keys if not fk.name]
    out += [(f"CHECK on {col.name}", "ck", [col.name]) for c in col.constraints if isinstance(c, sa.CheckConstraint) and not c.name]
    return out


def _unnamed_in_table(op: ops.CreateTableOp) -> list[_Item]:
    out: list[_Item] = []
    for item in op.columns:
        if isinstance(item, sa.Column):
            out += _unnamed_in_column(item)
        elif type(item) in _CONSTRAINT_KEY and not item.name:
            out.append((f"a {type(item).__name__} on {op.table_name}", _CONSTRAINT_KEY[type(item)], _constraint_columns(item)))
    return out


def _still_unnamed(cap, rec, items: list[_Item]) -> list[_Item]:
    """The items alembic leaves unnamed: the rendered DDL says so when there is one, else the naming convention.

    alembic names constraints from ``target_metadata``'s naming convention (read from env.py) and indexes from
    SQLAlchemy's default ``ix_%(column_0_label)s`` one, so an unnamed op in the source is often named in the DDL.
    """
    sql = "\n".join(rec.sql)
    if sql and len(_CONSTRAINT_SQL.findall(sql)) <= len(_NAMED_CONSTRAINT_SQL.findall(sql)):
        return []  # every constraint in the DDL has a name
    return [item for item in items if not cap.context.names(item[1])]


def _given_names(cap, rec, items: list[_Item]) -> dict[str, str | None]:
    """what -> the name the project's database gives it (None: depends on what the table already has)."""
    out: dict[str, str | None] = {}
    in_table = isinstance(rec.op, ops.CreateTableOp)
    fks = 0
    for what, key, cols in items:
        fks += key == "fk"
        out[what] = database_name(cap.dialect, key, rec.table or "", cols, ordinal=fks if in_table else None)
    return out


def _dropped_names(cap, rec) -> dict[str, str | None]:
    """Constraint names the revision's other phase drops on the same table, with their ``type_``: those of constraints
    this phase creates under that very name are theirs, not candidates for an unnamed one."""
    other = cap.downgrade if rec.phase == "upgrade" else cap.upgrade
    named_here = {str(r.op.constraint_name) for r in cap.ops(rec.phase)
                  if not isinstance(r.op, ops.DropConstraintOp) and getattr(r.op, "constraint_name", None)}
    return {
        str(r.op.constraint_name): r.op.constraint_type for r in other
        if isinstance(r.op, ops.DropConstraintOp) and r.op.constraint_name and r.op.table_name == rec.table
        and str(r.op.constraint_name) not in named_here
    }


def _misnamed(items: list[_Item], given: dict[str, str | None], dropped: dict[str, str | None]) -> list[str]:
    """Items the other phase drops under a name the database does not give: a drop of the same kind names
    something no item here is called, and this item's own name is dropped nowhere (that drop will fail)."""
    names = {g for g in given.values() if g}
    out = []
    for what, key, _ in items:
        kind = _DROP_TYPE.get(key)
        stray = [d for d, t in dropped.items() if d not in names and (t is None or t == kind)]
        if given[what] and given[what] not in dropped and stray:
            out.append(what)
    return out


def needs_naming_convention(cap) -> bool:
    """The revision creates a constraint or index without a name: what alembic names it depends on the convention."""
    for rec in cap.upgrade + cap.downgrade:
        op = rec.op
        if type(op) in _OP_WHAT and not op.constraint_name or isinstance(op, ops.CreateIndexOp) and not op.index_name:
            return True
        if isinstance(op, ops.CreateTableOp) and _unnamed_in_table(op) or isinstance(op, ops.AddColumnOp) and _unnamed_in_column(op.column):
            return True
    return False


@fx.tailored
def _named(cap, rec) -> str | None:
    """The same operation with conventional names (``fk_<table>_<column>_<referred table>``...).

    A column's inline unique=True / ForeignKey becomes a named create_unique_constraint / create_foreign_key
    after the add_column. create_table is left to the catalogue entry (a naming_convention fixes it wholesale).
    """
    op = rec.op
    if isinstance(op, ops.CreateForeignKeyOp):
        return fx.op_code(fx.with_(op, constraint_name=fx.conv_name("fk", op.source_table, *op.local_cols, op.referent_table)))
    if isinstance(op, ops.CreateUniqueConstraintOp):
        return fx.op_code(fx.with_(op, constraint_name=fx.conv_name("uq", op.table_name, *fx.column_names(op.columns))))
    if isinstance(op, ops.CreateCheckConstraintOp):
        return fx.op_code(fx.with_(op, constraint_name=fx.conv_name("ck", op.table_name, "check")))
    if isinstance(op, ops.CreateIndexOp):
        return fx.op_code(fx.with_(op, index_name=fx.conv_name("ix", op.table_name, *fx.column_names(op.columns))))
    if not isinstance(op, ops.AddColumnOp) or any(isinstance(c, sa.CheckConstraint) for c in op.column.constraints):
        return None
    col, table = op.column, op.table_name
    plain = col._copy()
    plain.unique = False
    lines: list = [ops.AddColumnOp(table, plain, schema=op.schema)]
    if col.unique:
        lines.append(ops.CreateUniqueConstraintOp(fx.conv_name("uq", table, col.name), table, [col.name], schema=op.schema))
    for fk in col.foreign_keys:
        lines.append(ops.CreateForeignKeyOp(
            fk.name or fx.conv_name("fk", table, col.name, fk.column.table.name), table, fk.column.table.name,
            [col.name], [fk.column.name], source_schema=op.schema, ondelete=fk.ondelete, onupdate=fk.onupdate,
        ))
    return fx.render(*lines, batch=cap.dialect == "sqlite")


class UnnamedConstraint(Rule):
    id = "unnamed-constraint"
    title = "Constraint or index created without a name"
    severity = "warning"
    phases = ("upgrade", "downgrade")
    why = (
        "Without a name the database gives one, and whether that name can be known in advance depends on the "
        "database: PostgreSQL's is predictable (<table>_<column>_fkey, _key, _check, <table>_pkey: no finding), "
        "MySQL numbers a table's foreign keys (<table>_ibfk_<n>, predictable only when the table is created in the "
        "same statement), SQLite keeps them unnamed. Where the name cannot be predicted, a later drop_constraint "
        "cannot name it, so downgrades and future migrations fail or differ between dev and production; where the "
        "other phase drops it under a name the database never gives, that drop fails. Autogenerate writes None only "
        "when target_metadata has no naming_convention."
    )
    fix = (
        "# name it explicitly...\n"
        "op.create_foreign_key('fk_orders_user_id_users', 'orders', 'users', ['user_id'], ['id'])\n"
        "# ...or give the models' MetaData a naming_convention so autogenerate names everything:\n"
        "# MetaData(naming_convention={'ix': 'ix_%(column_0_label)s', 'uq': 'uq_%(table_name)s_%(column_0_name)s',\n"
        "#   'ck': 'ck_%(table_name)s_%(constraint_name)s', 'fk': 'fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s',\n"
        "#   'pk': 'pk_%(table_name)s'})"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.create_foreign_key(None, 'orders', 'users', ['user_id'], ['id'])\n\n"
            "def downgrade():\n    op.drop_constraint('orders_ibfk_1', 'orders', type_='foreignkey')\n",
            good="def upgrade():\n    op.create_foreign_key('fk_orders_user_id_users', 'orders', 'users', ['user_id'], ['id'])\n\n"
            "def downgrade():\n    op.drop_constraint('fk_orders_user_id_users', 'orders', type_='foreignkey')\n",
            dialect="mysql",
        ),
        Example(
            bad="def upgrade():\n    op.create_table('accounts', sa.Column('id', sa.Integer(), primary_key=True),\n"
            "                    sa.Column('email', sa.String(200), unique=True))\n\n"
            "def downgrade():\n    op.drop_table('accounts')\n",
            good="def upgrade():\n    op.create_table('accounts', sa.Column('id', sa.Integer(), primary_key=True),\n"
            "                    sa.Column('email', sa.String(200)),\n"
            "                    sa.UniqueConstraint('email', name='uq_accounts_email'))\n\n"
            "def downgrade():\n    op.drop_table('accounts')\n",
            dialect="sqlite",
        ),
        Example(
            bad="def upgrade():\n    op.create_foreign_key(None, 'orders', 'users', ['user_id'], ['id'])\n\n"
            "def downgrade():\n    op.drop_constraint('fk_orders_user_id_users', 'orders', type_='foreignkey')\n",
            good="def upgrade():\n    op.create_foreign_key(None, 'orders', 'users', ['user_id'], ['id'])\n\n"
            "def downgrade():\n    op.drop_constraint('orders_user_id_fkey', 'orders', type_='foreignkey')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            op = rec.op
            items: list[_Item]
            if type(op) in _OP_WHAT and not op.constraint_name:
                what, key = _OP_WHAT[type(op)]
                named = _NAMED_SQL.search("\n".join(rec.sql)) if rec.sql else cap.context.names(key)
                cols = list(getattr(op, "local_cols", None) or fx.column_names(getattr(op, "columns", None) or []))
                items = [] if named else [(f"{what} on {rec.table}", key, cols)]
            elif isinstance(op, ops.CreateIndexOp) and not op.index_name:
                named = _NAMED_SQL.search("\n".join(rec.sql)) if rec.sql else cap.context.names("ix")
                items = [] if named else [(f"index on {rec.table}", "ix", fx.column_names(op.columns))]
            elif isinstance(op, ops.CreateTableOp):
                items = _still_unnamed(cap, rec, _unnamed_in_table(op))
            elif isinstance(op, ops.AddColumnOp):
                items = _still_unnamed(cap, rec, _unnamed_in_column(op.column))
            else:
                continue  # drop_constraint(None): drop-constraint-without-name, an error, not a naming style
            given = _given_names(cap, rec, items)
            dropped = _dropped_names(cap, rec)
            # a name the database gives predictably is a name: only an unpredictable one, or one the other phase
            # drops under a different name (that drop fails), is worth a word
            wrong = _misnamed(items, given, dropped)
            unknown = [w for w, _, _ in items if not given[w]]
            if not (wrong or unknown):
                continue
            how = ("SQLite keeps it unnamed, so a later drop_constraint cannot name it (batch mode must re-create the "
                   "table without it)") if cap.dialect == "sqlite" else (
                   f"the database picks a name that depends on the table's other constraints ({cap.dialect}), so "
                   "dropping it later cannot name it reliably")
            parts = [f"{'; '.join(unknown)}: {how}"] if unknown else []
            parts += [f"{w}: {cap.dialect} names it {given[w]!r}, but the {'downgrade' if rec.phase == 'upgrade' else 'upgrade'} "
                      f"drops {', '.join(sorted(repr(d) for d in dropped))}, which will fail" for w in wrong]
            yield self.finding(
                cap, "Creates without a name: " + ". ".join(parts) + ".", rec=rec, fix=_named(cap, rec),
            )


def _convention_name(template: str, table: str, cols: list[str], referent: str | None) -> str | None:
    """``template`` (a naming_convention entry) filled in as SQLAlchemy would for the common tokens."""
    values = dict(
        table_name=table, referred_table_name=referent or "", column_0_name=cols[0] if cols else "",
        column_0_label=f"{table}_{cols[0]}" if cols else table, column_0N_name="".join(cols), column_0_N_name="_".join(cols),
    )
    try:
        return template % values
    except (KeyError, ValueError, TypeError):
        return None


def _created_unnamed(cap, phase_ops) -> list[tuple[str, str, str, list[str], str | None]]:
    """(drop type, table, key, columns, referent) of each constraint ``phase_ops`` create without a name, in order."""
    out = []
    for r in phase_ops:
        o = r.op
        if type(o) in _OP_WHAT and not o.constraint_name:
            key = _OP_WHAT[type(o)][1]
            cols = list(getattr(o, "local_cols", None) or fx.column_names(getattr(o, "columns", None) or []))
            out.append((_DROP_TYPE[key], r.table or "", key, cols, getattr(o, "referent_table", None)))
        elif isinstance(o, (ops.CreateTableOp, ops.AddColumnOp)):
            cols_of = [o.column] if isinstance(o, ops.AddColumnOp) else [c for c in o.columns if isinstance(c, sa.Column)]
            for col in cols_of:
                if col.unique:
                    out.append(("unique", r.table or "", "uq", [col.name], None))
                out += [("foreignkey", r.table or "", "fk", [col.name], fk.column.table.name) for fk in col.foreign_keys if not fk.name]
    return out


@fx.tailored
def _name_to_drop(cap, rec) -> str | None:
    """The drop with the name the constraint really has (:func:`drop_name`)."""
    name = drop_name(cap, rec)
    if not name:
        return None
    kind = rec.op.constraint_type or _drop_kind(cap, rec)  # MySQL has no generic DROP CONSTRAINT: type_ is needed
    return fx.op_code(fx.with_(rec.op, constraint_name=name, constraint_type=kind))


def _drop_kind(cap, rec) -> str | None:
    """The type_ of the constraint an untyped ``drop_constraint(None, ...)`` means: the kind of the one it matches."""
    other = cap.downgrade if rec.phase == "upgrade" else cap.upgrade
    kinds = {c[0] for c in _created_unnamed(cap, other) if c[1] == rec.op.table_name}
    kinds |= {_DROP_TYPE.get(_OP_WHAT.get(type(r.op), ("", ""))[1]) for r in other if isinstance(r.op, ops.AddConstraintOp)
              and (getattr(r.op, "table_name", None) or getattr(r.op, "source_table", None)) == rec.op.table_name}
    kinds.discard(None)
    return next(iter(kinds)) if len(kinds) == 1 else None


def drop_name(cap, rec) -> str | None:
    """The name a ``drop_constraint(None, ...)`` means: the name the other phase gave it, else the one the
    project's naming convention gives, else the one the database gives (PostgreSQL ``<table>_<column>_fkey``).

    Drops of the same kind on the same table are matched to the creations in reverse order (a downgrade undoes
    the upgrade backwards), so two drops never get the same name.
    """
    op = rec.op
    phase_ops, other = (cap.upgrade, cap.downgrade) if rec.phase == "upgrade" else (cap.downgrade, cap.upgrade)
    named = [r.op.constraint_name for r in other if isinstance(r.op, ops.AddConstraintOp) and r.op.constraint_name
             and (getattr(r.op, "table_name", None) or getattr(r.op, "source_table", None)) == op.table_name
             and (not op.constraint_type or _DROP_TYPE.get(_OP_WHAT.get(type(r.op), ("", ""))[1]) == op.constraint_type)]
    mine = [r for r in phase_ops if isinstance(r.op, ops.DropConstraintOp) and not r.op.constraint_name
            and r.op.table_name == op.table_name and r.op.constraint_type == op.constraint_type]
    place = next((i for i, r in enumerate(mine) if r is rec), 0)
    candidates = [c for c in _created_unnamed(cap, other) if c[1] == op.table_name and (not op.constraint_type or c[0] == op.constraint_type)]
    names: list[str | None] = [str(n) for n in reversed(named)]
    for _, table, key, cols, referent in reversed(candidates):
        template = cap.context.naming_convention.get(key) if cap.context.names(key) else None
        names.append(_convention_name(template, table, cols, referent) if template else database_name(cap.dialect, key, table, cols))
    return names[place] if place < len(names) else None


class DropConstraintWithoutName(Rule):
    id = "drop-constraint-without-name"
    title = "Constraint dropped without its name (drop_constraint(None, ...))"
    severity = "error"
    phases = ("upgrade", "downgrade")
    why = (
        "DROP CONSTRAINT needs the constraint's name, and SQLAlchemy refuses to emit it for a constraint whose name "
        "is None (\"Can't emit DROP CONSTRAINT for constraint ... it has no name\"). A naming convention does not "
        "help: a drop does not know the columns the name is built from. The step fails on every database, so a "
        "rollback through this downgrade never works."
    )
    fix = "op.drop_constraint('fk_orders_user_id_users', 'orders', type_='foreignkey')"
    examples = (
        Example(
            bad="def upgrade():\n    op.create_foreign_key('fk_orders_user_id_users', 'orders', 'users', ['user_id'], ['id'])\n\n"
            "def downgrade():\n    op.drop_constraint(None, 'orders', type_='foreignkey')\n",
            good="def upgrade():\n    op.create_foreign_key('fk_orders_user_id_users', 'orders', 'users', ['user_id'], ['id'])\n\n"
            "def downgrade():\n    op.drop_constraint('fk_orders_user_id_users', 'orders', type_='foreignkey')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec in self.ops(cap):
            if isinstance(rec.op, ops.DropConstraintOp) and not rec.op.constraint_name:
                kind = {"foreignkey": " foreign key", "unique": " unique", "check": " check", "primary": " primary key"}.get(
                    rec.op.constraint_type or "", "")
                yield self.finding(
                    cap,
                    f"{rec.phase}() drops a{kind} constraint on {rec.table} without naming it (drop_constraint(None, ...)): "
                    f"this fails on every database. Name the constraint the {'upgrade' if rec.phase == 'downgrade' else 'downgrade'} "
                    f"creates (as the database named it).",
                    rec=rec,
                    fix=_name_to_drop(cap, rec),
                )


RULES = (UnnamedConstraint, DropConstraintWithoutName)
