"""What a verdict says its jobs ran under, progress and the call's deadline: the light half of the sandbox.

A service function is decorated with :func:`reports_isolation` at import time and calls :func:`progress`;
neither needs the machinery that runs jobs (:mod:`.parent`), which a static command (``heads --no-drift``)
never loads.  Both share this thread-local state with :mod:`.parent`: the call's scope (progress sink,
jobs to cancel), its deadline and the isolations of the jobs it ran.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from db_migrate.errors import UsageError
from db_migrate.verdict import Isolation, Verdict

_local = threading.local()


def call_cancelled() -> bool:
    """The call this thread runs for (:func:`~db_migrate.sandbox.parent.run_in_scope`) was cancelled: start nothing new."""
    scope = getattr(_local, "scope", None)
    return scope is not None and bool(getattr(scope, "cancelled", False))


def _check_timeout(timeout: float) -> float:
    if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0 or timeout > 86400 * 7:
        raise UsageError(f"The timeout must be a number of seconds between 0 and one week, not {timeout!r}.")
    return float(timeout)


@contextmanager
def call_deadline(timeout: float | None) -> Iterator[None]:
    """Within the block, ``timeout`` seconds bound all jobs together: each gets what is left.

    A call runs several jobs (a template build, the roundtrip, the review the policy needs);
    each used to get the whole ``--timeout``, so a revision looping at import cost it three
    times over.  Now the first job that hangs uses up the call's time and the later ones
    are not started (:class:`~db_migrate.errors.MigrationTimeout` at once).  ``None``: no
    deadline (each job keeps its own default).  Nested blocks keep the earlier deadline.
    """
    if timeout is None:
        yield
        return
    previous = getattr(_local, "deadline", None)
    mine = (time.monotonic() + _check_timeout(timeout), float(timeout))
    _local.deadline = mine if previous is None or mine[0] < previous[0] else previous
    try:
        yield
    finally:
        _local.deadline = previous



def progress(message: str, progress: float | None = None, total: float | None = None) -> None:
    """Report progress from parent-side service code (no-op outside :func:`~.parent.run_in_scope`)."""
    scope = getattr(_local, "scope", None)  # a parent.CallScope, set by run_in_scope or reporting_to
    if scope is not None and scope.sink is not None:
        scope.sink(message, progress, total)


_NETWORK_ORDER = ["unrestricted", "scratch-database-only", "none"]
_IDENTITY_ORDER = ["caller", "root-without-capabilities", "unprivileged"]


def _record(iso: Isolation) -> None:
    log = getattr(_local, "isolations", None)
    if log is not None:
        log.append(iso)


def weakest(isolations: list[Isolation]) -> Isolation:
    """The isolation that held for every one of ``isolations`` (the default when none ran)."""
    if not isolations:
        return Isolation(summary="no project code ran for this verdict")
    network = min((i.network for i in isolations), key=_NETWORK_ORDER.index)
    filesystem = "unrestricted" if any(i.filesystem == "unrestricted" for i in isolations) else "read-only"
    limits = [i.memory_limit_mib for i in isolations]
    writable = sorted({w for i in isolations for w in i.writable}) if filesystem == "read-only" else []
    weakest_one = min(isolations, key=lambda i: (_NETWORK_ORDER.index(i.network), i.filesystem == "read-only",
                                                 _IDENTITY_ORDER.index(i.identity), i.processes == "own-pid-namespace"))
    return Isolation(
        process="none" if any(i.process == "none" for i in isolations) else "fresh-process",
        network=network, filesystem=filesystem, writable=writable,
        identity=min((i.identity for i in isolations), key=_IDENTITY_ORDER.index),
        processes="own-pid-namespace" if all(i.processes == "own-pid-namespace" for i in isolations) else "shared",
        memory_limit_mib=None if None in limits else max(limits),  # type: ignore[type-var]
        summary=weakest_one.summary if len(isolations) == 1 or len({i.summary for i in isolations}) == 1
        else f"{len(isolations)} jobs; the weakest: {weakest_one.summary}",
    )


@contextmanager
def collect_isolation() -> Iterator[list[Isolation]]:
    """Collect the isolation of every job run inside the block (nested blocks also report outwards)."""
    outer = getattr(_local, "isolations", None)
    mine: list[Isolation] = []
    _local.isolations = mine
    try:
        yield mine
    finally:
        _local.isolations = outer
        if outer is not None:
            outer.extend(mine)


def record_isolation(iso: Isolation) -> None:
    """Count ``iso`` for the current verdict, as if a job had just run under it (a cached result's)."""
    _record(iso)


def reports_isolation(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a service function: its Verdict's ``isolation`` says what its jobs ran under."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with collect_isolation() as mine:
            result = fn(*args, **kwargs)
        if isinstance(result, Verdict):
            result.isolation = weakest(mine)
        return result

    return wrapper
