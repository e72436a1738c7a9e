"""Record what a revision does without a database.

:func:`capture_file` (worker side) imports a revision and runs its
``upgrade()``/``downgrade()`` offline under alembic, keeping alembic's own
operation objects with their source lines and rendered SQL, plus facts from the
syntax tree (:mod:`.source`) and parsed ``op.execute`` SQL (:mod:`.sql`).
"""

from db_migrate.capture.model import PhaseOutcome, RecordedOp, RevisionCapture, SourceFact, SqlStatement, op_kind

__all__ = ["PhaseOutcome", "RecordedOp", "RevisionCapture", "SourceFact", "SqlStatement", "capture_file", "op_kind"]


def capture_file(*args, **kwargs):  # imported lazily: it patches alembic and must only run in a worker
    from db_migrate.capture.recorder import capture_file as _capture_file

    return _capture_file(*args, **kwargs)
