"""Fallback chains: try alternatives in order until one succeeds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from jira_orchestrator.resilience._matching import ExceptionMatcher, ExceptionSpec, is_caller_error
from jira_orchestrator.resilience._options import check_callable
from jira_orchestrator.resilience.errors import AllFallbacksFailed

__all__ = ["FALLBACK_STRATEGIES", "FallbackStrategy", "with_fallbacks"]

T = TypeVar("T")

# What a manifest's ``errorHandling.fallback.strategy`` may ask for. The dispatcher turns
# it into a callable: answer with an error, with the last cached result, or ask
# ``fallbackPlugin`` instead; resilience only carries the choice.
FallbackStrategy = Literal["none", "error", "cached", "plugin"]
FALLBACK_STRATEGIES: tuple[FallbackStrategy, ...] = ("none", "error", "cached", "plugin")


async def with_fallbacks(
    primary: Callable[[], Awaitable[T]],
    *fallbacks: Callable[[], Awaitable[T]],
    fall_back_on: ExceptionSpec = Exception,
    give_up_on: ExceptionSpec = is_caller_error,
) -> T:
    """Await ``primary()``, then each of ``fallbacks`` in turn, until one returns.

    An error matching ``fall_back_on`` and not ``give_up_on`` moves on to the next
    alternative; any other error is raised at once (by default the caller's own errors, which
    no alternative would fix). When every alternative fails, raise ``AllFallbacksFailed``, an
    ``ExceptionGroup`` holding each error in the order tried.
    """
    alternatives = (primary, *fallbacks)
    for index, alternative in enumerate(alternatives):
        check_callable("primary" if index == 0 else f"fallbacks[{index - 1}]", alternative)
    fall_back = ExceptionMatcher("fall_back_on", fall_back_on)
    give_up = ExceptionMatcher("give_up_on", give_up_on)
    errors: list[Exception] = []
    for alternative in alternatives:
        try:
            return await alternative()
        except Exception as exc:
            if not fall_back(exc) or give_up(exc):
                raise
            errors.append(exc)
    raise AllFallbacksFailed(f"all {len(alternatives)} alternatives failed", errors)
