"""What autogenerate does not compare, as operations it writes: alembic comparators and renderers.

Alembic's autogenerate leaves out PostgreSQL enum values, server defaults
(while env.py keeps ``compare_server_default`` off) and named CHECK
constraints the database lacks.  :func:`install` registers comparators for
them through alembic's public extension points
(``alembic.autogenerate.comparators.dispatch_for`` and
``alembic.autogenerate.renderers.dispatch_for``), so that they run inside
alembic's own comparison: generate_migration writes the operations into the
revision, with downgrades from each operation's ``reverse()``, and
check_heads' drift check counts them as drift.  Nothing edits rendered text.

The rendered code is plain alembic (``op.execute``, ``op.alter_column``,
``op.create_check_constraint``): a revision never needs db-migrate to run.

* Enum values (PostgreSQL native enums): added values become
  ``ALTER TYPE ... ADD VALUE ... BEFORE/AFTER`` inside
  ``op.get_context().autocommit_block()`` (PostgreSQL cannot use a value added
  in the same transaction); a value replaced at the same position becomes
  ``ALTER TYPE ... RENAME VALUE``; anything else (values removed or reordered)
  recreates the type and converts each column with a ``USING`` cast, which
  fails on rows holding a removed value: data-dependent, said in a comment of
  the revision; review and preflight decide.  MySQL ``ENUM``/``SET`` columns
  are column types: alembic's ``compare_type`` sees ENUM's values
  (``alter_column`` with the new type), not SET's: those are added here.
* Server defaults: compared with the dialect's own
  ``impl.compare_server_default`` (what ``compare_server_default=True``
  would do) and written as ``alter_column(server_default=...)``.
* CHECK constraints named in the models and missing from the database:
  ``create_check_constraint`` (a CHECK whose text changed has no reliable
  comparison: reflected text is normalised by the server).
* Computed columns whose expression changed have no faithful operation
  (alembic only warns): :func:`notes` says what to write.

Registration is process-wide; it is done in the worker of a generate or drift
job only (the job's process ends with the job).
"""

from __future__ import annotations

from typing import Any

NOTES_KEY = "db_migrate_notes"
"""Key in the migration context's opts where comparators leave notes for the caller (what no operation can express)."""

_installed = False


def install() -> None:
    """Register the comparators and renderers with alembic (idempotent)."""
    global _installed
    if _installed:
        return
    from alembic.autogenerate import comparators, renderers
    from alembic.util import DispatchPriority

    comparators.dispatch_for("schema", qualifier="postgresql")(_guarded("enum values", _compare_enums))
    comparators.dispatch_for("table", priority=DispatchPriority.LAST)(
        _guarded("server defaults, CHECK constraints and computed columns", _compare_table))
    renderers.dispatch_for(_op_class())(_render_alter_enum)
    _installed = True


def notes(migration_context) -> list[dict[str, Any]]:
    """What the comparators found but could not express as an operation: dicts with rule, severity, table, column,
    message and fix (the keyword arguments of a :class:`~db_migrate.verdict.Finding`)."""
    return list(migration_context.opts.get(NOTES_KEY, ()))


def _note(autogen_context, **kw: Any) -> None:
    autogen_context.migration_context.opts.setdefault(NOTES_KEY, []).append(kw)


def _savepoint(connection):
    """A savepoint on PostgreSQL, where a failed statement aborts the transaction; nothing elsewhere
    (MySQL and SQLite carry on after a failed statement, and pysqlite's savepoints need care)."""
    import contextlib

    return connection.begin_nested() if connection.dialect.name == "postgresql" else contextlib.nullcontext()


def _guarded(what: str, comparator):
    """Our comparators never break autogenerate: a failure becomes a note (what was not compared, and why).

    On PostgreSQL each call runs in a savepoint, so a failed read does not abort the comparison's transaction.
    """
    import functools

    @functools.wraps(comparator)
    def run(autogen_context, *args):
        try:
            with _savepoint(autogen_context.connection):
                return comparator(autogen_context, *args)
        except Exception as e:  # a server without a catalogue we read, an odd type: say so, carry on
            table = args[2] if len(args) > 2 and isinstance(args[2], str) else None
            _note(autogen_context, rule="blind-spot-not-compared", severity="warning", table=table, column=None,
                  message=f"db-migrate could not compare {what}" + (f" of {table}" if table else "")
                  + f" ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                  "autogenerate does not compare them either.",
                  fix="Compare them by hand, and write what differs into the revision.")
            return _continue()

    return run


