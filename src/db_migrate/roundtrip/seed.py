"""Realistic seed rows for every table of a scratch database.

Tables are reflected (``MetaData.reflect``) and filled parents first
(``MetaData.sorted_tables``).  Values follow each column's type and the
constraints that bind it:

- every row gets its own value in each column (a value real rows need not
  repeat is never repeated: a later UNIQUE does not fail on ``name-0``
  twice), booleans and lists of allowed values aside;
- foreign keys point at rows actually inserted in the parent table (no orphans);
- nullable columns get some NULLs;
- values stay short and within ``String(n)`` and ``Numeric(p, s)`` (a later
  narrowing fails on real long values, not on invented ones);
- numbers are positive (most CHECK constraints are ``>= 0`` / ``> 0``);
- range types (``int4range``, ``tstzrange``...) get valid, non-overlapping ranges;
- a partitioned table (PostgreSQL) gets rows whose partition key routes to an
  existing partition (a value of a ``LIST`` partition, the lower bound of a
  ``RANGE`` one); its partitions are filled through it;
- CHECK constraints on one column are read: a list of allowed values
  (``col IN ('a', 'b')``, PostgreSQL's ``= ANY (ARRAY[...])``: a non-native
  ``sa.Enum``) is used as the column's values, a lower bound
  (``col > 5``, ``col >= 5``, ``col BETWEEN 5 AND 9``) lifts numbers above it;
- native enums (PostgreSQL ``ENUM``, MySQL ``ENUM``) take their own labels.

A batch the database refuses (a CHECK we cannot read, an exotic type) is
retried with plainer rows, then row by row keeping the rows it accepts; a
table left empty is reported with the reason.
"""

from __future__ import annotations

import math
import re
import uuid
import zlib
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from db_migrate.errors import brief

_BASE_DT = datetime(2024, 1, 1, 8, 0, 0)


def seed(conn: Any, rows: int, *, tables: list[str] | None = None, exclude: set[str] = frozenset()) -> dict[str, Any]:
    """Insert ``rows`` rows into each of ``tables`` (all when None). Returns ``{"seeded": {t: n}, "skipped": {t: why}}``."""
    from sqlalchemy import MetaData

    wanted = set(tables) if tables is not None else None
    routes, partitions = _partition_routes(conn)
    if wanted is not None:
        wanted -= partitions  # filled through their partitioned table
    exclude = set(exclude) | partitions
    md = MetaData()
    # the wanted tables; reflection follows their foreign keys to the parents they need rows of
    md.reflect(bind=conn, only=lambda name, _md: name not in exclude and (wanted is None or name in wanted))
    inserted: dict[str, list[dict[str, Any]]] = {}
    seeded: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for table in md.sorted_tables:
        if wanted is not None and table.name not in wanted:
            inserted[table.name] = _existing(conn, table)
            continue
        if rows <= 0:
            continue
        err = None
        for plain in (False, True):
            batch = _rows(table, rows, inserted, plain=plain, routes=routes.get(table.name, {}))
            if not batch:
                err = "no parent rows to reference"
                break
            try:
                inserted[table.name] = _insert(conn, table, batch)
                seeded[table.name] = len(batch)
                err = None
                break
            except Exception as e:
                err = brief(e)
            if not plain:
                continue
            # a rule we could not read refuses some rows, not all: keep the ones it accepts
            kept = _insert_each(conn, table, batch)
            if kept:
                inserted[table.name] = kept
                seeded[table.name] = len(kept)
                err = None
                break
        if err is not None:
            skipped[table.name] = err
    return {"seeded": seeded, "skipped": skipped}


def _existing(conn: Any, table: Any) -> list[dict[str, Any]]:
    """Rows already in a table we do not seed (so children can reference them)."""
    from sqlalchemy import select

    return [dict(r._mapping) for r in conn.execute(select(table).limit(1000))]


