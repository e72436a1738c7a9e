"""Shared judgements for the rules: what is new in this revision, type changes, defaults, raw SQL.

Kept here so that every rule answers "was this table created in this revision?"
or "is this type change a widening?" the same way.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from alembic.operations import ops
from sqlalchemy import types as sqltypes

from db_migrate.capture.dialects import type_sql

if TYPE_CHECKING:
    from db_migrate.capture.model import Phase, RecordedOp, RevisionCapture, SqlStatement

# ---------------------------------------------------------------------------
# What this revision itself created (operations on those are safe: no rows yet)
# ---------------------------------------------------------------------------


def raw_tables_created(cap: RevisionCapture, rec: RecordedOp) -> set[str]:
    """Tables ``rec``'s own SQL creates (raw ``CREATE [TEMPORARY] TABLE [AS]``)."""
    return {t for stmt in cap.statements_of(rec) if stmt.kind in ("CREATE TABLE", "CREATETABLEAS") for t in stmt.tables[:1]}


def tables_created_before(cap: RevisionCapture, rec: RecordedOp) -> set[str]:
    """Tables created earlier in ``rec``'s phase, by ``op.create_table`` or raw ``CREATE TABLE``."""
    out = cap.tables_created(rec.phase, before_index=rec.index)
    for r in cap.ops(rec.phase)[: rec.index]:
        out |= raw_tables_created(cap, r)
    return out


def is_new_table(cap: RevisionCapture, rec: RecordedOp, table: str | None = None) -> bool:
    """True when ``table`` (default: the op's table) was created earlier in this phase: it is empty."""
    table = table or rec.table
    return table is not None and table in tables_created_before(cap, rec)


def tables_dropped_after(cap: RevisionCapture, rec: RecordedOp) -> set[str]:
    """Tables dropped later in ``rec``'s phase, by ``op.drop_table`` or raw ``DROP TABLE``."""
    out = {r.op.table_name for r in cap.ops(rec.phase) if isinstance(r.op, ops.DropTableOp) and r.index > rec.index}
    for srec, stmt in cap.statements(rec.phase):
        if srec.index > rec.index and stmt.kind == "DROP TABLE":
            out.update(stmt.tables)
    return out


def is_transient_table(cap: RevisionCapture, rec: RecordedOp, table: str | None = None) -> bool:
    """The table is created earlier or dropped later in this phase: locking it or rebuilding its parts is moot.

    An index dropped just before its table is dropped, or built right after the table was created, blocks no one
    beyond what the create/drop itself does (which the rules judge on that operation).
    """
    table = table or rec.table
    return table is not None and (is_new_table(cap, rec, table) or table in tables_dropped_after(cap, rec)
                                  or table in tables_emptied_before(cap, rec))


def tables_emptied_before(cap: RevisionCapture, rec: RecordedOp) -> set[str]:
    """Tables an earlier statement of ``rec``'s phase empties (DELETE without WHERE, TRUNCATE): no row is left for
    a NOT NULL, a constraint or a scan to meet (emptying them is destructive-sql's finding)."""
    return {t for srec, stmt in cap.statements(rec.phase) if srec.index < rec.index
            and (stmt.kind == "TRUNCATE" or (stmt.kind == "DELETE" and stmt.has_where is False)) for t in stmt.tables}


def is_new_column(cap: RevisionCapture, rec: RecordedOp, table: str | None = None, column: str | None = None) -> bool:
    """True when the column was added (or its table created) earlier in this phase."""
    table, column = table or rec.table, column or rec.column
    if table is None:
        return False
    return is_new_table(cap, rec, table) or (table, column) in cap.columns_added(rec.phase, before_index=rec.index)


def reverts_upgrade_alter(cap: RevisionCapture, rec: RecordedOp) -> bool:
    """A downgrade alter_column on a column the upgrade altered: it restores the state before this revision.

    Restoring is the point of a downgrade; whether it can (values written since) is for the roundtrip test.
    """
    if rec.phase != "downgrade" or not isinstance(rec.op, ops.AlterColumnOp):
        return False
    return any(
        isinstance(u.op, ops.AlterColumnOp) and u.op.table_name == rec.op.table_name
        and rec.op.column_name in (u.op.column_name, u.op.modify_name)
        for u in cap.upgrade
    )


