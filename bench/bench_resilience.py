"""Overhead of the resilience layer on a call, against a bare ``await`` in the same run.

Run: ``.venv/bin/python bench/bench_resilience.py`` (under a minute; writes
``bench/results/resilience.json``). Each figure is the best of several rounds, in
nanoseconds per call, including the loop that makes the calls; the ratio divides it by
the bare call, measured in rounds alternating with it. pybreaker has no asyncio support,
so it is measured on a plain function against a plain call; purgatory on the same
coroutine as ours.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _harness import report
from jira_orchestrator.resilience import CircuitBreaker, ResiliencePolicy, RetryPolicy

ROUNDS = 15
TARGET_RATIO = 1.5
TARGET_FIGURES = (
    "CircuitBreaker.execute, trivial coroutine",
    "CircuitBreaker.execute, coroutine yielding once",
)


async def trivial() -> int:
    return 1


async def yields_once() -> int:
    # The least any real I/O does: give the loop one turn.
    await asyncio.sleep(0)
    return 1


def plain() -> int:
    return 1


async def bare_loop(operation: Callable[[], Awaitable[Any]], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await operation()
    return (time.perf_counter() - started) / calls


async def wrapped_loop(
    wrapper: Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]],
    operation: Callable[[], Awaitable[Any]],
    calls: int,
) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await wrapper(operation)
    return (time.perf_counter() - started) / calls


async def paired(
    wrapper: Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]],
    operation: Callable[[], Awaitable[Any]],
    calls: int,
) -> tuple[float, float]:
    """Best seconds per call, bare and wrapped, over rounds that alternate the two.

    Alternating keeps both sides under the same machine load; the best round is the one
    least disturbed by everything else the machine does.
    """
    bare = wrapped = float("inf")
    for _ in range(ROUNDS):
        bare = min(bare, await bare_loop(operation, calls))
        wrapped = min(wrapped, await wrapped_loop(wrapper, operation, calls))
    return bare, wrapped


def time_sync(call: Callable[[], Any], calls: int) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def row(figure: str, seconds: float, baseline: str, base_seconds: float) -> dict[str, Any]:
    return {
        "figure": figure,
        "ns_per_call": round(seconds * 1e9, 1),
        "baseline": baseline,
        "ratio": round(seconds / base_seconds, 3),
        "target": "",
    }


async def measure() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    breaker = CircuitBreaker("bench")
    wrappers: list[tuple[str, Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]]] = [
        ("CircuitBreaker.execute", breaker.execute),
        (
            "CircuitBreaker.execute, slow-call timing on",
            CircuitBreaker("timed", slow_call_threshold=60.0).execute,
        ),
        (
            "CircuitBreaker.execute, failure-rate mode",
            CircuitBreaker("rate", failure_rate=0.5).execute,
        ),
        ("RetryPolicy.execute", RetryPolicy().execute),
        (
            "ResiliencePolicy.execute, seed defaults",
            ResiliencePolicy.from_manifest({"name": "bench"}).execute,
        ),
        (
            "ResiliencePolicy.execute, seed defaults + 5 s timeout",
            ResiliencePolicy.from_manifest(
                {"name": "bench", "errorHandling": {"timeout": 5000}}
            ).execute,
        ),
    ]
    for label, operation, calls in (
        ("trivial coroutine", trivial, 20_000),
        ("coroutine yielding once", yields_once, 5_000),
    ):
        bare_best = float("inf")
        measured = []
        for name, wrapper in wrappers:
            bare, wrapped = await paired(wrapper, operation, calls)
            bare_best = min(bare_best, bare)
            measured.append((name, wrapped, bare))
        rows.append(row(f"bare await, {label}", bare_best, "itself", bare_best))
        for name, wrapped, bare in measured:
            rows.append(row(f"{name}, {label}", wrapped, f"bare await, {label}", bare))
    rows.extend(await measure_purgatory())
    rows.extend(measure_pybreaker())
    return rows


async def measure_purgatory() -> list[dict[str, Any]]:
    try:
        from purgatory import AsyncCircuitBreakerFactory
    except ImportError:
        return []  # optional: pip install purgatory
    factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
    guarded = factory("bench")(trivial)

    async def call_guarded(operation: Callable[[], Awaitable[Any]]) -> Any:
        return await guarded()

    bare, seconds = await paired(call_guarded, trivial, 10_000)
    return [
        row(
            "purgatory decorator, trivial coroutine",
            seconds,
            "bare await, trivial coroutine",
            bare,
        )
    ]


def measure_pybreaker() -> list[dict[str, Any]]:
    try:
        import pybreaker
    except ImportError:
        return []  # optional: pip install pybreaker
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    calls = 100_000
    bare = time_sync(plain, calls)
    seconds = time_sync(lambda: breaker.call(plain), calls)
    return [
        row("bare call, plain function", bare, "itself", bare),
        row(
            "pybreaker.call, plain function (no asyncio)",
            seconds,
            "bare call, plain function",
            bare,
        ),
    ]


def main() -> None:
    started = time.perf_counter()
    rows = asyncio.run(measure())
    for r in rows:
        # The target is for the breaker as it wraps every dispatch: default options.
        if r["figure"] in TARGET_FIGURES:
            r["target"] = f"ratio <= {TARGET_RATIO}"
    report("resilience", rows)
    print(f"({time.perf_counter() - started:.1f}s)")


if __name__ == "__main__":
    main()
