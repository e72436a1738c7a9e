"""Generate a large synthetic, linear Alembic history for benchmarks.

    python bench/make_history.py DEST N [--seed S] [--url URL]

``make_history(dest, n)`` writes a complete Alembic project under ``dest``:

    dest/alembic.ini
    dest/models.py             # target_metadata matching head
    dest/alembic/env.py        # honours config.attributes["connection"]
    dest/alembic/script.py.mako
    dest/alembic/versions/<rev>_<slug>.py   (n files, one linear chain)

The revisions really run on SQLite, PostgreSQL and MariaDB.  The first few
create tables; the rest are a realistic mix: nullable columns, NOT NULL
columns with a server default, indexes, new tables, ``UPDATE`` backfills,
renames and drops (the last two inside ``batch_alter_table`` so that SQLite
can do them).  Every downgrade is the exact inverse of its upgrade (a
backfill's downgrade does nothing: the data cannot be un-backfilled and the
schema is unchanged).  Output is deterministic for a given ``(n, seed)``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

__all__ = ["make_history"]

DEFAULT_URL = "sqlite:///%(here)s/bench.db"

TABLE_WORDS = (
    "patients clinics wards rooms shifts devices orders visits claims "
    "referrals labs imaging vitals allergies medications encounters pagers "
    "teams schedules swaps leaves trainings evaluations conferences "
    "procedures certifications badges parking lockers vendors invoices"
).split()

COLUMN_WORDS = (
    "code label status priority external_ref score category region phone "
    "fax building floor_no capacity notes_short weight color flag "
    "reviewed_on due_on amount quantity channel owner_ref batch_no tier "
    "shift_code cost locale"
).split()

# (source of the type, kind) -- kind drives defaults/backfills/indexability
COLUMN_TYPES = (
    ("sa.String(length=100)", "str"),
    ("sa.String(length=40)", "str"),
    ("sa.Integer()", "int"),
    ("sa.Boolean()", "bool"),
    ("sa.Text()", "text"),
    ("sa.Date()", "date"),
    ("sa.Numeric(precision=10, scale=2)", "num"),
)

# server defaults valid on SQLite, PostgreSQL and MariaDB
SERVER_DEFAULTS = {
    "str": "sa.text(\"'n/a'\")",
    "int": 'sa.text("0")',
    "bool": "sa.false()",
}
BACKFILL_VALUES = {"str": "'unknown'", "int": "0", "bool": "false", "text": "''"}


@dataclass
class Col:
    name: str
    type_src: str
    kind: str
    nullable: bool = True
    default_src: str | None = None
    fk: str | None = None  # referred table
    indexed: bool = False
    mutable: bool = True  # may be renamed / dropped

    def source(self, *, in_model: bool = False, table: str = "") -> str:
        args = [repr(self.name), self.type_src]
        if self.fk and in_model:
            args.append(
                f'sa.ForeignKey("{self.fk}.id", name="fk_{table}_{self.name}")'
            )
        if self.default_src:
            args.append(f"server_default={self.default_src}")
        args.append(f"nullable={self.nullable}")
        return f"sa.Column({', '.join(args)})"


@dataclass
class Table:
    name: str
    columns: dict[str, Col] = field(default_factory=dict)
    indexes: dict[str, str] = field(default_factory=dict)  # name -> column


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tables: dict[str, Table] = {}
        self._table_names = iter(self._names(TABLE_WORDS))
        self._ids: set[str] = set()

    @staticmethod
    def _names(words):
        yield from words
        k = 2
        while True:
            for w in words:
                yield f"{w}_{k}"
            k += 1

    def new_id(self) -> str:
        while True:
            rev = f"{self.rng.getrandbits(48):012x}"
            if rev not in self._ids and not rev.isdigit():
                self._ids.add(rev)
                return rev

    def new_column_name(self, table: Table) -> str:
        word = self.rng.choice(COLUMN_WORDS)
        name, k = word, 2
        while name in table.columns:
            name, k = f"{word}_{k}", k + 1
        return name

    # -- operations: each returns (message, upgrade body, downgrade body) --

    def create_table(self):
        name = next(self._table_names)
        t = Table(name)
        cols = [
            Col("id", "sa.Integer()", "int", nullable=False, mutable=False),
            Col("name", "sa.String(length=100)", "str", nullable=False, mutable=False),
            Col(
                "created_at",
                "sa.DateTime()",
                "dt",
                nullable=False,
                default_src='sa.text("CURRENT_TIMESTAMP")',
                mutable=False,
            ),
        ]
        if self.tables and self.rng.random() < 0.5:
            parent = self.rng.choice(sorted(self.tables))
            cols.append(
                Col(f"{parent}_id", "sa.Integer()", "int", fk=parent, mutable=False)
            )
        for c in cols:
            t.columns[c.name] = c
        self.tables[name] = t
        lines = [f'    op.create_table(\n        "{name}",']
        for c in cols:
            lines.append(f"        {c.source()},")
        for c in cols:
            if c.fk:
                lines.append(
                    f'        sa.ForeignKeyConstraint(["{c.name}"], ["{c.fk}.id"], '
                    f'name="fk_{name}_{c.name}"),'
                )
        lines.append(f'        sa.PrimaryKeyConstraint("id", name="pk_{name}"),')
        lines.append("    )")
        return (
            f"create {name}",
            "\n".join(lines),
            f'    op.drop_table("{name}")',
        )

    def _pick_table(self) -> Table:
        return self.tables[self.rng.choice(sorted(self.tables))]

    def add_nullable(self):
        t = self._pick_table()
        type_src, kind = self.rng.choice(COLUMN_TYPES)
        c = Col(self.new_column_name(t), type_src, kind)
        t.columns[c.name] = c
        return (
            f"add {t.name}.{c.name}",
            f'    op.add_column("{t.name}", {c.source()})',
            f'    op.drop_column("{t.name}", "{c.name}")',
        )

    def add_not_null_with_default(self):
        t = self._pick_table()
        type_src, kind = self.rng.choice(
            [ct for ct in COLUMN_TYPES if ct[1] in SERVER_DEFAULTS]
        )
        c = Col(
            self.new_column_name(t),
            type_src,
            kind,
            nullable=False,
            default_src=SERVER_DEFAULTS[kind],
        )
        t.columns[c.name] = c
        return (
            f"add {t.name}.{c.name} not null with default",
            f'    op.add_column("{t.name}", {c.source()})',
            f'    op.drop_column("{t.name}", "{c.name}")',
        )

    def create_index(self):
        candidates = [
            (t, c)
            for t in self.tables.values()
            for c in t.columns.values()
            # FK columns are left alone: on MariaDB an explicit index on one
            # becomes the FK's index and can no longer be dropped
            if not c.indexed and c.kind != "text" and c.name != "id" and not c.fk
        ]
        if not candidates:
            return self.add_nullable()
        t, c = self.rng.choice(candidates)
        c.indexed = True
        ix = f"ix_{t.name}_{c.name}"
        t.indexes[ix] = c.name
        return (
            f"index {t.name}.{c.name}",
            f'    op.create_index("{ix}", "{t.name}", ["{c.name}"], unique=False)',
            f'    op.drop_index("{ix}", table_name="{t.name}")',
        )

    def _mutable(self):
        return [
            (t, c)
            for t in self.tables.values()
            for c in t.columns.values()
            if c.mutable and not c.indexed and not c.fk
        ]

    def drop_column(self):
        candidates = self._mutable()
        if not candidates:
            return self.add_nullable()
        t, c = self.rng.choice(candidates)
        del t.columns[c.name]
        return (
            f"drop {t.name}.{c.name}",
            f'    with op.batch_alter_table("{t.name}") as batch_op:\n'
            f'        batch_op.drop_column("{c.name}")',
            f'    with op.batch_alter_table("{t.name}") as batch_op:\n'
            f"        batch_op.add_column({c.source()})",
        )

    def rename_column(self):
        candidates = self._mutable()
        if not candidates:
            return self.add_nullable()
        t, c = self.rng.choice(candidates)
        old = c.name
        new = self.new_column_name(t)
        del t.columns[old]
        c.name = new
        t.columns[new] = c
        existing = (
            f"existing_type={c.type_src}, existing_nullable={c.nullable}"
            + (f", existing_server_default={c.default_src}" if c.default_src else "")
        )

        def alter(a, b):
            return (
                f'    with op.batch_alter_table("{t.name}") as batch_op:\n'
                f'        batch_op.alter_column(\n'
                f'            "{a}", new_column_name="{b}", {existing}\n'
                f"        )"
            )

        return f"rename {t.name}.{old} to {new}", alter(old, new), alter(new, old)

    def backfill(self):
        candidates = [
            (t, c)
            for t in self.tables.values()
            for c in t.columns.values()
            if c.nullable and c.kind in BACKFILL_VALUES and c.mutable
        ]
        if not candidates:
            return self.add_nullable()
        t, c = self.rng.choice(candidates)
        value = BACKFILL_VALUES[c.kind]
        return (
            f"backfill {t.name}.{c.name}",
            f'    op.execute("UPDATE {t.name} SET {c.name} = {value} '
            f'WHERE {c.name} IS NULL")',
            "    # data-only revision: nothing to undo in the schema\n    pass",
        )

    MIX = (
        ("add_nullable", 30),
        ("create_index", 15),
        ("backfill", 10),
        ("add_not_null_with_default", 10),
        ("rename_column", 8),
        ("create_table", 8),
        ("drop_column", 6),
    )

    def next_op(self, index: int, n_initial: int):
        if index < n_initial:
            return self.create_table()
        names, weights = zip(*self.MIX)
        return getattr(self, self.rng.choices(names, weights)[0])()

    def models_source(self) -> str:
        out = [
            '"""SQLAlchemy metadata matching the head of the generated history."""',
            "",
            "import sqlalchemy as sa",
            "",
            "metadata = sa.MetaData()",
            "target_metadata = metadata",
            "",
        ]
        for t in self.tables.values():
            out.append(f'{t.name} = sa.Table(\n    "{t.name}",\n    metadata,')
            for c in t.columns.values():
                out.append(f"    {c.source(in_model=True, table=t.name)},")
            out.append(f'    sa.PrimaryKeyConstraint("id", name="pk_{t.name}"),')
            out.append(")")
            for ix, col in t.indexes.items():
                out.append(f'sa.Index("{ix}", {t.name}.c["{col}"])')
            out.append("")
        return "\n".join(out) + "\n"


REVISION_TEMPLATE = '''"""{message}

