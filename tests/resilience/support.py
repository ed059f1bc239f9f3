"""Helpers for resilience tests: a fake monotonic clock, and running a coroutine without a loop."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import looptime

T = TypeVar("T")


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """A sleep that returns at once, having moved the clock by ``seconds``."""
        self.sleeps.append(seconds)
        self.advance(seconds)


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends, without an event loop (fast for hypothesis)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coro.close()
    raise AssertionError("the coroutine suspended; run_now is for ones that do not")


def run_in_loop_time(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on an event loop whose clock jumps ahead whenever every task waits.

    For code that must use the loop's own clock (``asyncio.timeout``): a 5 s timeout
    expires at once in real time, and ``loop.time()`` says 5 s went by.
    """
    loop = looptime.new_event_loop(start=0.0)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
