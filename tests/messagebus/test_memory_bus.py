"""Bus behaviour specific to the in-process transport and to time (with a fake loop clock)."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import pytest

from jira_orchestrator import (
    InvalidMessage,
    PublishTimeout,
    RemoteError,
    RequestTimeout,
    TransportClosed,
    UnknownTransport,
)
from jira_orchestrator.messagebus import (
    BusConfig,
    Message,
    Overflow,
    close_message_bus,
    get_message_bus,
    remaining_time,
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
    receiver.subscribe("system/dead-letter/*", broken)
    await sender.publish(topic="plugin/receiver/events", payload=1)
    for _ in range(10):
        await asyncio.sleep(0)
    assert failures == 2
    assert sender.stats()["dead_lettered"] == 1


async def test_a_raising_filter_is_a_handler_failure_not_a_crash() -> None:
    receiver, sender, auditor = (get_message_bus(n) for n in ("receiver", "sender", "auditor"))
    letters, inbox = Inbox(), Inbox()
    auditor.subscribe("system/dead-letter/*", letters)

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
    auditor.subscribe("system/dead-letter/*", letters)
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
    auditor.subscribe("system/dead-letter/*", letters)

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


@pytest.mark.looptime
async def test_a_stuck_subscriber_makes_one_publisher_wait_once_then_is_passed_by() -> None:
    config = BusConfig(publish_timeout=5.0)
    stuck_bus = get_message_bus("stuck", config=config)
    sender, healthy_bus = get_message_bus("sender"), get_message_bus("healthy")
    gate, healthy, unstuck = asyncio.Event(), Inbox(), Inbox()

    async def hang(message: Message) -> None:
        await gate.wait()
        unstuck(message)

    stuck = stuck_bus.subscribe("t/x", hang, queue_size=2)  # first: it used to block the rest
    healthy_bus.subscribe("t/x", healthy)
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcomes = []
    for n in range(10):
        try:
            await sender.publish(topic="t/x", payload=n)
            outcomes.append("sent")
        except PublishTimeout:
            outcomes.append("timeout")
    # 0 in the handler, 1 and 2 queued; 3 waits the whole timeout; then nobody waits
    assert outcomes == ["sent"] * 3 + ["timeout"] + ["sent"] * 6
    assert loop.time() - started == pytest.approx(5.0)
    await healthy.wait(10)
    assert healthy.payloads == list(range(10))
    assert stuck.stats.dropped == 7
    assert sender.stats()["dropped"] == 7
    assert sender.stats()["publish_timeouts"] == 1

    # Once it takes a message again it is an ordinary subscriber: backpressure, no drops.
    gate.set()
    await unstuck.wait(3)
    for n in range(10, 14):
        await sender.publish(topic="t/x", payload=n)
    await unstuck.wait(7)
    assert unstuck.payloads == [0, 1, 2, 10, 11, 12, 13]
    assert stuck.stats.dropped == 7


@pytest.mark.looptime
async def test_publishers_waiting_for_a_subscriber_that_stalls_give_up_together() -> None:
    config = BusConfig(publish_timeout=5.0)
    stuck_bus, sender = get_message_bus("stuck", config=config), get_message_bus("sender")
    never = asyncio.Event()

    async def hang(message: Message) -> None:
        await never.wait()

    stuck = stuck_bus.subscribe("t/x", hang, queue_size=1)
    await sender.publish(topic="t/x", payload=0)
    await asyncio.sleep(0)  # 0 in the handler
    await sender.publish(topic="t/x", payload=1)  # queued
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = asyncio.ensure_future(sender.publish(topic="t/x", payload=2))
    await asyncio.sleep(1.0)
    second = asyncio.ensure_future(sender.publish(topic="t/x", payload=3))
    with pytest.raises(PublishTimeout):
        await first
    await second  # released when the subscription stalled, not after its own 5 s
    assert loop.time() - started == pytest.approx(5.0)
    assert stuck.stats.dropped == 2


@pytest.mark.looptime
async def test_full_subscribers_are_waited_for_side_by_side() -> None:
    config = BusConfig(publish_timeout=5.0)
    one, two = get_message_bus("one", config=config), get_message_bus("two")
    sender, never = get_message_bus("sender"), asyncio.Event()

    async def hang(message: Message) -> None:
        await never.wait()

    one.subscribe("t/x", hang, queue_size=1)
    two.subscribe("t/x", hang, queue_size=1)
    for n in range(2):
        await sender.publish(topic="t/x", payload=n)
        await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PublishTimeout):
        await sender.publish(topic="t/x", payload="both full")
    assert loop.time() - started == pytest.approx(5.0)  # not 10
    assert sender.stats()["publish_timeouts"] == 2


async def test_a_request_to_a_stalled_subscriber_fails_at_once() -> None:
    config = BusConfig(publish_timeout=0.05)
    server, caller = get_message_bus("server", config=config), get_message_bus("caller")
    never = asyncio.Event()

    async def hang(message: Message) -> None:
        await never.wait()

    server.subscribe("plugin/server/request", hang, queue_size=1)
    await caller.publish(topic="plugin/server/request", payload=0)
    await asyncio.sleep(0)
    await caller.publish(topic="plugin/server/request", payload=1)
    with pytest.raises(PublishTimeout):
        await caller.publish(topic="plugin/server/request", payload=2)
    with pytest.raises(RemoteError, match="stalled") as caught:
        await caller.request(topic="plugin/server/request", timeout=30.0)
    assert caught.value.error_type == "PublishTimeout"


@pytest.mark.looptime
async def test_a_handler_sees_the_time_left_before_its_request_expires() -> None:
    loop = asyncio.get_running_loop()
    config = BusConfig(clock=lambda: 1_800_000_000.0 + loop.time())
    server, caller = get_message_bus("server", config=config), get_message_bus("caller")
    left: list[float | None] = []

    async def answer(message: Message) -> None:
        left.append(remaining_time())
        await asyncio.sleep(2.5)
        left.append(remaining_time())
        await server.respond(message.correlation_id or "", "ok")

    server.subscribe("plugin/server/request", answer)
    assert remaining_time() is None  # outside a handler
    await caller.request(topic="plugin/server/request", timeout=10.0)
    assert left == [pytest.approx(10.0, abs=0.002), pytest.approx(7.5, abs=0.002)]

    events: list[float | None] = []
    server.subscribe("t/x", lambda message: events.append(remaining_time()))
    await caller.publish(topic="t/x", payload=None)
    await caller.flush()
    assert events == [None]  # an event without a deadline


@pytest.mark.looptime
async def test_an_expired_request_is_never_started_on_the_fake_clock() -> None:
    loop = asyncio.get_running_loop()
    config = BusConfig(clock=lambda: 1_800_000_000.0 + loop.time())
    server, caller = get_message_bus("server", config=config), get_message_bus("caller")
    ran: list[object] = []

    async def slow(message: Message) -> None:
        ran.append(message.payload)
        await asyncio.sleep(60)

    server.subscribe("plugin/server/request", slow)
    first = asyncio.ensure_future(
        caller.request(topic="plugin/server/request", payload="first", timeout=120.0)
    )
    await asyncio.sleep(0)
    with pytest.raises(RequestTimeout):
        await caller.request(topic="plugin/server/request", payload="late", timeout=30.0)
    with pytest.raises(RequestTimeout):
        await first
    await caller.flush()
    assert ran == ["first"]
    assert server.stats()["expired"] == 1


def _bytes_per_subscription(overflow: Overflow) -> float:
    async def measure() -> float:
        bus, count = get_message_bus("many"), 2000
        bus.subscribe("warm/up", lambda message: None, overflow=overflow)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = [
                bus.subscribe(f"plugin/p{n}/request", lambda message: None, overflow=overflow)
                for n in range(count)
            ]
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert len(kept) == count
        await close_message_bus()
        return used / count

    return asyncio.run(measure())


@pytest.mark.parametrize("overflow", ["block", "drop_oldest"])
def test_an_idle_subscription_costs_memory_in_proportion_to_its_use(overflow: Overflow) -> None:
    # Everything a subscription on a topic of its own holds: the subscription, its transport
    # entry and its branch of the topic index. It was 13 kB (20 kB with drop_oldest), from
    # eleven (twenty-two) preallocated queues; it is about 2 kB.
    assert _bytes_per_subscription(overflow) < 4000
