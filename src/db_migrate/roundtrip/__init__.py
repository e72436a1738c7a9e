"""test_roundtrip: seed, upgrade, downgrade, upgrade, compare: on a scratch database.

A migration that works on an empty database can still fail on a populated one,
and a downgrade that runs can still leave the schema changed or the data gone.
:func:`test_roundtrip` checks both:

- :mod:`.service` — :func:`test_roundtrip` (parent side): picks the revisions,
  refuses production URLs, owns the scratch database (created and dropped in a
  ``finally``), reuses a cached template of the parent schema, runs more jobs on
  fresh databases for what a failure left untested, retries a failed step on an
  empty database to tell ``populated_only`` failures apart.
- :mod:`.job` — the worker side: few env.py runs that seed, step one revision at a time and
  snapshot, going on after a failure (what needs a failed upgrade is handed back for a fresh database).
- :mod:`.locks` — per-statement locks (``pg_locks``) and rewrites (``relfilenode``) measured during
  each upgrade on PostgreSQL, and the review's lock/rewrite findings confirmed or cleared by them.
- :mod:`.seed` — type- and constraint-aware seed rows.
- :mod:`.snapshot` — schema/data snapshots and their differences by name.
- :mod:`.model` — :class:`RoundtripResult`.
"""

from db_migrate.roundtrip.model import RoundtripFailure, RoundtripResult, RoundtripStep
from db_migrate.roundtrip.service import test_roundtrip

__all__ = ["RoundtripFailure", "RoundtripResult", "RoundtripStep", "test_roundtrip"]

# pytest collects any module-level callable named test_*: tell it this one is not a test
test_roundtrip.__test__ = False  # type: ignore[attr-defined]
