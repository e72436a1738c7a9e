"""classify_escalation: does a revision need a human?  The service over the policy.

- :mod:`.service` — :func:`classify_escalation`: review the revision, read the user's database (read-only),
  check the changes against its data (:mod:`db_migrate.preflight`), apply the policy
  (:func:`db_migrate.policy.classify`); the facts come from :func:`db_migrate.preflight.read_data`.

The policy itself (what escalates and why) is the decision library :mod:`db_migrate.policy`: pure
functions over plain data, which every service that returns a decision calls.
"""

from db_migrate.preflight.database import read_database_facts
from db_migrate.classify.service import classify_escalation

__all__ = ["classify_escalation", "read_database_facts"]
