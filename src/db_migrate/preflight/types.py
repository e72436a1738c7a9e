"""Type changes: rows that a narrower or different type cannot hold.

Per change (types as the review rendered them for the database's dialect):

- **shorter string** (``VARCHAR(255)`` -> ``VARCHAR(120)``, ``TEXT`` -> ``VARCHAR(n)``):
  rows longer than the new length.  PostgreSQL and MariaDB/MySQL (strict mode)
  refuse them, so the upgrade fails; SQLite keeps them (it enforces no length).
- **to an integer** from a decimal/float: rows with a fractional part are
  rounded (data loss); rows out of the integer's range fail.
- **to a number** from a string: rows that do not read as a number fail.
- **to an enum** (labels known from ``sa.Enum``): rows holding another value fail.
- **a USING cast** (PostgreSQL): the cast is evaluated in a read-only SELECT when
  it is a plain expression; rows it turns into NULL are counted, and a value it
  cannot cast is reported with the database's own error.
"""

from __future__ import annotations

import re

from db_migrate.preflight.enums import new_enum_labels
from db_migrate.preflight.base import Answer, Step, answered, count_and_sample, new_check, open_table, rows_text, unchecked
from db_migrate.preflight.expressions import NotPlain, check_plain
from db_migrate.policy.preflight import DataCheck
from db_migrate.preflight.probe import OutOfBudget, Probe, ProbeFailed

_LENGTH = re.compile(r"^\s*(?:N?VARCHAR|CHARACTER VARYING|N?CHAR|CHARACTER|VARBINARY)\s*\(\s*(\d+)\s*\)", re.IGNORECASE)
_INTEGER = {"SMALLINT": 2**15, "INTEGER": 2**31, "INT": 2**31, "BIGINT": 2**63, "MEDIUMINT": 2**23, "TINYINT": 2**7}
_FRACTIONAL = re.compile(r"^\s*(NUMERIC|DECIMAL|FLOAT|REAL|DOUBLE|MONEY)", re.IGNORECASE)
_TEXTUAL = re.compile(r"^\s*(N?VARCHAR|CHARACTER|N?CHAR|TEXT|CLOB|STRING|TINYTEXT|MEDIUMTEXT|LONGTEXT)", re.IGNORECASE)
_DECIMAL = re.compile(r"^\s*(NUMERIC|DECIMAL)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+))?\s*\))?", re.IGNORECASE)
_NUMERIC = re.compile(r"^\s*(NUMERIC|DECIMAL|FLOAT|REAL|DOUBLE|SMALLINT|INTEGER|INT|BIGINT|MEDIUMINT|TINYINT)\b", re.IGNORECASE)


def run(step: Step, probe: Probe) -> list[DataCheck]:
    op = step.op
    new = step.get("type")
    if op.kind != "alter_column" or not new or not op.column:
        return []
    old = str(step.get("existing_type") or "")
    new = str(new)
    column = op.column
    if step.get("type_values") and step.get("existing_type_values") or new_enum_labels(step) is not None:
        return []  # to an enum whose labels are known: enums.py counts the rows holding other values
    if step.get("using") and probe.dialect == "postgresql":
        return [_using(step, probe, column, step.get("using"))]
    labels = step.get("type_values")
    if labels:
        return [_not_labels(step, probe, column, list(labels), new)]
    m = _LENGTH.match(new)
    if m and _TEXTUAL.match(old or "TEXT") and not (_LENGTH.match(old) and int(_LENGTH.match(old).group(1)) <= int(m.group(1))):
        return [_too_long(step, probe, column, int(m.group(1)), new)]
    base = new.split("(")[0].strip().upper()
    if base in _INTEGER and _FRACTIONAL.match(old):
        return _to_integer(step, probe, column, base, new)
    if _NUMERIC.match(new) and _TEXTUAL.match(old):
        return [_not_numbers(step, probe, column, new)]
    narrower = _narrower(old, new)
    if narrower is not None:
        return narrower(step, probe, column, new)
    return []


def _digits(t: str) -> tuple[int | None, int] | None:
    """(digits before the point, digits after it) a numeric type holds; None digits: unbounded (NUMERIC)."""
    base = t.split("(")[0].strip().upper()
    if base in _INTEGER:
        return len(str(_INTEGER[base])), 0  # whole digits its largest values have
    m = _DECIMAL.match(t)
    if m:
        if m.group(2) is None:
            return None, 1000  # NUMERIC without a precision: any value
        precision, scale = int(m.group(2)), int(m.group(3) or 0)
        return precision - scale, scale
    return None


