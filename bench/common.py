"""What every benchmark does first."""

from __future__ import annotations

import compileall
import os
from pathlib import Path

import db_migrate


def compile_package() -> None:
    """Write db_migrate's bytecode, as ``pip install`` does.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (this machine's setting)
    would otherwise recompile every module on each CLI start, while alembic and
    SQLAlchemy, installed as wheels, start from bytecode: not a fair comparison.
    """
    env = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        compileall.compile_dir(str(Path(db_migrate.__file__).parent), quiet=1)
    finally:
        if env is not None:
            os.environ["PYTHONDONTWRITEBYTECODE"] = env
