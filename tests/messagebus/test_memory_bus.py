"""Bus behaviour specific to the in-process transport and to time (with a fake loop clock)."""

from __future__ import annotations

import asyncio

import pytest

from jira_orchestrator import (
    InvalidMessage,
    PublishTimeout,
    RequestTimeout,
    TransportClosed,
    UnknownTransport,
)
from jira_orchestrator.messagebus import (
    BusConfig,
    Message,
    get_message_bus,
    reset_message_bus,
)
from tests.conformance.base import Inbox


@pytest.mark.looptime
async def test_a_full_queue_makes_the_publisher_wait_then_time_out() -> None:
    config = BusConfig(publish_timeout=5.0)
    receiver = get_message_bus("receiver", config=config)
    sender = get_message_bus("sender")
    gate = asyncio.Event()

    async def stuck(message: Message) -> None:
        await gate.wait()

    subscription = receiver.subscribe("plugin/receiver/events", stuck, queue_size=2)
    for n in range(3):  # one in the handler, two queued
        await sender.publish(topic="plugin/receiver/events", payload=n)
        await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PublishTimeout, match="plugin/receiver/events"):
        await sender.publish(topic="plugin/receiver/events", payload="one too many")
    assert loop.time() - started == pytest.approx(5.0)
    assert subscription.pending == 2
    assert sender.stats()["publish_timeouts"] == 1


async def test_a_blocked_publisher_resumes_when_the_subscriber_drains() -> None:
    receiver, sender = get_message_bus("receiver"), get_message_bus("sender")
    gate, inbox = asyncio.Event(), Inbox()

    async def slow(message: Message) -> None:
        await gate.wait()
        inbox(message)

    receiver.subscribe("plugin/receiver/events", slow, queue_size=1)
    await sender.publish(topic="plugin/receiver/events", payload=0)
    await asyncio.sleep(0)
    await sender.publish(topic="plugin/receiver/events", payload=1)
    blocked = asyncio.create_task(sender.publish(topic="plugin/receiver/events", payload=2))
    await asyncio.sleep(0)
    assert not blocked.done()
    gate.set()
    await blocked
    await inbox.wait(3)
    assert inbox.payloads == [0, 1, 2]


async def test_drop_oldest_keeps_the_newest_and_counts_the_drops() -> None:
    receiver, sender = get_message_bus("receiver"), get_message_bus("sender")
    gate, inbox = asyncio.Event(), Inbox()

    async def slow(message: Message) -> None:
        await gate.wait()
        inbox(message)

    subscription = receiver.subscribe(
        "plugin/receiver/events", slow, queue_size=2, overflow="drop_oldest"
    )
    await sender.publish(topic="plugin/receiver/events", payload=0)
    await asyncio.sleep(0)  # 0 is in the handler now
    for n in range(1, 6):
        await sender.publish(topic="plugin/receiver/events", payload=n)
    assert subscription.stats.dropped == 3
    assert sender.stats()["dropped"] == 3
    gate.set()
    await inbox.wait(3)
    assert inbox.payloads == [0, 4, 5]


async def test_drop_oldest_drops_by_age_not_by_priority() -> None:
    receiver, sender = get_message_bus("receiver"), get_message_bus("sender")
    gate, inbox = asyncio.Event(), Inbox()

    async def slow(message: Message) -> None:
        await gate.wait()
        inbox(message)

    receiver.subscribe("t/x", slow, queue_size=2, overflow="drop_oldest")
    await sender.publish(topic="t/x", payload="busy")
    await asyncio.sleep(0)
    await sender.publish(topic="t/x", payload="old-urgent", priority=10)
    await sender.publish(topic="t/x", payload="low", priority=1)
    await sender.publish(topic="t/x", payload="new", priority=5)
    gate.set()
    await inbox.wait(3)
    assert inbox.payloads == ["busy", "new", "low"]


@pytest.mark.looptime
async def test_request_timeout_uses_the_loop_clock() -> None:
    silent, caller = get_message_bus("silent"), get_message_bus("caller")
    silent.subscribe("plugin/silent/request", lambda message: None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RequestTimeout):
        await caller.request(topic="plugin/silent/request", timeout=30.0)
    assert loop.time() - started == pytest.approx(30.0)


@pytest.mark.looptime
async def test_a_late_answer_after_the_timeout_is_dropped_quietly() -> None:
    slow, caller = get_message_bus("slow"), get_message_bus("caller")

    async def answer_late(message: Message) -> None:
        await asyncio.sleep(60)
        await slow.respond(message.correlation_id or "", "too late")

    slow.subscribe("plugin/slow/request", answer_late)
    with pytest.raises(RequestTimeout):
        await caller.request(topic="plugin/slow/request", timeout=1.0)
    await asyncio.sleep(120)
    assert slow.stats()["handler_errors"] == 0


async def test_respond_to_an_unknown_request_publishes_on_the_responders_topic() -> None:
    responder, peer = get_message_bus("responder"), get_message_bus("ts-peer")
    inbox = Inbox()
    peer.subscribe("plugin/responder/response", inbox)
    await responder.respond("correlation-from-elsewhere", {"status": "success"})
    await inbox.wait(1)
    assert inbox.messages[0].correlation_id == "correlation-from-elsewhere"