def _narrower(old: str, new: str):
    """The check for a numeric type that holds less than the old one (INTEGER -> SMALLINT, NUMERIC(12,2) ->
    NUMERIC(8,2), NUMERIC(10,4) -> NUMERIC(10,2)), or None when the new type holds every old value."""
    base_old, base_new = old.split("(")[0].strip().upper(), new.split("(")[0].strip().upper()
    if base_old in _INTEGER and base_new in _INTEGER:
        if _INTEGER[base_new] < _INTEGER[base_old]:
            return lambda step, probe, column, new: [_range(step, probe, column, -_INTEGER[base_new], _INTEGER[base_new], new)]
        return None
    was, now = _digits(old), _digits(new)
    if was is None or now is None or now[0] is None:
        return None
    whole, scale = now
    checks = []
    if was[0] is None or whole < was[0]:
        checks.append(lambda step, probe, column, new: _range(step, probe, column, -(10 ** whole), 10 ** whole, new, exclusive=True))
    if scale < was[1]:
        checks.append(lambda step, probe, column, new: _rounded(step, probe, column, scale, new))
    if not checks:
        return None
    return lambda step, probe, column, new: [c(step, probe, column, new) for c in checks]


def _range(step: Step, probe: Probe, column: str, low: int, high: int, new: str, *, exclusive: bool = False) -> DataCheck:
    """Rows whose value falls outside [low, high) (``exclusive``: outside (low, high)): the change fails on them
    (SQLite keeps them: it enforces no range)."""
    from sqlalchemy import or_

    sqlite = probe.dialect == "sqlite"
    return _rows_where(
        step, probe, column, lambda s: or_(s.col(column) >= high, s.col(column) <= low if exclusive else s.col(column) < low),
        bad="affects" if sqlite else "will-fail",
        describe=lambda key, n, a: (f"{rows_text(n, a)} of {key} are out of the range of {new}: " + (
            "SQLite keeps them (it enforces no range)." if sqlite else "the change fails on them.") if n
            else f"Every value of {key} fits {new}."),
        fix=f"Move the out-of-range values first (UPDATE {step.op.table} SET {column} = ... WHERE ...), or keep "
            f"{step.get('existing_type')}.",
    )


def _rounded(step: Step, probe: Probe, column: str, scale: int, new: str) -> DataCheck:
    """Rows with more decimal places than ``scale``: the change rounds them."""
    from sqlalchemy import func

    return _rows_where(
        step, probe, column, lambda s: s.col(column) != func.round(s.col(column), scale), bad="loses-data",
        describe=lambda key, n, a: (f"{rows_text(n, a)} of {key} have more than {scale} decimal place(s), which {new} rounds away."
                                    if n else f"No value of {key} has more than {scale} decimal place(s): {new} keeps every value."),
        fix=f"Keep {step.get('existing_type')}, or round the values deliberately in a reviewed UPDATE first.",
    )


def _info(step: Step, probe: Probe, column: str):
    return open_table(step, probe, "type-change", step.op.table, [column])


def _rows_where(step: Step, probe: Probe, column: str, where_of, *, bad, describe, fix: str) -> DataCheck:
    """The type-change check counting (and sampling) the rows of ``column`` where ``where_of(source)`` holds.

    ``describe(key, n, at_least)`` words the answer; ``key`` is ``table.column`` as the database names it.
    """
    info = _info(step, probe, column)
    if isinstance(info, DataCheck):
        return info
    key = f"{info.qualified}.{column}"
    return answered(
        step, "type-change", probe, info, lambda: count_and_sample(probe, info, where_of, [column], [column]),
        bad=bad, columns=[column], describe=lambda n, a: describe(key, n, a), fix=fix,
    )


def _too_long(step: Step, probe: Probe, column: str, length: int, new: str) -> DataCheck:
    from sqlalchemy import func

    info = _info(step, probe, column)
    if isinstance(info, DataCheck):
        return info
    size = func.length if probe.dialect == "sqlite" else func.char_length
    key = f"{info.qualified}.{column}"

    def describe(n: int, at_least: bool) -> str:
        if not n:
            return f"No value of {key} is longer than {length} characters: the change to {new} keeps every value."
        if probe.dialect == "sqlite":
            return f"{rows_text(n, at_least)} of {key} are longer than {length} characters; SQLite keeps them, so {new} does not hold."
        return f"{rows_text(n, at_least)} of {key} are longer than {length} characters: the change to {new} fails on them."

    fix = (
        f"Shorten or move those values first, or keep the longer type:\n"
        f"op.execute(\"UPDATE {step.op.table} SET {column} = LEFT({column}, {length}) WHERE CHAR_LENGTH({column}) > {length}\")"
        "  # only if cutting them is acceptable: ask a human"
    )
    return answered(
        step, "type-change", probe, info,
        lambda: count_and_sample(probe, info, lambda s: size(s.col(column)) > length, [column], [column]),
        bad="affects" if probe.dialect == "sqlite" else "will-fail", describe=describe, fix=fix, columns=[column],
    )


