"""Waiting for something another process does, without racing it.

:func:`wait_until` polls a condition; its limit only keeps a broken run from hanging, and no test
asserts how long anything took.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(cond: Callable[[], object], seconds: float) -> bool:
    """Poll ``cond`` until it is true or ``seconds`` have passed; whether it became true."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())