def _insert(conn: Any, table: Any, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert ``batch``; return the rows with generated primary keys filled in."""
    auto = table.autoincrement_column
    pg = conn.dialect.name == "postgresql"
    savepoint = conn.begin_nested() if pg else None  # a refused INSERT aborts a PostgreSQL transaction
    try:
        if auto is not None and auto.name not in batch[0]:
            if getattr(conn.dialect, "insert_executemany_returning_sort_by_parameter_order", False):
                res = conn.execute(table.insert().returning(auto, sort_by_parameter_order=True), batch)
                for row, (pk,) in zip(batch, res.all()):
                    row[auto.name] = pk
            else:
                for row in batch:
                    row[auto.name] = conn.execute(table.insert(), row).inserted_primary_key[0]
        else:
            conn.execute(table.insert(), batch)
    except BaseException:
        if savepoint is not None:
            savepoint.rollback()
        raise
    if savepoint is not None:
        savepoint.commit()
    return batch


def _insert_each(conn: Any, table: Any, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert row by row, keeping the rows the database accepts.

    (:func:`_insert` wraps each in a savepoint on PostgreSQL; elsewhere a refused
    statement leaves the transaction usable.)
    """
    kept = []
    for row in batch:
        try:
            kept += _insert(conn, table, [row])
        except Exception:
            continue
    return kept


_LITERAL = re.compile(r"'((?:[^']|'')*)'")
_BOUND = re.compile(r"(>=|>)\s*\(?\s*(-?\d+(?:\.\d+)?)")
_BETWEEN = re.compile(r"BETWEEN\s+\(?\s*(-?\d+(?:\.\d+)?)", re.I)


def check_rules(table: Any) -> dict[str, dict[str, Any]]:
    """What the table's one-column CHECK constraints allow: ``{column: {"values": [...]} | {"min": n, "strict": bool}}``."""
    from sqlalchemy import CheckConstraint

    out: dict[str, dict[str, Any]] = {}
    names = [c.name for c in table.columns]
    for cons in table.constraints:
        if not isinstance(cons, CheckConstraint):
            continue
        sql = str(getattr(cons.sqltext, "text", cons.sqltext))
        bare = _LITERAL.sub("''", sql)
        cols = [n for n in names if re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)|\"{re.escape(n)}\"", bare)]
        if len(cols) != 1:
            continue  # a rule over several columns: not guessed (row-by-row insertion keeps what passes)
        col = cols[0]
        if re.search(r"\bIN\s*\(|=\s*ANY\s*\(", bare, re.I) and " OR " not in bare.upper():
            values = [v.replace("''", "'") for v in _LITERAL.findall(sql)]
            if values:
                out[col] = {"values": values}
            continue
        m = _BETWEEN.search(bare) or _BOUND.search(bare)
        if m and " OR " not in bare.upper():
            groups = m.groups()
            strict = len(groups) == 2 and groups[0] == ">"
            out[col] = {"min": float(groups[-1]), "strict": strict}
    return out


def _unique_columns(table: Any) -> set[str]:
    out = {c.name for c in table.primary_key.columns}
    from sqlalchemy import UniqueConstraint

    for cons in table.constraints:
        if isinstance(cons, UniqueConstraint):
            out.update(c.name for c in cons.columns)
    for ix in table.indexes:
        if ix.unique:
            out.update(c.name for c in ix.columns)
    return out


def _alone_unique(table: Any) -> set[str]:
    """Columns that are unique on their own (a one-to-one foreign key caps the row count)."""
    from sqlalchemy import UniqueConstraint

    out: set[str] = set()
    sets = [list(table.primary_key.columns)]
    sets += [list(c.columns) for c in table.constraints if isinstance(c, UniqueConstraint)]
    sets += [list(ix.columns) for ix in table.indexes if ix.unique]
    for cols in sets:
        if len(cols) == 1:
            out.add(cols[0].name)
    return out


_PARTITIONS = (
    "SELECT p.relname, c.relname, pg_get_expr(c.relpartbound, c.oid), pg_get_partkeydef(p.oid) "
    "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
    "WHERE p.relkind = 'p' AND p.relnamespace = current_schema()::regnamespace"
)
_KEY = re.compile(r'^(LIST|RANGE)\s*\(\s*"?(\w+)"?\s*\)$', re.I)