def type_before(cap: RevisionCapture, rec: RecordedOp) -> Any:
    """The type an upgrade's altered column had before, or None: ``existing_type=``, else the type the downgrade
    puts back, else the type the history's earlier revisions gave it.

    Raw MySQL ``MODIFY``/``CHANGE`` (and ``alter_column`` without ``existing_type=``) state only the new type;
    the downgrade that restores the column (``CHANGE total amount INT``) states the old one.
    """
    op = rec.op
    if not isinstance(op, ops.AlterColumnOp):
        return None
    if op.existing_type is not None and not isinstance(_instance(op.existing_type), sqltypes.NullType):
        return op.existing_type
    if rec.phase != "upgrade":
        return None
    now = op.modify_name or op.column_name
    restores = [
        d.op.modify_type for d in cap.downgrade
        if isinstance(d.op, ops.AlterColumnOp) and d.op.table_name == op.table_name and d.op.modify_type is not None
        and d.op.column_name == now and (d.op.modify_name or d.op.column_name) == op.column_name
    ]
    if restores:
        return restores[-1]  # the downgrade's last word on the column is its type before
    # else what the revisions before it made the column (read from their source: create_table, add_column, type_=)
    said = cap.context.types_before.get(cap.revision or "", {}).get((op.table_name, op.column_name))
    if said:
        from db_migrate.capture.chain import type_from_source

        return type_from_source(said)
    return None


def recreated_primary_keys(cap: RevisionCapture, phase: Phase) -> dict[str, RecordedOp]:
    """Tables whose primary key ``phase`` drops and creates again on the columns it had: table -> the create.

    The key's columns before are those the other phase creates it with (the downgrade that puts the upgrade's key
    back states the old one); unknown there, the key counts as changed.
    """
    def keys(ps: Phase) -> dict[str, tuple[RecordedOp, tuple]]:
        return {r.table: (r, tuple(map(str, r.op.columns))) for r in cap.ops(ps)
                if isinstance(r.op, ops.CreatePrimaryKeyOp) and r.table}

    other = keys("downgrade" if phase == "upgrade" else "upgrade")
    dropped = {r.table for r in cap.ops(phase) if isinstance(r.op, ops.DropConstraintOp) and r.op.constraint_type == "primary"}
    return {t: rec for t, (rec, cols) in keys(phase).items() if t in dropped and t in other and other[t][1] == cols}


def unknown_to_history(cap: RevisionCapture, rec: RecordedOp) -> bool:
    """``DROP TABLE IF EXISTS t`` where no other revision of the history creates t: a defensive drop of a table the
    migrations never made (a leftover, or one they are about to create), not a drop of theirs."""
    creators = cap.context.table_creators
    return isinstance(rec.op, ops.DropTableOp) and bool(getattr(rec.op, "if_exists", False)) and creators is not None \
        and not (creators.get(rec.table or "", frozenset()) - {cap.revision})


def only_nulls_left(cap: RevisionCapture, rec: RecordedOp) -> int | None:
    """The line of an earlier ``DELETE FROM t WHERE c IS NOT NULL`` of ``rec``'s phase, for the column ``rec`` drops:
    every row that held a value there is gone (the DELETE's own finding says so), and the column holds NULLs."""
    column = getattr(rec.op, "column_name", None)
    if not isinstance(column, str):
        return None
    pattern = re.compile(rf"\bWHERE\s+(?:[\w\"`]+\.)?[\"`]?{re.escape(column)}[\"`]?\s+IS\s+NOT\s+NULL\s*;?\s*$", re.IGNORECASE)
    return next((r.line for r, stmt in cap.statements(rec.phase) if r.index < rec.index and stmt.kind == "DELETE"
                 and stmt.tables[:1] == [rec.table] and pattern.search(stmt.text)), None)


def copied_out(cap: RevisionCapture, rec: RecordedOp) -> tuple[int | None, str] | None:
    """(line, table) of an earlier statement of ``rec``'s phase that writes another table from the table ``rec``
    drops (``INSERT INTO objects SELECT ... FROM files``, ``UPDATE objects SET ... FROM (SELECT * FROM files)``): its
    rows live on there (whether every column went is the move's own question)."""
    for r, stmt in cap.statements(rec.phase):
        if r.index < rec.index and stmt.kind in ("INSERT", "UPDATE") and stmt.tables[:1] != [rec.table] \
                and rec.table in stmt.tables[1:]:
            return r.line, stmt.tables[0]
    return None


