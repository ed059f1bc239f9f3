"""Free text in the CLI's output: control characters shown, not obeyed (data from plugins
and Jira may carry terminal escape sequences), and table cells cut to a width, so one huge
field cannot flood a screen."""

from __future__ import annotations

from rich.markup import escape

from jira_orchestrator._core.text import escape_control

__all__ = ["CELL_WIDTH", "cell", "escape_control"]

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
