"""CircuitBreaker: the seed's state machine, driven by a fake clock."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from typing import Any

import pytest

from jira_orchestrator._core.errors import (
    CircuitOpenError,
    InvalidMessage,
    JiraOrchestratorError,
    RPCError,
)
from jira_orchestrator.resilience import (
    CircuitBreaker,
    CircuitState,
    CircuitStateChange,
    ResilienceConfigError,
    is_caller_error,
)
from tests.resilience.support import FakeClock


class Boom(Exception):
    """A dependency failure."""


async def ok(value: Any = "ok") -> Any:
    return value


async def boom() -> Any:
    raise Boom("down")


async def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            await breaker.execute(boom)


def make(clock: FakeClock, **options: Any) -> CircuitBreaker:
    settings: dict[str, Any] = {
        "threshold": 3,
        "timeout": 10.0,
        "half_open_retries": 2,
        "monitoring_window": 60.0,
    }
    settings.update(options)
    return CircuitBreaker("svc", clock=clock, **settings)


async def test_starts_closed_and_passes_results(clock: FakeClock) -> None:
    breaker = make(clock)
    assert breaker.get_state() == "closed"
    assert await breaker.execute(lambda: ok(42)) == 42
    assert breaker.failures == 0


async def test_opens_after_threshold_failures_and_refuses_without_calling(
    clock: FakeClock,
) -> None:
    breaker = make(clock)
    await fail(breaker, 2)
    assert breaker.get_state() == "closed"
    assert breaker.failures == 2
    await fail(breaker)
    assert breaker.get_state() == "open"
    assert breaker.failures == 3

    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    with pytest.raises(CircuitOpenError, match="'svc' is open"):
        await breaker.execute(counted)
    assert calls == 0


async def test_successes_between_failures_do_not_reset_the_count(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(3):
        await breaker.execute(ok)
        await fail(breaker)
    assert breaker.get_state() == "open"


async def test_only_failures_inside_the_window_count(clock: FakeClock) -> None:
    breaker = make(clock, monitoring_window=60.0)
    await fail(breaker, 2)
    clock.advance(60.0)  # both failures are now exactly one window old: out
    await fail(breaker)
    assert breaker.get_state() == "closed"
    assert breaker.failures == 1
    clock.advance(59.0)
    await fail(breaker)
    assert breaker.get_state() == "closed"
    clock.advance(0.5)
    await fail(breaker)  # three failures within 59.5 s
    assert breaker.get_state() == "open"


async def test_without_a_window_failures_never_expire(clock: FakeClock) -> None:
    breaker = make(clock, monitoring_window=None)
    await fail(breaker, 2)
    clock.advance(1e6)
    await fail(breaker)
    assert breaker.get_state() == "open"


async def test_open_becomes_half_open_after_timeout(clock: FakeClock) -> None:
    breaker = make(clock, timeout=10.0)
    await fail(breaker, 3)
    clock.advance(9.999)
    assert breaker.get_state() == "open"
    clock.advance(0.001)
    assert breaker.get_state() == "half_open"
    assert breaker.state is CircuitState.HALF_OPEN


async def test_half_open_closes_after_enough_successes(clock: FakeClock) -> None:
    breaker = make(clock, half_open_retries=2)
    await fail(breaker, 3)
    clock.advance(10.0)
    assert await breaker.execute(ok) == "ok"
    assert breaker.get_state() == "half_open"
    assert await breaker.execute(ok) == "ok"
    assert breaker.get_state() == "closed"
    assert breaker.failures == 0
    await fail(breaker, 2)  # the old failures were forgotten on closing
    assert breaker.get_state() == "closed"


async def test_a_failure_in_half_open_reopens_and_restarts_the_timeout(
    clock: FakeClock,
) -> None:
    breaker = make(clock, timeout=10.0)
    await fail(breaker, 3)
    clock.advance(10.0)
    await breaker.execute(ok)
    await fail(breaker)
    assert breaker.get_state() == "open"
    clock.advance(9.0)
    assert breaker.get_state() == "open"
    clock.advance(1.0)
    assert breaker.get_state() == "half_open"


async def test_half_open_admits_at_most_max_calls_out_of_100_concurrent(
    clock: FakeClock,
) -> None:
    breaker = make(clock, half_open_max_calls=3, half_open_retries=3)
    await fail(breaker, 3)
    clock.advance(10.0)
    gate = asyncio.Event()
    running = 0
    peak = 0

    async def trial() -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        return "ok"

    tasks = [asyncio.create_task(breaker.execute(trial)) for _ in range(100)]
    await asyncio.sleep(0)
    assert running == 3
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    admitted = [r for r in results if r == "ok"]
    refused = [r for r in results if isinstance(r, CircuitOpenError)]
    assert len(admitted) == 3
    assert len(refused) == 97
    assert peak == 3
    assert "trial calls under way" in str(refused[0])
    assert breaker.get_state() == "closed"


async def test_a_cancelled_trial_frees_its_half_open_slot(clock: FakeClock) -> None:
    breaker = make(clock, half_open_max_calls=1)
    await fail(breaker, 3)
    clock.advance(10.0)
    task = asyncio.create_task(breaker.execute(asyncio.Event().wait))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        await breaker.execute(ok)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.get_state() == "half_open"
    assert await breaker.execute(ok) == "ok"


@pytest.mark.parametrize(
    "options",
    [{}, {"slow_call_threshold": 100.0}, {"failure_rate": 0.5, "minimum_calls": 3}],
    ids=["lean", "timed", "rate"],
)
async def test_a_call_from_an_earlier_state_does_not_count_in_the_next(
    clock: FakeClock, options: dict[str, Any]
) -> None:
    breaker = make(clock, half_open_retries=1, **options)
    gate = asyncio.Event()

    async def slow_success() -> str:
        await gate.wait()
        return "late"

    late = asyncio.create_task(breaker.execute(slow_success))
    await asyncio.sleep(0)
    await fail(breaker, 3)
    clock.advance(10.0)
    assert breaker.get_state() == "half_open"
    gate.set()
    assert await late == "late"
    # Had the closed-era success counted as a trial, one retry would have closed it.
    assert breaker.get_state() == "half_open"


async def test_fallback_answers_when_open_and_when_the_call_fails(clock: FakeClock) -> None:
    breaker = make(clock)

    async def cached() -> str:
        return "cached"

    assert await breaker.execute(boom, cached) == "cached"
    assert breaker.failures == 1  # the failure still counts
    await fail(breaker, 2)
    assert breaker.get_state() == "open"
    assert await breaker.execute(ok, cached) == "cached"


async def test_caller_errors_are_ignored_and_not_replaced_by_the_fallback(
    clock: FakeClock,
) -> None:
    breaker = make(clock, threshold=1)

    async def bad_input() -> str:
        raise InvalidMessage("payload.x: missing")

    async def bad_params() -> str:
        raise RPCError(-32602, "invalid params")

    async def cached() -> str:
        return "cached"

    with pytest.raises(InvalidMessage):
        await breaker.execute(bad_input, cached)
    with pytest.raises(RPCError):
        await breaker.execute(bad_params)
    assert breaker.get_state() == "closed"
    assert breaker.failures == 0
    assert is_caller_error(RPCError(-32603, "internal error")) is False


async def test_record_and_ignore_accept_types_and_predicates(clock: FakeClock) -> None:
    breaker = make(
        clock,
        threshold=1,
        record_exceptions=(ConnectionError, lambda exc: "record me" in str(exc)),
        ignore_exceptions=lambda exc: isinstance(exc, ConnectionResetError),
    )

    async def raise_(exc: Exception) -> None:
        raise exc

    for exc in (ConnectionResetError("reset"), ValueError("not recorded")):
        with pytest.raises(type(exc)):
            await breaker.execute(functools.partial(raise_, exc))
    assert breaker.get_state() == "closed"
    with pytest.raises(ValueError, match="record me"):
        await breaker.execute(lambda: raise_(ValueError("record me")))
    assert breaker.get_state() == "open"


async def test_ignored_error_in_half_open_frees_the_slot_without_counting(
    clock: FakeClock,
) -> None:
    breaker = make(clock, half_open_retries=1)
    await fail(breaker, 3)
    clock.advance(10.0)

    async def bad_input() -> str:
        raise InvalidMessage("bad")

    with pytest.raises(InvalidMessage):
        await breaker.execute(bad_input)
    assert breaker.get_state() == "half_open"
    await breaker.execute(ok)
    assert breaker.get_state() == "closed"


async def test_slow_calls_count_as_failures_but_return_their_result(clock: FakeClock) -> None:
    breaker = make(clock, threshold=2, slow_call_threshold=1.0)

    async def slow() -> str:
        clock.advance(1.5)
        return "slow"

    async def quick() -> str:
        clock.advance(1.0)  # at the threshold is not above it
        return "quick"

    assert await breaker.execute(quick) == "quick"
    assert breaker.failures == 0
    assert await breaker.execute(slow) == "slow"
    assert breaker.failures == 1
    assert await breaker.execute(slow) == "slow"
    assert breaker.get_state() == "open"


async def test_a_slow_trial_reopens_a_half_open_circuit(clock: FakeClock) -> None:
    breaker = make(clock, slow_call_threshold=1.0)
    await fail(breaker, 3)
    clock.advance(10.0)

    async def slow() -> str:
        clock.advance(2.0)
        return "slow"

    assert await breaker.execute(slow) == "slow"
    assert breaker.get_state() == "open"


async def test_failure_rate_mode_needs_minimum_calls(clock: FakeClock) -> None:
    breaker = make(clock, failure_rate=0.5, minimum_calls=4, monitoring_window=10.0)
    await fail(breaker, 3)  # 100% failures but only 3 calls
    assert breaker.get_state() == "closed"
    await breaker.execute(ok)  # 3 of 4 failed, but successes never trip
    assert breaker.get_state() == "closed"
    await fail(breaker)  # 4 of 5 failed
    assert breaker.get_state() == "open"
    assert breaker.failures == 4


async def test_failure_rate_mode_stays_closed_below_the_rate(clock: FakeClock) -> None:
    breaker = make(clock, failure_rate=0.5, minimum_calls=4, monitoring_window=10.0)
    for _ in range(10):
        await breaker.execute(ok)
        await breaker.execute(ok)
        await fail(breaker)
    assert breaker.get_state() == "closed"
    assert breaker.failures == 10


async def test_failure_rate_mode_forgets_calls_older_than_the_window(clock: FakeClock) -> None:
    breaker = make(clock, failure_rate=0.5, minimum_calls=4, monitoring_window=10.0)
    await fail(breaker, 3)
    clock.advance(11.0)
    assert breaker.failures == 0
    await fail(breaker)  # alone in the window: 1 call is under minimum_calls
    assert breaker.get_state() == "closed"


async def test_failure_rate_without_window_counts_since_closing(clock: FakeClock) -> None:
    breaker = make(clock, failure_rate=0.25, minimum_calls=4, monitoring_window=None)
    for _ in range(3):
        await breaker.execute(ok)
    clock.advance(1e6)
    await fail(breaker)
    assert breaker.get_state() == "open"


async def test_forced_open_refuses_until_reset(clock: FakeClock) -> None:
    breaker = make(clock)
    breaker.force_open()
    assert breaker.get_state() == "forced_open"
    clock.advance(1e6)  # no timeout leaves forced-open
    with pytest.raises(CircuitOpenError, match="forced open"):
        await breaker.execute(ok)
    breaker.reset()
    assert breaker.get_state() == "closed"
    assert await breaker.execute(ok) == "ok"


async def test_disabled_lets_everything_through_and_records_nothing(clock: FakeClock) -> None:
    breaker = make(clock, threshold=1)
    breaker.disable()
    await fail(breaker, 5)
    assert breaker.get_state() == "disabled"
    assert await breaker.execute(ok) == "ok"
    breaker.reset()
    assert breaker.failures == 0


async def test_reset_forgets_failures(clock: FakeClock) -> None:
    breaker = make(clock)
    await fail(breaker, 3)
    breaker.reset()
    await fail(breaker, 2)
    assert breaker.get_state() == "closed"


async def test_listeners_get_every_change_in_order(clock: FakeClock) -> None:
    changes: list[CircuitStateChange] = []
    breaker = CircuitBreaker(
        "backend",
        threshold=2,
        timeout=5.0,
        half_open_retries=1,
        clock=clock,
        wall_clock=lambda: 1_700_000_000.5,
        listeners=[changes.append],
    )
    await fail(breaker, 2)
    clock.advance(5.0)
    await breaker.execute(ok)
    assert [(c.old_state, c.new_state) for c in changes] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    opened = changes[0]
    assert opened.name == "backend"
    assert opened.failures == 2
    assert opened.monotonic == 1000.0
    assert changes[1].monotonic == 1005.0
    assert changes[2].failures == 0
    assert opened.to_payload() == {
        "name": "backend",
        "state": "open",
        "previousState": "closed",
        "failures": 2,
        "timestamp": "2023-11-14T22:13:20.500Z",
    }


async def test_a_raising_listener_is_logged_and_does_not_break_the_breaker(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def broken(change: CircuitStateChange) -> None:
        raise RuntimeError("bus down")

    breaker = make(clock, threshold=1, listeners=[broken, lambda c: seen.append(c.new_state)])
    with caplog.at_level(logging.ERROR):
        await fail(breaker)
    assert breaker.get_state() == "open"
    assert seen == ["open"]
    assert "bus down" in caplog.text


async def test_an_async_listener_runs_as_a_task(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    published: list[dict[str, Any]] = []

    async def publish(change: CircuitStateChange) -> None:
        await asyncio.sleep(0)
        published.append(change.to_payload())

    async def broken(change: CircuitStateChange) -> None:
        raise RuntimeError("async bus down")

    breaker = make(clock, threshold=1, listeners=[publish, broken])
    with caplog.at_level(logging.ERROR):
        await fail(breaker)
        for _ in range(3):
            await asyncio.sleep(0)
    assert [p["state"] for p in published] == ["open"]
    assert "async state listener failed" in caplog.text


def test_an_async_listener_outside_a_loop_is_closed_and_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def publish(change: CircuitStateChange) -> None:
        raise AssertionError("never runs")

    breaker = make(clock, listeners=[publish])
    with caplog.at_level(logging.ERROR):
        breaker.force_open()  # no loop running: the coroutine cannot be scheduled
    assert breaker.get_state() == "forced_open"
    assert "outside an event loop" in caplog.text


async def test_remove_listener(clock: FakeClock) -> None:
    seen: list[CircuitStateChange] = []
    breaker = make(clock)
    breaker.add_listener(seen.append)
    breaker.remove_listener(seen.append)
    breaker.force_open()
    assert seen == []
    with pytest.raises(ValueError, match="not in list"):
        breaker.remove_listener(seen.append)


async def test_decorator_guards_an_async_function(clock: FakeClock) -> None:
    breaker = make(clock, threshold=2)
    calls: list[int] = []

    @breaker
    async def fetch(issue: int, *, fail_it: bool = False) -> int:
        calls.append(issue)
        if fail_it:
            raise Boom(str(issue))
        return issue * 2

    assert fetch.__name__ == "fetch"
    assert await fetch(21) == 42
    for n in (1, 2):
        with pytest.raises(Boom):
            await fetch(n, fail_it=True)
    with pytest.raises(CircuitOpenError):
        await fetch(3)
    assert calls == [21, 1, 2]


async def test_a_non_callable_operation_is_a_type_error_not_a_failure(clock: FakeClock) -> None:
    breaker = make(clock, threshold=1)
    with pytest.raises(TypeError, match="operation must be callable"):
        await breaker.execute("not callable")  # type: ignore[arg-type]
    assert breaker.get_state() == "closed"


async def test_cancellation_is_never_counted(clock: FakeClock) -> None:
    breaker = make(clock, threshold=1)
    task = asyncio.create_task(breaker.execute(asyncio.Event().wait))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.get_state() == "closed"


def test_repr_names_the_breaker_and_state(clock: FakeClock) -> None:
    breaker = make(clock)
    assert repr(breaker) == "<CircuitBreaker 'svc' closed>"
    assert breaker.name == "svc"


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"threshold": 0}, "threshold"),
        ({"threshold": -1}, "threshold"),
        ({"threshold": 2.5}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"threshold": "5"}, "threshold"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": "60"}, "timeout"),
        ({"half_open_retries": 0}, "half_open_retries"),
        ({"monitoring_window": 0}, "monitoring_window"),
        ({"monitoring_window": "5m"}, "monitoring_window"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"slow_call_threshold": -0.5}, "slow_call_threshold"),
        ({"failure_rate": 0}, "failure_rate"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"failure_rate": True}, "failure_rate"),
        ({"failure_rate": "50%"}, "failure_rate"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"record_exceptions": ["ConnectionError"]}, "record_exceptions"),
        ({"record_exceptions": int}, "record_exceptions"),
        ({"ignore_exceptions": 5}, "ignore_exceptions"),
        ({"clock": 5.0}, "clock"),
        ({"wall_clock": None}, "wall_clock"),
        ({"listeners": [1]}, "listener"),
        ({"listeners": "print"}, "listeners"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], option: str) -> None:
    with pytest.raises(ResilienceConfigError) as caught:
        CircuitBreaker("svc", **options)
    assert caught.value.option == option
    assert str(caught.value).startswith(f"{option}: ")
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, JiraOrchestratorError)


@pytest.mark.parametrize("name", ["", 5, None])
def test_bad_name(name: Any) -> None:
    with pytest.raises(ResilienceConfigError, match="name: must be a non-empty string"):
        CircuitBreaker(name)


def test_decorating_a_non_callable_is_refused() -> None:
    with pytest.raises(ResilienceConfigError, match="decorated function"):
        CircuitBreaker("svc")(42)  # type: ignore[arg-type]


async def test_a_coroutine_passed_instead_of_a_function_is_explained_and_closed(
    clock: FakeClock,
) -> None:
    breaker = make(clock, threshold=1)
    mistake = ok()
    with pytest.raises(TypeError, match=r"not its call \(execute\(fetch\(\)\)\)"):
        await breaker.execute(mistake)  # type: ignore[arg-type]
    assert inspect.getcoroutinestate(mistake) == "CORO_CLOSED"  # no "never awaited" warning
    assert breaker.get_state() == "closed"
