"""One plugin's resilience policy: timeout, circuit breaker, retry and fallback composed.

The order, outermost first, as Polly recommends and Dapr applies it::

    fallback( retry( circuit_breaker( timeout( operation ) ) ) )

- The timeout is innermost, so it bounds each attempt rather than the whole call, and a
  hung attempt counts as one breaker failure like any other.
- The breaker sits inside the retry, so it sees every attempt: a dependency that fails
  three retries in a row has three failures counted, and opens sooner. Once it is open
  the retry gives up at once, with the error that opened it, rather than sleeping
  towards certain refusals.
- The fallback is outermost: it answers when everything inside gave up, retries
  exhausted or circuit open alike.
"""

from __future__ import annotations

import asyncio
import functools
import random as _random
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar, cast

from jira_orchestrator._core.clock import MonotonicClock, WallClock, monotonic, wall
from jira_orchestrator.resilience._manifest import manifest_mapping, read_error_handling
from jira_orchestrator.resilience._matching import ExceptionMatcher, ExceptionSpec, is_caller_error
from jira_orchestrator.resilience._options import check_seconds, not_callable
from jira_orchestrator.resilience.circuit_breaker import CircuitBreaker, CircuitState, StateListener
from jira_orchestrator.resilience.errors import CallTimeout, ResilienceConfigError
from jira_orchestrator.resilience.fallback import FALLBACK_STRATEGIES, FallbackStrategy
from jira_orchestrator.resilience.retry import RetryPolicy

__all__ = ["ResiliencePolicy", "call_with_timeout"]

T = TypeVar("T")

_REFUSING = (CircuitState.OPEN, CircuitState.FORCED_OPEN)


async def call_with_timeout(operation: Callable[[], Awaitable[T]], timeout: float) -> T:
    """Await ``operation()`` for at most ``timeout`` seconds of the event loop's clock.

    Raises ``CallTimeout`` (a ``TimeoutError``) after cancelling the operation. A
    ``TimeoutError`` the operation raises itself passes through unchanged.
    """
    scope = asyncio.timeout(check_seconds("timeout", timeout))
    try:
        async with scope:
            return await operation()
    except TimeoutError:
        if scope.expired():
            raise CallTimeout(timeout) from None
        raise


