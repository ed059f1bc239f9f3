"""RetryPolicy: backoff shapes, jitter, what is retried, hints and deadlines, with fake time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jira_orchestrator._core.errors import CircuitOpenError, InvalidMessage, RequestTimeout
from jira_orchestrator.resilience import (
    BACKOFFS,
    ResilienceConfigError,
    RetryPolicy,
    retry_after_hint,
)
from tests.resilience.support import FakeClock


class Flaky:
    """Fails ``failures`` times with ``error``, then returns ``"done"``."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("refused")
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def policy(clock: FakeClock, **options: Any) -> RetryPolicy:
    settings: dict[str, Any] = {"initial_delay": 1.0, "max_delay": 100.0, "jitter": "none"}
    settings.update(options)
    return RetryPolicy(clock=clock, sleep=clock.sleep, **settings)


async def test_a_first_success_neither_retries_nor_sleeps(clock: FakeClock) -> None:
    flaky = Flaky(0)
    assert await policy(clock).execute(flaky) == "done"
    assert flaky.calls == 1
    assert clock.sleeps == []


async def test_retries_until_success(clock: FakeClock) -> None:
    flaky = Flaky(3)
    assert await policy(clock, max_retries=3).execute(flaky) == "done"
    assert flaky.calls == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]


async def test_gives_up_after_max_retries_with_the_last_error(clock: FakeClock) -> None:
    errors = iter([ConnectionError("first"), ConnectionError("second"), ConnectionError("last")])

    async def failing() -> str:
        raise next(errors)

    with pytest.raises(ConnectionError, match="last"):
        await policy(clock, max_retries=2).execute(failing)
    assert len(clock.sleeps) == 2


async def test_max_retries_zero_makes_one_attempt(clock: FakeClock) -> None:
    flaky = Flaky(1)
    with pytest.raises(ConnectionError):
        await policy(clock, max_retries=0).execute(flaky)
    assert flaky.calls == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        ("constant", [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]),
        ("linear", [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]),
        ("exponential", [2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0]),
        ("fibonacci", [2.0, 2.0, 4.0, 6.0, 10.0, 16.0, 20.0]),
    ],
)
async def test_backoff_shapes_are_capped_at_max_delay(
    clock: FakeClock, backoff: str, expected: list[float]
) -> None:
    retry = policy(clock, backoff=backoff, initial_delay=2.0, max_delay=20.0, max_retries=7)
    with pytest.raises(ConnectionError):
        await retry.execute(Flaky(100))
    assert clock.sleeps == expected
    assert [retry.backoff_delay(n) for n in range(1, 8)] == expected


@pytest.mark.parametrize(
    ("jitter", "draw", "expected"),
    [("full", 0.25, 2.0), ("full", 0.0, 0.0), ("equal", 0.25, 5.0), ("equal", 1.0, 8.0)],
)
async def test_jitter_draws_within_its_range(
    clock: FakeClock, jitter: str, draw: float, expected: float
) -> None:
    retry = policy(clock, jitter=jitter, initial_delay=8.0, max_retries=1, random=lambda: draw)
    await retry.execute(Flaky(1))
    assert clock.sleeps == [expected]


@given(
    backoff=st.sampled_from(BACKOFFS),
    initial=st.floats(0, 10),
    extra=st.floats(0, 100),
    retry=st.integers(1, 500),
)
def test_backoff_never_shrinks_and_never_exceeds_max_delay(
    backoff: Any, initial: float, extra: float, retry: int
) -> None:
    rule = RetryPolicy(backoff=backoff, initial_delay=initial, max_delay=initial + extra)
    delay = rule.backoff_delay(retry)
    assert 0 <= delay <= initial + extra
    assert rule.backoff_delay(retry + 1) >= delay


async def test_only_matching_errors_are_retried(clock: FakeClock) -> None:
    retry = policy(clock, retry_on=(ConnectionError, lambda exc: "transient" in str(exc)))
    wrong = Flaky(1, ValueError("permanent"))
    with pytest.raises(ValueError, match="permanent"):
        await retry.execute(wrong)
    assert wrong.calls == 1
    transient = Flaky(1, ValueError("transient glitch"))
    assert await retry.execute(transient) == "done"
    assert transient.calls == 2


@pytest.mark.parametrize(
    "error", [InvalidMessage("payload: bad"), CircuitOpenError("circuit 'x' is open")]
)
async def test_caller_errors_and_open_circuits_are_not_retried(
    clock: FakeClock, error: Exception
) -> None:
    flaky = Flaky(1, error)
    with pytest.raises(type(error)):
        await policy(clock).execute(flaky)
    assert flaky.calls == 1
    assert policy(clock).is_retryable(error) is False


async def test_give_up_on_overrides_retry_on(clock: FakeClock) -> None:
    flaky = Flaky(1, RequestTimeout("plugin/x/request", 5.0))
    with pytest.raises(RequestTimeout):
        await policy(clock, give_up_on=TimeoutError).execute(flaky)
    assert flaky.calls == 1


