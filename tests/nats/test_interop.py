"""A plugin in another language joins over NATS: raw JSON with nats-py, no SDK on that side.

Everything the raw side does here is what docs/protocol.md tells a non-Python plugin.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from jira_orchestrator.messagebus import Message, get_message_bus
from tests.nats._server import NatsServer

WAIT = 10.0


@pytest.fixture
async def raw(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


def envelope(**fields: Any) -> bytes:
    """What a TypeScript plugin sends: the seed's camelCase envelope as JSON."""
    base: dict[str, Any] = {
        "messageId": "ts-msg-1",
        "correlationId": "ts-corr-1",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "source": "ts-plugin",
        "destination": "sdk-plugin",
        "topic": "plugin.sdk-plugin.request",
        "messageType": "request",
        "priority": 5,
        "headers": {"traceId": "trace-ts"},
        "payload": {"command": "add", "numbers": [1, 2, 3]},
        "metadata": {"retryCount": 0, "timeout": 5000},
    }
    base.update(fields)
    return json.dumps(base).encode()


async def serve_sdk_plugin(url: str) -> None:
    sdk = get_message_bus("sdk-plugin", url)

    async def add(message: Message) -> None:
        assert message.correlation_id is not None
        await sdk.respond(message.correlation_id, {"sum": sum(message.payload["numbers"])})

    sdk.subscribe("plugin/sdk-plugin/request", add, queue="sdk-plugin")
    await sdk.transport.flush()  # type: ignore[attr-defined]


async def test_raw_request_reply_gets_the_sdk_plugins_answer(
    nats_server: NatsServer, raw: Client
) -> None:
    await serve_sdk_plugin(nats_server.url)
    reply = await raw.request("plugin.sdk-plugin.request", envelope(), timeout=WAIT)
    answer = json.loads(reply.data)
    assert answer["messageType"] == "response"
    assert answer["correlationId"] == "ts-corr-1"
    assert answer["source"] == "sdk-plugin"
    assert answer["destination"] == "ts-plugin"
    assert answer["topic"] == "plugin/sdk-plugin/response"
    assert answer["payload"] == {"sum": 6}
    assert answer["headers"]["traceId"] == "trace-ts"
    assert set(answer) >= {"messageId", "timestamp", "priority", "metadata"}


async def test_a_minimal_envelope_is_enough(nats_server: NatsServer, raw: Client) -> None:
    await serve_sdk_plugin(nats_server.url)
    minimal = {
        "topic": "plugin/sdk-plugin/request",
        "messageType": "request",
        "correlationId": "c-1",
        "payload": {"numbers": [40, 2]},
    }
    reply = await raw.request("plugin.sdk-plugin.request", json.dumps(minimal).encode(), WAIT)
    assert json.loads(reply.data)["payload"] == {"sum": 42}


async def test_raw_durable_request_through_jetstream(nats_server: NatsServer, raw: Client) -> None:
    await serve_sdk_plugin(nats_server.url)
    inbox = raw.new_inbox()
    answers = await raw.subscribe(inbox, max_msgs=1)
    ack = await raw.jetstream().publish(
        "_jo.durable.plugin.sdk-plugin.request",
        envelope(messageId="ts-durable-1", correlationId="ts-corr-2"),
        headers={"Nats-Msg-Id": "ts-durable-1", "Jo-Reply-To": inbox},
    )
    assert ack.stream == "JO_REQUESTS"
    reply = await answers.next_msg(timeout=WAIT)
    answer = json.loads(reply.data)
    assert answer["correlationId"] == "ts-corr-2"
    assert answer["payload"] == {"sum": 6}


async def test_raw_subscriber_receives_sdk_events(nats_server: NatsServer, raw: Client) -> None:
    decisions = await raw.subscribe("routing.decision")
    everything_routing = await raw.subscribe("routing.>")
    await raw.flush()
    router = get_message_bus("router", nats_server.url)
    sent = await router.publish(
        topic="routing/decision", payload={"plugin": "backend", "confidence": 0.92}, priority=8
    )
    for subscription in (decisions, everything_routing):
        msg = await subscription.next_msg(timeout=WAIT)
        assert msg.subject == "routing.decision"
        event = json.loads(msg.data)
        assert event["topic"] == "routing/decision"
        assert event["messageType"] == "event"
        assert event["source"] == "router"
        assert event["priority"] == 8
        assert event["payload"] == {"plugin": "backend", "confidence": 0.92}
        assert event["messageId"] == sent.message_id
        assert event["headers"]["traceId"]


