"""ResiliencePolicy: the wrapping order, and building it from a manifest's errorHandling."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from jira_orchestrator._core.errors import CircuitOpenError, InvalidMessage, ManifestError
from jira_orchestrator.resilience import (
    CallTimeout,
    CircuitBreaker,
    CircuitStateChange,
    ResilienceConfigError,
    ResiliencePolicy,
    RetryPolicy,
    call_with_timeout,
)
from tests.resilience.support import FakeClock, run_in_loop_time

SEED_MANIFEST: dict[str, Any] = {
    "name": "your-plugin",
    "version": "1.0.0",
    "errorHandling": {
        "circuitBreaker": {"enabled": True, "threshold": 5, "timeout": 60000, "halfOpenRetries": 3},
        "retryPolicy": {
            "maxRetries": 3,
            "backoff": "exponential",
            "initialDelay": 1000,
            "maxDelay": 10000,
        },
    },
}


def with_error_handling(**sections: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(SEED_MANIFEST)
    manifest["errorHandling"].update(sections)
    return manifest


class Down(Exception):
    pass


class Counter:
    """An operation that fails ``failures`` times, then answers."""

    def __init__(self, failures: int = 10**9) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise Down(f"call {self.calls}")
        return "ok"


async def cached() -> str:
    return "cached"


def no_jitter(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["errorHandling"]["retryPolicy"]["jitter"] = "none"
    return manifest


# --- from_manifest: values and defaults ------------------------------------------------


async def test_the_seed_manifest_converts_milliseconds_to_seconds(clock: FakeClock) -> None:
    policy = ResiliencePolicy.from_manifest(
        no_jitter(copy.deepcopy(SEED_MANIFEST)), clock=clock, sleep=clock.sleep
    )
    assert policy.timeout is None
    assert policy.fallback_strategy == "none"
    breaker = policy.breaker
    assert breaker is not None
    assert breaker.name == "your-plugin"
    flaky = Counter()
    with pytest.raises(Down):
        await policy.execute(flaky)
    # 3 retries waiting 1, 2, 4 s: initialDelay 1000 ms, exponential
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert flaky.calls == 4
    with pytest.raises(Down, match="call 5"):
        await policy.execute(flaky)
    # threshold 5: the 5th failed attempt opened it and the retry stopped there
    assert flaky.calls == 5
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert breaker.get_state() == "open"
    clock.advance(59.9)
    assert breaker.get_state() == "open"
    clock.advance(0.1)  # timeout 60000 ms
    assert breaker.get_state() == "half_open"


async def test_a_manifest_without_error_handling_gets_the_seed_defaults(clock: FakeClock) -> None:
    policy = ResiliencePolicy.from_manifest(
        {"name": "bare"}, clock=clock, sleep=clock.sleep, random=lambda: 1.0
    )
    assert policy.breaker is not None
    assert policy.retry is not None
    assert policy.retry.max_retries == 3
    assert [policy.retry.backoff_delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    # monitoringWindow 300000 ms: four failures five minutes ago no longer count
    for _ in range(4):
        with pytest.raises(Down):
            await policy.breaker.execute(Counter())
    clock.advance(300.0)
    with pytest.raises(Down):
        await policy.breaker.execute(Counter())
    assert policy.breaker.get_state() == "closed"
    assert policy.breaker.failures == 1


async def test_every_option_is_read(clock: FakeClock) -> None:
    changes: list[CircuitStateChange] = []
    manifest = {
        "name": "fastapi-backend",
        "errorHandling": {
            "timeout": 2500,
            "circuitBreaker": {
                "threshold": 2,
                "timeout": 1000,
                "halfOpenRetries": 1,
                "monitoringWindow": None,
                "halfOpenMaxCalls": 2,
                "slowCallThreshold": 500,
                "minimumCalls": 3,
            },
            "retryPolicy": {
                "maxRetries": 1,
                "backoff": "linear",
                "initialDelay": 250,
                "maxDelay": 250,
                "jitter": "equal",
                "deadline": 60000,
            },
            "fallback": {"strategy": "plugin", "fallbackPlugin": "generic-backend"},
        },
    }
    policy = ResiliencePolicy.from_manifest(
        manifest, clock=clock, sleep=clock.sleep, random=lambda: 0.0, listeners=[changes.append]
    )
    assert policy.timeout == 2.5
    assert policy.fallback_strategy == "plugin"
    assert policy.fallback_plugin == "generic-backend"
    with pytest.raises(Down):
        await policy.execute(Counter())
    assert clock.sleeps == [0.125]  # linear 250 ms, equal jitter drawing 0: half of it
    assert [c.new_state for c in changes] == ["open"]  # two failed attempts, threshold 2
    assert changes[0].name == "fastapi-backend"


async def test_the_failure_rate_mode_from_a_manifest(clock: FakeClock) -> None:
    manifest = with_error_handling(
        circuitBreaker={"failureRate": 0.5, "minimumCalls": 2}, retryPolicy={"enabled": False}
    )
    policy = ResiliencePolicy.from_manifest(manifest, clock=clock)
    assert policy.retry is None
    assert policy.breaker is not None
    await policy.execute(Counter(0))
    with pytest.raises(Down):
        await policy.execute(Counter())
    assert policy.breaker.get_state() == "open"


def test_enabled_false_leaves_a_part_out() -> None:
    manifest = with_error_handling(
        circuitBreaker={"enabled": False}, retryPolicy={"enabled": False}
    )
    policy = ResiliencePolicy.from_manifest(manifest)
    assert policy.breaker is None
    assert policy.retry is None


def test_a_model_is_read_through_model_dump() -> None:
    class Model:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def model_dump(self, **options: Any) -> dict[str, Any]:
            self.calls.append(options)
            return with_error_handling(fallback={"strategy": "cached"})

    model = Model()
    policy = ResiliencePolicy.from_manifest(model, name="override")
    assert model.calls == [{"by_alias": True, "mode": "json"}]
    assert policy.fallback_strategy == "cached"
    assert policy.breaker is not None
    assert policy.breaker.name == "override"


def test_a_fallback_plugin_alone_implies_the_plugin_strategy() -> None:
    policy = ResiliencePolicy.from_manifest(
        with_error_handling(fallback={"fallbackPlugin": "backup"})
    )
    assert policy.fallback_strategy == "plugin"
    assert policy.fallback_plugin == "backup"


def test_a_nameless_manifest_names_the_breaker_plugin() -> None:
    policy = ResiliencePolicy.from_manifest({"errorHandling": None})
    assert policy.breaker is not None
    assert policy.breaker.name == "plugin"


async def test_null_is_the_same_as_absent(clock: FakeClock) -> None:
    nulls = {
        "timeout": None,
        "circuitBreaker": dict.fromkeys(("enabled", "threshold", "monitoringWindow")),
        "retryPolicy": dict.fromkeys(("maxRetries", "initialDelay", "jitter")),
        "fallback": {"strategy": None, "fallbackPlugin": None},
    }
    policy = ResiliencePolicy.from_manifest(
        {"errorHandling": nulls}, clock=clock, sleep=clock.sleep, random=lambda: 1.0
    )
    assert policy.timeout is None
    assert policy.fallback_strategy == "none"
    assert policy.retry is not None
    assert policy.retry.max_retries == 3
    assert policy.retry.backoff_delay(1) == 1.0
    breaker = policy.breaker
    assert breaker is not None
    for _ in range(4):
        with pytest.raises(Down):
            await breaker.execute(Counter())
    clock.advance(299.0)  # still inside the default five-minute window
    with pytest.raises(Down):
        await breaker.execute(Counter())
    assert breaker.get_state() == "open"


def test_integral_floats_are_integers_as_in_json() -> None:
    policy = ResiliencePolicy.from_manifest(with_error_handling(retryPolicy={"maxRetries": 2.0}))
    assert policy.retry is not None
    assert policy.retry.max_retries == 2


# --- from_manifest: bad input ----------------------------------------------------------


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        (
            {"retryPolicy": {"backoff": "exponentail"}},
            "errorHandling.retryPolicy.backoff: must"
            ' be one of constant, linear, exponential, fibonacci, got "exponentail"',
        ),
        ({"retryPolicy": {"jitter": 1}}, "errorHandling.retryPolicy.jitter: must be one of"),
        (
            {"retryPolicy": {"maxRetries": -1}},
            "errorHandling.retryPolicy.maxRetries: must be at least 0",
        ),
        (
            {"retryPolicy": {"maxRetries": "3"}},
            "errorHandling.retryPolicy.maxRetries: must be an integer",
        ),
        (
            {"retryPolicy": {"initialDelay": 5000, "maxDelay": 1000}},
            "errorHandling.retryPolicy.maxDelay: must not be less than initialDelay (5000)",
        ),
        (
            {"retryPolicy": {"deadline": 0}},
            "errorHandling.retryPolicy.deadline: must be more than zero milliseconds",
        ),
        (
            {"retryPolicy": {"enabled": "yes"}},
            "errorHandling.retryPolicy.enabled: must be true or false",
        ),
        ({"retryPolicy": []}, "errorHandling.retryPolicy: must be an object, got an array"),
        (
            {"circuitBreaker": {"threshold": 0}},
            "errorHandling.circuitBreaker.threshold: must be at least 1, got 0",
        ),
        (
            {"circuitBreaker": {"threshold": True}},
            "errorHandling.circuitBreaker.threshold: must be an integer",
        ),
        (
            {"circuitBreaker": {"timeout": -5}},
            "errorHandling.circuitBreaker.timeout: must be more than zero milliseconds, got -5",
        ),
        (
            {"circuitBreaker": {"timeout": "60s"}},
            'errorHandling.circuitBreaker.timeout: must be a number of milliseconds, got "60s"',
        ),
        (
            {"circuitBreaker": {"monitoringWindow": 0}},
            "errorHandling.circuitBreaker.monitoringWindow: must be more than zero",
        ),
        (
            {"circuitBreaker": {"halfOpenRetries": 0}},
            "errorHandling.circuitBreaker.halfOpenRetries: must be at least 1",
        ),
        (
            {"circuitBreaker": {"failureRate": 50}},
            "errorHandling.circuitBreaker.failureRate: must be a fraction in (0, 1], got 50",
        ),
        (
            {"circuitBreaker": {"treshold": 5}},
            "errorHandling.circuitBreaker.treshold: unknown key; did you mean 'threshold'?",
        ),
        (
            {"fallback": {"plugin": "x"}},
            "errorHandling.fallback.plugin: unknown key; known keys: strategy, fallbackPlugin",
        ),
        (
            {"retryPolicy": {"enabled": None, "backoff": True}},
            "errorHandling.retryPolicy.backoff: must be one of constant, linear, exponential,"
            " fibonacci, got true",
        ),
        ({"circuitBreaker": "on"}, "errorHandling.circuitBreaker: must be an object, got a string"),
        ({"timeout": 0}, "errorHandling.timeout: must be more than zero milliseconds"),
        ({"retries": {}}, "errorHandling.retries: unknown key"),
        (
            {"fallback": {"strategy": "magic"}},
            "errorHandling.fallback.strategy: must be one of"
            ' none, error, cached, plugin, got "magic"',
        ),
        (
            {"fallback": {"strategy": "plugin"}},
            'errorHandling.fallback.fallbackPlugin: required when strategy is "plugin"',
        ),
        (
            {"fallback": {"strategy": "cached", "fallbackPlugin": "x"}},
            'errorHandling.fallback.fallbackPlugin: only used with strategy "plugin"',
        ),
        (
            {"fallback": {"fallbackPlugin": ""}},
            "errorHandling.fallback.fallbackPlugin: must be a plugin id",
        ),
    ],
)
def test_bad_values_name_their_json_path(sections: dict[str, Any], expected: str) -> None:
    with pytest.raises(ManifestError) as caught:
        ResiliencePolicy.from_manifest(with_error_handling(**sections))
    assert isinstance(caught.value, ValueError)
    assert any(problem.startswith(expected) for problem in caught.value.problems), (
        caught.value.problems
    )


def test_every_problem_is_reported_at_once() -> None:
    manifest = with_error_handling(
        circuitBreaker={"threshold": -1, "timeout": "soon"},
        retryPolicy={"backoff": "random", "maxRetries": 1.5},
    )
    with pytest.raises(ManifestError) as caught:
        ResiliencePolicy.from_manifest(manifest)
    paths = [problem.split(":")[0] for problem in caught.value.problems]
    assert paths == [
        "errorHandling.circuitBreaker.threshold",
        "errorHandling.circuitBreaker.timeout",
        "errorHandling.retryPolicy.maxRetries",
        "errorHandling.retryPolicy.backoff",
    ]


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ([], "(manifest): must be a JSON object or a model, got list"),
        ("plugin.json", "(manifest): must be a JSON object or a model, got str"),
        ({"errorHandling": 5}, "errorHandling: must be an object, got a number"),
    ],
)
def test_a_manifest_that_is_not_an_object(manifest: Any, expected: str) -> None:
    with pytest.raises(ManifestError) as caught:
        ResiliencePolicy.from_manifest(manifest)
    assert caught.value.problems == [expected]


# --- the wrapping order ----------------------------------------------------------------


async def test_the_breaker_counts_every_attempt_and_its_opening_stops_the_retry(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker("svc", threshold=3, clock=clock)
    retry = RetryPolicy(max_retries=10, jitter="none", clock=clock, sleep=clock.sleep)
    policy = ResiliencePolicy(retry=retry, breaker=breaker)
    flaky = Counter()
    with pytest.raises(Down, match="call 3"):
        await policy.execute(flaky)
    assert flaky.calls == 3
    assert len(clock.sleeps) == 2  # no sleep after the failure that opened the circuit
    with pytest.raises(CircuitOpenError):
        await policy.execute(flaky)
    assert flaky.calls == 3
    assert breaker.get_state() == "open"


async def test_the_fallback_answers_after_retries_are_exhausted(clock: FakeClock) -> None:
    retry = RetryPolicy(max_retries=2, clock=clock, sleep=clock.sleep)
    policy = ResiliencePolicy(retry=retry)
    flaky = Counter()
    assert await policy.execute(flaky, cached) == "cached"
    assert flaky.calls == 3


async def test_the_fallback_answers_when_the_circuit_is_open(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", threshold=1, clock=clock)
    policy = ResiliencePolicy(breaker=breaker)
    breaker.force_open()
    flaky = Counter(0)
    assert await policy.execute(flaky, cached) == "cached"
    assert flaky.calls == 0


async def test_the_fallback_does_not_hide_caller_errors(clock: FakeClock) -> None:
    policy = ResiliencePolicy(retry=RetryPolicy(clock=clock, sleep=clock.sleep))

    async def bad() -> str:
        raise InvalidMessage("payload.issue: missing")

    with pytest.raises(InvalidMessage):
        await policy.execute(bad, cached)
    assert clock.sleeps == []


async def test_custom_fall_back_on() -> None:
    policy = ResiliencePolicy(fall_back_on=KeyError)
    with pytest.raises(Down):
        await policy.execute(Counter(), cached)


async def test_an_empty_policy_just_awaits() -> None:
    assert await ResiliencePolicy().execute(Counter(0)) == "ok"


def test_the_timeout_bounds_each_attempt_and_timeouts_are_retried() -> None:
    async def scenario() -> tuple[str, int, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempts = 0

        async def hangs_twice() -> str:
            nonlocal attempts
            attempts += 1
            if attempts <= 2:
                await asyncio.sleep(3600)
            return "ok"

        retry = RetryPolicy(max_retries=2, initial_delay=1.0, jitter="none")
        policy = ResiliencePolicy(timeout=5.0, retry=retry)
        result = await policy.execute(hangs_twice)
        return result, attempts, loop.time() - started

    result, attempts, elapsed = run_in_loop_time(scenario())
    assert (result, attempts) == ("ok", 3)
    assert elapsed == pytest.approx(5 + 1 + 5 + 2)


def test_a_timeout_counts_as_a_breaker_failure() -> None:
    async def scenario() -> str:
        breaker = CircuitBreaker("svc", threshold=1)
        policy = ResiliencePolicy(timeout=0.5, breaker=breaker)
        with pytest.raises(CallTimeout) as caught:
            await policy.execute(lambda: asyncio.sleep(10))
        assert isinstance(caught.value, TimeoutError)
        assert str(caught.value) == "call did not finish within 0.5s"
        return breaker.get_state()

    assert run_in_loop_time(scenario()) == "open"


def test_call_with_timeout_passes_results_and_foreign_timeouts_through() -> None:
    async def scenario() -> None:
        assert await call_with_timeout(lambda: asyncio.sleep(1, "done"), 5.0) == "done"

        async def own_timeout() -> None:
            raise TimeoutError("upstream said so")

        with pytest.raises(TimeoutError, match="upstream said so") as caught:
            await call_with_timeout(own_timeout, 5.0)
        assert not isinstance(caught.value, CallTimeout)

    run_in_loop_time(scenario())


# --- bad Python options ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"retry": 3}, "retry"),
        ({"breaker": "svc"}, "breaker"),
        ({"fallback_strategy": "magic"}, "fallback_strategy"),
        ({"fallback_strategy": "plugin"}, "fallback_plugin"),
        ({"fallback_plugin": "x"}, "fallback_plugin"),
        ({"fallback_strategy": "plugin", "fallback_plugin": ""}, "fallback_plugin"),
        ({"fall_back_on": "Down"}, "fall_back_on"),
        ({"give_up_on": [1]}, "give_up_on"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], option: str) -> None:
    with pytest.raises(ResilienceConfigError) as caught:
        ResiliencePolicy(**options)
    assert caught.value.option == option


def test_repr_lists_the_parts() -> None:
    text = repr(ResiliencePolicy(timeout=2.0, fallback_strategy="error"))
    assert text == "<ResiliencePolicy timeout=2.0 retry=None breaker=None fallback=error>"


async def test_a_non_callable_operation_is_refused_without_retries(clock: FakeClock) -> None:
    policy = ResiliencePolicy.from_manifest({"name": "x"}, clock=clock, sleep=clock.sleep)
    with pytest.raises(TypeError, match="operation must be callable"):
        await policy.execute(42, cached)  # type: ignore[arg-type]
    assert clock.sleeps == []
    assert policy.breaker is not None
    assert policy.breaker.failures == 0


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), "5"])
async def test_call_with_timeout_refuses_bad_timeouts(timeout: Any) -> None:
    with pytest.raises(ResilienceConfigError, match="timeout: "):
        await call_with_timeout(cached, timeout)