def _partition_routes(conn: Any) -> tuple[dict[str, dict[str, dict[str, Any]]], set[str]]:
    """PostgreSQL: ``({partitioned table: {key column: {"values": [...]}}}, partition names)``.

    The values route a row to an existing partition: each ``LIST`` partition's
    values, each ``RANGE`` partition's lower bound (a ``DEFAULT`` partition takes
    anything: no rule then).  A key over several columns or an expression gets
    no rule (row-by-row insertion keeps what routes).
    """
    if conn.dialect.name != "postgresql":
        return {}, set()
    try:
        with conn.begin_nested():
            found = conn.exec_driver_sql(_PARTITIONS).all()
    except Exception:
        return {}, set()
    values: dict[str, list[str]] = {}
    keys: dict[str, str] = {}
    anything: set[str] = set()
    for parent, _child, bound, keydef in found:
        m = _KEY.match(keydef or "")
        if m is None:
            anything.add(parent)
            continue
        keys[parent] = m.group(2)
        if bound.strip().upper() == "DEFAULT":
            anything.add(parent)
        elif "FROM (" in bound.upper():
            lower = _LITERAL.findall(bound.split(" TO ")[0]) or re.findall(r"FROM \((-?\d+(?:\.\d+)?)\)", bound)
            values.setdefault(parent, []).extend(v.replace("''", "'") for v in lower[:1])
        else:
            values.setdefault(parent, []).extend(v.replace("''", "'") for v in _LITERAL.findall(bound))
            values.setdefault(parent, []).extend(re.findall(r"(?<!')\b(-?\d+)\b(?!')", _LITERAL.sub("", bound)))
    routes = {t: {keys[t]: {"values": v}} for t, v in values.items() if t not in anything and v}
    return routes, {child for _p, child, _b, _k in found}


