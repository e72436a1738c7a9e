"""Raw SQL that rewrites or scans a whole existing table under a lock: VACUUM FULL, CLUSTER, MySQL's
CONVERT TO CHARACTER SET; exclusion constraints and partition attachment, whose cost depends on the data."""

from __future__ import annotations

import re
from collections.abc import Iterator

from db_migrate.rules._helpers import tables_created_before
from db_migrate.rules.base import Example, Rule
from db_migrate.verdict import Finding

_VACUUM_FULL = re.compile(r"^\s*VACUUM\s*(\([^)]*\bFULL\b[^)]*\)|\bFULL\b)", re.IGNORECASE)
_CLUSTER = re.compile(r"^\s*CLUSTER\b", re.IGNORECASE)
_CONVERT = re.compile(r"\bCONVERT\s+TO\s+(CHARACTER\s+SET|CHARSET)\b", re.IGNORECASE)
#: MySQL's online DDL clauses: the server runs the ALTER without blocking writes, or refuses it at once.
_ONLINE = re.compile(r"\bALGORITHM\s*=?\s*(INSTANT|INPLACE)\b|\bLOCK\s*=?\s*NONE\b", re.IGNORECASE)
_EXCLUDE = re.compile(r"\bADD\s+(CONSTRAINT\s+[\w\"]+\s+)?EXCLUDE\b", re.IGNORECASE)
_ATTACH = re.compile(r"\bATTACH\s+PARTITION\s+([\w\".]+)", re.IGNORECASE)


def is_online_ddl(sql: str) -> bool:
    """A MySQL/MariaDB ALTER that names its online algorithm or ``LOCK=NONE``: it either runs without blocking
    writes or fails at once, so it holds no long lock."""
    return _ONLINE.search(sql) is not None


def _existing(cap, rec, stmt) -> list[str]:
    created = tables_created_before(cap, rec)
    return [t for t in stmt.tables if t not in created]


