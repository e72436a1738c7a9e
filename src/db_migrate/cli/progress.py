"""A one-line progress display on stderr, for long work at a terminal.

Shown only when stderr is a terminal (never in CI logs, pipes or files), and
only once the work has taken more than a moment, so quick commands print
nothing extra.  The line is rewritten in place (``\\r`` and erase-line) and
cleared before the report is printed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import IO

#: Progress notes before this many seconds are not shown (a review answers sooner).
QUIET_SECONDS = 0.5


class ProgressLine:
    """Receives ``(message, progress, total)`` notes and draws the latest one."""

    def __init__(self, stream: IO[str], *, quiet_seconds: float = QUIET_SECONDS) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.quiet_seconds = quiet_seconds
        self.shown = False
        self._lock = threading.Lock()

    def __call__(self, message: str, progress: float | None = None, total: float | None = None) -> None:
        if time.monotonic() - self.started < self.quiet_seconds:
            return
        line = message
        if total:
            done = int(progress or 0)
            line = f"[{done}/{int(total)}] {message}"
        width = _columns() - 1
        if len(line) > width:
            line = line[: max(0, width - 1)] + "…"
        with self._lock:
            self.stream.write(f"\r\033[K{line}")
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        with self._lock:
            if self.shown:
                self.stream.write("\r\033[K")
                self.stream.flush()
                self.shown = False


def _columns() -> int:
    try:
        return os.get_terminal_size(2).columns
    except OSError:
        return 80


def wants_progress(stream: IO[str]) -> bool:
    """A terminal that is not a CI log."""
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def progress_display(stream: IO[str]) -> Iterator[None]:
    """Show the progress of the service calls made inside the block on ``stream`` (a terminal only)."""
    if not wants_progress(stream):
        yield
        return
    from db_migrate.sandbox import reporting_to

    line = ProgressLine(stream)
    try:
        with reporting_to(line):
            yield
    finally:
        line.clear()
