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

_prefixes: dict[int, str] = {}  # whole second -> "YYYY-MM-DDTHH:MM:SS."
_PREFIXES_LIMIT = 64


def format_timestamp(seconds: float) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, as JavaScript's ``toISOString()`` writes it."""
    ms = int(seconds * 1000)
    second, millis = divmod(ms, 1000)
    # Formatting the date is the slow part (microseconds), and messages share few seconds:
    # a request's timestamp and its deadline a timeout later alternate between two.
    prefix = _prefixes.get(second)
    if prefix is None:
        if len(_prefixes) >= _PREFIXES_LIMIT:
            _prefixes.clear()
        prefix = _prefixes[second] = datetime.fromtimestamp(second, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S."
        )
    return f"{prefix}{millis:03d}Z"


_seconds: dict[str, float] = {}  # "YYYY-MM-DDTHH:MM:SS." -> seconds since the epoch
_last_parsed: tuple[str, float] = ("".join(["not", " yet"]), 0.0)  # a string of its own


def _remember(text: str, value: float) -> None:
    global _last_parsed
    _last_parsed = (text, value)


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch from an ISO 8601 timestamp; raise ``ValueError`` if malformed.

    A timestamp without a zone is taken as UTC.
    """
    last = _last_parsed  # one tuple, so that threads never see half of an update
    if last[0] is text:  # the very string read last: a deadline checked where it was made
        return last[1]
    # The form `format_timestamp` writes, read without `datetime` when its second was seen
    # before: every request carries a deadline its receiver reads.
    if len(text) == 24 and text[23] == "Z" and text[20:23].isdigit():
        second = _seconds.get(text[:20])
        if second is None and text[19] == "." and text[:19].isascii():
            moment = datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)
            if len(_seconds) >= _PREFIXES_LIMIT:
                _seconds.clear()
            second = _seconds[text[:20]] = moment.timestamp()
        if second is not None:
            value = second + int(text[20:23]) / 1000
            _remember(text, value)
            return value
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