async def test_a_failing_dead_letter_handler_does_not_loop() -> None:
    receiver, sender = get_message_bus("receiver"), get_message_bus("sender")
    failures = 0

    def broken(message: Message) -> None:
        nonlocal failures
        failures += 1
        raise RuntimeError("also broken")

    receiver.subscribe("plugin/receiver/events", broken)
    receiver.subscribe("system/dead-letter", broken)
    await sender.publish(topic="plugin/receiver/events", payload=1)
    for _ in range(10):
        await asyncio.sleep(0)
    assert failures == 2
    assert sender.stats()["dead_lettered"] == 1


async def test_a_raising_filter_is_a_handler_failure_not_a_crash() -> None:
    receiver, sender, auditor = (get_message_bus(n) for n in ("receiver", "sender", "auditor"))
    letters, inbox = Inbox(), Inbox()
    auditor.subscribe("system/dead-letter", letters)

    def bad_filter(message: Message) -> bool:
        raise KeyError("missing")

    receiver.subscribe("t/x", inbox, filter=bad_filter)
    await sender.publish(topic="t/x", payload=1)
    await letters.wait(1)
    assert letters.messages[0].payload["reason"] == "filter-error"
    assert inbox.messages == []


def test_the_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_ORCHESTRATOR_BUS_URL", "memory://from-env")
    assert get_message_bus("x").url == "memory://from-env"
    monkeypatch.delenv("JIRA_ORCHESTRATOR_BUS_URL")
    assert get_message_bus("x").url == "memory://"


def test_the_same_id_and_url_give_the_same_handle() -> None:
    assert get_message_bus("a") is get_message_bus("a")
    assert get_message_bus("a") is not get_message_bus("b")
    assert get_message_bus("a", "memory://one") is not get_message_bus("a", "memory://two")


@pytest.mark.parametrize("url", ["kafka://broker:9092", "no-scheme", "http://x"])
def test_an_unknown_url_scheme_says_what_is_supported(url: str) -> None:
    with pytest.raises(UnknownTransport, match="memory://"):
        get_message_bus("x", url)


def test_a_conflicting_config_for_a_running_bus_is_refused() -> None:
    get_message_bus("x", config=BusConfig(queue_size=5))
    with pytest.raises(ValueError, match="already runs"):
        get_message_bus("y", config=BusConfig(queue_size=6))


@pytest.mark.parametrize(
    "options",
    [{"queue_size": 0}, {"max_message_size": 10}, {"publish_timeout": 0}, {"request_timeout": -1}],
)
def test_bad_config_is_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is checked by its own field
        BusConfig(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [{"max_concurrency": 0}, {"queue_size": 0}, {"overflow": "spill"}],
)
def test_bad_subscription_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        get_message_bus("x").subscribe("t/x", lambda m: None, **options)  # type: ignore[arg-type]


async def test_publish_needs_a_topic_or_a_message_not_both() -> None:
    bus = get_message_bus("x")
    with pytest.raises(TypeError):
        await bus.publish()
    with pytest.raises(TypeError):
        await bus.publish(Message(topic="a"), topic="b")


async def test_request_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        await get_message_bus("x").request(topic="a", timeout=0)


async def test_respond_needs_a_correlation_id() -> None:
    with pytest.raises(TypeError, match="correlation"):
        await get_message_bus("x").respond(None, {})  # type: ignore[arg-type]


async def test_a_reset_bus_is_closed_for_stale_handles() -> None:
    stale = get_message_bus("x")
    reset_message_bus()
    with pytest.raises(TransportClosed):
        await stale.publish(topic="a", payload=None)
    with pytest.raises(TransportClosed):
        stale.subscribe("a", lambda m: None)
    fresh = get_message_bus("x")
    assert fresh is not stale
    await fresh.publish(topic="a", payload=None)


async def test_undecodable_input_from_the_wire_is_counted_and_dead_lettered() -> None:
    auditor = get_message_bus("auditor")
    letters = Inbox()
    auditor.subscribe("system/dead-letter", letters)
    hook = auditor.transport.on_invalid
    assert hook is not None  # the bus wires every transport's hook
    hook("plugin.x.request", b'{"topic": 42} \xff', InvalidMessage("topic: must be a string"))
    await letters.wait(1)
    letter = letters.messages[0].payload
    assert letter["reason"] == "invalid-message"
    assert letter["subscription"] == "plugin.x.request"
    assert letter["raw"].startswith('{"topic": 42}')
    assert letter["error"]["message"] == "topic: must be a string"
    assert auditor.stats()["invalid"] == 1


async def test_a_dead_letter_too_large_to_carry_its_payload_still_goes_out() -> None:
    config = BusConfig(max_message_size=2048)
    receiver = get_message_bus("receiver", config=config)
    sender, auditor = get_message_bus("sender"), get_message_bus("auditor")
    letters = Inbox()
    auditor.subscribe("system/dead-letter", letters)

    def broken(message: Message) -> None:
        raise RuntimeError("no room")

    receiver.subscribe("t/big", broken)
    await sender.publish(topic="t/big", payload="x" * 1600)
    await letters.wait(1)
    letter = letters.messages[0].payload
    assert letter["reason"] == "handler-error"
    assert letter["message"]["payload"] is None
    assert "too large" in letter["payloadOmitted"]
    assert letter["message"]["topic"] == "t/big"
