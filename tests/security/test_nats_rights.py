"""A plugin holding only its own NATS credentials, on ``up``'s exact server configuration,
with a raw nats-py client (not the SDK): every attack on JetStream and on others' reply
inboxes is refused by the server, and the legitimate flows still work."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import nats
import nats.aio.msg
import pytest

from jira_orchestrator._core.errors import TransportError
from jira_orchestrator._core.message import Message
from jira_orchestrator.messagebus import MessageBus, close_message_bus, get_message_bus
from jira_orchestrator.orchestrator.natsconfig import ORCHESTRATOR
from jira_orchestrator.transports._nats_subjects import consumer_name
from jira_orchestrator.transports.nats import NatsTransport
from tests.security.conftest import Deployment

ATTACKER = "frontend-design-system"  # canRouteTo [], nobody routes to it but the orchestrator
VICTIM = "k8s-helm-deployer"
VICTIM_CONSUMER = consumer_name("JO_REQUESTS", f"plugin/{VICTIM}/request", VICTIM)
OWN_CONSUMER = consumer_name("JO_REQUESTS", f"plugin/{ATTACKER}/request", ATTACKER)
SPY = {
    "stream_name": "JO_REQUESTS",
    "config": {
        "durable_name": "spy",
        "ack_policy": "none",
        "deliver_subject": f"_INBOX.{ATTACKER}.spy",
        "filter_subject": f"_jo.durable.plugin.{VICTIM}.request",
    },
}


class Attacker:
    """A raw client with the attacker's credentials, recording the server's refusals."""

    def __init__(self) -> None:
        self.refusals: list[str] = []
        self.changed = asyncio.Event()
        self.client: nats.NATS | None = None

    async def on_error(self, error: Exception) -> None:
        self.refusals.append(str(error).lower())
        self.changed.set()

    async def refused(self, what: str, subject: str) -> None:
        """Wait until the server has refused ``what`` (publish or subscription) on it."""
        wanted = f'permissions violation for {what} to "{subject.lower()}"'
        async with asyncio.timeout(10):  # the refusal comes at once; this bounds a failure
            while not any(wanted in refusal for refusal in self.refusals):
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def attacker(deployment: Deployment) -> AsyncIterator[tuple[Attacker, nats.NATS]]:
    spy = Attacker()
    client = await nats.connect(
        deployment.raw_url(ATTACKER), error_cb=spy.on_error, allow_reconnect=False
    )
    try:
        yield spy, client
    finally:
        await client.close()


# What a plugin's user might try with JetStream's API: read another plugin's requests,
# destroy or rewrite the request stream, purge or read the dead letters, list and inspect.
JETSTREAM_ATTACKS = [
    (f"$JS.API.CONSUMER.CREATE.JO_REQUESTS.spy._jo.durable.plugin.{VICTIM}.request", SPY),
    ("$JS.API.CONSUMER.CREATE.JO_REQUESTS.spy", SPY),
    ("$JS.API.CONSUMER.DURABLE.CREATE.JO_REQUESTS.spy", SPY),
    (f"$JS.API.CONSUMER.MSG.NEXT.JO_REQUESTS.{VICTIM_CONSUMER}", {"batch": 1}),
    ("$JS.API.STREAM.MSG.GET.JO_REQUESTS", {"seq": 1}),
    ("$JS.API.DIRECT.GET.JO_REQUESTS", {"seq": 1}),
    ("$JS.API.STREAM.DELETE.JO_REQUESTS", None),
    ("$JS.API.STREAM.UPDATE.JO_REQUESTS", {"name": "JO_REQUESTS", "subjects": ["x"]}),
    ("$JS.API.STREAM.PURGE.JO_REQUESTS", None),
    ("$JS.API.STREAM.MSG.DELETE.JO_REQUESTS", {"seq": 1}),
    (f"$JS.API.CONSUMER.DELETE.JO_REQUESTS.{VICTIM_CONSUMER}", None),
    (
        f"$JS.API.CONSUMER.PAUSE.JO_REQUESTS.{VICTIM_CONSUMER}",
        {"pause_until": "2999-01-01T00:00:00Z"},
    ),
    (f"$JS.API.CONSUMER.LEADER.STEPDOWN.JO_REQUESTS.{VICTIM_CONSUMER}", None),
    # even its own consumer: deleting it would drop its waiting requests
    (f"$JS.API.CONSUMER.DELETE.JO_REQUESTS.{OWN_CONSUMER}", None),
    (f"$JS.API.CONSUMER.CREATE.JO_REQUESTS.{OWN_CONSUMER}", SPY),
    ("$JS.API.STREAM.PURGE.JO_DEAD_LETTER", None),
    ("$JS.API.STREAM.DELETE.JO_DEAD_LETTER", None),
    ("$JS.API.STREAM.MSG.GET.JO_DEAD_LETTER", {"seq": 1}),
    ("$JS.API.DIRECT.GET.JO_DEAD_LETTER", {"seq": 1}),
    ("$JS.API.CONSUMER.CREATE.JO_DEAD_LETTER.spy", SPY),
    ("$JS.API.STREAM.LIST", None),
    ("$JS.API.STREAM.NAMES", None),
    ("$JS.API.STREAM.INFO.JO_REQUESTS", None),
    ("$JS.API.STREAM.INFO.JO_DEAD_LETTER", None),
    ("$JS.API.CONSUMER.LIST.JO_REQUESTS", None),
    ("$JS.API.CONSUMER.NAMES.JO_REQUESTS", None),
    (f"$JS.API.CONSUMER.INFO.JO_REQUESTS.{VICTIM_CONSUMER}", None),
    (f"$JS.ACK.JO_REQUESTS.{VICTIM_CONSUMER}.1.1.1.1700000000000000000.0", "+ACK"),
    # another plugin's reply inbox: nobody routing to the attacker, it may not answer there
    (f"_INBOX.{VICTIM}.x.1", {"forged": "reply"}),
]


@pytest.mark.parametrize(
    ("subject", "body"), [pytest.param(s, b, id=s) for s, b in JETSTREAM_ATTACKS]
)
async def test_a_plugin_may_not_touch_jetstream_beyond_its_own_consumer(
    deployment: Deployment, subject: str, body: Any
) -> None:
    async with attacker(deployment) as (spy, client):
        data = body.encode() if isinstance(body, str) else json.dumps(body or {}).encode()
        await client.publish(subject, data, reply=f"_INBOX.{ATTACKER}.answer")
        await spy.refused("publish", subject)


@pytest.mark.parametrize(
    "subject",
    [
        "_INBOX.>",  # every reply to everybody
        f"_INBOX.{ORCHESTRATOR}.>",  # the orchestrator's health checks and results
        f"_INBOX.{VICTIM}.>",
        "_INBOX.*.>",
        ">",
        f"_jo.deliver.{VICTIM_CONSUMER}",  # another plugin's JetStream deliveries
        f"_jo.durable.plugin.{VICTIM}.request",  # its live durable copies
        "_jo.durable.>",
        "_jo.deliver.>",
        "$JS.>",
    ],
)
async def test_a_plugin_may_not_read_others_replies_or_deliveries(
    deployment: Deployment, subject: str
) -> None:
    async with attacker(deployment) as (spy, client):
        await client.subscribe(subject)
        await spy.refused("subscription", subject)


async def test_the_streams_and_dead_letters_survive_every_attack(deployment: Deployment) -> None:
    orchestrator = deployment.orchestrator
    await orchestrator.publish(
        Message(topic="system/dead-letter", source=ORCHESTRATOR, payload={"reason": "test"})
    )
    async with attacker(deployment) as (spy, client):
        for subject, body in JETSTREAM_ATTACKS:
            await client.publish(subject, json.dumps(body or {}).encode())
        for subject, _ in JETSTREAM_ATTACKS:
            await spy.refused("publish", subject)
        await client.flush()
    # the server logs each refusal with the user's name (and no password)
    log = deployment.server.log.read_text(errors="replace")
    violations = [line for line in log.splitlines() if "Publish Violation" in line]
    assert len(violations) >= len(JETSTREAM_ATTACKS), log[-3000:]
    assert all(f"user:{ATTACKER}" in line for line in violations), violations
    assert deployment.passwords[ATTACKER] not in log
    jsm = orchestrator._jsm
    assert jsm is not None
    requests = await jsm.stream_info("JO_REQUESTS")
    letters = await jsm.stream_info("JO_DEAD_LETTER")
    assert letters.state.messages == 1
    names = {c.name for c in await jsm.consumers_info("JO_REQUESTS")}
    assert VICTIM_CONSUMER in names
    assert "spy" not in names
    assert requests.config.subjects == ["_jo.durable.plugin.*.request"]


async def test_a_plugin_answers_durable_requests_with_only_its_own_rights(
    deployment: Deployment,
) -> None:
    """lobbi (asked by the orchestrator and by fastapi-backend, whose canRouteTo names it)
    serves durable requests through the consumer ``up`` made for it, with only its own
    credentials; each requester gets its answer on its own inbox; a request its caller
    gives up on, a dead letter and leaving meet no refusal either."""
    target = "lobbi-platform-manager"
    platform = get_message_bus(target, deployment.urls[target])
    backend = get_message_bus("fastapi-backend", deployment.urls["fastapi-backend"])
    orchestrator = get_message_bus(ORCHESTRATOR, deployment.urls[ORCHESTRATOR])
    started, release = asyncio.Event(), asyncio.Event()

    async def create_tenant(message: Message) -> None:
        tenant = message.payload["parameters"]["tenantId"]
        if tenant == "slow":
            started.set()
            await release.wait()
        await platform.respond(message.correlation_id, {"status": "success", "tenant": tenant})

    platform.subscribe(f"plugin/{target}/request", create_tenant, queue=target)
    await platform.transport.flush()

    def ask(caller: MessageBus, tenant: str) -> Awaitable[Any]:
        return caller.request(
            topic=f"plugin/{target}/request",
            payload={"command": "create_tenant", "parameters": {"tenantId": tenant}},
            timeout=20,
        )

    for caller, tenant in ((backend, "acme"), (orchestrator, "globex")):
        assert await ask(caller, tenant) == {"status": "success", "tenant": tenant}

    async def status(message: Message) -> None:  # a core request: answered once, freely
        await platform.respond(message.correlation_id, {"ok": True})

    # on the caller's own subject, plugin/<target>/rpc/<caller> (docs/protocol.md, "Identity")
    platform.subscribe(f"plugin/{target}/rpc/*", status)
    await platform.transport.flush()
    asked = f"plugin/{target}/rpc/fastapi-backend"
    assert await backend.request(topic=asked, payload={}, timeout=20) == {"ok": True}
    given_up = asyncio.ensure_future(ask(backend, "slow"))
    await asyncio.wait_for(started.wait(), 20)
    given_up.cancel()  # a plugin may not delete from the stream: its request stays
    await asyncio.gather(given_up, return_exceptions=True)
    release.set()
    await platform.publish(  # on its own dead-letter subject
        topic=f"system/dead-letter/{target}", payload={"reason": "handler-error"}
    )
    jsm = deployment.orchestrator._jsm
    assert jsm is not None
    assert (await jsm.stream_info("JO_DEAD_LETTER")).state.messages == 1
    await close_message_bus()  # leaving: each member looks its own consumer up
    for bus in (platform, backend, orchestrator):
        transport = bus.transport
        assert isinstance(transport, NatsTransport)
        assert transport.stats.permission_violations == 0, bus.plugin_id


async def test_a_refusal_is_counted_and_logged_without_credentials(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    transport = NatsTransport(deployment.urls[ATTACKER])
    caplog.set_level(logging.WARNING, "jira_orchestrator.transports.nats")
    try:
        await transport.flush()
        await transport.publish(Message(topic=f"plugin/{VICTIM}/events", source=ATTACKER))
        await transport.flush()
        assert transport.stats.permission_violations == 1
    finally:
        await transport.close()
    lines = [r.getMessage() for r in caplog.records if "permission" in r.getMessage().lower()]
    assert len(lines) == 1, lines
    assert f"plugin.{VICTIM}.events" in lines[0]
    assert deployment.passwords[ATTACKER] not in caplog.text


async def test_each_connection_asks_through_its_own_users_inbox(deployment: Deployment) -> None:
    """The presence probe and the durable request of fastapi-backend both name a reply
    subject under its own inbox prefix, the only one it may subscribe to."""
    target = "lobbi-platform-manager"
    replies: list[str] = []
    both = asyncio.Event()

    async def on_probe(msg: nats.aio.msg.Msg) -> None:
        replies.append(msg.reply)
        await msg.respond(b"")  # "somebody is there"

    async def on_request(msg: nats.aio.msg.Msg) -> None:
        assert msg.headers is not None
        replies.append(msg.headers["Jo-Reply-To"])
        both.set()

    watcher = await nats.connect(deployment.raw_url(ORCHESTRATOR), allow_reconnect=False)
    try:
        await watcher.subscribe(f"_jo.presence.plugin.{target}.request", cb=on_probe)
        await watcher.subscribe(f"_jo.durable.plugin.{target}.request", cb=on_request)
        await watcher.flush()
        await watcher.flush()
        backend = get_message_bus("fastapi-backend", deployment.urls["fastapi-backend"])
        asking = asyncio.ensure_future(
            backend.request(topic=f"plugin/{target}/request", payload={}, timeout=30)
        )
        try:
            await asyncio.wait_for(both.wait(), 20)
        finally:
            asking.cancel()
            await asyncio.gather(asking, return_exceptions=True)
    finally:
        await watcher.close()
    assert len(replies) == 2, replies
    assert all(r.startswith("_INBOX.fastapi-backend.") for r in replies), replies


async def test_a_reply_subject_tells_nothing_of_the_next_one(deployment: Deployment) -> None:
    """A plugin sees the orchestrator's reply subject in every request it gets, and may
    publish to the orchestrator's inbox (to answer): the next request's reply subject must
    not follow from it, or the plugin could answer requests meant for other plugins."""
    target = "lobbi-platform-manager"
    subjects: list[str] = []
    two = asyncio.Event()

    async def on_request(msg: nats.aio.msg.Msg) -> None:
        assert msg.headers is not None
        subjects.append(msg.headers["Jo-Reply-To"])
        await msg.respond(b"")  # (a raw responder would answer Jo-Reply-To here)
        if len(subjects) == 2:
            two.set()

    async def on_probe(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(b"")

    watcher = await nats.connect(deployment.raw_url(ORCHESTRATOR), allow_reconnect=False)
    try:
        await watcher.subscribe(f"_jo.presence.plugin.{target}.request", cb=on_probe)
        await watcher.subscribe(f"_jo.durable.plugin.{target}.request", cb=on_request)
        await watcher.flush()
        await watcher.flush()
        asking = [
            asyncio.ensure_future(
                deployment.orchestrator.request(
                    Message(topic=f"plugin/{target}/request", source=ORCHESTRATOR), timeout=30
                )
            )
            for _ in range(2)
        ]
        try:
            await asyncio.wait_for(two.wait(), 20)
        finally:
            for task in asking:
                task.cancel()
            await asyncio.gather(*asking, return_exceptions=True)
    finally:
        await watcher.close()
    tokens = [subject.rsplit(".", 1)[1] for subject in subjects]
    assert subjects[0].rsplit(".", 1)[0] == subjects[1].rsplit(".", 1)[0]  # one inbox
    assert tokens[0] != tokens[1]
    for token in tokens:
        assert len(token) >= 16, token  # 64 random bits or more
        assert not token.isdigit(), token  # not a counter


@pytest.mark.parametrize(
    ("topic", "how"),
    [
        (f"plugin/{VICTIM}/request", "request"),  # durable: its presence probe is refused
        (f"plugin/{VICTIM}/rpc", "request"),  # core
        (f"plugin/{VICTIM}/request", "publish"),  # durable, fire and forget: the store
    ],
)
async def test_sending_where_its_user_may_not_fails_at_once_with_the_reason(
    deployment: Deployment, topic: str, how: str
) -> None:
    """The SDK of a plugin that may route to nobody: the server refuses, and the caller
    hears it at once (not after its timeout) with the reason, counted once."""
    transport = NatsTransport(deployment.urls[ATTACKER])
    try:
        message = Message(topic=topic, source=ATTACKER, payload={})
        sending = (
            transport.request(message, timeout=600)
            if how == "request"
            else transport.publish(message)
        )
        with pytest.raises(TransportError, match="refuse") as info:
            await sending
        assert "canRouteTo" in str(info.value)
        assert transport.stats.permission_violations == 1
    finally:
        await transport.close()
