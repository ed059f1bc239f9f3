"""The dead-letter store over NATS: letters from JetStream redeliveries, replay over NATS."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator import RequestTimeout
from jira_orchestrator.messagebus import Message, MessageType, get_message_bus
from jira_orchestrator.orchestrator import (
    DeadLetterCollector,
    DeadLetterStore,
    ReplayNotDelivered,
    replay_letter,
)
from jira_orchestrator.plugins import parse_manifest
from tests.nats._server import NatsServer

PLUGINS = [
    parse_manifest({"name": "mute", "version": "1.0.0", "description": "answers nothing"}),
    parse_manifest(
        {
            "name": "caller",
            "version": "1.0.0",
            "description": "asks svc",
            "communication": {"messagebus": {"topics": ["svc/echo", "svc/news"]}},
        }
    ),
]
"""The plugins whose rights replays are checked against."""

WAIT = 20.0


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        yield server


async def until(condition: Any) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - state of another connection, no event
            await asyncio.sleep(0.01)


async def test_max_deliveries_letter_is_stored_and_replayed(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = f"{nats_server.url}?ack_wait=0.5&max_deliver=2"
    with DeadLetterStore(tmp_path / "dlq.db") as store:
        collector = DeadLetterCollector(get_message_bus("jira-orchestrator", url), store)
        collector.start()
        deliveries: list[Message] = []
        get_message_bus("mute", url).subscribe(
            "plugin/mute/request", deliveries.append, queue="mute"
        )
        with pytest.raises(RequestTimeout):
            await get_message_bus("caller", url).request(
                topic="plugin/mute/request", payload="hello?", timeout=0.3
            )
        await until(lambda: store.count(reason="max-deliveries") >= 1)
        (letter,) = store.list(reason="max-deliveries")
        assert letter.topic == "plugin/mute/request"
        assert letter.subscriber == "mute"
        assert letter.payload["deliveries"] == 2
        assert letter.sender == "mute"  # proven by its subject, system.dead-letter.mute

        # mute vouches for a request from caller that was addressed to mute: replayed, it
        # goes back to mute alone, sent with mute's own rights, never as caller
        sent = await replay_letter(store, letter.id, url=url, plugins=PLUGINS)
        assert letter.message is not None
        assert sent.metadata.retry_count == letter.message["metadata"]["retryCount"] + 1
        await until(lambda: any(m.message_id == sent.message_id for m in deliveries))
        replayed = next(m for m in deliveries if m.message_id == sent.message_id)
        assert replayed.source == "mute"
        assert replayed.headers["replayOf"] == letter.message_id
        assert store.get(letter.id).replay_count == 1
        collector.stop()


async def test_replay_on_core_nats_is_marked_only_when_confirmed(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = nats_server.url

    def original(topic: str, kind: MessageType) -> dict[str, Any]:
        correlation = "c-1" if kind is MessageType.REQUEST else None
        message = Message(
            topic=topic, source="caller", message_type=kind, correlation_id=correlation
        )
        return {"reason": "handler-error", "subscriber": "svc", "message": message.to_dict()}

    with DeadLetterStore(tmp_path / "dlq.db") as store:
        asked = store.add(original("svc/echo", MessageType.REQUEST), sender="caller")[0]
        told = store.add(original("svc/news", MessageType.EVENT), sender="caller")[0]
        with pytest.raises(ReplayNotDelivered, match="nobody subscribes to 'svc/echo'"):
            # NATS answered "no responders"
            await replay_letter(store, asked, url=url, plugins=PLUGINS)
        echo = get_message_bus("svc", url)

        @echo.subscribe("svc/echo")
        async def answer(message: Message) -> None:
            if message.correlation_id is not None:
                await echo.respond(message.correlation_id, "ok")

        echo.subscribe("svc/news", lambda message: None)
        await echo.transport.flush()
        sent = await replay_letter(store, asked, url=url, plugins=PLUGINS)
        assert store.get(asked).replayed_as == sent.message_id
        with pytest.raises(ReplayNotDelivered, match="cannot confirm"):
            await replay_letter(store, told, url=url, plugins=PLUGINS)
        assert store.get(told).replay_count == 0
