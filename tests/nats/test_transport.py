"""The NATS transport's own behaviour: errors, presence, invalid bytes, reconnects."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import nats
import pytest

from jira_orchestrator import (
    ConnectionLost,
    InvalidMessage,
    InvalidTopic,
    NoResponders,
    RequestTimeout,
    TransportClosed,
    TransportError,
)
from jira_orchestrator.messagebus import Message, get_message_bus
from jira_orchestrator.transports import open_transport
from jira_orchestrator.transports.nats import NatsTransport
from tests.nats._server import NatsServer, free_port

WAIT = 10.0


def peer(server: NatsServer, name: str, query: str = "") -> str:
    """A URL of its own for ``name``: a separate bus and connection, like another process."""
    return f"{server.url}?name={name}" + (f"&{query}" if query else "")


async def until(condition: Any) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - another connection's state, no event to await
            await asyncio.sleep(0.005)


def test_open_transport_picks_nats_for_nats_urls() -> None:
    transport = open_transport("nats://127.0.0.1:4222?ack_wait=3")
    assert isinstance(transport, NatsTransport)
    assert transport.options.ack_wait == 3


async def test_unreachable_server_is_a_transport_error_not_a_hang() -> None:
    bus = get_message_bus("lonely", f"nats://127.0.0.1:{free_port()}?connect_timeout=1")
    with pytest.raises(TransportError, match="cannot connect to NATS"):
        await bus.publish(topic="system/health", payload=None)


async def test_request_to_nobody_raises_no_responders_on_plain_and_durable_topics(
    nats_server: NatsServer,
) -> None:
    caller = get_message_bus("caller", nats_server.url)
    loop = asyncio.get_running_loop()
    for topic in ("service/nobody/ask", "plugin/nobody-at-all/request"):
        started = loop.time()
        with pytest.raises(NoResponders):
            await caller.request(topic=topic, payload={}, timeout=30)
        assert loop.time() - started < 5


async def test_durable_request_finds_a_responder_in_another_connection(
    nats_server: NatsServer,
) -> None:
    server = get_message_bus("far-away", peer(nats_server, "server", "presence_ttl=0"))
    caller = get_message_bus("caller", peer(nats_server, "caller", "presence_ttl=0"))

    async def answer(message: Message) -> None:
        await server.respond(message.correlation_id, {"got": message.payload})

    subscription = server.subscribe("plugin/far-away/request", answer)
    assert isinstance(server.transport, NatsTransport)
    await server.transport.flush()
    reply = await caller.request(topic="plugin/far-away/request", payload=7, timeout=WAIT)
    assert reply == {"got": 7}
    subscription.unsubscribe()
    await until(lambda: not server.transport._subscriptions)  # type: ignore[attr-defined]
    await server.transport.flush()
    with pytest.raises(NoResponders):
        await caller.request(topic="plugin/far-away/request", payload=8, timeout=WAIT)


async def test_queue_group_across_connections_handles_each_message_once(
    nats_server: NatsServer,
) -> None:
    one = get_message_bus("jobs", peer(nats_server, "one"))
    two = get_message_bus("jobs", peer(nats_server, "two"))
    sender = get_message_bus("sender", peer(nats_server, "sender"))
    seen: list[tuple[str, Any]] = []
    one.subscribe("service/jobs/run", lambda m: seen.append(("one", m.payload)), queue="jobs")
    two.subscribe("service/jobs/run", lambda m: seen.append(("two", m.payload)), queue="jobs")
    for bus in (one, two):
        await bus.transport.flush()  # type: ignore[attr-defined]
    for n in range(100):
        await sender.publish(topic="service/jobs/run", payload=n)
    await until(lambda: len(seen) >= 100)
    assert sorted(p for _, p in seen) == list(range(100))
    assert {who for who, _ in seen} == {"one", "two"}


async def test_undecodable_bytes_are_counted_and_reported_not_fatal(
    nats_server: NatsServer,
) -> None:
    receiver = get_message_bus("receiver", nats_server.url)
    transport = receiver.transport
    assert isinstance(transport, NatsTransport)
    reported: list[tuple[str, bytes, InvalidMessage]] = []
    transport.on_invalid = lambda subject, data, error: reported.append((subject, data, error))
    got: list[Any] = []
    receiver.subscribe("plugin/receiver/events", lambda m: got.append(m.payload))
    await transport.flush()
    raw = await nats.connect(nats_server.url)
    try:
        await raw.publish("plugin.receiver.events", b"{not json")
        await raw.publish("plugin.receiver.events", b'{"topic": "a b"}')
        await raw.publish(
            "plugin.receiver.events", Message(topic="plugin/receiver/events", payload="ok").encode()
        )
        await raw.flush()
    finally:
        await raw.close()
    await until(lambda: got)
    assert got == ["ok"]
    assert transport.stats.invalid == 2
    assert [(s, d) for s, d, _ in reported] == [
        ("plugin.receiver.events", b"{not json"),
        ("plugin.receiver.events", b'{"topic": "a b"}'),
    ]
    assert all(isinstance(e, InvalidMessage) for _, _, e in reported)


async def test_reserved_topics_are_refused(nats_server: NatsServer) -> None:
    bus = get_message_bus("x", nats_server.url)
    with pytest.raises(InvalidTopic, match="reserved"):
        await bus.publish(topic="_INBOX/x", payload=None)
    with pytest.raises(InvalidTopic, match="reserved"):
        bus.subscribe("_jo/**", lambda m: None)


async def test_closed_transport_raises_transport_closed(nats_server: NatsServer) -> None:
    transport = NatsTransport(nats_server.url)
    await transport.publish(Message(topic="system/health"))
    await transport.close()
    with pytest.raises(TransportClosed):
        await transport.publish(Message(topic="system/health"))
    with pytest.raises(TransportClosed):
        transport.subscribe("system/health", lambda m, r: None)


async def test_request_in_flight_when_the_server_dies_fails_fast(
    private_server: NatsServer,
) -> None:
    server = get_message_bus("slow", peer(private_server, "server"))
    caller = get_message_bus("caller", peer(private_server, "caller", "reconnect_wait=0.05"))
    arrived = asyncio.Event()
    server.subscribe("service/slow/ask", lambda m: arrived.set())  # never answers
    await server.transport.flush()  # type: ignore[attr-defined]
    call = asyncio.ensure_future(caller.request(topic="service/slow/ask", payload={}, timeout=30))
    async with asyncio.timeout(WAIT):
        await arrived.wait()
    private_server.kill()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionLost):
        await call
    with pytest.raises(ConnectionLost):  # and while it is down, no new one waits for nothing
        await caller.request(topic="service/slow/ask", payload={}, timeout=30)
    assert loop.time() - started < 5


async def test_subscriptions_come_back_after_a_server_restart(private_server: NatsServer) -> None:
    receiver = get_message_bus("receiver", peer(private_server, "receiver", "reconnect_wait=0.05"))
    sender = get_message_bus("sender", peer(private_server, "sender", "reconnect_wait=0.05"))
    got: list[Any] = []
    receiver.subscribe("plugin/receiver/events", lambda m: got.append(m.payload))
    await receiver.transport.flush()  # type: ignore[attr-defined]
    await sender.publish(topic="plugin/receiver/events", payload="before")
    await until(lambda: got == ["before"])
    private_server.restart()
    for transport in (receiver.transport, sender.transport):
        assert isinstance(transport, NatsTransport)
        await until(lambda t=transport: t.stats.reconnects >= 1)  # type: ignore[misc]
    await receiver.transport.flush()  # type: ignore[attr-defined]
    await sender.publish(topic="plugin/receiver/events", payload="after")
    await until(lambda: got == ["before", "after"])


async def test_request_timeout_is_ours(nats_server: NatsServer) -> None:
    silent = get_message_bus("silent", nats_server.url)
    silent.subscribe("service/silent/ask", lambda m: None)
    with pytest.raises(RequestTimeout):
        await silent.request(topic="service/silent/ask", payload={}, timeout=0.1)


async def test_a_server_without_jetstream_is_named_and_durable_can_be_switched_off(
    tmp_path: Path,
) -> None:
    with NatsServer(tmp_path / "core-only", jetstream=False) as server:
        bus = get_message_bus("x", server.url)
        with pytest.raises(TransportError, match="JetStream is not enabled"):
            await bus.publish(topic="system/health", payload=None)
        core_only = get_message_bus("x", f"{server.url}?durable=")
        got: list[Any] = []
        core_only.subscribe("plugin/x/request", lambda m: got.append(m.payload))
        await core_only.publish(topic="plugin/x/request", payload="plain")
        await until(lambda: got == ["plain"])


async def test_after_flush_a_new_subscription_hears_the_very_next_message(
    nats_server: NatsServer,
) -> None:
    # nats-py writes flush()'s PING ahead of commands still queued for its flusher, so a
    # SUB could reach the server after the PONG: a message published by another connection
    # right after flush() then went to nobody.
    transport = NatsTransport(peer(nats_server, "listener"))
    raw = await nats.connect(nats_server.url)
    try:
        for round_ in range(200):
            heard: asyncio.Queue[Message] = asyncio.Queue()
            subscription = transport.subscribe(
                f"probe/flush/{round_}",
                lambda message, _reply, heard=heard: heard.put_nowait(message),
            )
            await transport.flush()
            message = Message(topic=f"probe/flush/{round_}", payload={})
            await raw.publish(f"probe.flush.{round_}", message.encode())
            await raw.flush()
            try:
                got = await asyncio.wait_for(heard.get(), WAIT)
            except TimeoutError:
                pytest.fail(f"round {round_}: the message published after flush() was lost")
            assert got.message_id == message.message_id
            subscription.unsubscribe()
    finally:
        await raw.close()
        await transport.close()
