"""The publish fast path (an event with the default envelope) behaves as the general one.

It skips re-validating what it built itself and bounds the size from the payload's, so
these tests pin the edges: the size limit to the byte, the longest plugin id and topic,
inherited trace ids of any length, and `current_message()` in and out of handlers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jira_orchestrator import MessageTooLarge
from jira_orchestrator._core.topics import MAX_TOPIC_LENGTH
from jira_orchestrator.messagebus import (
    BusConfig,
    Message,
    MessageBus,
    current_message,
    get_message_bus,
)
from tests.conformance.base import Inbox

LIMIT = 2048


async def boundary(bus: MessageBus, topic: str, char: str) -> tuple[Message, MessageTooLarge]:
    """The largest message of ``char`` * n that goes out, and the error for one more."""
    last: Message | None = None
    for count in range(bus.config.max_message_size + 1):
        try:
            last = await bus.publish(topic=topic, payload=char * count)
        except MessageTooLarge as error:
            assert last is not None
            return last, error
    raise AssertionError("never too large")


@pytest.mark.parametrize("char", ["x", "é", "\x00", "😀", '"'])
async def test_the_size_limit_holds_to_the_byte(char: str) -> None:
    sender = get_message_bus("sender", config=BusConfig(max_message_size=LIMIT))
    last, error = await boundary(sender, "plugin/sender/events", char)
    size = len(last.encode())
    step = len(Message(topic="t", payload=char).encode()) - len(Message(topic="t").encode()) + 2
    assert size <= LIMIT < size + step
    assert error.size == size + step  # measured exactly, not estimated
    assert error.limit == LIMIT
    assert sender.stats()["rejected"] == 1


async def test_the_size_limit_holds_for_the_longest_plugin_id_and_topic() -> None:
    plugin = "p" * MAX_TOPIC_LENGTH
    topic = "t/" + "x" * (MAX_TOPIC_LENGTH - 2)
    sender = get_message_bus(plugin, config=BusConfig(max_message_size=LIMIT))
    last, error = await boundary(sender, topic, "x")
    assert len(last.encode()) == LIMIT
    assert error.size == LIMIT + 1


async def test_the_size_limit_holds_when_continuing_a_trace_with_long_ids() -> None:
    config = BusConfig(max_message_size=LIMIT * 2)
    receiver = get_message_bus("receiver", config=config)
    sender = get_message_bus("sender")
    results: list[Any] = []

    async def republish(message: Message) -> None:
        results.append(await boundary(receiver, "plugin/receiver/out", "x"))

    receiver.subscribe("plugin/receiver/in", republish)
    await sender.publish(
        topic="plugin/receiver/in",
        headers={"traceId": "t" * 400, "spanId": "s" * 400},
        payload=None,
    )
    await sender.flush()
    [(last, error)] = results
    assert last.headers["traceId"] == "t" * 400
    assert last.headers["parentSpanId"] == "s" * 400
    assert len(last.encode()) == LIMIT * 2
    assert error.size == LIMIT * 2 + 1


async def test_the_fast_path_builds_the_message_the_general_path_builds() -> None:
    sender = get_message_bus("sender")
    fast = await sender.publish(topic="plugin.sender.events", payload={"a": [1, 2.5]})
    general = await sender.publish(  # headers given: the general path
        topic="plugin.sender.events", payload={"a": [1, 2.5]}, headers={}
    )
    for message in (fast, general):
        assert message.headers == {"traceId": message.message_id, "spanId": message.message_id}
        assert Message.decode(message.encode()) == message
    strip = {"message_id": "", "timestamp": "", "headers": {}}
    assert Message(**{**_fields(fast), **strip}) == Message(**{**_fields(general), **strip})
    assert fast.topic == "plugin/sender/events"


def _fields(message: Message) -> dict[str, Any]:
    return {name: getattr(message, name) for name in message.__struct_fields__}


async def test_current_message_is_the_handled_one_and_never_leaks() -> None:
    receiver, sender = get_message_bus("receiver"), get_message_bus("sender")
    seen: list[tuple[str, str | None]] = []
    inbox = Inbox()

    async def handler(message: Message) -> None:
        current = current_message()
        seen.append((message.message_id, None if current is None else current.message_id))
        await asyncio.sleep(0)  # still its own message after a task switch
        assert current_message() is message
        inbox(message)

    def sync_handler(message: Message) -> None:
        assert current_message() is message

    receiver.subscribe("plugin/receiver/events", handler, max_concurrency=2)
    receiver.subscribe("plugin/receiver/events", sync_handler)
    sent = [await sender.publish(topic="plugin/receiver/events", payload=n) for n in range(3)]
    await inbox.wait(3)
    assert sorted(seen) == sorted((m.message_id, m.message_id) for m in sent)
    assert current_message() is None  # the publisher's context is untouched
    await sender.flush()
    # a publish now starts a new trace: nothing of the handled messages stayed around
    fresh = await sender.publish(topic="plugin/sender/events", payload=None)
    assert fresh.headers["traceId"] == fresh.message_id
