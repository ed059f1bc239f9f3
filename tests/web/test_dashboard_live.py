"""The dashboard's live view, fed by bus events: lifecycle, breakers, work in flight,
success rate and p50 over a window (with an injected clock), decisions, strangers' junk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from jira_orchestrator.messagebus import (
    MessageBus,
    close_message_bus,
    get_message_bus,
    reset_message_bus,
)
from jira_orchestrator.web.dashboard import LiveView
from tests.web._dashboard import load_example


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def bus() -> AsyncIterator[MessageBus]:
    reset_message_bus()
    yield get_message_bus("publisher")
    await close_message_bus()


async def settle(view: LiveView, publisher: MessageBus) -> None:
    """Every event published so far has been handled by the view."""
    await publisher.flush()
    await view.bus.flush()


async def test_task_events_give_in_flight_success_rate_and_p50_over_the_window(
    bus: MessageBus,
) -> None:
    clock = Clock()
    view = LiveView(get_message_bus("dashboard"), window=60, clock=clock)
    view.start()
    stream = view.listen()
    try:
        await bus.publish(topic="orchestration/task-start", payload={"taskId": "t1", "plugin": "a"})
        await bus.publish(topic="orchestration/task-start", payload={"taskId": "t1", "plugin": "a"})
        await settle(view, bus)
        (a,) = view.snapshot()
        assert a["inFlight"] == 1  # a redelivered start counts once
        attempts = [
            {"plugin": "a", "outcome": "failed", "durationMs": 30.0},
            {"plugin": "b", "outcome": "skipped", "durationMs": 0.0},
            {"plugin": "c", "outcome": "completed", "durationMs": 10.0},
        ]
        await bus.publish(
            topic="orchestration/task-complete",
            payload={"taskId": "t1", "plugin": "c", "outcome": "completed", "attempts": attempts},
        )
        await settle(view, bus)
        figures = {p["id"]: p for p in view.snapshot()}
        assert figures["a"]["inFlight"] == 0
        assert (figures["a"]["successRate"], figures["a"]["p50Ms"]) == (0.0, 30.0)
        assert (figures["c"]["successRate"], figures["c"]["p50Ms"]) == (1.0, 10.0)
        assert "b" not in figures  # skipped: it did no work
        clock.now += 61  # the outcomes leave the window
        figures = {p["id"]: p for p in view.snapshot()}
        assert figures["a"]["successRate"] is None
        assert figures["a"]["p50Ms"] is None
        events = []
        while not stream.empty():
            item = stream.get_nowait()
            assert item is not None
            events.append(item[0])
        assert events == ["plugin", "task", "plugin", "plugin", "task"]
    finally:
        await view.stop()
    assert await stream.get() is None  # the stream ends with the view


async def test_malformed_events_are_counted_and_ignored(bus: MessageBus) -> None:
    view = LiveView(get_message_bus("dashboard"))
    view.start()
    try:
        junk: list[tuple[str, Any]] = [
            ("plugin/x/status", "ready"),
            ("plugin/x/status", {"status": 3}),
            ("plugin/x/circuit-breaker", {"state": None}),
            ("routing/decision", ["not", "a", "decision"]),
            ("orchestration/task-start", {"taskId": 1}),
            ("orchestration/task-complete", {"attempts": "many"}),
        ]
        for topic, payload in junk:
            await bus.publish(topic=topic, payload=payload)
        await bus.publish(
            topic="orchestration/task-complete",
            payload={"taskId": "t", "attempts": [None, {"plugin": 5}, {"plugin": "p"}]},
        )
        await get_message_bus("x").publish(  # from x itself: the topic names its sender
            topic="plugin/x/circuit-breaker", payload={"state": "open", "failures": 2}
        )
        await settle(view, bus)
        assert view.malformed == len(junk)
        (x,) = view.snapshot()
        assert (x["id"], x["breaker"], x["breakerFailures"], x["status"]) == (
            "x",
            "open",
            2,
            "unknown",
        )
    finally:
        await view.stop()


async def test_decisions_feed_newest_first(bus: MessageBus) -> None:
    view = LiveView(get_message_bus("dashboard"))
    view.start()
    try:
        for n in range(3):
            await bus.publish(
                topic="routing/decision",
                payload={"requestId": f"r{n}", "primaryPlugin": "p", "confidence": 0.5},
            )
        await settle(view, bus)
        assert [d["id"] for d in view.decisions] == ["r2", "r1", "r0"]
        assert view.decisions[0]["confidence"] == 0.5
    finally:
        await view.stop()


async def test_a_stopping_plugin_is_seen_draining_then_stopped(
    bus: MessageBus, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("JIRA_ORCHESTRATOR_OUTPUT", str(tmp_path))
    monkeypatch.setenv("JIRA_ORCHESTRATOR_STATE_DIR", str(tmp_path / "state"))
    view = LiveView(get_message_bus("dashboard"))
    view.start()
    stream = view.listen()
    plugin = load_example("exec-automator")
    try:
        await plugin.start()
        await plugin.stop(timeout=5)
        await settle(view, bus)
        statuses = []
        while not stream.empty():
            item = stream.get_nowait()
            if item is not None and item[0] == "plugin":
                statuses.append(item[1]["status"])
        assert statuses == ["ready", "draining", "stopped"]
    finally:
        await plugin.stop(timeout=5)
        await view.stop()


async def test_the_heartbeat_finds_plugins_ready_before_the_view_and_silent_ones(
    bus: MessageBus, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("JIRA_ORCHESTRATOR_OUTPUT", str(tmp_path))
    monkeypatch.setenv("JIRA_ORCHESTRATOR_STATE_DIR", str(tmp_path / "state"))
    plugin = load_example("exec-automator")
    await plugin.start()  # before the view listens: its "ready" is missed
    view = LiveView(get_message_bus("dashboard"), plugins=["exec-automator", "ghost"])
    view.start()
    try:
        await view.refresh()
        figures = {p["id"]: p for p in view.snapshot()}
        assert figures["exec-automator"]["status"] == "ready"
        assert figures["exec-automator"]["health"] == "healthy"
        assert figures["exec-automator"]["lastSeen"] is not None
        assert figures["ghost"]["status"] == "stopped"
    finally:
        await plugin.stop(timeout=5)
        await view.stop()


async def test_a_slow_page_loses_its_oldest_events_not_the_view(bus: MessageBus) -> None:
    view = LiveView(get_message_bus("dashboard"))
    stream = view.listen()
    for n in range(300):
        view._emit("task", {"n": n})
    assert stream.qsize() == 256
    first = stream.get_nowait()
    assert first is not None
    assert first[1] == {"n": 44}
    view.unlisten(stream)
    assert view.listeners == 0
