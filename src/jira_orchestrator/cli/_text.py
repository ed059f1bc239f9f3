"""Free text in the CLI's tables: cut to a width, so one huge field cannot flood a screen."""

from __future__ import annotations

from rich.markup import escape

__all__ = ["CELL_WIDTH", "cell"]

CELL_WIDTH = 60
"""The most characters a table cell of free text shows."""


def cell(text: str | None, width: int = CELL_WIDTH, *, markup: bool = True) -> str:
    """``text`` cut to ``width`` characters (ending in ``…`` when cut), escaped for rich
    markup unless ``markup`` is False."""
    if not text:
        return ""
    short = text if len(text) <= width else text[: width - 1] + "…"
    return escape(short) if markup else short