def _continue():
    from alembic.util import PriorityDispatchResult

    return PriorityDispatchResult.CONTINUE


# -- PostgreSQL enum values ----------------------------------------------------------------------------

_OP_CLASS = None


def _op_class():
    """The AlterEnumOp class (built on first use so that importing this module does not import alembic)."""
    global _OP_CLASS
    if _OP_CLASS is not None:
        return _OP_CLASS
    from alembic.operations.ops import MigrateOperation

    class AlterEnumOp(MigrateOperation):
        """Change a PostgreSQL enum type's values from ``old`` to ``new``.

        ``columns`` are (schema, table, column, default SQL or None) of every
        column of the type, converted when the type must be recreated.
        """

        def __init__(self, name: str, schema: str | None, old: list[str], new: list[str], columns: list[tuple]) -> None:
            self.name, self.schema, self.old, self.new, self.columns = name, schema, list(old), list(new), list(columns)
            self.table_name = None

        def reverse(self):
            return AlterEnumOp(self.name, self.schema, self.new, self.old, self.columns)

        def to_diff_tuple(self):
            return ("alter_enum", self.schema, self.name, tuple(self.old), tuple(self.new))

    _OP_CLASS = AlterEnumOp
    return AlterEnumOp


def enum_change(old: list[str], new: list[str]) -> tuple[str, list]:
    """Classify an enum's change: ("add", [(value, "BEFORE"|"AFTER", anchor)]), ("rename", [(old, new)]) or ("recreate", removed)."""
    if all(v in new for v in old) and [v for v in new if v in old] == old and old:
        steps = []
        for i, v in enumerate(new):
            if v in old:
                continue
            steps.append((v, "AFTER", new[i - 1]) if i > 0 else (v, "BEFORE", new[1]))
        return "add", steps
    if len(old) == len(new):
        pairs = [(a, b) for a, b in zip(old, new) if a != b]
        if pairs and all(a not in new and b not in old for a, b in pairs):
            return "rename", pairs
    return "recreate", [v for v in old if v not in new]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _render_alter_enum(autogen_context, op) -> list[str]:
    prep = autogen_context.dialect.identifier_preparer
    qname = (prep.quote_schema(op.schema) + "." if op.schema else "") + prep.quote(op.name)
    kind, detail = enum_change(op.old, op.new)
    if kind == "add":
        lines = ["with op.get_context().autocommit_block():  # an added enum value is usable only once committed"]
        lines += [f"    op.execute({f'ALTER TYPE {qname} ADD VALUE IF NOT EXISTS {_literal(v)} {where} {_literal(anchor)}'!r})"
                  for v, where, anchor in detail]
        return [*lines, ""]
    if kind == "rename":
        return [f"op.execute({f'ALTER TYPE {qname} RENAME VALUE {_literal(a)} TO {_literal(b)}'!r})" for a, b in detail]
    old_name = op.name + "_old"
    qold = (prep.quote_schema(op.schema) + "." if op.schema else "") + prep.quote(old_name)
    labels = ", ".join(_literal(v) for v in op.new)
    removed = ", ".join(map(repr, detail)) or "its old order"
    lines = [
        f"# Recreates enum type {op.name} without {removed}: DATA-DEPENDENT, the USING cast fails on rows "
        "holding a removed value (move them first).",
        f"op.execute({f'ALTER TYPE {qname} RENAME TO {prep.quote(old_name)}'!r})",
        f"op.execute({f'CREATE TYPE {qname} AS ENUM ({labels})'!r})",
    ]
    for schema, table, column, default in op.columns:
        qt = (prep.quote_schema(schema) + "." if schema else "") + prep.quote(table)
        qc = prep.quote(column)
        if default:
            lines.append(f"op.execute({f'ALTER TABLE {qt} ALTER COLUMN {qc} DROP DEFAULT'!r})")
        lines.append(f"op.execute({f'ALTER TABLE {qt} ALTER COLUMN {qc} TYPE {qname} USING {qc}::text::{qname}'!r})")
        if default:
            lines.append(f"op.execute({f'ALTER TABLE {qt} ALTER COLUMN {qc} SET DEFAULT {default}'!r})")
    lines.append(f"op.execute({f'DROP TYPE {qold}'!r})")
    return lines


