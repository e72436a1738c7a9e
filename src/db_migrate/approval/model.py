"""The approval record's entries and what a verdict says about them.

They are part of every verdict (``Verdict.approval``), so they are defined in :mod:`db_migrate.verdict`,
at the bottom of the layers; the approval package reads and writes them under these names.
"""

from db_migrate.verdict import ApprovalEntry, ApprovalState, ApprovedTrigger, PendingApproval

__all__ = ["ApprovalEntry", "ApprovalState", "ApprovedTrigger", "PendingApproval"]