Revision ID: {rev}
Revises: {down_doc}
Create Date: {date}

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''

ENV_PY = '''"""Alembic environment of a generated benchmark history."""

import importlib.util
import sys
from logging.config import fileConfig
from pathlib import Path

from sqlalchemy import engine_from_config, pool

from alembic import context

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name)


def _load_target_metadata():
    path = Path(__file__).resolve().parents[1] / "models.py"
    if not path.exists():
        return None
    # load by path under a unique name: several generated projects may be
    # used in one process
    name = "_bench_models_%x" % (hash(str(path)) & 0xFFFFFFFF)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.target_metadata


target_metadata = _load_target_metadata()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection", None)
    if connectable is None:
        connectable = engine_from_config(
            config.get_section(config.config_ini_section, {}),
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
        with connectable.connect() as connection:
            do_run_migrations(connection)
    else:
        do_run_migrations(connectable)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

SCRIPT_MAKO = '''"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

# revision identifiers, used by Alembic.
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
'''

ALEMBIC_INI = """[alembic]
script_location = %(here)s/alembic
prepend_sys_path = .
path_separator = os
sqlalchemy.url = {url}

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = WARNING
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""


def _slug(message: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in message.lower())[:40].strip("_")


def make_history(
    dest: Path,
    n: int,
    *,
    dialect_url: str = DEFAULT_URL,
    seed: int = 0,
    models: bool = True,
    version_locations: bool = False,
) -> Path:
    """Write an Alembic project with a linear history of ``n`` revisions.

    ``dialect_url`` goes to ``sqlalchemy.url`` in alembic.ini (a literal
    ``%`` is escaped; ``%(here)s`` is kept).  With ``models`` (default) a
    ``models.py`` whose ``target_metadata`` matches head is written and
    env.py uses it.  With ``version_locations``, alembic.ini names the versions folder in
    ``version_locations`` (as alembic's own templates suggest).  Returns ``dest``.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    dest = Path(dest)
    versions = dest / "alembic" / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    url = dialect_url if "%(here)s" in dialect_url else dialect_url.replace("%", "%%")
    ini = ALEMBIC_INI.format(url=url)
    if version_locations:
        ini = ini.replace("prepend_sys_path = .\n", "prepend_sys_path = .\nversion_locations = %(here)s/alembic/versions\n", 1)
    (dest / "alembic.ini").write_text(ini)
    (dest / "alembic" / "env.py").write_text(ENV_PY)
    (dest / "alembic" / "script.py.mako").write_text(SCRIPT_MAKO)

    gen = _Generator(seed)
    n_initial = min(n, gen.rng.randint(5, 8))
    start = datetime(2023, 1, 2, 9, 0, 0)
    down = None
    for i in range(n):
        message, upgrade, downgrade = gen.next_op(i, n_initial)
        rev = gen.new_id()
        text = REVISION_TEMPLATE.format(
            message=message,
            rev=rev,
            down=down,
            down_doc=down or "",
            date=(start + timedelta(hours=7 * i, minutes=i % 60)).isoformat(" "),
            upgrade=upgrade,
            downgrade=downgrade,
        )
        (versions / f"{rev}_{_slug(message)}.py").write_text(text)
        down = rev
    models_path = dest / "models.py"
    if models:
        models_path.write_text(gen.models_source())
    elif models_path.exists():
        models_path.unlink()
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("n", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url", default=DEFAULT_URL, help="sqlalchemy.url for alembic.ini")
    parser.add_argument("--no-models", action="store_true", help="do not write models.py")
    parser.add_argument("--version-locations", action="store_true", help="name the versions folder in version_locations")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    make_history(args.dest, args.n, dialect_url=args.url, seed=args.seed, models=not args.no_models,
                 version_locations=args.version_locations)
    print(
        f"wrote {args.n} revisions to {args.dest} in {time.perf_counter() - t0:.2f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
