"""Hybrid logical clock: order, causality, drift rejection, the string form."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jira_orchestrator._core import hlc
from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator._core.hlc import (
    ClockDriftError,
    HybridLogicalClock,
    InvalidTimestamp,
    Timestamp,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_all_exports_exist() -> None:
    for name in hlc.__all__:
        assert getattr(hlc, name) is not None


def test_now_follows_the_wall_clock() -> None:
    clock = FakeClock(1000.0)
    c = HybridLogicalClock("a", clock=clock)
    assert c.now() == Timestamp(1_000_000, 0, "a")
    clock.now = 1000.5
    assert c.now() == Timestamp(1_000_500, 0, "a")


def test_now_never_goes_back_when_the_wall_clock_stands_or_steps_back() -> None:
    clock = FakeClock(1000.0)
    c = HybridLogicalClock("a", clock=clock)
    first = c.now()
    second = c.now()
    clock.now = 990.0
    third = c.now()
    assert first < second < third
    assert third == Timestamp(1_000_000, 2, "a")


def test_update_stamps_after_the_remote_and_later_events_stay_after() -> None:
    clock = FakeClock(1000.0)
    c = HybridLogicalClock("a", clock=clock, max_drift=60)
    remote = Timestamp(1_030_000, 7, "b")
    received = c.update(remote)
    assert received == Timestamp(1_030_000, 8, "a")
    assert received > remote
    assert c.now() > received


def test_update_with_an_old_remote_keeps_local_time() -> None:
    clock = FakeClock(1000.0)
    c = HybridLogicalClock("a", clock=clock)
    assert c.update(Timestamp(5, 3, "b")) == Timestamp(1_000_000, 0, "a")
    local = c.now()
    assert c.update(Timestamp(local.wall_ms, 9, "b")) == Timestamp(local.wall_ms, 10, "a")


def test_a_remote_far_ahead_is_rejected_and_does_not_move_the_clock() -> None:
    clock = FakeClock(1000.0)
    c = HybridLogicalClock("a", clock=clock, max_drift=5)
    before = c.now()
    with pytest.raises(ClockDriftError, match=r"5\.001s ahead.*allowed drift of 5s") as info:
        c.update(Timestamp(1_005_001, 0, "skewed"))
    assert info.value.remote.node == "skewed"
    assert isinstance(info.value, JiraOrchestratorError)
    assert isinstance(info.value, ValueError)
    assert c.now() == Timestamp(before.wall_ms, before.counter + 1, "a")
    # exactly at the limit is accepted
    assert c.update(Timestamp(1_005_000, 0, "b")).wall_ms == 1_005_000


def test_last_seeds_the_clock_after_a_restart() -> None:
    c = HybridLogicalClock("a", clock=FakeClock(1.0), last=Timestamp(10_000, 4, "b"))
    assert c.now() == Timestamp(10_000, 5, "a")


def test_ties_on_wall_and_counter_are_broken_by_node() -> None:
    assert Timestamp(5, 1, "a") < Timestamp(5, 1, "b") < Timestamp(5, 2, "a")
    assert Timestamp(5, 9, "z") < Timestamp(6, 0, "a")


def test_string_and_json_forms() -> None:
    ts = Timestamp(1732700000000, 3, "node:with:colons")
    assert str(ts) == "1732700000000:3:node:with:colons"
    assert Timestamp.parse(str(ts)) == ts
    assert Timestamp.from_json(ts.to_json()) == ts


@given(st.integers(0, 2**63), st.integers(0, 2**31), st.text(min_size=1))
def test_string_form_round_trips(wall: int, counter: int, node: str) -> None:
    ts = Timestamp(wall, counter, node)
    assert Timestamp.parse(str(ts)) == ts


@pytest.mark.parametrize(
    "text",
    ["", "1:2", "1:2:", "a:2:n", "1:-2:n", "01:2:n", "1:02:n", " 1:2:n", "1.5:2:n"],
)
def test_parse_rejects_malformed_strings(text: str) -> None:
    with pytest.raises(InvalidTimestamp, match="wall_ms>:<counter>:<node>"):
        Timestamp.parse(text)


@pytest.mark.parametrize("data", [None, 5, ["1", "2", "n"], b"1:2:n"])
def test_parse_and_from_json_reject_non_strings(data: object) -> None:
    with pytest.raises(InvalidTimestamp, match="must be a str"):
        Timestamp.parse(data)  # type: ignore[arg-type]
    with pytest.raises(InvalidTimestamp, match="must be a str"):
        Timestamp.from_json(data)


@pytest.mark.parametrize(
    ("wall", "counter", "node"),
    [(-1, 0, "a"), (0, -1, "a"), (True, 0, "a"), (1.5, 0, "a"), (0, 0, ""), (0, 0, 5)],
)
def test_timestamp_rejects_bad_fields(wall: object, counter: object, node: object) -> None:
    with pytest.raises(InvalidTimestamp):
        Timestamp(wall, counter, node)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"node": ""}, ValueError),
        ({"node": 5}, ValueError),
        ({"node": "a", "max_drift": 0}, ValueError),
        ({"node": "a", "max_drift": -1.0}, ValueError),
        ({"node": "a", "max_drift": float("nan")}, ValueError),
        ({"node": "a", "max_drift": "60"}, TypeError),
        ({"node": "a", "max_drift": True}, TypeError),
        ({"node": "a", "last": "1:2:a"}, TypeError),
    ],
)
def test_clock_rejects_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    node = kwargs.pop("node")
    with pytest.raises(error):
        HybridLogicalClock(node, **kwargs)  # type: ignore[arg-type]


def test_update_rejects_non_timestamps() -> None:
    with pytest.raises(TypeError, match="Timestamp"):
        HybridLogicalClock("a").update("1:2:b")  # type: ignore[arg-type]


events = st.lists(
    st.tuples(
        st.sampled_from(["now", "send", "tick", "back"]),
        st.integers(0, 2),
        st.integers(0, 2),
        st.integers(0, 50),
    ),
    max_size=60,
)


@given(events)
def test_causality_and_monotonicity_hold_under_any_schedule(
    schedule: list[tuple[str, int, int, int]],
) -> None:
    clocks = [FakeClock(1000.0 + i) for i in range(3)]
    nodes = [HybridLogicalClock(f"n{i}", clock=clocks[i], max_drift=3600) for i in range(3)]
    last: list[Timestamp | None] = [None, None, None]
    for kind, a, b, ms in schedule:
        if kind == "tick":
            clocks[a].now += ms / 1000
            continue
        if kind == "back":
            clocks[a].now -= ms / 1000
            continue
        stamp, before = nodes[a].now(), last[a]
        assert before is None or stamp > before
        last[a] = stamp
        if kind == "send":
            received, before = nodes[b].update(stamp), last[b]
            assert received > stamp
            assert before is None or received > before
            last[b] = received


def test_now_is_unique_across_threads() -> None:
    c = HybridLogicalClock("a", clock=FakeClock(1.0))
    seen: list[Timestamp] = []

    def work() -> None:
        seen.extend(c.now() for _ in range(500))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 2000
