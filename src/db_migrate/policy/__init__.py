"""classify_escalation: the escalation policy, row counts and production signals.

- :mod:`.settings` — :class:`Policy` (the ``[tool.db-migrate]`` keys, validated) and its defaults.
- :mod:`.signals` — :func:`production_signal`, shared with the scratch tools.
- :mod:`.database` — read-only row counts and column contents from the user's database.
- :mod:`.classify` — :func:`classify`, the pure policy: review + facts -> verdict.
- :mod:`.service` — :func:`classify_escalation` and :func:`load_policy`.
"""

from db_migrate.policy.classify import classify, facts_needed
from db_migrate.policy.database import read_database_facts
from db_migrate.policy.model import ClassifiedOperation, ClassifyResult, DatabaseFacts, RowCount
from db_migrate.policy.service import classify_escalation, load_policy
from db_migrate.policy.settings import AUTO_CLASSES, TRIGGERS, Policy, policy_from_settings
from db_migrate.policy.signals import production_signal

__all__ = [
    "AUTO_CLASSES",
    "TRIGGERS",
    "ClassifiedOperation",
    "ClassifyResult",
    "DatabaseFacts",
    "Policy",
    "RowCount",
    "classify",
    "classify_escalation",
    "facts_needed",
    "load_policy",
    "policy_from_settings",
    "production_signal",
    "read_database_facts",
]
