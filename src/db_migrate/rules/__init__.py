"""The rule catalogue: every module in this package defines one rule (or a small family).

Rules register themselves by being a :class:`~db_migrate.rules.base.Rule`
subclass listed in their module's ``RULES`` tuple; :func:`all_rules` imports
every module of the package once, so adding a file adds a rule. Every rule rates
its findings by :data:`SEVERITY_PRINCIPLE`.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from db_migrate.rules.base import SEVERITY_PRINCIPLE, Example, Rule, RuleInfo

__all__ = ["SEVERITY_PRINCIPLE", "Example", "Rule", "RuleInfo", "all_rules", "catalogue", "get_rule"]


@cache
def all_rules() -> tuple[Rule, ...]:
    """Every rule, sorted by id."""
    found: dict[str, Rule] = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_") or mod.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        for cls in getattr(module, "RULES", ()):
            rule = cls()
            if rule.id in found:
                raise RuntimeError(f"duplicate rule id {rule.id} in {module.__name__}")
            found[rule.id] = rule
    return tuple(found[k] for k in sorted(found))


def get_rule(rule_id: str) -> Rule:
    for r in all_rules():
        if r.id == rule_id:
            return r
    raise KeyError(rule_id)


def catalogue() -> list[RuleInfo]:
    """The rule catalogue, generated from the rule classes."""
    return [r.info() for r in all_rules()]
