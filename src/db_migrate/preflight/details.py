"""The arguments of an alembic operation that preflight needs, for the review's ``Operation.detail``.

Runs in the review worker (where alembic's operation objects live); what it
returns is plain data: enum labels, a ``USING`` cast, ``NOT VALID``, a partial
index's ``WHERE``.
"""

from __future__ import annotations

from typing import Any

from alembic.operations import ops


def data_detail(op: ops.MigrateOperation) -> dict[str, Any]:
    """Extra ``detail`` keys: type_values / existing_type_values, using, not_valid, where."""
    d: dict[str, Any] = {}
    kw = getattr(op, "kw", None) or {}
    if isinstance(op, ops.AlterColumnOp):
        for key, typ in (("type_values", op.modify_type), ("existing_type_values", op.existing_type)):
            labels = getattr(typ, "enums", None)
            if labels:
                d[key] = [str(v) for v in labels]
        if kw.get("postgresql_using") is not None:
            d["using"] = str(kw["postgresql_using"])
    if isinstance(op, (ops.CreateForeignKeyOp, ops.CreateCheckConstraintOp)) and kw.get("postgresql_not_valid"):
        d["not_valid"] = True
    if isinstance(op, ops.CreateIndexOp):
        where = kw.get("postgresql_where") if kw.get("postgresql_where") is not None else kw.get("sqlite_where")
        if where is not None:
            d["where"] = str(getattr(where, "text", None) or where)
    return d
