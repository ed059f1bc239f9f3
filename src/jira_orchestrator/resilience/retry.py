"""The retry policy: try again after a growing delay, as the manifest's ``retryPolicy`` says.

Built on tenacity; the first attempt runs outside it, so a call that succeeds at once
costs one ``await`` and tenacity only steps in to schedule the retries.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random as _random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal, ParamSpec, TypeVar

from tenacity import AsyncRetrying, RetryCallState

from jira_orchestrator._core.clock import MonotonicClock, monotonic
from jira_orchestrator._core.errors import CircuitOpenError
from jira_orchestrator.resilience._matching import ExceptionMatcher, ExceptionSpec, is_caller_error
from jira_orchestrator.resilience._options import (
    check_callable,
    check_choice,
    check_int,
    check_seconds,
    not_callable,
)
from jira_orchestrator.resilience.errors import ResilienceConfigError

__all__ = ["BACKOFFS", "JITTERS", "Backoff", "Jitter", "RetryPolicy", "retry_after_hint"]

T = TypeVar("T")
P = ParamSpec("P")

Backoff = Literal["constant", "linear", "exponential", "fibonacci"]
Jitter = Literal["full", "equal", "none"]
BACKOFFS: tuple[Backoff, ...] = ("constant", "linear", "exponential", "fibonacci")
JITTERS: tuple[Jitter, ...] = ("full", "equal", "none")


def _is_circuit_open(exc: BaseException) -> bool:
    return isinstance(exc, CircuitOpenError)


def retry_after_hint(exc: BaseException) -> float | None:
    """The exception's ``retry_after`` attribute in seconds (an HTTP 429's Retry-After), if any."""
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, bool) or not isinstance(hint, int | float) or not math.isfinite(hint):
        return None
    return max(0.0, float(hint))


class RetryPolicy:
    """Re-runs a failing async operation with backoff; all durations in seconds.

    Retry ``n`` (1, 2, ...) waits ``initial_delay`` times 1 (constant), ``n`` (linear),
    ``2**(n-1)`` (exponential) or the ``n``-th Fibonacci number (fibonacci), capped at
    ``max_delay``, then jittered: ``full`` draws from ``[0, d]``, ``equal`` from
    ``[d/2, d]``. When ``retry_after(exc)`` gives a hint (by default the exception's
    ``retry_after`` attribute) that delay is used as is, neither capped nor jittered, since
    waiting less than the server asked would only fail again.

    An exception is retried if it matches ``retry_on`` and not ``give_up_on`` (types or
    predicates; by default caller errors and ``CircuitOpenError`` give up at once). With
    ``deadline``, no retry is scheduled whose delay would end past ``deadline`` seconds
    after the first attempt started; the last error is raised instead. A running attempt is
    never cut short: put a timeout inside for that.
    """

    __slots__ = (
        "_backoff",
        "_clock",
        "_deadline",
        "_give_up_on",
        "_initial_delay",
        "_jitter",
        "_max_delay",
        "_max_retries",
        "_random",
        "_retry_after",
        "_retry_on",
        "_sleep",
    )

    def __init__(
        self,
        *,
        max_retries: int = 3,
        backoff: Backoff = "exponential",
        initial_delay: float = 1.0,
        max_delay: float = 10.0,
        jitter: Jitter = "full",
        retry_on: ExceptionSpec = Exception,
        give_up_on: ExceptionSpec = (is_caller_error, _is_circuit_open),
        deadline: float | None = None,
        retry_after: Callable[[BaseException], float | None] = retry_after_hint,
        clock: MonotonicClock = monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._max_retries = check_int("max_retries", max_retries, minimum=0)
        self._backoff = check_choice("backoff", backoff, BACKOFFS)
        self._initial_delay = check_seconds("initial_delay", initial_delay, allow_zero=True)
        self._max_delay = check_seconds("max_delay", max_delay, allow_zero=True)
        if self._max_delay < self._initial_delay:
            raise ResilienceConfigError(
                "max_delay",
                f"must not be less than initial_delay ({initial_delay!r}), got {max_delay!r}",
            )
        self._jitter = check_choice("jitter", jitter, JITTERS)
        self._retry_on = ExceptionMatcher("retry_on", retry_on)
        self._give_up_on = ExceptionMatcher("give_up_on", give_up_on)
        self._deadline = None if deadline is None else check_seconds("deadline", deadline)
        self._retry_after = check_callable("retry_after", retry_after)
        self._clock = check_callable("clock", clock)
        self._sleep = check_callable("sleep", sleep)
        self._random = check_callable("random", random)

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt (so at most ``max_retries + 1`` attempts)."""
        return self._max_retries

    def backoff_delay(self, retry: int) -> float:
        """The delay before retry number ``retry`` (1-based), capped but before jitter."""
        retry = check_int("retry", retry, minimum=1)
        if self._backoff == "constant":
            factor = 1.0
        elif self._backoff == "linear":
            factor = float(retry)
        elif self._backoff == "exponential":
            # Past 2**64 every sane delay is capped anyway; keep the float finite.
            factor = 2.0 ** min(retry - 1, 64)
        else:
            previous, current = 0, 1
            for _ in range(min(retry, 94) - 1):
                previous, current = current, previous + current
            factor = float(current)
        return min(self._initial_delay * factor, self._max_delay)

    def _delay(self, retry: int, exc: BaseException | None) -> float:
        if exc is not None:
            hint = self._retry_after(exc)
            if hint is not None:
                return hint
        delay = self.backoff_delay(retry)
        if self._jitter == "full":
            return delay * self._random()
        if self._jitter == "equal":
            return delay / 2 + delay / 2 * self._random()
        return delay

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether this policy would retry after ``exc``."""
        return isinstance(exc, Exception) and self._retry_on(exc) and not self._give_up_on(exc)

    async def execute(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        give_up_if: Callable[[BaseException], bool] | None = None,
    ) -> T:
        """Await ``operation()``, retrying as configured; re-raise the last error.

        ``give_up_if(exc)`` returning true stops at once after this call's failure, for
        conditions only the caller knows (the policy stops once its breaker is open).
        """
        started = self._begin()
        try:
            return await operation()
        except Exception as exc:
            first = exc
        return await self._continue(operation, first, started, give_up_if)

    def _begin(self) -> float:
        """The start time a deadline counts from (the clock is only read if needed)."""
        return self._clock() if self._deadline is not None else 0.0

    async def _continue(
        self,
        operation: Callable[[], Awaitable[T]],
        first: Exception,
        started: float,
        give_up_if: Callable[[BaseException], bool] | None,
    ) -> T:
        """Go on after the first attempt failed with ``first``: retry, or re-raise it."""
        if isinstance(first, TypeError) and not callable(operation):
            # The caller's bug: retrying it would only fail the same way, slower.
            raise not_callable(operation) from None
        if (
            self._max_retries == 0
            or not self.is_retryable(first)
            or (give_up_if is not None and give_up_if(first))
        ):
            raise first
        return await self._retry(operation, first, started, give_up_if)

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Use the policy as a decorator on an async function."""
        check_callable("decorated function", fn)

        @functools.wraps(fn)
        async def retried(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.execute(lambda: fn(*args, **kwargs))

        return retried

    async def _retry(
        self,
        operation: Callable[[], Awaitable[T]],
        first: Exception,
        started: float,
        give_up_if: Callable[[BaseException], bool] | None,
    ) -> T:
        attempts = 0

        async def attempt() -> T:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                # Tenacity starts from the attempt we already made and saw fail.
                raise first
            return await operation()

        def should_retry(state: RetryCallState) -> bool:
            if state.attempt_number == 1:
                return True  # ``first``, already judged retryable by execute()
            exc = state.outcome.exception() if state.outcome is not None else None
            if exc is None or not self.is_retryable(exc):
                return False
            return give_up_if is None or not give_up_if(exc)

        def wait(state: RetryCallState) -> float:
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None else None
            return self._delay(state.attempt_number, exc)

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number > self._max_retries:
                return True
            if self._deadline is None:
                return False
            return self._clock() + state.upcoming_sleep - started > self._deadline

        async def sleep(seconds: float) -> None:
            await self._sleep(seconds)

        retrying = AsyncRetrying(
            sleep=sleep, stop=stop, wait=wait, retry=should_retry, reraise=True
        )
        result: T = await retrying(attempt)
        return result

    def __repr__(self) -> str:
        return (
            f"<RetryPolicy max_retries={self._max_retries} backoff={self._backoff}"
            f" initial_delay={self._initial_delay:g}s max_delay={self._max_delay:g}s"
            f" jitter={self._jitter}>"
        )
