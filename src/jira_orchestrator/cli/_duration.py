"""Durations on the command line: ``30d``, ``12h``, ``1d12h``, ``90m``, ``45s``, ``2w``."""

from __future__ import annotations

import re

__all__ = ["MAX_DURATION", "parse_duration"]

MAX_DURATION = 100 * 365 * 86400.0
"""The longest duration accepted, in seconds (a hundred years)."""

_UNITS = {"w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d{1,12}(?:\.\d{1,9})?)([wdhms])")


def parse_duration(text: str) -> float:
    """Seconds in ``text``, one or more ``NUMBER UNIT`` (units w, d, h, m, s); raise
    ``ValueError`` saying what is wrong when it is not one, is zero or is over a hundred
    years."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"not a duration: {text!r} (say e.g. 30d, 12h, 1d12h, 90m, 45s)")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f"a duration must be more than zero, got {text!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration must be at most 100 years, got {text!r}")
    return seconds
