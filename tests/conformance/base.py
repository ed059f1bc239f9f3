"""The bus conformance suite: one set of behaviours every transport must show.

A transport's test module subclasses `BusConformance` and overrides the ``bus_url``
fixture (see test_memory.py). Tests never sleep to let time pass: they wait for events
with a bounded deadline, and prove that something did NOT arrive by sending a sentinel
behind it on the same path (delivery per subscription is in order).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from jira_orchestrator import (
    InvalidMessage,
    InvalidTopic,
    MessageTooLarge,
    NoResponders,
    PublishTimeout,
    RemoteError,
    RequestTimeout,
)
from jira_orchestrator.messagebus import (
    BusConfig,
    Message,
    MessageBus,
    MessageMetadata,
    MessageType,
    close_message_bus,
    get_message_bus,
)

WAIT = 10.0  # upper bound for an expected delivery; normally milliseconds


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds, polling, at most ``WAIT`` seconds."""
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - a queue length offers no event to await
            await asyncio.sleep(0.001)


def _is_sentinel(payload: Any) -> bool:
    return isinstance(payload, dict) and "sentinel" in payload


class Inbox:
    """A handler that records messages and lets a test await a count of them."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = asyncio.Event()

    def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self._changed.set()

    @property
    def payloads(self) -> list[Any]:
        return [m.payload for m in self.messages]

    async def wait(self, count: int, *, until: Callable[[Message], bool] | None = None) -> None:
        async with asyncio.timeout(WAIT):
            while (
                len(self.messages) < count
                if until is None
                else not any(until(m) for m in self.messages)
            ):
                self._changed.clear()
                await self._changed.wait()


class BusConformance:
    """Behaviours of the bus that must hold on every transport."""

    @pytest.fixture
    def bus_url(self) -> str:
        raise NotImplementedError("a transport's test module overrides bus_url")

    @pytest.fixture
    def bus_config(self) -> BusConfig | None:
        return None

    @pytest.fixture
    async def buses(
        self, bus_url: str, bus_config: BusConfig | None
    ) -> AsyncIterator[Callable[[str], MessageBus]]:
        def make(plugin_id: str) -> MessageBus:
            return get_message_bus(plugin_id, bus_url, config=bus_config)

        yield make
        await close_message_bus()

    async def sentinel(self, sender: MessageBus, inbox: Inbox, topic: str) -> None:
        """Publish a marker on ``topic`` and wait until ``inbox`` has it."""
        marker = {"sentinel": len(inbox.messages)}
        await sender.publish(topic=topic, payload=marker)
        await inbox.wait(0, until=lambda m: m.payload == marker)
        inbox.messages[:] = [m for m in inbox.messages if not _is_sentinel(m.payload)]

    # -- publish and subscribe -------------------------------------------------------

    async def test_exact_topic_delivered_exactly_once(self, buses: Any) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        inbox = Inbox()
        receiver.subscribe("plugin/receiver/events", inbox)
        await sender.publish(topic="plugin/receiver/events", payload={"n": 1})
        await self.sentinel(sender, inbox, "plugin/receiver/events")
        assert inbox.payloads == [{"n": 1}]

    async def test_each_subscription_gets_a_message_once_even_when_patterns_overlap(
        self, buses: Any
    ) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        exact, star, tail = Inbox(), Inbox(), Inbox()
        receiver.subscribe("plugin/x/events", exact)
        receiver.subscribe("plugin/*/events", star)
        receiver.subscribe("plugin/**", tail)
        await sender.publish(topic="plugin/x/events", payload="one")
        for inbox in (exact, star, tail):
            await self.sentinel(sender, inbox, "plugin/x/events")
            assert inbox.payloads == ["one"]

    async def test_dotted_and_slashed_topics_are_the_same(self, buses: Any) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        inbox = Inbox()
        receiver.subscribe("jira.orchestrator.commands", inbox)
        await sender.publish(topic="jira/orchestrator/commands", payload=1)
        await sender.publish(topic="jira.orchestrator.commands", payload=2)
        await inbox.wait(2)
        assert inbox.payloads == [1, 2]
        assert {m.topic for m in inbox.messages} == {"jira/orchestrator/commands"}

    async def test_star_matches_exactly_one_segment(self, buses: Any) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        inbox = Inbox()
        receiver.subscribe("orchestration/*", inbox)
        await sender.publish(topic="orchestration/task-start", payload="one segment")
        await sender.publish(topic="orchestration/task/deep", payload="two segments")
        await sender.publish(topic="orchestration", payload="no segment")
        await self.sentinel(sender, inbox, "orchestration/sentinel")
        assert inbox.payloads == ["one segment"]

    async def test_trailing_double_star_matches_one_or_more_segments(self, buses: Any) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        inbox = Inbox()
        receiver.subscribe("plugin/**", inbox)
        for topic in ("plugin/a", "plugin/a/request", "plugin/a/b/c/d", "plugin", "plugins/a"):
            await sender.publish(topic=topic, payload=topic)
        await self.sentinel(sender, inbox, "plugin/sentinel")
        assert inbox.payloads == ["plugin/a", "plugin/a/request", "plugin/a/b/c/d"]

    async def test_distinct_publishes_in_the_same_instant_are_all_delivered(
        self, buses: Any
    ) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        inbox = Inbox()
        receiver.subscribe("plugin/receiver/events", inbox)
        for _ in range(3):  # the same payload three times is three publishes
            await sender.publish(topic="plugin/receiver/events", payload={"same": True})
        await sender.publish(topic="plugin/receiver/events", payload={"other": True})
        await inbox.wait(4)
        await self.sentinel(sender, inbox, "plugin/receiver/events")
        assert len(inbox.messages) == 4
        assert len({m.message_id for m in inbox.messages}) == 4

    async def test_message_fields_survive_the_trip(self, buses: Any) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        inbox = Inbox()
        receiver.subscribe("plugin/receiver/events", inbox)
        payload = {"eventType": "task_completed", "n": [1, 2.5, None, True], "s": "é✓"}
        sent = await sender.publish(
            topic="plugin.receiver.events",
            message_type=MessageType.COMMAND,
            payload=payload,
            headers={"traceId": "trace_abc", "spanId": "span_123", "userId": "user_456"},
            priority=7,
            destination="receiver",
        )
        await inbox.wait(1)
        got = inbox.messages[0]
        assert got == sent
        assert got.source == "sender"
        assert got.payload == payload
        assert got.headers["userId"] == "user_456"

    async def test_source_is_set_by_the_bus_and_cannot_be_spoofed(self, buses: Any) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        inbox = Inbox()
        receiver.subscribe("system/broadcast", inbox)
        forged = Message(topic="system/broadcast", source="jira-orchestrator", payload="hi")
        await sender.publish(forged)
        await inbox.wait(1)
        assert inbox.messages[0].source == "sender"

    async def test_trace_headers_are_created_when_absent(self, buses: Any) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        inbox = Inbox()
        receiver.subscribe("plugin/receiver/events", inbox)
        await sender.publish(topic="plugin/receiver/events", payload=1)
        await sender.publish(topic="plugin/receiver/events", payload=2)
        await inbox.wait(2)
        first, second = inbox.messages
        assert first.headers["traceId"]
        assert first.headers["spanId"]
        assert first.headers["traceId"] != second.headers["traceId"]

    async def test_publishing_inside_a_handler_continues_its_trace(self, buses: Any) -> None:
        relay, sender, watcher = buses("relay"), buses("sender"), buses("watcher")
        inbox = Inbox()

        async def forward(message: Message) -> None:
            await relay.publish(topic="plugin/relay/events", payload=message.payload)

        relay.subscribe("plugin/relay/request", forward)
        watcher.subscribe("plugin/relay/events", inbox)
        original = await sender.publish(topic="plugin/relay/request", payload="x")
        await inbox.wait(1)
        assert inbox.messages[0].headers["traceId"] == original.headers["traceId"]
        assert inbox.messages[0].headers["parentSpanId"] == original.headers["spanId"]

    async def test_sync_and_async_handlers_both_run(self, buses: Any) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        done = Inbox()

        def sync_handler(message: Message) -> None:
            done(Message(topic="x/sync", payload=message.payload))

        async def async_handler(message: Message) -> None:
            await asyncio.sleep(0)
            done(Message(topic="x/async", payload=message.payload))

        receiver.subscribe("system/broadcast", sync_handler)
        receiver.subscribe("system/broadcast", async_handler)
        await sender.publish(topic="system/broadcast", payload=1)
        await sender.publish(topic="system/broadcast", payload=2)
        await done.wait(4)
        assert sorted((m.topic, m.payload) for m in done.messages) == [
            ("x/async", 1),
            ("x/async", 2),
            ("x/sync", 1),
            ("x/sync", 2),
        ]

    async def test_queued_messages_are_handled_by_priority_then_in_order(self, buses: Any) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        gate, busy, done = asyncio.Event(), asyncio.Event(), Inbox()

        async def handler(message: Message) -> None:
            if message.payload == "first":
                busy.set()
                await gate.wait()
            done(message)

        subscription = receiver.subscribe("plugin/receiver/request", handler)
        await sender.publish(topic="plugin/receiver/request", payload="first")
        async with asyncio.timeout(WAIT):
            await busy.wait()
        for payload, priority in [("low", 1), ("urgent-1", 10), ("normal", 5), ("urgent-2", 10)]:
            await sender.publish(
                topic="plugin/receiver/request", payload=payload, priority=priority
            )
        await eventually(lambda: subscription.pending == 4)
        gate.set()
        await done.wait(5)
        assert done.payloads == ["first", "urgent-1", "urgent-2", "normal", "low"]

    async def test_max_concurrency_runs_handlers_side_by_side(self, buses: Any) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        running, peak, release = 0, 0, asyncio.Event()
        done = Inbox()

        async def handler(message: Message) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            if peak < 3:
                await release.wait()
            release.set()
            running -= 1
            done(message)

        receiver.subscribe("plugin/receiver/request", handler, max_concurrency=3)
        for n in range(6):
            await sender.publish(topic="plugin/receiver/request", payload=n)
        await done.wait(6)
        assert peak == 3

    async def test_decorator_form_and_unsubscribe(self, buses: Any) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        inbox, probe = Inbox(), Inbox()

        @receiver.subscribe("plugin/receiver/events")
        def handler(message: Message) -> None:
            inbox(message)

        receiver.subscribe("plugin/receiver/events", probe)
        await sender.publish(topic="plugin/receiver/events", payload=1)
        await inbox.wait(1)
        handler.unsubscribe()
        handler.unsubscribe()  # idempotent
        assert not handler.active
        await sender.publish(topic="plugin/receiver/events", payload=2)
        await probe.wait(2)
        await self.sentinel(sender, probe, "plugin/receiver/events")
        assert inbox.payloads == [1]

    async def test_clear_removes_only_that_plugins_subscriptions(self, buses: Any) -> None:
        quitter, stayer, sender = buses("quitter"), buses("stayer"), buses("sender")
        gone, kept = Inbox(), Inbox()
        quitter.subscribe("system/broadcast", gone)
        quitter.subscribe("system/*", gone)
        stayer.subscribe("system/broadcast", kept)
        quitter.clear()
        assert quitter.subscriptions == ()
        await sender.publish(topic="system/broadcast", payload="after clear")
        await self.sentinel(sender, kept, "system/broadcast")
        assert kept.payloads == ["after clear"]
        assert gone.messages == []

    async def test_filter_decides_what_is_delivered(self, buses: Any) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        inbox = Inbox()
        subscription = receiver.subscribe(
            "system/*", inbox, filter=lambda message: message.priority >= 8
        )
        await sender.publish(topic="system/health", payload="low", priority=3)
        await sender.publish(topic="system/health", payload="high", priority=9)
        await inbox.wait(1)
        await sender.publish(topic="system/health", payload="last", priority=10)
        await inbox.wait(2)
        assert inbox.payloads == ["high", "last"]
        assert subscription.stats.filtered == 1

    async def test_queue_group_shares_messages_between_replicas(self, buses: Any) -> None:
        one, two, sender = buses("replica-one"), buses("replica-two"), buses("sender")
        first, second, everyone = Inbox(), Inbox(), Inbox()
        one.subscribe("plugin/worker/request", first, queue="worker")
        two.subscribe("plugin/worker/request", second, queue="worker")
        one.subscribe("plugin/worker/request", everyone)  # not in the group: gets all
        for n in range(20):
            await sender.publish(topic="plugin/worker/request", payload=n)
        await everyone.wait(20)
        await self.sentinel(sender, everyone, "plugin/worker/request")

        # A transport may deliver queue members on another path than plain subscribers
        # (JetStream consumers on NATS): the sentinel on `everyone` proves nothing for them.
        def shared() -> list[Any]:
            return [p for p in first.payloads + second.payloads if not _is_sentinel(p)]

        await eventually(lambda: len(shared()) >= 20)
        assert sorted(shared()) == list(range(20))

    # -- request and response ----------------------------------------------------------

    async def test_request_returns_the_response_payload(self, buses: Any) -> None:
        platform, caller = buses("lobbi-platform-manager"), buses("caller")

        async def create_tenant(message: Message) -> None:
            tenant = message.payload["parameters"]["tenantId"]
            await platform.respond(
                message.correlation_id, {"status": "success", "result": {"tenant": tenant}}
            )

        platform.subscribe("plugin/lobbi-platform-manager/request", create_tenant)
        response = await caller.request(
            destination="lobbi-platform-manager",
            topic="plugin/lobbi-platform-manager/request",
            payload={"command": "create_tenant", "parameters": {"tenantId": "acme-corp"}},
            timeout=WAIT,
        )
        assert response == {"status": "success", "result": {"tenant": "acme-corp"}}

    async def test_response_carries_the_request_trace(self, buses: Any) -> None:
        server, caller = buses("server"), buses("caller")

        async def answer(message: Message) -> None:
            await server.respond(message.correlation_id, {"ok": True})

        server.subscribe("plugin/server/request", answer)
        response = await caller.request_message(
            topic="plugin/server/request",
            payload={},
            headers={"traceId": "trace_abc", "spanId": "span_1"},
            timeout=WAIT,
        )
        assert response.message_type is MessageType.RESPONSE
        assert response.source == "server"
        assert response.headers["traceId"] == "trace_abc"
        assert response.headers["parentSpanId"] == "span_1"
        assert response.correlation_id

    async def test_request_with_no_subscriber_raises_no_responders_at_once(
        self, buses: Any
    ) -> None:
        caller = buses("caller")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(NoResponders):
            await caller.request(topic="plugin/nobody/rpc-x", payload={}, timeout=30.0)
        assert loop.time() - started < 5.0  # not the 30 s timeout

    async def test_request_without_an_answer_raises_request_timeout(self, buses: Any) -> None:
        silent, caller = buses("silent"), buses("caller")
        silent.subscribe("plugin/silent/request", lambda message: None)
        with pytest.raises(RequestTimeout) as caught:
            await caller.request(topic="plugin/silent/request", payload={}, timeout=0.2)
        assert isinstance(caught.value, TimeoutError)
        assert "plugin/silent/request" in str(caught.value)

    async def test_a_failing_responder_fails_the_request_fast(self, buses: Any) -> None:
        broken, caller = buses("broken"), buses("caller")

        def explode(message: Message) -> None:
            raise ValueError("database unreachable")

        broken.subscribe("plugin/broken/request", explode)
        with pytest.raises(RemoteError) as caught:
            await caller.request(topic="plugin/broken/request", payload={}, timeout=WAIT)
        assert caught.value.error_type == "ValueError"
        assert "database unreachable" in str(caught.value)

    async def test_first_response_wins(self, buses: Any) -> None:
        server, caller = buses("server"), buses("caller")

        async def answer_twice(message: Message) -> None:
            await server.respond(message.correlation_id, "first")
            await server.respond(message.correlation_id, "second")

        server.subscribe("plugin/server/request", answer_twice)
        assert await caller.request(topic="plugin/server/request", timeout=WAIT) == "first"

    async def test_a_response_published_on_the_responders_topic_answers_the_request(
        self, buses: Any
    ) -> None:
        # A peer that correlates on its own (another language) may publish its response on
        # plugin/<responder>/response instead of replying to the request's reply address.
        peer, caller = buses("ts-peer"), buses("caller")

        async def answer_by_topic(message: Message) -> None:
            await peer.publish(
                topic="plugin/ts-peer/response",
                message_type="response",
                correlation_id=message.correlation_id,
                destination=message.source,
                payload={"status": "success", "result": message.payload["command"]},
            )

        peer.subscribe("plugin/ts-peer/request", answer_by_topic)
        response = await caller.request_message(
            topic="plugin/ts-peer/request", payload={"command": "ping"}, timeout=WAIT
        )
        assert response.payload == {"status": "success", "result": "ping"}
        assert response.source == "ts-peer"
        # another request's response on that topic answers nobody else
        await peer.publish(
            topic="plugin/ts-peer/response", message_type="response", correlation_id="other"
        )
        assert await caller.request(
            topic="plugin/ts-peer/request", payload={"command": "again"}, timeout=WAIT
        ) == {"status": "success", "result": "again"}

    # -- failures and dead letters -----------------------------------------------------

    async def test_a_failing_handler_does_not_affect_other_subscribers(self, buses: Any) -> None:
        receiver, sender, auditor = buses("receiver"), buses("sender"), buses("auditor")
        healthy, letters = Inbox(), Inbox()

        def broken(message: Message) -> None:
            raise RuntimeError("boom")

        receiver.subscribe("plugin/receiver/events", broken)
        receiver.subscribe("plugin/receiver/events", healthy)
        auditor.subscribe("system/dead-letter/*", letters)
        sent = await sender.publish(topic="plugin/receiver/events", payload={"n": 1})
        await healthy.wait(1)
        await letters.wait(1)
        letter = letters.messages[0].payload
        assert letter["reason"] == "handler-error"
        assert letter["error"] == {"type": "RuntimeError", "message": "boom"}
        assert letter["subscriber"] == "receiver"
        assert letter["subscription"] == "plugin/receiver/events"
        assert Message.from_dict(letter["message"]) == sent
        assert receiver.stats()["handler_errors"] >= 1

    async def test_expired_messages_are_not_delivered(self, buses: Any) -> None:
        receiver, sender, auditor = buses("receiver"), buses("sender"), buses("auditor")
        inbox, letters = Inbox(), Inbox()
        receiver.subscribe("plugin/receiver/events", inbox)
        auditor.subscribe("system/dead-letter/*", letters)
        await sender.publish(
            topic="plugin/receiver/events",
            payload="stale",
            metadata=MessageMetadata(expires_at="2000-01-01T00:00:00.000Z"),
        )
        await sender.publish(
            topic="plugin/receiver/events",
            payload="fresh",
            metadata=MessageMetadata(expires_at="2999-01-01T00:00:00.000Z"),
        )
        await inbox.wait(1)
        await letters.wait(1)
        assert inbox.payloads == ["fresh"]
        assert letters.messages[0].payload["reason"] == "expired"

    async def test_a_request_whose_caller_gave_up_is_not_handled(self, buses: Any) -> None:
        server, caller, auditor = buses("server"), buses("caller"), buses("auditor")
        letters = Inbox()
        auditor.subscribe("system/dead-letter/*", letters)
        busy, gate = asyncio.Event(), asyncio.Event()
        handled: list[Any] = []

        async def answer(message: Message) -> None:
            handled.append(message.payload)
            if message.payload == "first":
                busy.set()
                await gate.wait()
            await server.respond(message.correlation_id, "done")

        server.subscribe("plugin/server/request", answer)  # one at a time
        first = asyncio.ensure_future(
            caller.request(topic="plugin/server/request", payload="first", timeout=WAIT)
        )
        try:
            async with asyncio.timeout(WAIT):
                await busy.wait()
            # queued behind "first" until after its caller gives up
            with pytest.raises(RequestTimeout):
                await caller.request(topic="plugin/server/request", payload="charge", timeout=0.2)
        finally:
            gate.set()
        assert await first == "done"
        await letters.wait(1, until=lambda m: m.payload["reason"] == "expired")
        (letter,) = [m.payload for m in letters.messages if m.payload["reason"] == "expired"]
        assert letter["message"]["payload"] == "charge"
        assert letter["subscriber"] == "server"
        assert handled == ["first"]
        assert server.stats()["expired"] == 1

    async def test_a_request_carries_its_deadline(self, buses: Any) -> None:
        server, caller = buses("server"), buses("caller")
        seen: list[Message] = []

        async def answer(message: Message) -> None:
            seen.append(message)
            await server.respond(message.correlation_id, "ok")

        server.subscribe("plugin/server/request", answer)
        sent_at = caller.config.clock()
        await caller.request(topic="plugin/server/request", timeout=WAIT)
        (request,) = seen
        assert request.metadata.timeout_ms == WAIT * 1000
        assert request.metadata.expires_at is not None
        deadline = request.deadline()
        assert deadline is not None
        assert sent_at + WAIT - 1 <= deadline <= caller.config.clock() + WAIT

    async def test_each_subscriber_gets_its_own_copy_of_the_payload(self, buses: Any) -> None:
        first, second, sender = buses("first"), buses("second"), buses("sender")
        meddled, untouched = Inbox(), Inbox()

        def meddle(message: Message) -> None:
            message.payload["items"].append("changed by a subscriber")
            message.payload["meta"]["state"] = "changed"
            message.headers["meddled"] = "yes"
            meddled(message)

        first.subscribe("plugin/x/events", meddle)
        second.subscribe("plugin/x/events", untouched)
        payload = {"items": [1], "meta": {"state": "new"}}
        sent = await sender.publish(topic="plugin/x/events", payload=payload)
        payload["items"].append("changed by the publisher after publishing")
        await meddled.wait(1)
        await untouched.wait(1)
        assert untouched.payloads == [{"items": [1], "meta": {"state": "new"}}]
        assert "meddled" not in untouched.messages[0].headers
        assert meddled.payloads == [
            {"items": [1, "changed by a subscriber"], "meta": {"state": "changed"}}
        ]
        assert payload == {
            "items": [1, "changed by the publisher after publishing"],
            "meta": {"state": "new"},
        }
        assert sent.payload is payload  # the publisher's own, as it passed it
        assert "meddled" not in sent.headers

    async def test_one_stuck_subscriber_does_not_hold_up_the_others(self, bus_url: str) -> None:
        config = BusConfig(publish_timeout=0.2)
        stuck_bus = get_message_bus("stuck", bus_url, config=config)
        try:
            healthy_bus, sender = get_message_bus("healthy", bus_url), get_message_bus("s", bus_url)
            auditor = get_message_bus("auditor", bus_url)
            never, letters, healthy = asyncio.Event(), Inbox(), Inbox()

            async def hang(message: Message) -> None:
                await never.wait()

            stuck = stuck_bus.subscribe("plugin/x/events", hang, queue_size=2)
            healthy_bus.subscribe("plugin/x/events", healthy)
            auditor.subscribe("system/dead-letter/*", letters)
            await sender.flush()
            timeouts = 0
            for n in range(20):
                try:
                    await sender.publish(topic="plugin/x/events", payload=n)
                except PublishTimeout:
                    timeouts += 1
            await healthy.wait(20)
            assert healthy.payloads == list(range(20))
            assert timeouts <= 1  # told once, on memory; NATS publishers never wait
            # 1 in the handler, 2 queued, the rest dead-lettered as queue-full
            await letters.wait(17)
            assert {m.payload["reason"] for m in letters.messages} == {"queue-full"}
            assert sorted(m.payload["message"]["payload"] for m in letters.messages) == list(
                range(3, 20)
            )
            assert stuck.stats.dropped == 17
            assert stuck.pending == 2
        finally:
            await close_message_bus()

    # -- bad input ---------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("topic", "position"),
        [("plugin//request", 7), ("plugin/a b", 8), ("/plugin", 0), ("plugin/x/", 9)],
    )
    async def test_malformed_topic_names_topic_and_position(
        self, buses: Any, topic: str, position: int
    ) -> None:
        sender = buses("sender")
        with pytest.raises(InvalidTopic) as caught:
            await sender.publish(topic=topic, payload=None)
        assert caught.value.topic == topic
        assert caught.value.position == position
        assert repr(topic) in str(caught.value)

    async def test_wildcards_are_refused_when_publishing(self, buses: Any) -> None:
        with pytest.raises(InvalidTopic):
            await buses("sender").publish(topic="plugin/*/request", payload=None)

    @pytest.mark.parametrize("pattern", ["plugin/**/request", "a*", "**x", "a/b*/c", ""])
    def test_malformed_patterns_are_refused(self, buses: Any, pattern: str) -> None:
        with pytest.raises(InvalidTopic):
            buses("receiver").subscribe(pattern, lambda message: None)

    @pytest.mark.parametrize("priority", [0, 11, -1, True, 5.0])
    async def test_priority_outside_one_to_ten_is_refused(self, buses: Any, priority: Any) -> None:
        with pytest.raises(InvalidMessage, match="priority"):
            await buses("sender").publish(topic="system/health", payload=None, priority=priority)

    @pytest.mark.parametrize(
        ("payload", "where"),
        [
            ({"a": {1, 2}}, "payload.a"),
            ({"a": [1, float("nan")]}, "payload.a[1]"),
            ({"when": __import__("datetime").datetime(2025, 1, 1)}, "payload.when"),
            (object(), "payload"),
            ({1: "x"}, "payload"),
        ],
    )
    async def test_payload_that_is_not_json_is_refused_naming_where(
        self, buses: Any, payload: Any, where: str
    ) -> None:
        with pytest.raises(InvalidMessage) as caught:
            await buses("sender").publish(topic="system/health", payload=payload)
        assert str(caught.value).startswith(where)

    async def test_oversized_message_is_refused_and_counted(self, buses: Any) -> None:
        sender = buses("sender")
        limit = sender.config.max_message_size
        with pytest.raises(MessageTooLarge) as caught:
            await sender.publish(topic="system/health", payload="x" * limit)
        assert caught.value.limit == limit
        assert caught.value.size > limit
        assert sender.stats()["rejected"] == 1
        # the bus keeps serving
        inbox = Inbox()
        buses("receiver").subscribe("system/health", inbox)
        await sender.publish(topic="system/health", payload="small")
        await inbox.wait(1)

    @pytest.mark.parametrize(
        "topic", ["_jo/durable/x", "_jo.presence.x", "_INBOX/abc", "_INBOX.abc.1", "_jo"]
    )
    async def test_topics_in_the_reserved_namespaces_are_refused(
        self, buses: Any, topic: str
    ) -> None:
        sender, receiver = buses("sender"), buses("receiver")
        with pytest.raises(InvalidTopic, match="reserved") as caught:
            await sender.publish(topic=topic, payload=None)
        assert caught.value.topic == topic
        assert caught.value.position == 0
        with pytest.raises(InvalidTopic, match="reserved"):
            await sender.request(topic=topic, payload=None, timeout=WAIT)
        with pytest.raises(InvalidTopic, match="reserved"):
            receiver.subscribe(topic, lambda message: None)
        with pytest.raises(InvalidTopic, match="reserved"):
            receiver.subscribe(topic.replace(".", "/").split("/")[0] + "/**", lambda m: None)

    async def test_reserved_words_elsewhere_in_a_topic_are_ordinary(self, buses: Any) -> None:
        receiver, sender = buses("receiver"), buses("sender")
        inbox = Inbox()
        receiver.subscribe("plugin/_jo/_INBOX", inbox)
        receiver.subscribe("_job/x", inbox)
        await sender.publish(topic="plugin/_jo/_INBOX", payload=1)
        await sender.publish(topic="_job/x", payload=2)
        await inbox.wait(2)
        assert sorted(inbox.payloads) == [1, 2]

    async def test_every_refusal_is_counted(self, buses: Any) -> None:
        sender = buses("sender")
        server = buses("server")
        server.subscribe("plugin/server/request", lambda message: None)
        limit = sender.config.max_message_size
        refusals: list[Callable[[], Any]] = [
            lambda: sender.publish(topic="plugin//request"),
            lambda: sender.publish(topic="plugin/x", priority=11),
            lambda: sender.publish(topic="plugin/x", payload={"tags": {"a", "b"}}),
            lambda: sender.publish(topic="plugin/x", payload="x" * limit),
            lambda: sender.publish(topic="_jo/x"),
            lambda: sender.publish(topic="plugin/x", payload={"n": 10**5000}),
            lambda: sender.publish(topic="plugin/x", headers={"userId": "\udc80"}),
            lambda: sender.request(topic="plugin/server/request", payload={"a": {1}}, timeout=WAIT),
            lambda: sender.request(topic="plugin/a b", timeout=WAIT),
            lambda: sender.respond("some-request", {"bad": float("inf")}),
        ]
        for refuse in refusals:
            with pytest.raises(InvalidMessage):
                await refuse()
        assert sender.stats()["rejected"] == len(refusals)

    def test_handler_must_be_callable(self, buses: Any) -> None:
        with pytest.raises(TypeError, match="callable"):
            buses("receiver").subscribe("system/health", "not a function")

    @pytest.mark.parametrize("plugin_id", ["", "a/b", "a.b", "has space", 3])
    def test_malformed_plugin_id_is_refused(self, bus_url: str, plugin_id: Any) -> None:
        with pytest.raises(InvalidTopic):
            get_message_bus(plugin_id, bus_url)
