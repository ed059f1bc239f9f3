"""Free text in the CLI's output: control characters shown, not obeyed (data from plugins
and Jira may carry terminal escape sequences), and table cells cut to a width, so one huge
field cannot flood a screen."""

from __future__ import annotations

import re

from rich.markup import escape

__all__ = ["CELL_WIDTH", "cell", "escape_control"]

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def escape_control(text: str) -> str:
    """``text`` with every control character (C0, C1, bidirectional and zero-width marks)
    written as an escape such as ``\\x1b``, so a terminal shows it instead of obeying it."""
    return _CONTROL.sub(
        lambda found: (
            f"\\x{ord(found.group()):02x}"
            if ord(found.group()) < 0x100
            else f"\\u{ord(found.group()):04x}"
        ),
        text,
    )


CELL_WIDTH = 60
"""The most characters a table cell of free text shows."""


def cell(text: str | None, width: int = CELL_WIDTH, *, markup: bool = True) -> str:
    """``text`` cut to ``width`` characters (ending in ``…`` when cut), escaped for rich
    markup unless ``markup`` is False."""
    if not text:
        return ""
    text = escape_control(text)
    short = text if len(text) <= width else text[: width - 1] + "…"
    return escape(short) if markup else short
