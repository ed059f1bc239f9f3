"""``--json`` of ``demo`` and ``up``: one JSON object a line per issue, on standard output.

While the lines are written, everything else the command would print (tables, progress,
the lines of plugin processes) goes to standard error, so standard output holds the
results alone and another program can read it line by line as the issues finish.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from jira_orchestrator.orchestrator.dispatcher import DispatchResult

__all__ = ["INVALID", "ResultLines", "dispatch_line", "invalid_line", "processed_line"]

INVALID = "invalid"
"""The outcome of an issue that was not dispatched because it cannot be read."""


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def dispatch_line(index: int, result: DispatchResult) -> dict[str, Any]:
    """The line of an issue the orchestrator dispatched (or could not dispatch)."""
    line: dict[str, Any] = {
        "index": index,
        "key": result.issue_key,
        "routedTo": result.primary,
        "doneBy": result.plugin,
        "outcome": result.outcome,
        "fallback": result.fallback_used,
        "ms": _ms(result.duration),
        "taskId": result.task_id or None,
    }
    if result.error:
        line["error"] = result.error
    return line


def invalid_line(index: int, key: str | None, reason: str) -> dict[str, Any]:
    """The line of an issue that was skipped: why, and nothing dispatched."""
    return {
        "index": index,
        "key": key,
        "routedTo": None,
        "doneBy": None,
        "outcome": INVALID,
        "fallback": False,
        "ms": None,
        "taskId": None,
        "reason": reason,
    }


def processed_line(index: int, row: Mapping[str, Any]) -> dict[str, Any]:
    """The line of an issue of ``demo --jira``: what the Jira loop did with it."""
    outcome = row.get("outcome") or row.get("action")
    line: dict[str, Any] = {
        "index": index,
        "key": row.get("key"),
        "routedTo": row.get("routedTo"),
        "doneBy": row.get("doneBy"),
        "outcome": outcome,
        "fallback": bool(row.get("fallback")),
        "ms": row.get("ms"),
        "taskId": row.get("taskId"),
    }
    if outcome not in ("completed", "triaged") and row.get("error"):
        line["error"] = row["error"]
    if "status" in row:
        line["status"] = row["status"]
    return line


class ResultLines:
    """Writes result lines to the standard output it was given, flushed one by one."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.written = 0

    def write(self, line: Mapping[str, Any]) -> None:
        self.out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        self.out.flush()
        self.written += 1

    @classmethod
    @contextlib.contextmanager
    def redirecting(cls) -> Iterator[ResultLines]:
        """Lines to the real standard output; all else printed meanwhile to standard
        error (``sys.stdout`` points there for the block)."""
        lines = cls(sys.stdout)
        with contextlib.redirect_stdout(sys.stderr):
            yield lines
