"""The review_migration tool's result: the review's verdict, its findings with checked patches."""

from db_migrate.review.model import ReviewResult

__all__ = ["ReviewResult"]
