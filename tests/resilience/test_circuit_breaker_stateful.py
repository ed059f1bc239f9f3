"""A hypothesis state machine drives a breaker and a small model side by side.

Random successes, failures, caller errors, clock jumps and operator actions; after every
step the breaker's state and failure count must equal the model's.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from jira_orchestrator._core.errors import CircuitOpenError, InvalidMessage
from jira_orchestrator.resilience import CircuitBreaker, CircuitStateChange
from tests.resilience.support import FakeClock, run_now


class Boom(Exception):
    pass


async def succeed() -> str:
    return "ok"


async def crash() -> str:
    raise Boom


async def bad_input() -> str:
    raise InvalidMessage("bad")


class Model:
    """The seed's breaker, written as plainly as possible."""

    def __init__(self, threshold: int, timeout: float, retries: int, window: float | None):
        self.threshold = threshold
        self.timeout = timeout
        self.retries = retries
        self.window = window
        self.state = "closed"
        self.failure_times: list[float] = []
        self.opened_at = 0.0
        self.successes = 0

    def recent_failures(self, now: float) -> int:
        return sum(1 for t in self.failure_times if self.window is None or now - t < self.window)

    def current(self, now: float) -> str:
        if self.state == "open" and now - self.opened_at >= self.timeout:
            self.state = "half_open"
            self.successes = 0
        return self.state

    def call(self, kind: str, now: float) -> str:
        """Return what the caller sees: ``ok``, ``boom``, ``bad`` or ``refused``."""
        state = self.current(now)
        if state in ("open", "forced_open"):
            return "refused"
        if state == "disabled" or kind == "bad":
            return kind
        if state == "half_open":
            if kind == "ok":
                self.successes += 1
                if self.successes >= self.retries:
                    self.close()
            else:
                self.state, self.opened_at = "open", now
            return kind
        if kind == "boom":
            self.failure_times.append(now)
            if self.recent_failures(now) >= self.threshold:
                self.state, self.opened_at = "open", now
        return kind

    def close(self) -> None:
        self.state = "closed"
        self.failure_times = []


class BreakerMachine(RuleBasedStateMachine):
    clock: FakeClock
    model: Model
    breaker: CircuitBreaker

    def __init__(self) -> None:
        super().__init__()
        self.changes: list[CircuitStateChange] = []

    @initialize(
        threshold=st.integers(1, 6),
        timeout=st.sampled_from([0.5, 1.0, 10.0, 60.0]),
        retries=st.integers(1, 4),
        window=st.one_of(st.none(), st.sampled_from([1.0, 5.0, 300.0])),
    )
    def setup(self, threshold: int, timeout: float, retries: int, window: float | None) -> None:
        self.clock = FakeClock(start=0.0)
        self.model = Model(threshold, timeout, retries, window)
        self.breaker = CircuitBreaker(
            "model",
            threshold=threshold,
            timeout=timeout,
            half_open_retries=retries,
            monitoring_window=window,
            clock=self.clock,
            listeners=[self.changes.append],
        )

    def _call(self, kind: str) -> None:
        operation = {"ok": succeed, "boom": crash, "bad": bad_input}[kind]
        expected = self.model.call(kind, self.clock.now)
        outcome: Any
        try:
            outcome = run_now(self.breaker.execute(operation))
        except CircuitOpenError:
            outcome = "refused"
        except Boom:
            outcome = "boom"
        except InvalidMessage:
            outcome = "bad"
        assert outcome == expected

    @rule()
    def success(self) -> None:
        self._call("ok")

    @rule()
    def failure(self) -> None:
        self._call("boom")

    @rule()
    def caller_error(self) -> None:
        self._call("bad")

    @rule(seconds=st.one_of(st.floats(0, 2), st.sampled_from([0.5, 1.0, 5.0, 10.0, 60.0, 1e4])))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.model.state in ("closed", "open", "half_open"))
    @rule(action=st.sampled_from(["force_open", "disable"]))
    def operator(self, action: str) -> None:
        getattr(self.breaker, action)()
        self.model.state = "forced_open" if action == "force_open" else "disabled"

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.model.close()

    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "model"):
            return
        now = self.clock.now
        assert self.breaker.get_state() == self.model.current(now)
        if self.model.state == "closed":
            assert self.breaker.failures == self.model.recent_failures(now)

    @invariant()
    def changes_form_a_chain(self) -> None:
        if not hasattr(self, "breaker"):
            return
        state = self.breaker.get_state()  # may itself move open to half_open, and say so
        for before, after in zip(self.changes, self.changes[1:], strict=False):
            assert before.new_state == after.old_state
        if self.changes:
            assert self.changes[-1].new_state == state


def test_breaker_matches_model() -> None:
    BreakerMachine.TestCase().runTest()