async def test_raw_request_to_nobody_gets_no_responders(raw: Client) -> None:
    with pytest.raises(nats.errors.NoRespondersError):
        await raw.request("plugin.nobody-here.request", envelope(), timeout=WAIT)


def _error_of(data: bytes) -> dict[str, Any]:
    answer = json.loads(data)
    assert answer["messageType"] == "response"
    assert answer["headers"]["status"] == "error"
    error: dict[str, Any] = answer["payload"]["error"]
    return {**error, "correlationId": answer["correlationId"]}


async def test_a_malformed_request_is_answered_with_an_error(
    nats_server: NatsServer, raw: Client
) -> None:
    await serve_sdk_plugin(nats_server.url)
    reply = await raw.request("plugin.sdk-plugin.request", b'{"topic": ', timeout=WAIT)
    error = _error_of(reply.data)
    assert error["type"] == "InvalidMessage"
    assert error["correlationId"] is None
    # a readable envelope with a bad field: the answer carries its correlation id
    reply = await raw.request("plugin.sdk-plugin.request", envelope(priority=11), timeout=WAIT)
    error = _error_of(reply.data)
    assert (error["type"], error["correlationId"]) == ("InvalidMessage", "ts-corr-1")
    assert "priority" in error["message"]


async def test_a_malformed_durable_request_is_answered_at_its_reply_address(
    nats_server: NatsServer, raw: Client
) -> None:
    await serve_sdk_plugin(nats_server.url)
    inbox = raw.new_inbox()
    answers = await raw.subscribe(inbox, max_msgs=1)
    await raw.jetstream().publish(
        "_jo.durable.plugin.sdk-plugin.request",
        b"not json at all",
        headers={"Nats-Msg-Id": "ts-bad-1", "Jo-Reply-To": inbox},
    )
    reply = await answers.next_msg(timeout=WAIT)
    assert _error_of(reply.data)["type"] == "InvalidMessage"


async def test_the_subject_wins_over_the_envelopes_topic(
    nats_server: NatsServer, raw: Client
) -> None:
    # An envelope claiming another topic than the subject it travels on (which the
    # server's permissions were checked against) is refused, never delivered as claimed.
    await serve_sdk_plugin(nats_server.url)
    other = get_message_bus("other", nats_server.url)
    claimed: list[Message] = []
    other.subscribe("plugin/other/request", claimed.append)
    await other.transport.flush()
    # the letter comes from the receiving process, on its own subject (protocol, "Identity")
    letters = await raw.subscribe("_jo.durable.system.dead-letter.*")
    await raw.flush()
    reply = await raw.request(
        "plugin.sdk-plugin.request", envelope(topic="plugin/other/request"), timeout=WAIT
    )
    error = _error_of(reply.data)
    assert error["type"] == "InvalidMessage"
    assert "plugin/other/request" in error["message"]
    assert "plugin.sdk-plugin.request" in error["message"]
    letter = json.loads((await letters.next_msg(timeout=WAIT)).data)["payload"]
    assert (letter["reason"], letter["message"]) == ("invalid-message", None)
    assert letter["subscription"] == "plugin.sdk-plugin.request"
    assert claimed == []