def _to_integer(step: Step, probe: Probe, column: str, base: str, new: str) -> list[DataCheck]:
    from sqlalchemy import func, or_

    info = _info(step, probe, column)
    if isinstance(info, DataCheck):
        return [info]
    key = f"{info.qualified}.{column}"
    limit = _INTEGER[base]
    out = []
    out.append(answered(
        step, "type-change", probe, info,
        lambda: count_and_sample(probe, info, lambda s: or_(s.col(column) >= limit, s.col(column) < -limit), [column], [column]),
        bad="will-fail", columns=[column],
        describe=lambda n, a: (f"{rows_text(n, a)} of {key} are out of the range of {new}: the change fails on them." if n
                               else f"Every value of {key} fits {new}."),
        fix=f"Move the out-of-range values first, or choose BIGINT / keep {step.get('existing_type')}.",
    ))
    out.append(answered(
        step, "type-change", probe, info,
        lambda: count_and_sample(probe, info, lambda s: s.col(column) != func.floor(s.col(column)), [column], [column]),
        bad="loses-data", columns=[column],
        describe=lambda n, a: (f"{rows_text(n, a)} of {key} have a fractional part that {new} rounds away." if n
                               else f"No value of {key} has a fractional part: {new} keeps every value."),
        fix="Keep the fractional values (a decimal type), or round them deliberately in a reviewed UPDATE first.",
    ))
    return out


def _not_numbers(step: Step, probe: Probe, column: str, new: str) -> DataCheck:
    from sqlalchemy import and_, literal_column

    info = _info(step, probe, column)
    if isinstance(info, DataCheck):
        return info
    if probe.dialect == "sqlite":
        return unchecked(step, "type-change", "SQLite stores any value in any column; there is no cast to fail", table=info.qualified, columns=[column])
    pattern = r"^[[:space:]]*[-+]?[0-9]+([.][0-9]*)?[[:space:]]*$"
    op_ = "!~" if probe.dialect == "postgresql" else "NOT REGEXP"
    key = f"{info.qualified}.{column}"

    def bad(s):
        return and_(s.col(column).is_not(None), s.col(column).op(op_)(literal_column(f"'{pattern}'")))

    return answered(
        step, "type-change", probe, info, lambda: count_and_sample(probe, info, bad, [column], [column]),
        bad="will-fail", columns=[column],
        describe=lambda n, a: (f"{rows_text(n, a)} of {key} do not read as a number: the change to {new} fails on them." if n
                               else f"Every value of {key} reads as a number."),
        fix=f"Clean those values first (UPDATE {step.op.table} SET {column} = NULL or a number WHERE ...), then change the type.",
    )


def _not_labels(step: Step, probe: Probe, column: str, labels: list[str], new: str) -> DataCheck:
    from sqlalchemy import and_

    sqlite = probe.dialect == "sqlite"
    return _rows_where(
        step, probe, column, lambda s: and_(s.col(column).is_not(None), s.col(column).not_in(labels)),
        bad="affects" if sqlite else "will-fail",
        describe=lambda key, n, a: (f"{rows_text(n, a)} of {key} hold a value that is not one of {', '.join(labels)}: " + (
            "SQLite keeps them (it does not enforce the enum)." if sqlite else f"the change to {new} fails on them.")
            if n else f"Every value of {key} is one of {', '.join(labels)}."),
        fix=f"Map the other values onto the enum's labels first (UPDATE {step.op.table} SET {column} = ... WHERE {column} NOT IN (...)).",
    )


def _using(step: Step, probe: Probe, column: str, using: str) -> DataCheck:
    from sqlalchemy import and_, text

    try:
        check_plain(using, table=step.op.table)
    except NotPlain as e:
        return unchecked(step, "type-change", f"the USING expression {using!r} is not evaluated: {e}", columns=[column])
    info = _info(step, probe, column)
    if isinstance(info, DataCheck):
        return info
    key = f"{info.qualified}.{column}"
    try:
        a: Answer = count_and_sample(probe, info, lambda s: and_(s.col(column).is_not(None), text(f"({using}) IS NULL")), [column], [column])
    except OutOfBudget as e:
        return unchecked(step, "type-change", str(e), table=info.qualified, columns=[column])
    except ProbeFailed as e:  # the cast itself failed on some row: the upgrade will too
        return new_check(
            step, "type-change", "will-fail", f"Casting {key} with USING {using} fails on at least one row: {e}",
            table=info.qualified, columns=[column], fix="Clean the values the cast cannot read first, or make the USING expression handle them.",
        )
    common = dict(table=info.qualified, columns=[column], count=a.count, at_least=a.partial and a.count > 0, rows_scanned=a.source.scanned,
                  samples=a.samples, withheld=a.withheld, queries=a.queries)
    if a.count:
        return new_check(step, "type-change", "loses-data", f"USING {using} turns {rows_text(a.count, a.partial)} of {key} into NULL.",
                         fix="Make the USING expression keep those values, or clean them in a reviewed step first.", **common)
    if a.partial:
        return new_check(step, "type-change", "unchecked", f"Not checked beyond the first {probe.row_budget:,} rows of {info.qualified}.",
                         reason=f"{info.qualified} has more than {probe.row_budget:,} rows (policy preflight_max_rows)", **common)
    return new_check(step, "type-change", "passes", f"USING {using} casts every value of {key}.", **common)