def _columns_of_type(connection, schema: str | None, name: str, default_schema: str | None) -> list[tuple]:
    """(schema or None, table, column, default SQL or None) of every table column of the enum type, from the catalogue.

    From the database, not the models: a column the models no longer declare still holds the type, and
    the old type cannot be dropped while any column uses it.
    """
    import sqlalchemy as sa

    rows = connection.execute(sa.text(
        "SELECT n.nspname, c.relname, a.attname, pg_get_expr(d.adbin, d.adrelid) "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.atttypid = to_regtype(:t) AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY 1, 2, a.attnum"
    ), {"t": f'"{schema}"."{name}"' if schema else f'"{name}"'}).all()
    return [(None if s == default_schema else s, table, column, default) for s, table, column, default in rows]


def _model_enums(autogen_context) -> dict[tuple[str | None, str], list[str]]:
    """(schema, type name) -> values, for every native named enum the models use."""
    import sqlalchemy as sa

    out: dict = {}
    metadatas = autogen_context.metadata
    for md in (metadatas if isinstance(metadatas, (list, tuple)) else [metadatas]):
        if md is None:
            continue
        for table in md.tables.values():
            for col in table.columns:
                t = col.type
                if isinstance(t, sa.Enum) and t.native_enum and t.name:
                    out.setdefault((t.schema or table.schema, t.name), list(t.enums))
    return out


