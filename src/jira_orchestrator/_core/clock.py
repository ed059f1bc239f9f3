"""Clocks. Everything that waits or stamps takes a clock, so tests never sleep.

``WallClock`` returns seconds since the epoch (timestamps, ``expiresAt``);
``MonotonicClock`` returns monotonic seconds (timeouts, breakers, backoff).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

__all__ = [
    "MonotonicClock",
    "WallClock",
    "format_timestamp",
    "monotonic",
    "parse_timestamp",
    "wall",
]

WallClock = Callable[[], float]
MonotonicClock = Callable[[], float]

wall: WallClock = time.time
monotonic: MonotonicClock = time.monotonic

_last_ms = -1
_last_text = ""


def format_timestamp(seconds: float) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, as JavaScript's ``toISOString()`` writes it."""
    global _last_ms, _last_text
    ms = int(seconds * 1000)
    if ms == _last_ms:  # many messages share a millisecond; formatting is the slow part
        return _last_text
    text = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}Z"
    )
    _last_ms, _last_text = ms, text
    return text


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch from an ISO 8601 timestamp; raise ``ValueError`` if malformed.

    A timestamp without a zone is taken as UTC.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