def adds_primary_key(rec: RecordedOp) -> bool:
    """``op.add_column`` of a ``primary_key=True`` column that really makes the table's key: alembic renders no
    PRIMARY KEY in ADD COLUMN (``ADD COLUMN id SERIAL NOT NULL``), so only SQL that says it counts (a raw ``ADD ...
    PRIMARY KEY``, or a rendering that could not be read, to be safe)."""
    op = rec.op
    return isinstance(op, ops.AddColumnOp) and bool(op.column.primary_key) and (
        not rec.sql or any("PRIMARY KEY" in s.upper() for s in rec.sql))


def old_key_column(cap: RevisionCapture, rec: RecordedOp) -> int | None:
    """The line where ``rec``'s phase gives the table a primary key without the column ``rec`` drops: a table has one
    key, so the column was the old one (a surrogate replaced), and change-primary-key reports the change whole."""
    if is_new_column(cap, rec):
        return None  # a column this revision added: never the table's key before it
    return next((r.line for r in cap.ops(rec.phase) if isinstance(r.op, ops.CreatePrimaryKeyOp) and r.table == rec.table
                 and rec.op.column_name not in map(str, r.op.columns)), None)


def is_concurrent(rec: RecordedOp) -> bool:
    return bool(getattr(rec.op, "kw", {}).get("postgresql_concurrently"))


# ---------------------------------------------------------------------------
# Type changes
# ---------------------------------------------------------------------------

TypeChange = Literal["same", "widen", "rewrite", "narrow", "change", "enum", "unknown"]
"""same: no change; widen: larger, no rewrite; rewrite: no data lost but the table is rewritten;
narrow: values may not fit (failure or truncation); change: another type family (cast may fail, rewrite);
enum: Enum -> Enum (enum-value-change's business); unknown: the existing type was not given."""

_INT_RANK = {sqltypes.SmallInteger: 1, sqltypes.Integer: 2, sqltypes.BigInteger: 3}


def _instance(t: Any) -> Any:
    return sqltypes.to_instance(t) if t is not None else None


def _int_rank(t: Any) -> int:
    for cls in type(t).__mro__:
        if cls in _INT_RANK:
            return _INT_RANK[cls]
    return 2


def _is_char(t: Any) -> bool:
    """Fixed-width CHAR: blank-padded, so casts to and from it are real conversions."""
    return isinstance(t, sqltypes.CHAR) or type(t).__name__ in ("CHAR", "NCHAR")


def _string_length(t: Any) -> int | None:
    return None if isinstance(t, sqltypes.Text) else getattr(t, "length", None)


#: Bytes per character of the default character set of MySQL 8 and MariaDB packages (utf8mb4): a VARCHAR of up
#: to 63 characters has a 1-byte length prefix, from 64 a 2-byte one, and crossing that copies the table
#: (measured on MariaDB 10.11: VARCHAR(60) -> (63) in place, -> (64) ALGORITHM=COPY only).
_MYSQL_CHAR_BYTES = 4


