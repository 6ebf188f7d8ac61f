"""Today, as the budget counts it: from local midnight."""

from __future__ import annotations

import time

__all__ = ["local_midnight_ns"]


def local_midnight_ns(now: float | None = None) -> int:
    """The start of today (local time) in nanoseconds since the epoch."""
    today = time.localtime(time.time() if now is None else now)
    return int(time.mktime(today[:3] + (0, 0, 0, 0, 0, -1)) * 1e9)
