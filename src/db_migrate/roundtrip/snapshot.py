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

:class:`Snapshots` takes both again and again on one connection (a roundtrip
takes five per revision) and, on PostgreSQL, reflects and reads only the
tables whose catalog fingerprint or row hash is new.
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
    names = [n for n in insp.get_table_names() if n not in exclude]
    out: Schema = {}
    for part in _reflect_tables(insp, conn.dialect, names).values():
        out.update(part)
    out.update(_extras(insp, conn.dialect))
    return out


def _reflect_tables(insp: Any, dialect: Any, names: list[str]) -> dict[str, Schema]:
    """Each named table's part of a snapshot (its columns, keys, indexes, constraints), by table."""
    if not names:
        return {}
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
    parts: dict[str, Schema] = {}
    for (_, table), cols in columns.items():
        out = parts[table] = {f"table {table}": {}}
        for c in cols:
            default = c.get("default")
            out[f"column {table}.{c['name']}"] = {
                "type": _type(c["type"], dialect),
                "nullable": bool(c.get("nullable")),
                "default": None if default is None else str(default),
            }
    for (_, table), pk in pks.items():
        if pk and pk.get("constrained_columns"):
            parts[table][f"primary key {table}"] = {"columns": _cols(pk["constrained_columns"])}
    for (_, table), items in fks.items():
        for fk in items:
            ident = fk.get("name") or f"({_cols(fk['constrained_columns'])})"
            opts = fk.get("options") or {}
            parts[table][f"foreign key {table}.{ident}"] = {
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
            parts[table][f"index {table}.{ident}"] = {"columns": cols, "unique": bool(ix.get("unique"))}
    for (_, table), items in uniques.items():
        for uq in items:
            ident = uq.get("name") or f"({_cols(uq['column_names'])})"
            parts[table][f"unique constraint {table}.{ident}"] = {"columns": _cols(uq["column_names"])}
    for (_, table), items in checks.items():
        for ck in items:
            ident = ck.get("name") or f"({' '.join(str(ck.get('sqltext', '')).split())})"
            parts[table][f"check constraint {table}.{ident}"] = {"sqltext": " ".join(str(ck.get("sqltext", "")).split())}
    return parts


def _extras(insp: Any, dialect: Any) -> Schema:
    """The schema-level objects of a snapshot: PostgreSQL enums and sequences."""
    out: Schema = {}
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
    return {table: _table_data(conn, schema, table) for table in tables_of(schema)}


def _table_data(conn: Any, schema: Schema, table: str) -> dict[str, Any]:
    result = conn.exec_driver_sql(f"SELECT * FROM {conn.dialect.identifier_preparer.quote(table)}")
    names = list(result.keys())
    rows = result.fetchmany(_ROW_LIMIT)
    result.close()
    pk = [c for c in primary_key(schema, table) if c in names]
    idx = [names.index(c) for c in pk]
    return {
        "pk": pk,
        "columns": names,
        "rows": [tuple(_norm(v) for v in row) for row in rows],
        "keys": [tuple(_norm(row[i]) for i in idx) for row in rows] if pk else None,
    }


# --------------------------------------------------------------------------- repeated snapshots

# One row per table (name, fingerprint of its columns, constraints and indexes),
# then the schema-wide objects: enum and domain types (their changes can alter
# how columns reflect) and sequences.  Everything is rendered through ROW/array
# text output, which quotes and marks NULLs, so different catalogs never render
# alike; names and definitions only, no OIDs, so a dropped and re-created table
# fingerprints as before.  Table scope = SQLAlchemy's get_table_names(): kinds
# r/p, not temporary, visible on the search path, not in pg_catalog.
_PG_FINGERPRINTS = """
SELECT 'table', c.relname, md5(ROW(
  (SELECT array_agg(ROW(a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                        a.attidentity, a.attgenerated, co.collname, pg_get_expr(d.adbin, d.adrelid))::text
                    ORDER BY a.attnum)
     FROM pg_attribute a
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     LEFT JOIN pg_collation co ON co.oid = a.attcollation
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT array_agg(ROW(k.conname, k.contype, pg_get_constraintdef(k.oid))::text ORDER BY k.conname, k.contype)
     FROM pg_constraint k WHERE k.conrelid = c.oid),
  (SELECT array_agg(ROW(i.relname, pg_get_indexdef(x.indexrelid))::text ORDER BY i.relname)
     FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = c.oid)
)::text)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' AND pg_table_is_visible(c.oid) AND n.nspname <> 'pg_catalog'
UNION ALL
SELECT 'types', NULL, md5(coalesce((
  SELECT array_agg(ROW(n.nspname, t.typname, t.typtype, pg_type_is_visible(t.oid),
                       format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault,
                       (SELECT collname FROM pg_collation WHERE oid = t.typcollation),
                       (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid),
                       (SELECT array_agg(ROW(k.conname, pg_get_constraintdef(k.oid))::text ORDER BY k.conname)
                          FROM pg_constraint k WHERE k.contypid = t.oid))::text
                   ORDER BY n.nspname, t.typname)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
   WHERE t.typtype IN ('e', 'd') AND n.nspname NOT IN ('pg_catalog', 'information_schema'))::text, ''))
UNION ALL
SELECT 'sequences', NULL, md5(coalesce((
  SELECT array_agg(c.relname ORDER BY c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind = 'S' AND pg_table_is_visible(c.oid) AND n.nspname <> 'pg_catalog')::text, ''))
"""


class Snapshots:
    """Schema and data snapshots of one connection, taken again and again as migrations step.

    Same results as :func:`take_schema` / :func:`take_data`, cheaper when most
    tables do not change between snapshots (a roundtrip touches one or two
    tables per step).  On PostgreSQL 12+: one catalog query fingerprints every
    table (columns, types, defaults, constraints, indexes) and the enum/domain
    types, and only tables with a fingerprint not seen before are reflected;
    the others reuse their earlier reflection (so after a downgrade that undid
    its upgrade exactly, nothing is reflected at all).  Likewise one query
    hashes the rows of every table, and only tables whose rows or shape are new
    are read.  Elsewhere: plain :func:`take_schema` / :func:`take_data`.
    """

    def __init__(self, conn: Any, *, exclude: set[str] = frozenset()) -> None:
        dialect = conn.dialect
        self.conn, self.exclude = conn, set(exclude)
        # attgenerated (fingerprint query) exists from PostgreSQL 12 on
        self.incremental = dialect.name == "postgresql" and tuple(dialect.server_version_info or (0,)) >= (12,)
        self._parts: dict[tuple[str, str], Schema] = {}  # (table, types fp, table fp) -> its part of a snapshot
        self._extras: dict[tuple[str, str], Schema] = {}  # (types fp, sequences fp) -> enums and sequences
        self._rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}  # (table key, rows hash) -> its data
        self._rows_used: list[set[tuple[str, str, str, str]]] = []  # keys of the last two data() calls
        self._last: Schema | None = None  # the last schema() result and its tables' cache keys
        self._last_keys: dict[str, tuple[str, str, str]] = {}

    def schema(self) -> Schema:
        """The schema now (as :func:`take_schema`)."""
        if not self.incremental:
            return take_schema(self.conn, exclude=self.exclude)
        from sqlalchemy import inspect

        tables: dict[str, str] = {}
        globals_: dict[str, str] = {}
        for kind, name, fp in self.conn.exec_driver_sql(_PG_FINGERPRINTS):
            if kind == "table":
                if name not in self.exclude:
                    tables[name] = fp
            else:
                globals_[kind] = fp
        keys = {t: (t, globals_["types"], fp) for t, fp in tables.items()}
        extras_key = (globals_["types"], globals_["sequences"])
        missing = [t for t, k in keys.items() if k not in self._parts]
        if missing or extras_key not in self._extras:
            insp = inspect(self.conn)
            for table, part in _reflect_tables(insp, self.conn.dialect, missing).items():
                self._parts[keys[table]] = part
            if extras_key not in self._extras:
                self._extras[extras_key] = _extras(insp, self.conn.dialect)
        out: Schema = {}
        for table in sorted(keys):
            out.update(self._parts[keys[table]])
        out.update(self._extras[extras_key])
        self._last, self._last_keys = out, keys
        return out

    def data(self, schema: Schema) -> Data:
        """Every row of every table of ``schema`` (as :func:`take_data`); ``schema``: the last :meth:`schema`."""
        if not self.incremental or schema is not self._last:
            return take_data(self.conn, schema)
        tables = tables_of(schema)
        if not tables:
            return {}
        q = self.conn.dialect.identifier_preparer.quote
        # ROW text quotes and marks NULLs: equal hashes mean equal multisets of rows
        sql = " UNION ALL ".join(
            f"SELECT {i}, md5(coalesce(string_agg(ROW(r.*)::text, E'\\n' ORDER BY ROW(r.*)::text), '')) FROM {q(t)} AS r"
            for i, t in enumerate(tables)
        )
        hashes = {tables[i]: h for i, h in self.conn.exec_driver_sql(sql)}
        out: Data = {}
        used = set()
        for table in tables:
            key = (*self._last_keys[table], hashes[table])
            if key not in self._rows:
                self._rows[key] = _table_data(self.conn, schema, table)
            out[table] = self._rows[key]
            used.add(key)
        # rows are bulky: keep only what the last two snapshots hold (a step compares with the one before)
        self._rows_used = [*self._rows_used[-1:], used]
        keep = set().union(*self._rows_used)
        self._rows = {k: v for k, v in self._rows.items() if k in keep}
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
