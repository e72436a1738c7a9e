"""generate_migration: autogenerate on a scratch database at head, blind spots, review.

``generate_migration(project, message, ...) -> GenerateResult`` (see
:mod:`.service`); the worker side is :mod:`.jobs`, the file-writing guards
(lock, no overwrite, no debris) :mod:`.writing`.
"""

from db_migrate.generate.model import GenerateResult
from db_migrate.generate.service import generate_migration

__all__ = ["GenerateResult", "generate_migration"]