class TableRewriteSql(Rule):
    id = "table-rewrite-sql"
    title = "Raw SQL that rewrites a whole existing table under a lock"
    severity = "error"
    phases = ("upgrade", "downgrade")
    why = (
        "VACUUM FULL and CLUSTER write a new copy of the table under an ACCESS EXCLUSIVE lock: no reads, no writes "
        "until the copy is done. MySQL's ALTER TABLE ... CONVERT TO CHARACTER SET copies the table with writes "
        "blocked (ALGORITHM=COPY). Safe forms exist: plain VACUUM (or pg_repack) on PostgreSQL; an online schema "
        "change tool (gh-ost, pt-online-schema-change) for MySQL, or per-column changes with ALGORITHM=INPLACE, "
        "LOCK=NONE where the server supports them. Without the data the table is assumed large."
    )
    fix = (
        "# PostgreSQL: reclaim space without blocking\n"
        "op.execute('VACUUM (ANALYZE) orders')\n"
        "# MySQL: let the server refuse rather than block writes\n"
        "op.execute('ALTER TABLE orders MODIFY note VARCHAR(200) CHARACTER SET utf8mb4, ALGORITHM=INPLACE, LOCK=NONE')"
    )
    examples = (
        Example(
            bad="def upgrade():\n    with op.get_context().autocommit_block():\n        op.execute('VACUUM FULL orders')\n\n"
            "def downgrade():\n    pass\n",
            good="def upgrade():\n    with op.get_context().autocommit_block():\n        op.execute('VACUUM ANALYZE orders')\n\n"
            "def downgrade():\n    pass\n",
        ),
        Example(
            bad="def upgrade():\n    op.execute('ALTER TABLE orders CONVERT TO CHARACTER SET utf8mb4')\n\n"
            "def downgrade():\n    op.execute('ALTER TABLE orders CONVERT TO CHARACTER SET utf8')\n",
            good="def upgrade():\n    op.execute('ALTER TABLE orders CONVERT TO CHARACTER SET utf8mb4, ALGORITHM=INPLACE, LOCK=NONE')\n\n"
            "def downgrade():\n    op.execute('ALTER TABLE orders CONVERT TO CHARACTER SET utf8, ALGORITHM=INPLACE, LOCK=NONE')\n",
            dialect="mysql",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        converted: dict[int | None, tuple] = {}
        for phase in self.phases:
            for rec, stmt in cap.statements(phase):
                text = stmt.text
                if cap.dialect == "postgresql" and (_VACUUM_FULL.search(text) or _CLUSTER.search(text)):
                    tables = _existing(cap, rec, stmt)
                    if stmt.tables and not tables:
                        continue
                    what = ", ".join(tables) or "every table of the database"
                    verb = "VACUUM FULL" if _VACUUM_FULL.search(text) else "CLUSTER"
                    yield self.finding(
                        cap, f"{verb} rewrites {what} under an ACCESS EXCLUSIVE lock (reads and writes blocked until the "
                        f"copy is done). Plain VACUUM (or pg_repack) reclaims space without blocking.",
                        rec=rec, table=tables[0] if tables else None,
                        fix=f"op.execute({('VACUUM (ANALYZE) ' + ', '.join(tables)).strip()!r})" if tables else None,
                    )
                elif cap.dialect in ("mysql", "mariadb") and _CONVERT.search(text) and not is_online_ddl(text):
                    tables = _existing(cap, rec, stmt)
                    if tables:
                        converted.setdefault(rec.line, (rec, text, []))[2].extend(tables)
        for rec, text, tables in converted.values():
            # a loop over the tables is one statement in the source: one finding naming them all
            names = ", ".join(dict.fromkeys(tables))
            yield self.finding(
                cap, f"CONVERT TO CHARACTER SET copies {names} (ALGORITHM=COPY): writes to each are blocked for its "
                f"whole copy, and every text column is rewritten. Run it with an online schema change tool, or add "
                f"ALGORITHM=INPLACE, LOCK=NONE so the server refuses instead of blocking.",
                rec=rec, table=tables[0],
                fix=None if len(set(tables)) > 1 else f"op.execute({(text.rstrip().rstrip(';') + ', ALGORITHM=INPLACE, LOCK=NONE')!r})",
            )


class ExclusionConstraint(Rule):
    id = "exclusion-constraint"
    title = "Exclusion constraint added to an existing table"
    severity = "warning"
    phases = ("upgrade",)
    dialects = ("postgresql",)
    why = (
        "ADD CONSTRAINT ... EXCLUDE builds its index and checks every row under an ACCESS EXCLUSIVE lock, and "
        "unlike foreign keys and checks it cannot be added NOT VALID: there is no non-blocking form. How long reads "
        "and writes wait depends on the table's size, and whether it fails on rows that already overlap."
    )
    fix = (
        "# check for overlapping rows first, and run it when the table is small or traffic is low:\n"
        "# SELECT a.id, b.id FROM bookings a JOIN bookings b ON a.id < b.id AND a.room = b.room AND a.during && b.during\n"
        "op.execute('ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap EXCLUDE USING gist (room WITH =, during WITH &&)')"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.execute('ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&)')\n\n"
            "def downgrade():\n    op.execute('ALTER TABLE bookings DROP CONSTRAINT no_overlap')\n",
            good="def upgrade():\n    op.execute('CREATE TABLE bookings (room int, during tstzrange)')\n"
            "    op.execute('ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&)')\n\n"
            "def downgrade():\n    op.execute('DROP TABLE bookings')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec, stmt in cap.statements("upgrade"):
            if stmt.kind == "ALTER TABLE" and _EXCLUDE.search(stmt.text) and (tables := _existing(cap, rec, stmt)):
                yield self.finding(
                    cap, f"Adds an exclusion constraint on {tables[0]}: its index is built and every row checked under an "
                    f"ACCESS EXCLUSIVE lock, with no NOT VALID form. How long that blocks depends on {tables[0]}'s size, "
                    f"and it fails on rows that already overlap: neither is known without the data (give database_url).",
                    rec=rec, table=tables[0],
                )


class AttachPartition(Rule):
    id = "attach-partition"
    title = "Partition attached to an existing partitioned table"
    severity = "warning"
    phases = ("upgrade",)
    dialects = ("postgresql",)
    why = (
        "ATTACH PARTITION scans the new partition to check its bounds (unless a matching validated CHECK constraint "
        "exists) and, when the parent has a DEFAULT partition, scans that too under an ACCESS EXCLUSIVE lock and fails "
        "if it holds rows that belong to the new range. The cost and the failure depend on rows only the data shows."
    )
    fix = (
        "# 1. add a CHECK matching the bounds to the new table NOT VALID, validate it, so the attach skips its scan\n"
        "# 2. move rows of the new range out of the default partition first\n"
        "op.execute(\"ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')\")"
    )
    examples = (
        Example(
            bad="def upgrade():\n    op.execute(\"ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')\")\n\n"
            "def downgrade():\n    op.execute('ALTER TABLE events DETACH PARTITION events_2024')\n",
            good="def upgrade():\n    op.execute('CREATE TABLE events (at date) PARTITION BY RANGE (at)')\n"
            "    op.execute(\"ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')\")\n\n"
            "def downgrade():\n    op.execute('DROP TABLE events')\n",
        ),
    )

    def check(self, cap) -> Iterator[Finding]:
        for rec, stmt in cap.statements("upgrade"):
            m = _ATTACH.search(stmt.text) if stmt.kind == "ALTER TABLE" else None
            if not m:
                continue
            parent = next(iter(stmt.tables), None)
            if parent is None or parent in tables_created_before(cap, rec):
                continue
            yield self.finding(
                cap, f"Attaches partition {m.group(1)} to {parent}: the new partition is scanned for rows outside its bounds, "
                f"and a DEFAULT partition of {parent} is scanned under an ACCESS EXCLUSIVE lock and makes the attach fail "
                f"if it holds rows of the new range. How many rows both hold is not known without the data (give database_url).",
                rec=rec, table=parent,
            )


RULES = (TableRewriteSql, ExclusionConstraint, AttachPartition)
