"""The escalation policy: the decision library every tool's decision comes from (pure functions over plain data).

- :mod:`.settings` — :class:`Policy` (the ``[tool.db-migrate]`` keys, validated), its defaults,
  :func:`load_policy` and the baseline.
- :mod:`.signals` — :func:`production_signal`, shared with the scratch tools.
- :mod:`.classify` — :func:`classify` and :func:`decide_for`: review + facts -> verdict.
- :mod:`.preflight` — what the data answered (the preflight's result model) and what it means for a verdict.
- :mod:`.model` — the facts read from a database and the classify verdict.

The service that reads those facts and applies the policy is :mod:`db_migrate.classify`.
"""

from db_migrate.policy.classify import classify, facts_needed
from db_migrate.policy.model import ClassifiedOperation, ClassifyResult, DatabaseFacts, RowCount
from db_migrate.policy.settings import AUTO_CLASSES, TRIGGERS, Policy, baseline_revisions, load_policy, policy_from_settings
from db_migrate.policy.signals import production_signal

__all__ = [
    "AUTO_CLASSES",
    "TRIGGERS",
    "ClassifiedOperation",
    "ClassifyResult",
    "DatabaseFacts",
    "Policy",
    "RowCount",
    "baseline_revisions",
    "classify",
    "facts_needed",
    "load_policy",
    "policy_from_settings",
    "production_signal",
]