async def test_a_raw_replica_shares_the_durable_queue_by_the_documented_consumer_name(
    nats_server: NatsServer, raw: Client
) -> None:
    # docs/protocol.md, "Durable queues" and "Minimal plugin": a replica in another
    # language binds to the consumer the Python replicas share, so each durable request
    # is handled once, by one of them.
    plugin = "shared-worker"
    sdk = get_message_bus(plugin, nats_server.url)
    handled: list[tuple[str, int]] = []

    async def python_replica(message: Message) -> None:
        handled.append(("python", message.payload["n"]))
        await sdk.respond(message.correlation_id or "", {"by": "python"})

    sdk.subscribe(f"plugin/{plugin}/request", python_replica, queue=plugin)
    await sdk.transport.flush()  # type: ignore[attr-defined]

    digest = hashlib.sha256(f"JO_REQUESTS\nplugin/{plugin}/request\n{plugin}".encode()).hexdigest()
    deliver = f"_jo.deliver.{plugin}_{digest[:12]}"

    async def raw_replica(msg: Any) -> None:
        request = json.loads(msg.data)
        handled.append(("raw", request["payload"]["n"]))
        response = {
            "messageType": "response",
            "topic": f"plugin/{plugin}/response",
            "correlationId": request["correlationId"],
            "source": plugin,
            "destination": request["source"],
            "payload": {"by": "raw"},
        }
        await raw.publish(msg.headers["Jo-Reply-To"], json.dumps(response).encode())
        await raw.publish(msg.reply, b"+ACK")

    await raw.subscribe(deliver, queue=plugin, cb=raw_replica)
    await raw.flush()
    caller = get_message_bus("caller", nats_server.url)
    answers = [
        await caller.request(topic=f"plugin/{plugin}/request", payload={"n": n}, timeout=WAIT)
        for n in range(40)
    ]
    assert sorted(n for _, n in handled) == list(range(40))  # each once, none twice
    assert {who for who, _ in handled} == {"python", "raw"}  # both replicas took some
    assert {answer["by"] for answer in answers} == {"python", "raw"}


async def test_a_minimal_raw_plugin_is_routed_work_on_nats(
    nats_server: NatsServer, raw: Client, tmp_path: Path
) -> None:
    # docs/protocol.md, "Minimal plugin", on NATS and nothing else: a manifest, the
    # durable consumer of its queue, presence probes and {status, result} replies; no RPC.
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from jira_orchestrator.orchestrator import Orchestrator

    plugin = "invoice-renderer"
    folder = tmp_path / "plugins" / plugin / ".claude-plugin"
    folder.mkdir(parents=True)
    manifest = {
        "name": plugin,
        "description": "Renders invoices as PDF",
        "keywords": ["invoice", "pdf", "billing"],
    }
    (folder / "plugin.json").write_text(json.dumps(manifest))

    async def presence(msg: Any) -> None:
        await raw.publish(msg.reply, b"")

    async def serve(msg: Any) -> None:
        request = json.loads(msg.data)
        reply = {
            "messageType": "response",
            "topic": f"plugin/{plugin}/response",
            "correlationId": request["correlationId"],
            "source": plugin,
            "destination": request["source"],
            "payload": {"status": "success", "result": request["payload"]["command"]},
        }
        await raw.publish(msg.headers["Jo-Reply-To"], json.dumps(reply).encode())
        await raw.publish(msg.reply, b"+ACK")

    orchestrator = Orchestrator(tmp_path / "plugins", bus_url=nats_server.url)
    try:
        await orchestrator.bus.transport.flush()  # type: ignore[attr-defined]  # the streams
        digest = hashlib.sha256(
            f"JO_REQUESTS\nplugin/{plugin}/request\n{plugin}".encode()
        ).hexdigest()[:12]
        name = f"{plugin}_{digest}"
        await raw.jetstream().add_consumer(
            "JO_REQUESTS",
            ConsumerConfig(
                name=name,
                durable_name=name,
                deliver_subject=f"_jo.deliver.{name}",
                deliver_group=plugin,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=30,
                max_deliver=5,
                max_ack_pending=1000,
                filter_subject=f"_jo.durable.plugin.{plugin}.request",
            ),
        )
        await raw.subscribe(f"_jo.deliver.{name}", queue=plugin, cb=serve)
        await raw.subscribe(f"_jo.presence.plugin.{plugin}.request", "_jo_presence", cb=presence)
        await raw.flush()
        await orchestrator.start()
        assert orchestrator.health[plugin].status == "ready"
        result = await orchestrator.dispatch("Render the March invoice as a PDF")
        assert (result.outcome, result.plugin, result.result) == (
            "completed",
            plugin,
            "handle_issue",
        )
    finally:
        await orchestrator.stop()
        orchestrator.close()
