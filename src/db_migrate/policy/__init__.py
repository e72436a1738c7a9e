"""classify_escalation: the escalation policy, row counts and production signals.

- :mod:`.settings` — :class:`Policy` (the ``[tool.db-migrate]`` keys, validated) and its defaults.
- :mod:`.signals` — :func:`production_signal`, shared with the scratch tools.
"""

from db_migrate.policy.settings import AUTO_CLASSES, TRIGGERS, Policy, policy_from_settings
from db_migrate.policy.signals import production_signal

__all__ = [
    "AUTO_CLASSES",
    "TRIGGERS",
    "Policy",
    "policy_from_settings",
    "production_signal",
]
