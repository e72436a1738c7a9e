"""The classify verdict: built by the policy itself (:func:`db_migrate.policy.classify`), so it lives there."""

from db_migrate.policy.model import ClassifiedOperation, ClassifyResult

__all__ = ["ClassifiedOperation", "ClassifyResult"]
