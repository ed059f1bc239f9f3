"""Checks for the Python options of breakers, retries and policies."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import TypeVar

from jira_orchestrator.resilience.errors import ResilienceConfigError

__all__ = ["check_callable", "check_choice", "check_int", "check_seconds", "not_callable"]

F = TypeVar("F", bound=Callable[..., object])


def check_int(option: str, value: object, *, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``; bools are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ResilienceConfigError(option, f"must be an integer, got {value!r}")
    if value < minimum:
        raise ResilienceConfigError(option, f"must be at least {minimum}, got {value}")
    return value


def check_seconds(option: str, value: object, *, allow_zero: bool = False) -> float:
    """``value`` as a finite number of seconds, above zero (or zero when allowed)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResilienceConfigError(option, f"must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ResilienceConfigError(option, f"must be a finite {bound} seconds, got {value!r}")
    return seconds


def check_choice(option: str, value: object, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ResilienceConfigError(option, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def check_callable(option: str, value: F) -> F:
    """``value`` if it is callable."""
    if not callable(value):
        raise ResilienceConfigError(option, f"must be callable, got {value!r}")
    return value


def not_callable(operation: object) -> TypeError:
    """The error for an operation that cannot be called; closes a coroutine passed by mistake."""
    if inspect.iscoroutine(operation):
        operation.close()  # it will never run; closing spares a "never awaited" warning
        return TypeError(
            "operation must be a callable returning an awaitable, got a coroutine:"
            " pass the function (execute(fetch)), not its call (execute(fetch()))"
        )
    return TypeError(f"operation must be callable, got {operation!r}")