def _compare_enums(autogen_context, upgrade_ops, schemas) -> Any:
    """Schema comparator (PostgreSQL): an AlterEnumOp for each native enum whose values differ from the database's."""
    insp = autogen_context.inspector
    wanted = _model_enums(autogen_context)
    if not wanted:
        return _continue()
    have: dict[tuple[str | None, str], list[str]] = {}
    default_schema = autogen_context.dialect.default_schema_name
    try:
        for e in insp.get_enums(schema="*"):
            s = e.get("schema")
            have[(None if s in (None, default_schema) else s, e["name"])] = list(e["labels"])
    except NotImplementedError:
        return _continue()
    AlterEnumOp = _op_class()
    for (schema, name), values in sorted(wanted.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        key = (None if schema in (None, default_schema) else schema, name)
        old = have.get(key)
        if old is None or old == values:
            continue  # a new type: create_table / add_column create it
        columns = _columns_of_type(autogen_context.connection, schema, name, default_schema)
        upgrade_ops.ops.append(AlterEnumOp(name, schema, old, values, columns))
    return _continue()


# -- server defaults, CHECK constraints, computed columns ------------------------------------------------


def _compare_table(autogen_context, modify_table_ops, schema, tname, conn_table, metadata_table) -> Any:
    """Table comparator: server defaults (while compare_server_default is off), missing named CHECKs, computed notes."""
    if conn_table is None or metadata_table is None:
        return _continue()
    mc = autogen_context.migration_context
    if not mc.opts.get("compare_server_default", False):
        _compare_server_defaults(autogen_context, modify_table_ops, schema, tname, conn_table, metadata_table)
    if autogen_context.dialect.name in ("mysql", "mariadb"):
        _compare_mysql_sets(modify_table_ops, schema, tname, conn_table, metadata_table)
    _compare_checks(autogen_context, modify_table_ops, schema, tname, metadata_table)
    _compare_computed(autogen_context, tname, conn_table, metadata_table)
    return _continue()


def _compare_server_defaults(autogen_context, modify_table_ops, schema, tname, conn_table, metadata_table) -> None:
    import sqlalchemy as sa

    impl = autogen_context.migration_context.impl
    for mcol in metadata_table.columns:
        if mcol.name not in conn_table.c or mcol.primary_key:
            continue
        ccol = conn_table.c[mcol.name]
        mdef, cdef = mcol.server_default, ccol.server_default
        if mdef is None and cdef is None:
            continue
        if not isinstance(mdef, (sa.DefaultClause, type(None))) or not isinstance(cdef, (sa.DefaultClause, type(None))):
            continue  # Computed / Identity: not a default an alter_column can change
        rendered_m = _default_sql(mdef, autogen_context.dialect)
        rendered_c = cdef.arg.text if cdef is not None and hasattr(cdef.arg, "text") else (cdef.arg if cdef else None)
        if rendered_c and str(rendered_c).startswith("nextval("):
            continue
        try:
            differs = impl.compare_server_default(ccol, mcol, rendered_m, rendered_c)
        except Exception:
            differs = rendered_m != rendered_c
        if differs and None not in (rendered_m, rendered_c) and autogen_context.dialect.name != "postgresql":
            # PostgreSQL's impl asks the server; the others compare text (false vs '0', now() vs
            # current_timestamp()): ask the server too, and write nothing where it cannot tell
            differs = _values_differ(autogen_context.connection, mdef, rendered_m, str(rendered_c))
        if not differs:
            continue
        existing = _column_op(modify_table_ops, schema, tname, ccol)
        existing.modify_server_default = mdef
        existing.existing_server_default = cdef


def _column_op(modify_table_ops, schema, tname, ccol):
    """The AlterColumnOp of ``ccol`` in ``modify_table_ops`` (alembic's own, when it wrote one), else a new one."""
    from alembic.operations import ops

    for o in modify_table_ops.ops:
        if isinstance(o, ops.AlterColumnOp) and o.column_name == ccol.name:
            return o
    o = ops.AlterColumnOp(tname, ccol.name, schema=schema, existing_type=ccol.type, existing_nullable=ccol.nullable,
                          existing_server_default=ccol.server_default)
    modify_table_ops.ops.append(o)
    return o


def _compare_mysql_sets(modify_table_ops, schema, tname, conn_table, metadata_table) -> None:
    """MySQL SET columns whose values changed (alembic compares ENUM values, not SET's): alter_column with the new type."""
    from sqlalchemy.dialects.mysql import SET

    for mcol in metadata_table.columns:
        ccol = conn_table.c.get(mcol.name)
        if ccol is None or not isinstance(mcol.type, SET) or not isinstance(ccol.type, SET):
            continue
        if list(mcol.type.values) != list(ccol.type.values):
            op = _column_op(modify_table_ops, schema, tname, ccol)
            op.modify_type, op.existing_type = mcol.type, ccol.type


def _values_differ(connection, mdef, rendered_m: str, rendered_c: str) -> bool:
    """Whether the server evaluates the two default expressions to different values (False when it cannot tell)."""
    import sqlalchemy as sa

    model_sql = _literal(rendered_m) if isinstance(mdef.arg, str) else rendered_m
    try:
        return not connection.execute(sa.text(f"SELECT ({model_sql}) = ({rendered_c})")).scalar()
    except Exception:  # not PostgreSQL (see the caller): a failed statement leaves the transaction usable
        return False


def _default_sql(default, dialect) -> str | None:
    if default is None:
        return None
    arg = default.arg
    if isinstance(arg, str):
        return arg
    return str(arg.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _compare_checks(autogen_context, modify_table_ops, schema, tname, metadata_table) -> None:
    import sqlalchemy as sa
    from alembic.operations import ops

    wanted = [c for c in metadata_table.constraints if isinstance(c, sa.CheckConstraint) and isinstance(c.name, str)
              and not getattr(c, "_type_bound", False)]
    if not wanted:
        return
    try:
        have = {c["name"] for c in autogen_context.inspector.get_check_constraints(tname, schema=schema)}
    except NotImplementedError:
        return
    already = {getattr(o, "constraint_name", None) for o in modify_table_ops.ops}
    for c in wanted:
        if c.name in have or c.name in already:
            continue
        modify_table_ops.ops.append(ops.CreateCheckConstraintOp.from_constraint(c))


def _compare_computed(autogen_context, tname, conn_table, metadata_table) -> None:
    import sqlalchemy as sa

    for mcol in metadata_table.columns:
        if mcol.name not in conn_table.c or not isinstance(mcol.computed, sa.Computed):
            continue
        ccomp = conn_table.c[mcol.name].computed
        want = str(mcol.computed.sqltext.compile(dialect=autogen_context.dialect))
        have = str(ccomp.sqltext) if ccomp is not None else None
        if have is None or _squash(want) != _squash(have):
            _note(
                autogen_context, rule="computed-not-generated", severity="error", table=tname, column=mcol.name,
                message=f"The computed expression of {tname}.{mcol.name} differs from the database's "
                f"({have or 'not computed'} there, {want} in the model); alembic cannot alter a computed column.",
                fix=f'Write it by hand: op.drop_column("{tname}", "{mcol.name}") then op.add_column("{tname}", '
                f'sa.Column("{mcol.name}", <type>, sa.Computed("{want}"))), and the reverse in downgrade() '
                "(a computed column holds no data of its own, so nothing is lost).",
            )


def _squash(sql: str) -> str:
    return "".join(ch for ch in sql.lower() if ch not in " ()\"'") if sql else ""