async def test_cancellation_is_never_retried(clock: FakeClock) -> None:
    calls = 0

    async def cancelled() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("first")
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await policy(clock, max_retries=5).execute(cancelled)
    assert calls == 2


class TooManyRequests(Exception):
    def __init__(self, retry_after: Any) -> None:
        super().__init__("429")
        self.retry_after = retry_after


async def test_a_retry_after_hint_overrides_the_backoff_uncapped_and_unjittered(
    clock: FakeClock,
) -> None:
    retry = policy(clock, max_delay=2.0, jitter="full", random=lambda: 0.0, max_retries=2)
    flaky = Flaky(2, TooManyRequests(30))
    assert await retry.execute(flaky) == "done"
    assert clock.sleeps == [30.0, 30.0]


async def test_a_custom_hint_reader(clock: FakeClock) -> None:
    retry = policy(clock, retry_after=lambda exc: 7.5 if isinstance(exc, KeyError) else None)
    await retry.execute(Flaky(1, KeyError("k")))
    await retry.execute(Flaky(1))
    assert clock.sleeps == [7.5, 1.0]


@pytest.mark.parametrize(
    ("hint", "expected"),
    [(3, 3.0), (0.5, 0.5), (-4, 0.0), ("7", None), (True, None), (float("inf"), None)],
)
def test_retry_after_hint_reads_numbers_only(hint: Any, expected: float | None) -> None:
    assert retry_after_hint(TooManyRequests(hint)) == expected
    assert retry_after_hint(ValueError()) is None


async def test_the_deadline_stops_a_retry_that_would_end_too_late(clock: FakeClock) -> None:
    retry = policy(clock, max_retries=10, deadline=10.0)

    async def slow_failure() -> str:
        clock.advance(1.0)
        raise ConnectionError("still down")

    with pytest.raises(ConnectionError):
        await retry.execute(slow_failure)
    # Attempts end at 1, 3, 6 and 11 s; the sleeps after the first three end at 2, 5 and
    # 10 s, within the deadline; the fourth (8 s) would end at 19 s, so it never starts.
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert clock.now - 1000.0 == pytest.approx(11.0)


async def test_decorator_retries_with_arguments(clock: FakeClock) -> None:
    retry = policy(clock)
    attempts: list[str] = []

    @retry
    async def fetch(key: str) -> str:
        attempts.append(key)
        if len(attempts) < 2:
            raise ConnectionError
        return key.upper()

    assert await fetch("proj-1") == "PROJ-1"
    assert attempts == ["proj-1", "proj-1"]
    assert fetch.__name__ == "fetch"


def test_repr_shows_the_settings() -> None:
    text = repr(RetryPolicy(backoff="linear", initial_delay=0.5, max_delay=3))
    assert text == (
        "<RetryPolicy max_retries=3 backoff=linear initial_delay=0.5s max_delay=3s jitter=full>"
    )


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retries": None}, "max_retries"),
        ({"backoff": "exponentail"}, "backoff"),
        ({"backoff": None}, "backoff"),
        ({"initial_delay": -1}, "initial_delay"),
        ({"initial_delay": "1s"}, "initial_delay"),
        ({"max_delay": float("nan")}, "max_delay"),
        ({"initial_delay": 5, "max_delay": 1}, "max_delay"),
        ({"jitter": "half"}, "jitter"),
        ({"retry_on": "ConnectionError"}, "retry_on"),
        ({"give_up_on": [3]}, "give_up_on"),
        ({"deadline": 0}, "deadline"),
        ({"retry_after": 5}, "retry_after"),
        ({"clock": "now"}, "clock"),
        ({"sleep": None}, "sleep"),
        ({"random": 0.5}, "random"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], option: str) -> None:
    with pytest.raises(ResilienceConfigError) as caught:
        RetryPolicy(**options)
    assert caught.value.option == option


@pytest.mark.parametrize("retry", [0, -3, 1.0])
def test_backoff_delay_refuses_bad_retry_numbers(retry: Any) -> None:
    with pytest.raises(ResilienceConfigError, match="retry: "):
        RetryPolicy().backoff_delay(retry)


def test_decorating_a_non_callable_is_refused() -> None:
    with pytest.raises(ResilienceConfigError, match="decorated function"):
        RetryPolicy()("fetch")  # type: ignore[arg-type]


async def test_give_up_if_stops_after_the_current_failure(clock: FakeClock) -> None:
    flaky = Flaky(5)
    seen: list[BaseException] = []

    def enough(exc: BaseException) -> bool:
        seen.append(exc)
        return len(seen) >= 2

    with pytest.raises(ConnectionError):
        await policy(clock, max_retries=5).execute(flaky, give_up_if=enough)
    assert flaky.calls == 2
    assert clock.sleeps == [1.0]


async def test_a_non_callable_operation_is_not_retried(clock: FakeClock) -> None:
    with pytest.raises(TypeError, match="operation must be callable"):
        await policy(clock).execute("not callable")  # type: ignore[arg-type]
    assert clock.sleeps == []