def classify_type_change(old: Any, new: Any, dialect: str) -> TypeChange:
    """How changing a column from ``old`` to ``new`` behaves on ``dialect``.

    PostgreSQL changes varchar(n) -> varchar(m >= n), varchar -> text and
    numeric(p, s) -> numeric(q >= p, s) in the catalogue only; every other real
    type change rewrites the table.  MySQL/MariaDB copy the table for most changes.
    """
    old, new = _instance(old), _instance(new)
    if new is None:
        return "same"
    if old is None or isinstance(old, sqltypes.NullType) or not is_known_type(old) or not is_known_type(new):
        return "unknown"
    if isinstance(old, sqltypes.Enum) and isinstance(new, sqltypes.Enum) and old.native_enum and new.native_enum:
        return "enum"  # (a non-native Enum is a VARCHAR of its longest label: judged as the string it is)
    if type_sql(old, dialect) == type_sql(new, dialect):
        return "same"
    if dialect == "sqlite" and _sqlite_keeps(old, new):
        return "same"
    if isinstance(old, sqltypes.Float) and isinstance(new, sqltypes.Float) and (bo := _float_bytes(old, dialect)) \
            and (bn := _float_bytes(new, dialect)):
        return "same" if bo == bn else "rewrite" if bn > bo else "narrow"
    if isinstance(old, sqltypes.String) and isinstance(new, sqltypes.String) and _is_char(old) == _is_char(new):
        lo, ln = _string_length(old), _string_length(new)
        if ln is None:  # to text / unbounded varchar; MySQL copies the table even for TEXT -> MEDIUMTEXT
            return "widen" if dialect == "postgresql" else "rewrite"
        if lo is None or ln < lo:
            return "narrow"
        if dialect in ("mysql", "mariadb") and not _is_char(new) and (lo * _MYSQL_CHAR_BYTES < 256) != (ln * _MYSQL_CHAR_BYTES < 256):
            return "rewrite"  # InnoDB widens in place only while the length prefix keeps its size (1 byte up to 255 bytes)
        return "widen"
    if isinstance(old, sqltypes.Integer) and isinstance(new, sqltypes.Integer):
        ro, rn = _int_rank(old), _int_rank(new)
        return "same" if ro == rn else ("narrow" if rn < ro else "rewrite")
    if isinstance(old, sqltypes.Integer) and isinstance(new, sqltypes.Numeric) and not isinstance(new, sqltypes.Float):
        return "rewrite" if new.precision is None or (new.precision - (new.scale or 0)) >= 19 else "narrow"
    if isinstance(old, sqltypes.Numeric) and not isinstance(old, sqltypes.Float) and isinstance(new, sqltypes.Integer):
        return "narrow"  # fractions are rounded away, large values overflow
    if type(old) is type(new) and isinstance(old, sqltypes.Numeric) and not isinstance(old, sqltypes.Float):
        po, so, pn, sn = old.precision, old.scale or 0, new.precision, new.scale or 0
        if pn is None:
            return "widen" if dialect == "postgresql" else "rewrite"
        if po is None or sn < so or pn - sn < po - so:
            return "narrow"
        return "widen" if sn == so else "rewrite"
    if type(old) is type(new):  # same family, other parameters (timezone, precision...)
        return "rewrite"
    if isinstance(old, (sqltypes.Integer, sqltypes.Numeric)) and isinstance(new, sqltypes.String) and not _is_char(new):
        # every number has a text form; a bounded column must hold its longest (sign and point included)
        width = _text_width(old)
        ln = _string_length(new)
        return "rewrite" if ln is None or (width is not None and ln >= width) else "narrow"
    if isinstance(new, sqltypes.JSON) and isinstance(old, (sqltypes.JSON, sqltypes.String)):
        # JSON -> JSONB keeps every document; text -> JSON fails on text that is not JSON, loses nothing else
        return "rewrite" if isinstance(old, sqltypes.JSON) else "change"
    if isinstance(old, sqltypes.JSON) and isinstance(new, sqltypes.String):
        # every document has a text form; a bounded or blank-padded column may not hold it
        return "rewrite" if _string_length(new) is None and not _is_char(new) else "narrow"
    for family in (sqltypes.DateTime, sqltypes.Time):
        if isinstance(old, family) and isinstance(new, family):
            # fractional seconds: DATETIME -> DATETIME(6) keeps every value (MySQL still copies the table)
            po, pn = _fraction_digits(old), _fraction_digits(new)
            if pn < po:
                return "narrow"
            same_zone = bool(getattr(old, "timezone", False)) == bool(getattr(new, "timezone", False))
            return "widen" if dialect == "postgresql" and same_zone else "rewrite"
    return "change"


_RISK = {
    "narrow": " and fails on (or truncates) values that do not fit",
    "change": " and fails on values the cast cannot convert",
    "rewrite": "; no data is lost",
}


