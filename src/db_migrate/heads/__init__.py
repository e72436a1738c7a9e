"""check_heads: the health of the revision graph, model drift, and a database's state.

``check_heads(project, ...) -> HeadsResult`` (see :mod:`.service`).  The graph
part (:mod:`.graph`) reads headers statically and never imports user code; the
drift check (:mod:`.drift`) and merge creation run alembic in a worker.
"""

from db_migrate.heads.model import HeadsResult
from db_migrate.heads.service import check_heads

__all__ = ["HeadsResult", "check_heads"]
