"""Schema and data snapshots, and their differences by name.

A schema snapshot is a flat ``{key: {attribute: value}}`` dict built with the
SQLAlchemy inspector (multi-table reflection: a few queries for all tables).
Keys name things the way a person would: ``table persons``, ``column
persons.email``, ``index persons.ix_persons_name``, ``foreign key
assignments.fk_x``, ``enum mood``, ``sequence s``.  Unnamed constraints are
keyed by their columns.  Pure data: it pickles and compares with ``==``.

A data snapshot holds, per table, the primary-key columns and each row's
values (as ``repr`` strings) keyed by primary key; tables without a primary key
are compared per column as multisets.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

Schema = dict[str, dict[str, Any]]
Data = dict[str, dict[str, Any]]

_ROW_LIMIT = 5000  # seeded tables hold ~rows; never pull a huge table into memory


def _cols(names: list[str] | None) -> str:
    return ", ".join(n for n in (names or []) if n is not None)


def _type(t: Any, dialect: Any) -> str:
    try:
        return str(t.compile(dialect=dialect))
    except Exception:
        return repr(t)


def take_schema(conn: Any, *, exclude: set[str] = frozenset()) -> Schema:
    """Reflect the schema visible on ``conn`` (default schema), except tables in ``exclude``."""
    from sqlalchemy import inspect

    insp = inspect(conn)
    dialect = conn.dialect
    names = [n for n in insp.get_table_names() if n not in exclude]
    out: Schema = {}
    if not names:
        return _extras(insp, dialect, out)
    kw = {"filter_names": names}
    columns = insp.get_multi_columns(**kw)
    pks = insp.get_multi_pk_constraint(**kw)
    fks = insp.get_multi_foreign_keys(**kw)
    indexes = insp.get_multi_indexes(**kw)
    uniques = insp.get_multi_unique_constraints(**kw)
    try:
        checks = insp.get_multi_check_constraints(**kw)
    except NotImplementedError:
        checks = {}
    for (_, table), cols in columns.items():
        out[f"table {table}"] = {}
        for c in cols:
            default = c.get("default")
            out[f"column {table}.{c['name']}"] = {
                "type": _type(c["type"], dialect),
                "nullable": bool(c.get("nullable")),
                "default": None if default is None else str(default),
            }
    for (_, table), pk in pks.items():
        if pk and pk.get("constrained_columns"):
            out[f"primary key {table}"] = {"columns": _cols(pk["constrained_columns"])}
    for (_, table), items in fks.items():
        for fk in items:
            ident = fk.get("name") or f"({_cols(fk['constrained_columns'])})"
            opts = fk.get("options") or {}
            out[f"foreign key {table}.{ident}"] = {
                "columns": _cols(fk["constrained_columns"]),
                "references": f"{fk['referred_table']}({_cols(fk['referred_columns'])})",
                "ondelete": opts.get("ondelete"),
                "onupdate": opts.get("onupdate"),
            }
    for (_, table), items in indexes.items():
        for ix in items:
            if ix.get("duplicates_constraint"):
                continue  # reported as the unique constraint it backs
            ident = ix.get("name") or f"({_cols(ix['column_names'])})"
            cols = _cols(ix.get("column_names")) or _cols([str(e) for e in ix.get("expressions") or []])
            out[f"index {table}.{ident}"] = {"columns": cols, "unique": bool(ix.get("unique"))}
    for (_, table), items in uniques.items():
        for uq in items:
            ident = uq.get("name") or f"({_cols(uq['column_names'])})"
            out[f"unique constraint {table}.{ident}"] = {"columns": _cols(uq["column_names"])}
    for (_, table), items in checks.items():
        for ck in items:
            ident = ck.get("name") or f"({' '.join(str(ck.get('sqltext', '')).split())})"
            out[f"check constraint {table}.{ident}"] = {"sqltext": " ".join(str(ck.get("sqltext", "")).split())}
    return _extras(insp, dialect, out)


def _extras(insp: Any, dialect: Any, out: Schema) -> Schema:
    if dialect.name == "postgresql":
        for e in insp.get_enums():
            out[f"enum {e['name']}"] = {"values": ", ".join(e["labels"])}
        for s in insp.get_sequence_names():
            out[f"sequence {s}"] = {}
    return out


def tables_of(schema: Schema) -> list[str]:
    return sorted(k.split(" ", 1)[1] for k in schema if k.startswith("table "))


def primary_key(schema: Schema, table: str) -> list[str]:
    pk = schema.get(f"primary key {table}")
    return pk["columns"].split(", ") if pk else []


def take_data(conn: Any, schema: Schema) -> Data:
    """Every row of every table in ``schema`` (up to a limit), keyed by primary key."""
    q = conn.dialect.identifier_preparer.quote
    out: Data = {}
    for table in tables_of(schema):
        result = conn.exec_driver_sql(f"SELECT * FROM {q(table)}")
        names = list(result.keys())
        rows = result.fetchmany(_ROW_LIMIT)
        pk = [c for c in primary_key(schema, table) if c in names]
        idx = [names.index(c) for c in pk]
        out[table] = {
            "pk": pk,
            "columns": names,
            "rows": [tuple(_norm(v) for v in row) for row in rows],
            "keys": [tuple(_norm(row[i]) for i in idx) for row in rows] if pk else None,
        }
    return out


def _norm(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return repr(int(v))  # SQLite and MySQL hand booleans back as 0/1
    if isinstance(v, (bytes, memoryview)):
        return bytes(v).hex()
    return repr(v)


def row_count(data: Data, table: str) -> int:
    return len(data.get(table, {}).get("rows", []))


# --------------------------------------------------------------------------- differences

def diff_schema(before: Schema, after: Schema, *, extra: str = "exists only afterwards",
                missing: str = "is missing afterwards") -> list[str]:
    """What differs, by name: ``column persons.email type VARCHAR(255) -> VARCHAR(120)``.

    ``extra``/``missing`` phrase things present only after / only before.
    """
    out: list[str] = []
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key), after.get(key)
        if a is None:
            out.append(f"{key} {_describe(b)}{extra}")
        elif b is None:
            out.append(f"{key} {_describe(a)}{missing}")
        elif a != b:
            for attr in sorted(a.keys() | b.keys()):
                if a.get(attr) != b.get(attr):
                    out.append(f"{key} {attr} {_val(a.get(attr))} -> {_val(b.get(attr))}")
    return out


def describe_changes(before: Schema, after: Schema) -> list[str]:
    """The same differences as actions: ``added column t.x``, ``dropped index t.ix``, ``changed ...``."""
    out: list[str] = []
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key), after.get(key)
        if a is None:
            out.append(f"added {key}")
        elif b is None:
            out.append(f"dropped {key}")
        elif a != b:
            changes = ", ".join(f"{k} {_val(a.get(k))} -> {_val(b.get(k))}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k))
            out.append(f"changed {key} ({changes})")
    return out


def _describe(attrs: dict[str, Any] | None) -> str:
    if not attrs:
        return ""
    if "type" in attrs:
        return f"({attrs['type']}{'' if attrs.get('nullable', True) else ' NOT NULL'}) "
    if "columns" in attrs:
        return f"({attrs['columns']}) "
    return ""


def _val(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def diff_data(before: Data, after: Data) -> list[dict[str, Any]]:
    """Rows and values present before and gone or changed after: ``[{table, column, rows, message}]``.

    Only data that existed before is considered: columns and tables created
    afterwards are the migration's business, not a loss.
    """
    out: list[dict[str, Any]] = []
    for table, a in sorted(before.items()):
        n = len(a["rows"])
        if n == 0:
            continue
        b = after.get(table)
        if b is None:
            out.append({"table": table, "column": None, "rows": n, "message": f"table {table} and its {n} rows are gone"})
            continue
        a_cols, b_cols = a["columns"], b["columns"]
        if a["keys"] is not None and b["keys"] is not None and a["pk"] == b["pk"]:
            b_rows = dict(zip(b["keys"], b["rows"]))
            gone = 0
            changed: Counter[str] = Counter()
            for key, row in zip(a["keys"], a["rows"]):
                other = b_rows.get(key)
                if other is None:
                    gone += 1
                    continue
                for i, col in enumerate(a_cols):
                    if row[i] is None:
                        continue
                    j = b_cols.index(col) if col in b_cols else None
                    if j is None or other[j] != row[i]:
                        changed[col] += 1
            if gone:
                out.append({"table": table, "column": None, "rows": gone, "message": f"{gone} of {n} rows of {table} are gone"})
        else:
            changed = Counter()
            for i, col in enumerate(a_cols):
                va = Counter(r[i] for r in a["rows"] if r[i] is not None)
                if col not in b_cols:
                    vb: Counter[str | None] = Counter()
                else:
                    j = b_cols.index(col)
                    vb = Counter(r[j] for r in b["rows"])
                lost = sum((va - vb).values())
                if lost:
                    changed[col] = lost
        for col, k in sorted(changed.items()):
            what = "dropped with its values" if col not in b_cols else "lost or changed values"
            out.append({"table": table, "column": col, "rows": k, "message": f"column {table}.{col}: {what} in {k} of {n} rows"})
    return out
