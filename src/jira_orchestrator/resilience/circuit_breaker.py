"""The circuit breaker: stop calling a dependency that keeps failing, probe it, recover.

States, as in the seed's ``@jira-orchestrator/circuit-breaker`` and resilience4j::

    closed ──(threshold failures inside monitoring_window)──▶ open
    open ──(timeout seconds later)──▶ half_open
    half_open ──(half_open_retries successes)──▶ closed
    half_open ──(one failure)──▶ open

plus two operator states: ``forced_open`` (refuse everything) and ``disabled`` (let
everything through, record nothing), both left with ``reset()``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

from jira_orchestrator._core import observe
from jira_orchestrator._core.clock import (
    MonotonicClock,
    WallClock,
    format_timestamp,
    monotonic,
    wall,
)
from jira_orchestrator._core.errors import CircuitOpenError
from jira_orchestrator._core.tasks import BackgroundTasks
from jira_orchestrator.resilience._matching import ExceptionMatcher, ExceptionSpec, is_caller_error
from jira_orchestrator.resilience._options import (
    check_callable,
    check_int,
    check_seconds,
    not_callable,
)
from jira_orchestrator.resilience.errors import ResilienceConfigError

__all__ = ["CircuitBreaker", "CircuitState", "CircuitStateChange", "StateListener"]

T = TypeVar("T")
P = ParamSpec("P")

_log = logging.getLogger(__name__)


class CircuitState(StrEnum):
    """A breaker's state; compares equal to the seed's strings (``"open"`` ...)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


# Module globals are cheaper to reach than enum members on the hot path.
_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN
_FORCED_OPEN = CircuitState.FORCED_OPEN
_DISABLED = CircuitState.DISABLED
_STATES = tuple(state.value for state in CircuitState)


@dataclass(frozen=True, slots=True)
class CircuitStateChange:
    """One state change, as handed to listeners.

    ``timestamp`` is wall-clock seconds since the epoch, ``monotonic`` the breaker's clock;
    ``failures`` counts the failures that led here (0 once closed).
    """

    name: str
    old_state: CircuitState
    new_state: CircuitState
    failures: int
    timestamp: float
    monotonic: float

    def to_payload(self) -> dict[str, Any]:
        """The event as published on ``plugin/<id>/circuit-breaker`` (camelCase, ISO time)."""
        return {
            "name": self.name,
            "state": self.new_state.value,
            "previousState": self.old_state.value,
            "failures": self.failures,
            "timestamp": format_timestamp(self.timestamp),
        }


StateListener = Callable[[CircuitStateChange], object]


class _FailureCount:
    """The last ``threshold`` failure times; trips when all of them fit in the window."""

    __slots__ = ("_times", "_window")

    counts_successes = False

    def __init__(self, threshold: int, window: float | None) -> None:
        self._times: deque[float] = deque(maxlen=threshold)
        self._window = window

    def record(self, now: float, failed: bool) -> bool:
        if not failed:
            return False
        times = self._times
        times.append(now)
        return len(times) == times.maxlen and (
            self._window is None or now - times[0] < self._window
        )

    def failures(self, now: float) -> int:
        if self._window is None:
            return len(self._times)
        return sum(1 for t in self._times if now - t < self._window)

    def clear(self) -> None:
        self._times.clear()


