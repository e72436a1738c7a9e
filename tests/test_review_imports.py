"""The review imports a revision's modules as alembic would: prepend_sys_path, and each revision on its own.

A project whose migrations import its own package (alembic.ini ``prepend_sys_path = src``) must be reviewed on
the real package, not on stand-ins; and in ``review --all`` nothing one revision imported may change what
another revision is found to do.
"""

from __future__ import annotations

from pathlib import Path

from projectfactory import make_project

from db_migrate.project import load_project
from db_migrate.review import review_migration

USES_THE_APP = (
    "from shopapp.limits import NOTE_LENGTH\n"
    "def upgrade():\n    op.add_column('orders', sa.Column('note', sa.String(NOTE_LENGTH), nullable=True))\n"
    "def downgrade():\n    op.drop_column('orders', 'note')\n"
)


def _app_project(tmp_path: Path) -> Path:
    root = make_project(tmp_path, [USES_THE_APP], url="postgresql://u@h/db")
    pkg = root / "src" / "shopapp"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "limits.py").write_text("NOTE_LENGTH = 280\n")
    ini = root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[alembic]\n", "[alembic]\nprepend_sys_path = src\n", 1))
    return root


def test_review_honours_prepend_sys_path(tmp_path: Path) -> None:
    root = _app_project(tmp_path)
    r = review_migration(load_project(root), "head")
    assert not any("shopapp" in u.what for u in r.unchecked), r.unchecked
    (op,) = [o for o in r.reviews[0].operations if o.kind == "add_column"]
    assert op.sql == ["ALTER TABLE orders ADD COLUMN note VARCHAR(280)"]


def test_a_stand_in_one_revision_needed_is_not_handed_to_the_next(tmp_path: Path) -> None:
    uses_missing = (
        "import shop_helpers_not_installed as h\n"
        "def upgrade():\n    op.add_column('orders', sa.Column('a', sa.Integer(), nullable=True))\n"
        "def downgrade():\n    op.drop_column('orders', 'a')\n"
    )
    also_uses_it = uses_missing.replace("'a'", "'b'")
    root = make_project(tmp_path, [uses_missing, also_uses_it], url="sqlite:///app.db")
    r = review_migration(load_project(root), all_revisions=True)
    stubbed = sorted(u.revision for u in r.unchecked if "shop_helpers_not_installed" in u.what)
    assert stubbed == ["000000000001", "000000000002"]  # each revision says so itself