class ResiliencePolicy:
    """Timeout, breaker, retry and fallback around calls to one dependency.

    Any part may be ``None`` to leave it out. ``fallback_strategy`` and ``fallback_plugin``
    are carried for the dispatcher, which turns them into the ``fallback`` callable it
    passes to ``execute``. See the module docstring for the wrapping order.
    """

    __slots__ = (
        "_breaker",
        "_fall_back_on",
        "_fallback_plugin",
        "_fallback_strategy",
        "_give_up_on",
        "_retry",
        "_timeout",
    )

    def __init__(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        fallback_strategy: FallbackStrategy = "none",
        fallback_plugin: str | None = None,
        fall_back_on: ExceptionSpec = Exception,
        give_up_on: ExceptionSpec = is_caller_error,
    ) -> None:
        self._timeout = None if timeout is None else check_seconds("timeout", timeout)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ResilienceConfigError("retry", f"must be a RetryPolicy or None, got {retry!r}")
        if breaker is not None and not isinstance(breaker, CircuitBreaker):
            raise ResilienceConfigError(
                "breaker", f"must be a CircuitBreaker or None, got {breaker!r}"
            )
        self._retry = retry
        self._breaker = breaker
        if fallback_strategy not in FALLBACK_STRATEGIES:
            raise ResilienceConfigError(
                "fallback_strategy",
                f"must be one of {', '.join(FALLBACK_STRATEGIES)}, got {fallback_strategy!r}",
            )
        if (fallback_strategy == "plugin") != (fallback_plugin is not None):
            raise ResilienceConfigError(
                "fallback_plugin", 'must be given exactly when fallback_strategy is "plugin"'
            )
        if fallback_plugin is not None and (
            not isinstance(fallback_plugin, str) or not fallback_plugin
        ):
            raise ResilienceConfigError(
                "fallback_plugin", f"must be a plugin id, got {fallback_plugin!r}"
            )
        self._fallback_strategy = fallback_strategy
        self._fallback_plugin = fallback_plugin
        self._fall_back_on = ExceptionMatcher("fall_back_on", fall_back_on)
        self._give_up_on = ExceptionMatcher("give_up_on", give_up_on)

    @classmethod
    def from_manifest(
        cls,
        manifest: object,
        *,
        name: str | None = None,
        clock: MonotonicClock = monotonic,
        wall_clock: WallClock = wall,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        listeners: Iterable[StateListener] = (),
    ) -> ResiliencePolicy:
        """Build the policy a plugin's ``errorHandling`` section describes.

        ``manifest`` is the raw plugin.json content (camelCase keys, milliseconds) or a
        model whose ``model_dump(by_alias=True, mode="json")`` gives it. Missing parts get
        the seed's defaults (breaker 5 failures / 60 s / 3 trial successes / 5 min window;
        3 exponential retries from 1 s to 10 s); ``"enabled": false`` leaves a part out.
        The breaker is named ``name``, else the manifest's ``name``. Raises
        ``ManifestError`` listing every bad value by its JSON path.
        """
        data = manifest_mapping(manifest)
        settings = read_error_handling(data)
        if name is None:
            found = data.get("name")
            name = found if isinstance(found, str) and found else "plugin"
        breaker = None
        if settings.breaker is not None:
            breaker = CircuitBreaker(
                name, **settings.breaker, clock=clock, wall_clock=wall_clock, listeners=listeners
            )
        retry = None
        if settings.retry is not None:
            retry = RetryPolicy(**settings.retry, clock=clock, sleep=sleep, random=random)
        return cls(
            timeout=settings.timeout,
            retry=retry,
            breaker=breaker,
            fallback_strategy=cast(FallbackStrategy, settings.fallback_strategy),
            fallback_plugin=settings.fallback_plugin,
        )

    @property
    def timeout(self) -> float | None:
        """Seconds one attempt may take, or ``None``."""
        return self._timeout

    @property
    def retry(self) -> RetryPolicy | None:
        """The retry policy, or ``None``."""
        return self._retry

    @property
    def breaker(self) -> CircuitBreaker | None:
        """The circuit breaker, or ``None``."""
        return self._breaker

    @property
    def fallback_strategy(self) -> FallbackStrategy:
        """What the manifest asks for when everything fails: none, error, cached or plugin."""
        return self._fallback_strategy

    @property
    def fallback_plugin(self) -> str | None:
        """The plugin to ask instead when ``fallback_strategy`` is ``"plugin"``."""
        return self._fallback_plugin

    async def execute(
        self,
        operation: Callable[[], Awaitable[T]],
        fallback: Callable[[], Awaitable[T]] | None = None,
    ) -> T:
        """Await ``operation()`` under the policy; ``fallback()`` answers if it gives up.

        The fallback is used for errors matching ``fall_back_on`` and not ``give_up_on``
        (the caller's own errors re-raise by default).
        """
        # The first attempt goes straight through the breaker; the retry machinery is only
        # set up once it has failed, so a healthy call pays for as few layers as possible.
        attempt: Callable[[], Awaitable[T]] = operation
        if self._timeout is not None:
            attempt = functools.partial(call_with_timeout, operation, self._timeout)
        breaker = self._breaker
        retry = self._retry
        started = retry._begin() if retry is not None else 0.0
        try:
            if breaker is not None:
                return await breaker.execute(attempt)
            return await attempt()
        except Exception as exc:
            if isinstance(exc, TypeError) and not callable(operation):
                raise not_callable(operation) from None
            if retry is None:
                if fallback is None or not self._falls_back(exc):
                    raise
                return await fallback()
            failure = exc
        if breaker is not None:
            attempt = functools.partial(breaker.execute, attempt)
        try:
            return await retry._continue(attempt, failure, started, self._circuit_refuses)
        except Exception as exc:
            if fallback is None or not self._falls_back(exc):
                raise
            return await fallback()

    def _falls_back(self, exc: Exception) -> bool:
        return self._fall_back_on(exc) and not self._give_up_on(exc)

    def _circuit_refuses(self, exc: BaseException) -> bool:
        return self._breaker is not None and self._breaker.state in _REFUSING

    def __repr__(self) -> str:
        parts = [
            f"timeout={self._timeout!r}",
            f"retry={self._retry!r}",
            f"breaker={self._breaker!r}",
            f"fallback={self._fallback_strategy}",
        ]
        return f"<ResiliencePolicy {' '.join(parts)}>"