class _FailureRate:
    """Calls and failures in the window, kept in ten buckets so memory stays constant."""

    __slots__ = (
        "_calls",
        "_current",
        "_failures",
        "_index",
        "_minimum_calls",
        "_rate",
        "_slot",
        "_width",
    )

    counts_successes = True
    _BUCKETS = 10

    def __init__(self, window: float | None, minimum_calls: int, rate: float) -> None:
        buckets = 1 if window is None else self._BUCKETS
        self._width = None if window is None else window / buckets
        self._index = [0] * buckets
        self._calls = [0] * buckets
        self._failures = [0] * buckets
        self._current = 0
        self._slot = 0
        self._minimum_calls = minimum_calls
        self._rate = rate

    def _bucket(self, now: float) -> int:
        return 0 if self._width is None else int(now // self._width)

    def record(self, now: float, failed: bool) -> bool:
        index = self._bucket(now)
        if index != self._current:
            self._current = index
            self._slot = slot = index % len(self._index)
            if self._index[slot] != index:  # the bucket last held an older interval
                self._index[slot] = index
                self._calls[slot] = self._failures[slot] = 0
        slot = self._slot
        self._calls[slot] += 1
        if not failed:
            return False
        self._failures[slot] += 1
        calls, failures = self._totals(index)
        return calls >= self._minimum_calls and failures / calls >= self._rate

    def _totals(self, index: int) -> tuple[int, int]:
        oldest = index - len(self._index)
        calls = failures = 0
        for slot, at in enumerate(self._index):
            if oldest < at <= index:
                calls += self._calls[slot]
                failures += self._failures[slot]
        return calls, failures

    def failures(self, now: float) -> int:
        return self._totals(self._bucket(now))[1]

    def clear(self) -> None:
        for slot in range(len(self._index)):
            self._calls[slot] = self._failures[slot] = 0


class CircuitBreaker:
    """Guards calls to one dependency; see the module docstring for the states.

    Durations are seconds. ``threshold`` failures inside ``monitoring_window`` open the
    circuit (``None``: no window); with ``failure_rate`` set, the circuit opens instead when
    at least ``minimum_calls`` calls ended in the window and that share of them failed.
    ``timeout`` later it lets ``half_open_max_calls`` trial calls through at once and closes
    after ``half_open_retries`` successes. A call slower than ``slow_call_threshold`` counts
    as a failure even though its result is returned.

    Exceptions matching ``record_exceptions`` and not ``ignore_exceptions`` (types or
    predicates) are failures; ignored ones (by default the caller's own errors, see
    ``is_caller_error``) pass through uncounted. ``BaseException`` such as cancellation is
    never counted. Not thread-safe: use a breaker from one event loop.
    """

    __slots__ = (
        "_clock",
        "_epoch",
        "_half_open_max_calls",
        "_half_open_retries",
        "_half_open_successes",
        "_ignore",
        "_in_flight",
        "_lean",
        "_listener_tasks",
        "_listeners",
        "_minimum_calls",
        "_monitoring_window",
        "_name",
        "_opened_at",
        "_record",
        "_slow_call_threshold",
        "_state",
        "_threshold",
        "_timeout",
        "_trip_failures",
        "_wall_clock",
        "_window",
    )

    def __init__(
        self,
        name: str,
        *,
        threshold: int = 5,
        timeout: float = 60.0,
        half_open_retries: int = 3,
        monitoring_window: float | None = 300.0,
        half_open_max_calls: int = 1,
        record_exceptions: ExceptionSpec = Exception,
        ignore_exceptions: ExceptionSpec = is_caller_error,
        slow_call_threshold: float | None = None,
        failure_rate: float | None = None,
        minimum_calls: int = 10,
        clock: MonotonicClock = monotonic,
        wall_clock: WallClock = wall,
        listeners: Iterable[StateListener] = (),
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ResilienceConfigError("name", f"must be a non-empty string, got {name!r}")
        self._name = name
        self._threshold = check_int("threshold", threshold, minimum=1)
        self._timeout = check_seconds("timeout", timeout)
        self._half_open_retries = check_int("half_open_retries", half_open_retries, minimum=1)
        self._monitoring_window = (
            None
            if monitoring_window is None
            else check_seconds("monitoring_window", monitoring_window)
        )
        self._half_open_max_calls = check_int("half_open_max_calls", half_open_max_calls, minimum=1)
        self._record = ExceptionMatcher("record_exceptions", record_exceptions)
        self._ignore = ExceptionMatcher("ignore_exceptions", ignore_exceptions)
        self._slow_call_threshold = (
            None
            if slow_call_threshold is None
            else check_seconds("slow_call_threshold", slow_call_threshold)
        )
        self._minimum_calls = check_int("minimum_calls", minimum_calls, minimum=1)
        self._window: _FailureCount | _FailureRate
        if failure_rate is None:
            self._window = _FailureCount(self._threshold, self._monitoring_window)
        else:
            if (
                isinstance(failure_rate, bool)
                or not isinstance(failure_rate, int | float)
                or not 0 < failure_rate <= 1
            ):
                raise ResilienceConfigError(
                    "failure_rate", f"must be a fraction in (0, 1], got {failure_rate!r}"
                )
            self._window = _FailureRate(
                self._monitoring_window, self._minimum_calls, float(failure_rate)
            )
        self._clock = check_callable("clock", clock)
        self._wall_clock = check_callable("wall_clock", wall_clock)
        self._listeners: list[StateListener] = []
        if isinstance(listeners, str | bytes) or not isinstance(listeners, Iterable):
            raise ResilienceConfigError(
                "listeners", f"must be an iterable of callables, got {listeners!r}"
            )
        for listener in listeners:
            self.add_listener(listener)
        self._listener_tasks = BackgroundTasks(_log, f"circuit {name!r}: async state listener")
        # Nothing to do after a success in the closed state unless successes are counted
        # (failure-rate mode) or timed (slow calls): that is the hot path we keep bare.
        self._lean = not self._window.counts_successes and self._slow_call_threshold is None
        self._state = _CLOSED
        observe.set_states("breaker_state", name, _STATES, _CLOSED.value)
        # Bumped on every transition: a call that started in an earlier state must not
        # count in the current one (a slow call from the closed state must not close a
        # half-open circuit, nor free one of its trial slots).
        self._epoch = 0
        self._opened_at = 0.0
        self._in_flight = 0
        self._half_open_successes = 0
        self._trip_failures = 0

    @property
    def name(self) -> str:
        """The breaker's name, usually the plugin id."""
        return self._name

    @property
    def state(self) -> CircuitState:
        """The current state (same as ``get_state()``)."""
        return self._current_state()

    @property
    def failures(self) -> int:
        """Failures counted now: inside the window when closed, since tripping otherwise."""
        if self._state is _CLOSED:
            return self._window.failures(self._clock())
        return self._trip_failures

    def get_state(self) -> CircuitState:
        """``"closed"``, ``"open"`` or ``"half_open"`` (or an operator state), as the seed's."""
        return self._current_state()

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(change)`` on every state change.

        A listener that raises is logged and skipped; one that returns an awaitable has it
        run as a task on the running loop.
        """
        self._listeners.append(check_callable("listener", listener))

    def remove_listener(self, listener: StateListener) -> None:
        """Stop calling ``listener``; raise ``ValueError`` if it was not added."""
        self._listeners.remove(listener)

    def force_open(self) -> None:
        """Refuse every call until ``reset()``."""
        self._transition(_FORCED_OPEN, self._clock())

    def disable(self) -> None:
        """Let every call through and record nothing until ``reset()``."""
        self._transition(_DISABLED, self._clock())

    def reset(self) -> None:
        """Close the circuit and forget every failure."""
        self._transition(_CLOSED, self._clock())

    async def execute(
        self,
        operation: Callable[[], Awaitable[T]],
        fallback: Callable[[], Awaitable[T]] | None = None,
    ) -> T:
        """Await ``operation()`` if the circuit lets it through.

        ``fallback()`` is awaited instead when the circuit refuses the call or the call
        fails with a recorded exception; without one, a refused call raises
        ``CircuitOpenError`` and a failed one re-raises. Ignored exceptions always re-raise.
        """
        # The closed state is handled here rather than in a helper coroutine: each extra
        # coroutine costs about as much as awaiting a trivial operation.
        if self._state is _CLOSED:
            epoch = self._epoch
            if self._lean:
                try:
                    return await operation()
                except Exception as exc:
                    if self._on_error(exc, epoch, operation) and fallback is not None:
                        return await fallback()
                    raise
            started = self._clock()
            try:
                result = await operation()
            except Exception as exc:
                if self._on_error(exc, epoch, operation) and fallback is not None:
                    return await fallback()
                raise
            self._on_success(epoch, started)
            return result
        return await self._execute_guarded(operation, fallback)

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Use the breaker as a decorator on an async function."""
        check_callable("decorated function", fn)

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.execute(lambda: fn(*args, **kwargs))

        return guarded

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self._name!r} {self._state.value}>"

    async def _execute_guarded(
        self,
        operation: Callable[[], Awaitable[T]],
        fallback: Callable[[], Awaitable[T]] | None,
    ) -> T:
        state = self._current_state()
        if state is _DISABLED:
            return await operation()
        if state is _HALF_OPEN and self._in_flight < self._half_open_max_calls:
            epoch = self._epoch
            self._in_flight += 1
            started = self._clock()
            try:
                try:
                    result = await operation()
                finally:
                    if self._epoch == epoch:
                        self._in_flight -= 1
            except Exception as exc:
                if self._on_error(exc, epoch, operation) and fallback is not None:
                    return await fallback()
                raise
            self._on_success(epoch, started)
            return result
        if fallback is not None:
            return await fallback()
        raise self._refusal(state)

    def _refusal(self, state: CircuitState) -> CircuitOpenError:
        if state is _OPEN:
            remaining = max(0.0, self._opened_at + self._timeout - self._clock())
            why = f"open, next trial in {remaining:.3g}s"
        elif state is _HALF_OPEN:
            why = f"half-open with all {self._half_open_max_calls} trial calls under way"
        else:
            why = "forced open; reset() closes it"
        return CircuitOpenError(f"circuit {self._name!r} is {why}")

    def _current_state(self) -> CircuitState:
        if self._state is _OPEN:
            now = self._clock()
            if now - self._opened_at >= self._timeout:
                self._transition(_HALF_OPEN, now)
        return self._state

    def _on_error(
        self, exc: Exception, epoch: int, operation: Callable[[], Awaitable[Any]]
    ) -> bool:
        """Count ``exc`` if it is a recorded failure; return whether it is one."""
        if isinstance(exc, TypeError) and not callable(operation):
            # The caller's bug, not the dependency's: must not open the circuit.
            raise not_callable(operation) from None
        if not self._record(exc) or self._ignore(exc):
            return False
        if epoch == self._epoch:
            self._record_failure(self._clock())
        return True

    def _on_success(self, epoch: int, started: float) -> None:
        if epoch != self._epoch:
            return
        now = self._clock()
        if self._slow_call_threshold is not None and now - started > self._slow_call_threshold:
            self._record_failure(now)
            return
        state = self._state
        if state is _CLOSED:
            if self._window.counts_successes:
                self._window.record(now, False)
        elif state is _HALF_OPEN:
            self._half_open_successes += 1
            if self._half_open_successes >= self._half_open_retries:
                self._transition(_CLOSED, now)

    def _record_failure(self, now: float) -> None:
        state = self._state
        if state is _CLOSED:
            if self._window.record(now, True):
                self._trip_failures = self._window.failures(now)
                self._transition(_OPEN, now)
        elif state is _HALF_OPEN:
            self._trip_failures += 1
            self._transition(_OPEN, now)

    def _transition(self, new: CircuitState, now: float) -> None:
        old = self._state
        self._state = new
        self._epoch += 1
        if old is not new and observe.active() is not None:
            observe.set_states("breaker_state", self._name, _STATES, new.value)
            observe.inc("breaker_transitions", (self._name, old.value, new.value))
        if new is _OPEN:
            self._opened_at = now
        elif new is _HALF_OPEN:
            self._in_flight = 0
            self._half_open_successes = 0
        elif new is _CLOSED:
            self._window.clear()
            self._trip_failures = 0
        if self._listeners and old is not new:
            self._emit(
                CircuitStateChange(
                    name=self._name,
                    old_state=old,
                    new_state=new,
                    failures=self._trip_failures,
                    timestamp=self._wall_clock(),
                    monotonic=now,
                )
            )

    def _emit(self, change: CircuitStateChange) -> None:
        for listener in tuple(self._listeners):
            try:
                outcome = listener(change)
            except Exception:
                # A broken listener (a bus that is down, say) must not break the breaker.
                _log.exception("circuit %r: state listener %r failed", self._name, listener)
                continue
            if inspect.isawaitable(outcome):
                self._schedule(listener, outcome)

    def _schedule(self, listener: StateListener, outcome: Awaitable[Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if inspect.iscoroutine(outcome):
                outcome.close()  # never awaited: close it so Python does not warn
            _log.error(
                "circuit %r: state listener %r returned an awaitable outside an event loop",
                self._name,
                listener,
            )
            return
        self._listener_tasks.spawn(outcome, loop=loop)