def _sqlite_affinity(t: Any) -> str:
    """SQLite's type affinity of a declared type (its rules, section 3.1 of "Datatypes In SQLite")."""
    name = (type_sql(t, "sqlite") or "").upper()
    if "INT" in name:
        return "INTEGER"
    if any(k in name for k in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if not name or "BLOB" in name:
        return "BLOB"
    if any(k in name for k in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def _sqlite_keeps(old: Any, new: Any) -> bool:
    """SQLite keeps every value through the change: it enforces no length (VARCHAR(200) holds 5,000 characters) and
    stores by affinity, so types of one affinity, or a BOOLEAN (NUMERIC) and an INTEGER, hold the same values."""
    a, b = _sqlite_affinity(old), _sqlite_affinity(new)
    return a == b or ({a, b} == {"INTEGER", "NUMERIC"} and (isinstance(old, sqltypes.Boolean) or isinstance(new, sqltypes.Boolean)))


def _float_bytes(t: Any, dialect: str) -> int | None:
    """Bytes the server stores a floating-point type in: FLOAT(p) is REAL (4) up to p = 24 and DOUBLE (8) above, on
    PostgreSQL and MySQL alike; a bare FLOAT is double on PostgreSQL and single on MySQL, where REAL means DOUBLE."""
    if dialect not in ("postgresql", "mysql", "mariadb"):
        return None
    name = type(t).__name__.upper()
    if "DOUBLE" in name:
        return 8
    if name == "REAL":
        return 4 if dialect == "postgresql" else 8
    precision = getattr(t, "precision", None)
    if isinstance(precision, int):
        return 4 if precision <= 24 else 8
    return 8 if dialect == "postgresql" else 4


def _text_width(t: Any) -> int | None:
    """Characters the longest value of a number type takes as text, or None when unbounded (NUMERIC, floats)."""
    if isinstance(t, sqltypes.Integer):
        return {1: 6, 2: 11, 3: 20}.get(_int_rank(t), 20)  # smallint, integer, bigint with their signs
    precision = getattr(t, "precision", None)
    if isinstance(t, sqltypes.Float) or not isinstance(precision, int):
        return None
    return precision + 2


def type_change_risk(old: Any, new: Any, change: TypeChange) -> str:
    """What a ``narrow``/``change``/``rewrite`` type change does to the values, as a finding says it."""
    old, new = _instance(old), _instance(new)
    if isinstance(new, sqltypes.JSON) and change == "change":
        # not a loss: the ALTER stops at the first such value and rolls back whole; a value that casts keeps its content
        return " and fails on any value that is not valid JSON (the ALTER then rolls back whole)"
    if isinstance(new, sqltypes.JSON) and isinstance(old, sqltypes.JSON) and change == "rewrite":
        return ("; no document is lost (JSONB drops insignificant whitespace, orders keys and keeps the last of "
                "duplicate keys)") if type_sql(new, "postgresql") == "JSONB" else "; no data is lost"
    if change == "narrow" and refuses_too_long(new):
        return " and fails on values that do not fit (the server refuses them, it does not cut them)"
    return _RISK[change]


def refuses_too_long(new: Any) -> bool:
    """Into a bounded text type, a value too long is refused, not cut: PostgreSQL raises "value too long", MySQL
    and MariaDB in their default strict mode "Data too long", and SQLite keeps it whole."""
    new = _instance(new)
    return isinstance(new, sqltypes.String) and not isinstance(new, (sqltypes.Enum, sqltypes.Text)) and new.length is not None


def _fraction_digits(t: Any) -> int:
    """Digits of fractional seconds a DATETIME/TIMESTAMP/TIME keeps (MySQL ``fsp``, PostgreSQL ``precision``)."""
    value = getattr(t, "fsp", None)
    if value is None:
        value = getattr(t, "precision", None)
    return int(value) if isinstance(value, int) else 0


def is_known_type(t: Any) -> bool:
    """A real SQLAlchemy type (not a stand-in for a type from a module that is not installed here)."""
    return isinstance(t, sqltypes.TypeEngine) or isinstance(t, type) and issubclass(t, sqltypes.TypeEngine)


def spell(t: Any, dialect: str) -> str:
    return type_sql(_instance(t) if is_known_type(t) else t, dialect) or "?"


# ---------------------------------------------------------------------------
# Server defaults
# ---------------------------------------------------------------------------

# PostgreSQL 11+ stores a non-volatile ADD COLUMN default in the catalogue (no rewrite);
# these are VOLATILE, so the table is rewritten.  now()/CURRENT_TIMESTAMP are STABLE: fast.
_VOLATILE = re.compile(
    r"\b(random|gen_random_uuid|uuid_generate_v1(mc)?|uuid_generate_v4|uuidv4|uuidv7|clock_timestamp|timeofday|nextval|setval|txid_current)\s*\(",
    re.IGNORECASE,
)


def default_sql(default: Any, dialect: str) -> str | None:
    """The SQL expression of a server default, or None when there is none.

    A plain ``str`` default is a literal (SQLAlchemy quotes it), so it is returned quoted.
    """
    if default is None or default is False:
        return None
    arg = getattr(default, "arg", default)  # DefaultClause wraps the expression
    if isinstance(arg, str):
        return "'" + arg.replace("'", "''") + "'"
    text = getattr(arg, "text", None)
    if isinstance(text, str):
        return text
    try:
        from db_migrate.capture.dialects import dialect_for

        return str(arg.compile(dialect=dialect_for(dialect), compile_kwargs={"literal_binds": True}))
    except Exception:
        return None


def is_volatile_sql(expr: str | None) -> bool:
    """A volatile function call outside string literals (``'random()'`` is just text)."""
    return bool(expr) and bool(_VOLATILE.search(re.sub(r"'(?:[^']|'')*'", "''", expr or "")))


# ---------------------------------------------------------------------------
# Raw SQL
# ---------------------------------------------------------------------------


def pg_node(stmt: SqlStatement) -> Any:
    """pglast's statement node (PostgreSQL), or None."""
    return getattr(stmt.parsed, "stmt", stmt.parsed)


def updated_columns(stmt: SqlStatement) -> set[str] | None:
    """Columns an UPDATE sets (None when unknown)."""
    node = pg_node(stmt)
    if node is not None and type(node).__name__ == "UpdateStmt":
        return {t.name for t in node.targetList or () if getattr(t, "name", None)}
    m = re.search(r"\bSET\b(.*)", stmt.text, re.IGNORECASE | re.DOTALL)
    if not m:
        return None
    # the targets are what stands before '=' in each item of the SET list, at the top level: `x = (a = '' OR ...)`
    # reads a, and a WHERE or FROM at the top level ends the list
    items, depth, part = [], 0, ""
    for token in re.split(r"([(),]|\bWHERE\b|\bFROM\b)", m.group(1), flags=re.IGNORECASE):
        if depth == 0 and token.upper() in ("WHERE", "FROM"):
            break
        depth += token == "("
        depth -= token == ")"
        if depth == 0 and token == ",":
            items.append(part)
            part = ""
        else:
            part += token
    items.append(part)
    return {t.group(1).strip('"`').split(".")[-1] for item in items if (t := re.match(r"\s*([\w.\"`]+)\s*=", item))}


def overwrites_rows(cap: RevisionCapture, rec: RecordedOp, stmt: SqlStatement) -> bool:
    """DELETE, TRUNCATE, or an UPDATE without WHERE of columns that hold more than the migrations wrote.

    ``UPDATE t SET new_col = ...`` right after adding ``new_col`` is a backfill, and ``UPDATE infos SET version =
    '26.08'`` after an earlier revision set it to '26.07' moves a marker: nothing old is lost
    (:func:`overwrites_nothing_kept`).
    """
    if stmt.kind in ("DELETE", "TRUNCATE"):
        return True
    if stmt.kind != "UPDATE" or stmt.has_where is not False or not stmt.tables:
        return False
    return not overwrites_nothing_kept(cap, rec, stmt)


def clears_orphans(cap: RevisionCapture, rec: RecordedOp, stmt: SqlStatement) -> int | None:
    """The line of the foreign key that ``rec``'s phase creates after this DELETE, from the table it deletes from
    to a table the DELETE reads (``DELETE c FROM c LEFT JOIN p ... WHERE p.id IS NULL``, ``... NOT IN (SELECT id
    FROM p)``): the rows it removes are the ones that key forbids, references to nothing."""
    if stmt.kind != "DELETE" or len(stmt.tables) < 2:
        return None
    target, read = stmt.tables[0], set(stmt.tables[1:])
    for r in cap.ops(rec.phase)[rec.index + 1:]:
        op = r.op
        if isinstance(op, ops.CreateForeignKeyOp) and op.source_table == target and op.referent_table in read:
            return r.line
    return None


def overwrites_nothing_kept(cap: RevisionCapture, rec: RecordedOp, stmt: SqlStatement) -> bool:
    """An UPDATE that sets only columns holding nothing but what the migrations put there: added earlier in its
    phase or by the upgrade of the revision's parent (NULLs, or what was written since the parent), or set to a
    literal in every row by an ancestor (a version marker: ``UPDATE infos SET version = '26.08'``)."""
    if stmt.kind != "UPDATE" or not stmt.tables:
        return False
    added = set(cap.columns_added(rec.phase, before_index=rec.index))
    if rec.phase == "upgrade":
        added |= set(cap.context.added_by_parent.get(cap.revision or "", ()))
        added |= set(cap.context.set_by_migrations.get(cap.revision or "", ()))
    cols = updated_columns(stmt)
    return cols is not None and bool(cols) and {(stmt.tables[0], c) for c in cols} <= added


_CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.IGNORECASE)


def raw_index_statements(cap: RevisionCapture, phase: Phase) -> Iterator[tuple[RecordedOp, SqlStatement, str, bool]]:
    """``CREATE INDEX`` / ``DROP INDEX`` in op.execute: (rec, stmt, "create"|"drop", concurrently)."""
    for rec, stmt in cap.statements(phase):
        if stmt.kind == "CREATE INDEX" or (stmt.kind.startswith("CREATE") and "INDEX" in stmt.kind):
            yield rec, stmt, "create", bool(_CONCURRENTLY.search(stmt.text))
        elif stmt.kind == "DROP INDEX":
            yield rec, stmt, "drop", bool(_CONCURRENTLY.search(stmt.text))


def mentions(text: str, name: str | None) -> bool:
    """``name`` appears in ``text`` as a whole identifier."""
    return bool(name) and re.search(r"(?<![\w$])" + re.escape(str(name)) + r"(?![\w$])", text, re.IGNORECASE) is not None


def execute_text(cap: RevisionCapture, phase: Phase) -> str:
    """All raw SQL a phase runs, joined (for cheap 'does it mention X' checks)."""
    return "\n".join(stmt.text for _, stmt in cap.statements(phase))


# ---------------------------------------------------------------------------
# Source positions
# ---------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _function_spans(source: str) -> dict[str, tuple[int, int]]:
    from db_migrate.capture.source import parsed

    tree = parsed(source)
    if tree is None:
        return {}
    return {
        n.name: (n.lineno, n.end_lineno or n.lineno)
        for n in tree.body
        if isinstance(n, ast.FunctionDef) and n.name in ("upgrade", "downgrade")
    }


def function_span(cap: RevisionCapture, name: str) -> tuple[int, int] | None:
    """(first, last) line of ``def upgrade``/``def downgrade`` (None when absent)."""
    return _function_spans(cap.source).get(name)


def function_line(cap: RevisionCapture, name: str) -> int | None:
    """Line of ``def upgrade``/``def downgrade`` (None when absent)."""
    span = _function_spans(cap.source).get(name)
    return span[0] if span else None


def phase_at(cap: RevisionCapture, line: int) -> str:
    """'upgrade'/'downgrade' when ``line`` is inside that function, else 'revision'."""
    for name, (start, end) in _function_spans(cap.source).items():
        if start <= line <= end:
            return name
    return "revision"


# ---------------------------------------------------------------------------
# Operations that lock an existing table (PostgreSQL)
# ---------------------------------------------------------------------------

_DDL_OPS = (
    ops.AddColumnOp,
    ops.DropColumnOp,
    ops.AlterColumnOp,
    ops.AddConstraintOp,
    ops.DropConstraintOp,
    ops.DropTableOp,
    ops.RenameTableOp,
    ops.CreateIndexOp,
    ops.DropIndexOp,
)
_RAW_DDL = ("ALTER TABLE", "DROP TABLE", "TRUNCATE", "LOCK", "RENAME", "DROP VIEW", "DROP MATVIEW")


def locks_existing_table(cap: RevisionCapture, rec: RecordedOp) -> str | None:
    """The existing table ``rec`` takes a strong lock on, or None (new table, concurrent index, no DDL)."""
    if isinstance(rec.op, _DDL_OPS):
        if isinstance(rec.op, (ops.CreateIndexOp, ops.DropIndexOp)) and is_concurrent(rec):
            return None
        if isinstance(rec.op, ops.DropTableOp):
            return None if is_new_table(cap, rec) else rec.table
        return None if is_transient_table(cap, rec) else rec.table
    if isinstance(rec.op, ops.ExecuteSQLOp):
        created = tables_created_before(cap, rec)
        for stmt in cap.statements_of(rec):
            if stmt.kind in _RAW_DDL or (stmt.kind in ("CREATE INDEX", "DROP INDEX") and not _CONCURRENTLY.search(stmt.text)):
                table = next((t for t in stmt.tables if t not in created), None)
                if table:
                    return table
    return None


def alters_nothing(op: Any) -> bool:
    """An alter_column with no change alembic knows (a misspelt ``type=``): it emits no SQL."""
    return isinstance(op, ops.AlterColumnOp) and op.modify_type is None and op.modify_nullable is None and \
        op.modify_server_default is False and not op.modify_name and op.modify_comment is False


def foreign_key_name(fk: Any) -> str | None:
    """The name of a ``sa.ForeignKey`` (given on it, or on the constraint it builds), None when unnamed."""
    return fk.name or (fk.constraint.name if fk.constraint is not None else None)


#: Alembic operations that take ACCESS EXCLUSIVE on their table in PostgreSQL (ALTER TABLE's lock; DROP INDEX's).
_ACCESS_EXCLUSIVE = (ops.AddColumnOp, ops.DropColumnOp, ops.AlterColumnOp, ops.DropConstraintOp, ops.DropIndexOp,
                     ops.CreateUniqueConstraintOp, ops.CreateCheckConstraintOp, ops.CreatePrimaryKeyOp, ops.RenameTableOp,
                     ops.DropTableOp)


def locked_earlier(cap: RevisionCapture, rec: RecordedOp, table: str) -> int | None:
    """The line of an earlier statement of ``rec``'s transaction that already holds ACCESS EXCLUSIVE on ``table``
    (locks are held until the transaction ends): an instant statement on it after that blocks nobody new."""
    if rec.in_autocommit_block:
        return None
    held = None
    for r in cap.ops(rec.phase)[: rec.index]:
        if _ends_transaction(cap, r):
            held = None  # alembic commits before an autocommit block, and a COMMIT sent by hand: the lock went
        elif _takes_access_exclusive(cap, r, table):
            held = held or r.line
    return held


def locked_later(cap: RevisionCapture, rec: RecordedOp, table: str) -> int | None:
    """The line of a later statement of ``rec``'s transaction that takes ACCESS EXCLUSIVE on ``table`` (a drop or
    alter of a column): the transaction waits for that lock anyway, so an instant statement before it that takes
    the same lock adds no wait of its own."""
    if rec.in_autocommit_block:
        return None
    for r in cap.ops(rec.phase)[rec.index + 1:]:
        if _ends_transaction(cap, r):
            return None
        another_index = isinstance(r.op, ops.DropIndexOp) or any(s.kind == "DROP INDEX" for s in cap.statements_of(r))
        if _takes_access_exclusive(cap, r, table) and not another_index:  # (two index drops still wait, each)
            return r.line
    return None


def after_commit(cap: RevisionCapture, rec: RecordedOp) -> int | None:
    """The line of a COMMIT the revision sends itself before ``rec`` in its phase (``op.execute("COMMIT")``), with no
    BEGIN since: what follows runs outside the migration's transaction (commit-in-migration reports the boundary)."""
    line = None
    for r in cap.ops(rec.phase)[: rec.index]:
        for s in cap.statements_of(r):
            m = TRANSACTION_CONTROL.match(s.text)
            verb = m.group(1).upper() if m else ""
            if verb in ("COMMIT", "END"):
                line = r.line
            elif verb == "BEGIN" or verb.startswith("START"):
                line = None
    return line


#: A statement that ends or starts a transaction by hand (commit-in-migration reports them; what follows a COMMIT
#: runs outside the migration's transaction).
TRANSACTION_CONTROL = re.compile(r"^\s*(COMMIT|END|ROLLBACK|BEGIN|START\s+TRANSACTION)\b", re.IGNORECASE)


def _ends_transaction(cap: RevisionCapture, r: RecordedOp) -> bool:
    kinds = [s.kind for s in cap.statements_of(r)]
    return r.in_autocommit_block or "TRANSACTION" in kinds or "COMMIT" in kinds


def _takes_access_exclusive(cap: RevisionCapture, r: RecordedOp, table: str) -> bool:
    if isinstance(r.op, _ACCESS_EXCLUSIVE) and not (isinstance(r.op, ops.DropIndexOp) and is_concurrent(r)):
        return r.table == table
    return isinstance(r.op, ops.ExecuteSQLOp) and locks_existing_table(cap, r) == table and \
        any(s.kind in ("ALTER TABLE", "DROP INDEX", "LOCK", "DROP TABLE", "DROP VIEW", "DROP MATVIEW") for s in cap.statements_of(r))


def name_taken_again(cap, rec) -> bool:
    """A table of the old name exists again by the end of the phase (created, or a copy renamed to it): the table
    was moved aside to be rebuilt (SQLite's re-creation by hand), and the running application's name still works."""
    if any(r.index > rec.index and (
            (isinstance(r.op, ops.CreateTableOp) and r.op.table_name == rec.table)
            or (isinstance(r.op, ops.RenameTableOp) and r.op.new_table_name == rec.table)) for r in cap.ops(rec.phase)):
        return True
    # the phase may have stopped recording (a data read) before its create_table: the source still says it
    from db_migrate.capture.source import created_after, parsed

    tree = parsed(cap.source)
    return tree is not None and rec.line is not None and rec.table in created_after(tree, rec.phase, rec.line)