def _rows(table: Any, n: int, inserted: dict[str, list[dict[str, Any]]], *, plain: bool,
          routes: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    unique = _unique_columns(table)
    alone = _alone_unique(table)
    checks = {**check_rules(table), **(routes or {})}
    auto = table.autoincrement_column
    fk_values: dict[str, list[Any]] = {}
    for fk_cons in table.foreign_key_constraints:
        parent = inserted.get(fk_cons.referred_table.name, [])
        if fk_cons.referred_table is table:
            parent = []  # self-reference: NULL where allowed
        cols = list(fk_cons.columns)
        refs = [e.column.name for e in fk_cons.elements]
        for col, ref in zip(cols, refs):
            fk_values[col.name] = [p.get(ref) for p in parent]
        if any(c.name in alone for c in cols) and parent:
            n = min(n, len(parent))
    out: list[dict[str, Any]] = []
    for i in range(n):
        row: dict[str, Any] = {}
        for col in table.columns:
            if auto is not None and col is auto:
                continue
            if col.name in fk_values:
                choices = fk_values[col.name]
                if not choices:
                    if not col.nullable:
                        return []
                    row[col.name] = None
                elif col.nullable and i % 5 == 4 and col.name not in unique:
                    row[col.name] = None
                else:
                    row[col.name] = choices[i % len(choices)]
                continue
            if col.nullable and (plain or (i % 5 == 4 and col.name not in table.primary_key.columns)):
                row[col.name] = None
                continue
            rule = checks.get(col.name)
            if rule and "values" in rule:
                values = rule["values"]
                if col.name in unique and i >= len(values):
                    return out  # no more distinct allowed values: fewer rows
                row[col.name] = _typed(col, values[(i if col.name in unique else i % 3) % len(values)])
                continue
            value = value_for(col, i, unique=col.name in unique, plain=plain)
            if rule and "min" in rule and isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
                # values start at 1: shifting by floor(bound) + 1 puts every one above the bound
                value = value + (math.floor(rule["min"]) + 1 if rule["min"] >= 0 else 0)
            row[col.name] = value
        out.append(row)
    return out


def value_for(col: Any, i: int, *, unique: bool, plain: bool = False) -> Any:
    """A value of ``col``'s type for row ``i``: distinct per row when ``unique``, else repeating."""
    import sqlalchemy as sa
    from sqlalchemy.sql.sqltypes import _AbstractInterval

    t = col.type
    k = i  # distinct in every column: invented duplicates would break a later UNIQUE that real rows pass
    name = col.name
    if isinstance(t, sa.Enum) and t.enums:
        return t.enums[k % len(t.enums)]
    if isinstance(t, sa.Boolean):
        return k % 2 == 0
    if isinstance(t, sa.Integer):
        return k + 1
    if isinstance(t, sa.Float):
        return k + 1.5
    if isinstance(t, sa.Numeric):
        scale = t.scale or 0
        whole = 10 ** ((t.precision or 10) - scale) - 1 if t.precision else 10**6
        v = Decimal(min(k + 1, whole))
        return v + Decimal("0.5") if scale and not unique else v
    if isinstance(t, sa.DateTime):
        v = _BASE_DT + timedelta(hours=k * 7)
        return v.replace(tzinfo=timezone.utc) if t.timezone else v
    if isinstance(t, sa.Date):
        return date(2024, 1, 1) + timedelta(days=k)
    if isinstance(t, sa.Time):
        return time(k % 24, (k * 7) % 60)
    if isinstance(t, (sa.Interval, _AbstractInterval)):  # postgresql.INTERVAL is not an sa.Interval
        return timedelta(hours=k + 1)
    if isinstance(t, sa.Uuid):
        # a table's own range: the same id in two tables is no value real (random) UUIDs hold, and a
        # migration copying rows from one into the other would fail on it
        table = getattr(getattr(col, "table", None), "name", "")
        v = uuid.UUID(int=(zlib.crc32(table.encode()) << 64) + k + 1)
        return v if t.as_uuid else str(v)
    if isinstance(t, sa.JSON):
        return {"seed": k, "tags": ["a", "b"]}
    if isinstance(t, sa.LargeBinary):
        return bytes([k % 256]) * 4
    if isinstance(t, sa.ARRAY):
        item = t.item_type
        return [k + 1] if isinstance(item, sa.Integer) else [f"{name}{k}"]
    if isinstance(t, sa.String):
        return _text(name, k, getattr(t, "length", None))
    type_name = type(t).__name__.upper()
    if type_name.endswith("RANGE") and not type_name.endswith("MULTIRANGE"):
        return _range(type_name, k)
    if type_name in ("INET", "CIDR"):
        return f"10.0.{k // 250}.{k % 250 + 1}"
    return _text(name, k, None)


def _text(name: str, k: int, length: int | None) -> str:
    if "email" in name:
        s = f"user{k}@example.org"
    else:
        s = f"{name[:12]}-{k}"
    if length and len(s) > length:
        s = str(k)[-length:]
    return s


def _range(type_name: str, k: int) -> Any:
    """A valid range of the type, disjoint from the other rows' (an exclusion constraint on overlap holds)."""
    from sqlalchemy.dialects.postgresql import Range

    if type_name.startswith(("INT4", "INT8")):
        return Range(k * 10 + 1, k * 10 + 6)
    if type_name.startswith("NUM"):
        return Range(Decimal(k * 10 + 1), Decimal(k * 10 + 6))
    if type_name.startswith("DATE"):
        return Range(date(2024, 1, 1) + timedelta(days=k * 10), date(2024, 1, 1) + timedelta(days=k * 10 + 5))
    tz = timezone.utc if type_name.startswith("TSTZ") else None
    start = _BASE_DT.replace(tzinfo=tz) + timedelta(hours=k * 10)
    return Range(start, start + timedelta(hours=5))


def _typed(col: Any, text: str) -> Any:
    """A value read from the schema's SQL (a CHECK list, a partition bound) as the column's Python type."""
    import sqlalchemy as sa

    t = col.type
    try:
        if isinstance(t, sa.Integer):
            return int(text)
        if isinstance(t, (sa.Float, sa.Numeric)) and not isinstance(t, sa.Integer):
            return Decimal(text) if isinstance(t, sa.Numeric) and t.asdecimal else float(text)
        if isinstance(t, sa.DateTime):
            v = datetime.fromisoformat(text)
            return v.replace(tzinfo=v.tzinfo or timezone.utc) if t.timezone else v.replace(tzinfo=None)
        if isinstance(t, sa.Date):
            return date.fromisoformat(text[:10])
    except ValueError:
        return text
    return text
