"""Identity from the subject: a plugin holding only its own credentials speaks only for itself.

The NATS tests run `up`'s own configuration (`nats_authorization` of examples/plugins) and
attack it with a raw nats-py client holding one plugin's user and password, outside the
SDK; the memory tests check the same rules in one process, where a bus handle's own id is
its identity. docs/security.md links each guarantee to its test here.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest

from jira_orchestrator import RPCError
from jira_orchestrator.cli.up import bus_urls
from jira_orchestrator.messagebus import (
    Message,
    RPCClient,
    close_message_bus,
    get_message_bus,
    reset_message_bus,
)
from jira_orchestrator.orchestrator import (
    DeadLetterStore,
    Orchestrator,
    ReplayError,
    replay_letter,
)
from jira_orchestrator.orchestrator.natsconfig import nats_authorization, provision_consumers
from jira_orchestrator.plugins import Plugin, discover_plugins
from jira_orchestrator.transports.nats import NatsTransport
from jira_orchestrator.transports.nats_server import NatsServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"
ORCHESTRATOR = "jira-orchestrator"
ATTACKER = "frontend-design-system"  # canRouteTo: []
BACKEND = "fastapi-backend"  # canRouteTo: [lobbi-platform-manager]
LOBBI = "lobbi-platform-manager"
K8S = "k8s-helm-deployer"
WAIT = 30.0  # bounds a failure; every wait below is for an event


def load_example(name: str) -> Plugin:
    entry = EXAMPLES / name / "plugin.py"
    spec = importlib.util.spec_from_file_location(f"security_{name}", entry)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin: Plugin = module.plugin
    return plugin


_FORGED = itertools.count(1)


def envelope(
    topic: str,
    source: str,
    payload: Any,
    *,
    kind: str = "event",
    correlation: str | None = None,
) -> bytes:
    """A message as any NATS client can write it (docs/protocol.md), by hand."""
    data: dict[str, Any] = {
        "messageId": f"forged-{next(_FORGED)}",
        "source": source,
        "destination": "*",
        "topic": topic,
        "messageType": kind,
        "payload": payload,
    }
    if correlation is not None:
        data["correlationId"] = correlation
    return json.dumps(data).encode()


def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}


@dataclass
class Deployment:
    """`up`'s NATS configuration, the orchestrator and three example plugins on it."""

    server: NatsServer
    passwords: dict[str, str]
    subscribe: dict[str, tuple[str, ...]]
    orchestrator: Orchestrator
    output: Path
    dead_letters: Path
    plugins: dict[str, Plugin] = field(default_factory=dict)

    def url(self, user: str) -> str:
        return self.server.url_for(user, self.passwords[user])

    def violations(self, user: str) -> list[str]:
        """The permission violations nats-server logged for ``user``."""
        return [
            line
            for line in self.server.log.read_text(errors="replace").splitlines()
            if "Violation" in line and f'user:{user}"' in line
        ]

    @contextlib.asynccontextmanager
    async def raw(self, user: str) -> AsyncIterator[tuple[nats.NATS, list[Exception]]]:
        """A raw nats-py client with ``user``'s credentials, and the errors the server sent
        it (permission violations); closed however the test ends."""
        errors: list[Exception] = []

        async def on_error(error: Exception) -> None:
            errors.append(error)

        # The reply inbox this user may read (its permissions say which).
        inbox = next(s for s in self.subscribe[user] if s.startswith("_INBOX"))
        client = await nats.connect(
            self.url(user),
            allow_reconnect=False,
            error_cb=on_error,
            inbox_prefix=inbox.removesuffix(".>").encode(),
        )
        try:
            yield client, errors
        finally:
            await client.close()


@pytest.fixture
async def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deployment]:
    """As `up` runs it: its server configuration and bus URLs, the orchestrator creating the
    JetStream consumers before any plugin starts, each plugin on its own user."""
    catalog = discover_plugins(EXAMPLES)
    text, users = nats_authorization(catalog)
    output = tmp_path / "output"
    monkeypatch.setenv("JIRA_ORCHESTRATOR_OUTPUT", str(output))
    monkeypatch.setenv("JIRA_ORCHESTRATOR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DEMO_FAIL", raising=False)
    reset_message_bus()
    with NatsServer(tmp_path / "nats", extra_config=text) as server:
        urls = bus_urls(server, users)
        orchestrator: Orchestrator | None = None
        plugins: dict[str, Plugin] = {}
        try:
            orchestrator = Orchestrator(
                catalog,
                bus=get_message_bus(ORCHESTRATOR, urls[ORCHESTRATOR]),
                tasks=tmp_path / "tasks.db",
                dead_letters=tmp_path / "dead-letters.db",
            )
            transport = orchestrator.bus.transport
            assert isinstance(transport, NatsTransport)
            await provision_consumers(transport, catalog)
            for name in (LOBBI, BACKEND, K8S):
                monkeypatch.setenv("JIRA_ORCHESTRATOR_BUS_URL", urls[name])
                plugins[name] = load_example(name)
                await plugins[name].start()
            monkeypatch.delenv("JIRA_ORCHESTRATOR_BUS_URL")
            await orchestrator.start()
            yield Deployment(
                server,
                {user.name: user.password for user in users},
                {user.name: user.subscribe for user in users},
                orchestrator,
                output,
                tmp_path / "dead-letters.db",
                plugins,
            )
        finally:
            async with contextlib.AsyncExitStack() as stack:  # each part, even if one fails
                stack.push_async_callback(close_message_bus)
                for plugin in plugins.values():
                    stack.push_async_callback(plugin.stop, timeout=5)
                if orchestrator is not None:
                    stack.callback(orchestrator.close)
                    stack.push_async_callback(orchestrator.stop)


def tenants(output: Path) -> list[str]:
    folder = output / LOBBI / "tenants"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


async def until(condition: Any) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - another process's state, no event to await
            await asyncio.sleep(0.01)


# -- on up's NATS configuration, with a raw client ----------------------------------------


async def test_a_plugin_cannot_dispatch_where_its_can_route_to_does_not_allow(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "jira_orchestrator.orchestrator")
    request = {"request": "Onboard tenant hacked-corp on the starter plan"}
    async with deployment.raw(ATTACKER) as (client, errors), asyncio.timeout(WAIT):
        subject = f"plugin.{ORCHESTRATOR}.rpc.{ATTACKER}"  # its own: the server lets it through
        topic = subject.replace(".", "/")
        reply = await client.request(
            subject,
            envelope(topic, ATTACKER, call("dispatch", request), kind="request", correlation="c1"),
            timeout=WAIT,
        )
        answer = json.loads(reply.data)["payload"]
        # the anonymous subject, which names no caller, is not its to publish
        await client.publish(
            f"plugin.{ORCHESTRATOR}.rpc",
            envelope(f"plugin/{ORCHESTRATOR}/rpc", ATTACKER, call("dispatch", request)),
        )
        await client.flush()
        await until(lambda: errors)
    assert answer["error"]["data"]["type"] == "CommandRejected"
    assert f"'{ATTACKER}' may not route work to any plugin" in answer["error"]["message"]
    assert ["permissions violation" in str(e).lower() for e in errors] == [True]
    assert deployment.orchestrator.status()["refusedDispatches"] == 1
    assert [r for r in caplog.records if "dispatch refused (1 so far)" in r.getMessage()]
    assert "hacked-corp" not in tenants(deployment.output)
    assert deployment.orchestrator.tasks.counts() == {}  # nothing was even recorded
    await until(lambda: deployment.violations(ATTACKER))  # nats-server logged the refusal


async def test_a_plugin_dispatching_is_held_to_its_own_can_route_to(
    deployment: Deployment,
) -> None:
    backend = deployment.plugins[BACKEND]  # canRouteTo: lobbi-platform-manager only
    client = RPCClient(f"plugin://{ORCHESTRATOR}/rpc", bus=backend.bus, timeout=WAIT)
    allowed = await client.call("dispatch", {"request": "Onboard tenant initech on the pro plan"})
    assert (allowed["outcome"], allowed["plugin"]) == ("completed", LOBBI)
    refused = await client.call(
        "dispatch", {"request": "Deploy billing-api to the EKS cluster with a helm chart"}
    )
    assert refused["outcome"] == "failed"
    assert refused["plugin"] is None
    assert all(a["error"].startswith("refused: ") for a in refused["attempts"])
    assert deployment.orchestrator.status()["refusedDispatches"] == 1
    assert not (deployment.output / K8S / "charts").exists()


async def test_a_delegation_with_a_forged_source_is_refused_as_spoofed(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    orchestrator = deployment.orchestrator
    params = {"target": LOBBI, "command": "create_tenant", "parameters": {"tenant_id": "spoofed"}}
    async with deployment.raw(ATTACKER) as (client, errors), asyncio.timeout(WAIT):
        # on its own subject, claiming to be fastapi-backend (whose canRouteTo allows it)
        subject = f"plugin.{ORCHESTRATOR}.rpc.{ATTACKER}"
        reply = await client.request(
            subject,
            envelope(
                subject.replace(".", "/"),
                BACKEND,
                call("delegate", params),
                kind="request",
                correlation="c2",
            ),
            timeout=WAIT,
        )
        spoofed = json.loads(reply.data)["payload"]
        # on fastapi-backend's own subject: the server refuses it
        await client.publish(
            f"plugin.{ORCHESTRATOR}.rpc.{BACKEND}",
            envelope(f"plugin/{ORCHESTRATOR}/rpc/{BACKEND}", BACKEND, call("delegate", params)),
        )
        await client.flush()
        await until(lambda: errors)
        # as itself: its canRouteTo is empty
        reply = await client.request(
            subject,
            envelope(
                subject.replace(".", "/"),
                ATTACKER,
                call("delegate", params),
                kind="request",
                correlation="c3",
            ),
            timeout=WAIT,
        )
        itself = json.loads(reply.data)["payload"]
    assert "is not the caller its subject names" in spoofed["error"]["message"]
    assert itself["error"]["data"]["message"] == (
        f"'{ATTACKER}' may not route work to '{LOBBI}' (canRouteTo)"
    )
    assert ["permissions violation" in str(e).lower() for e in errors] == [True]
    assert orchestrator.bus.stats()["spoofed"] == 1
    assert orchestrator.status()["refusedDelegations"] == 1
    assert "spoofed" not in tenants(deployment.output)
    spoof_lines = [r.getMessage() for r in caplog.records if "spoofed message" in r.getMessage()]
    assert len(spoof_lines) == 1
    assert repr(BACKEND) in spoof_lines[0]
    assert orchestrator.dead_letters is not None
    await until(lambda: orchestrator.dead_letters.store.counts().get("spoofed") == 1)  # type: ignore[union-attr]


async def test_status_and_breaker_events_cannot_speak_for_another_plugin(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "jira_orchestrator.messagebus")
    orchestrator = deployment.orchestrator
    assert orchestrator.availability(K8S) == 1.0
    own = f"plugin.{ATTACKER}"
    async with deployment.raw(ATTACKER) as (client, errors), asyncio.timeout(WAIT):
        # its own subjects, another plugin's name in the envelope's source
        await client.publish(
            f"{own}.status", envelope(f"plugin/{ATTACKER}/status", K8S, {"status": "stopped"})
        )
        await client.publish(
            f"{own}.circuit-breaker",
            envelope(f"plugin/{ATTACKER}/circuit-breaker", K8S, {"state": "open"}),
        )
        # its own subject, another plugin's topic in the envelope
        await client.publish(
            f"{own}.status", envelope(f"plugin/{K8S}/status", K8S, {"status": "stopped"})
        )
        # another plugin's subject: the server refuses it
        await client.publish(
            f"plugin.{K8S}.status", envelope(f"plugin/{K8S}/status", K8S, {"status": "stopped"})
        )
        await client.flush()
        await until(lambda: errors)
        await until(lambda: orchestrator.status()["spoofed"] == 2)
        await until(lambda: orchestrator.bus.transport.stats.mislabelled == 1)  # type: ignore[attr-defined]
    assert ["permissions violation" in str(e).lower() for e in errors] == [True]
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if line.startswith("spoofed message on")]) == 2
    assert [line for line in lines if "is not the topic of the subject" in line]
    await until(lambda: deployment.violations(ATTACKER))
    health = orchestrator.health[K8S]
    assert (health.status, health.breaker) != ("stopped", "open")
    assert orchestrator.availability(K8S) == 1.0


async def test_a_forged_dead_letter_is_not_replayed_as_the_orchestrator(
    deployment: Deployment,
) -> None:
    order = {"command": "create_tenant", "parameters": {"tenant_id": "via-dlq-replay"}}

    def letter(inner_source: str) -> dict[str, Any]:
        original = json.loads(
            envelope(f"plugin/{LOBBI}/request", inner_source, order, kind="request")
        )
        return {"reason": "handler-error", "subscriber": LOBBI, "error": None, "message": original}

    async with deployment.raw(ATTACKER) as (client, errors), asyncio.timeout(WAIT):
        own = f"system.dead-letter.{ATTACKER}"
        for inner in (ORCHESTRATOR, ATTACKER):  # the orchestrator's order, and its own
            await client.publish(
                own, envelope(own.replace(".", "/"), ATTACKER, letter(inner) | {"n": inner})
            )
        # the unstamped topic and another plugin's: the server refuses both
        await client.publish(
            "system.dead-letter", envelope("system/dead-letter", ATTACKER, letter(ORCHESTRATOR))
        )
        await client.publish(
            f"system.dead-letter.{LOBBI}",
            envelope(f"system/dead-letter/{LOBBI}", LOBBI, letter(ORCHESTRATOR)),
        )
        await client.flush()
        await until(lambda: len(errors) >= 2)
    assert [str(e) for e in errors] == [
        'nats: permissions violation for publish to "system.dead-letter"',
        f'nats: permissions violation for publish to "system.dead-letter.{LOBBI}"',
    ]
    with DeadLetterStore(deployment.dead_letters) as store:
        await until(lambda: store.count() == 2)
        letters = store.list()
        assert [x.sender for x in letters] == [ATTACKER, ATTACKER]  # the subject's identity
        url = deployment.url(ORCHESTRATOR)  # what an operator replays with
        with pytest.raises(ReplayError, match=f"carries a message from '{ORCHESTRATOR}'"):
            await replay_letter(store, letters[0].id, url=url, plugins=discover_plugins(EXAMPLES))
        with pytest.raises(ReplayError, match=f"may not publish on 'plugin/{LOBBI}/request'"):
            await replay_letter(store, letters[1].id, url=url, plugins=discover_plugins(EXAMPLES))
        assert [x.replay_count for x in store.list()] == [0, 0]
    assert "via-dlq-replay" not in tenants(deployment.output)
    await until(lambda: len(deployment.violations(ATTACKER)) == 2)  # the server logged both


# -- in one process (memory://): the same rules -------------------------------------------


@pytest.fixture
def memory_orchestrator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Orchestrator]:
    monkeypatch.delenv("JIRA_ORCHESTRATOR_BUS_URL", raising=False)
    reset_message_bus()
    orchestrator = Orchestrator(EXAMPLES, dead_letters=tmp_path / "dead-letters.db")
    try:
        yield orchestrator
    finally:
        orchestrator.close()


async def _answer(bus_id: str, topic: str, source: str, payload: Any) -> Any:
    """Send a request the way a raw client would: any source, through the transport."""
    bus = get_message_bus(bus_id)
    request = Message.decode(
        envelope(topic, source, payload, kind="request", correlation=f"c-{topic}-{source}")
    )
    response = await bus.transport.request(request, timeout=WAIT)
    return response.payload


async def test_in_memory_dispatch_and_delegate_are_held_to_the_callers_rights(
    memory_orchestrator: Orchestrator,
) -> None:
    orchestrator = memory_orchestrator
    await orchestrator.start()
    try:
        frontend = RPCClient(f"plugin://{ORCHESTRATOR}/rpc", bus=get_message_bus(ATTACKER))
        with pytest.raises(RPCError, match="may not route work to any plugin"):
            await frontend.call("dispatch", {"request": "Onboard tenant hacked-corp"})
        with pytest.raises(RPCError, match="may not route work to 'lobbi-platform-manager'"):
            await frontend.call(
                "delegate", {"target": LOBBI, "command": "create_tenant", "parameters": {}}
            )
        forged = await _answer(
            ATTACKER,
            f"plugin/{ORCHESTRATOR}/rpc/{ATTACKER}",
            BACKEND,
            call("delegate", {"target": LOBBI, "command": "create_tenant"}),
        )
        assert "is not the caller its subject names" in forged["error"]["message"]
        anonymous = await _answer(
            ATTACKER,
            f"plugin/{ORCHESTRATOR}/rpc",
            BACKEND,
            call("delegate", {"target": LOBBI, "command": "create_tenant"}),
        )
        assert "needs a caller who says who it is" in anonymous["error"]["message"]
        status = orchestrator.status()
        assert (status["refusedDispatches"], status["refusedDelegations"]) == (1, 2)
        assert orchestrator.bus.stats()["spoofed"] == 1
    finally:
        await orchestrator.stop()
        await close_message_bus()


async def test_in_memory_a_dead_letter_is_stored_with_its_proven_sender(
    memory_orchestrator: Orchestrator,
) -> None:
    orchestrator = memory_orchestrator
    await orchestrator.start()
    try:
        attacker = get_message_bus(ATTACKER)
        await attacker.dead_letter(
            Message(topic=f"plugin/{LOBBI}/request", source=ORCHESTRATOR), reason="handler-error"
        )
        # a letter on its own topic under another's name: stored, but with no sender
        await attacker.transport.publish(
            Message.decode(envelope(f"system/dead-letter/{ATTACKER}", LOBBI, {"reason": "x"}))
        )
        await attacker.flush()
        assert orchestrator.dead_letters is not None
        await orchestrator.dead_letters.flush()
        first, second = orchestrator.dead_letters.store.list()
        assert (first.sender, second.sender) == (ATTACKER, None)
        assert orchestrator.dead_letters.stats()["spoofed"] == 1
        for letter in (first, second):
            with pytest.raises(ReplayError):
                await replay_letter(orchestrator.dead_letters.store, letter.id)
    finally:
        await orchestrator.stop()
        await close_message_bus()


# -- the grammar, the helper, the store -----------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "identity"),
    [
        ("plugin/a/status", "a"),
        ("plugin/a/circuit-breaker", "a"),
        ("plugin/a/events", "a"),
        ("plugin/a/events/deep", "a"),
        ("plugin/a/response", "a"),
        ("plugin/a/request", None),  # work for a, sent by its callers
        ("plugin/a/rpc", None),  # an anonymous call
        ("plugin/a/rpc/b", "b"),  # b calls a
        ("plugin/a/rpc/b/c", None),
        ("state/a/change", "a"),
        ("state/a/export", "a"),
        ("state/a/sync", None),  # sent by a's importers
        ("system/dead-letter/a", "a"),
        ("system/dead-letter", None),
        ("system/dead-letter/a/b", None),
        ("system/broadcast", None),
        ("routing/decision", None),
    ],
)
def test_the_identity_a_topic_names(topic: str, identity: str | None) -> None:
    from jira_orchestrator._core.identity import identity_of, sender_of

    assert identity_of(topic) == identity
    assert sender_of(topic, identity or "x") == identity
    assert sender_of(topic, "someone-else") is None


async def test_a_spoofed_message_is_one_escaped_log_line_counted_and_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reset_message_bus()
    try:
        watcher = get_message_bus("watcher")
        letters: list[Message] = []
        get_message_bus("auditor").subscribe("system/dead-letter/*", letters.append)
        senders: list[str | None] = []

        async def check(message: Message) -> None:
            senders.append(await watcher.verified_sender(message))

        watcher.subscribe("plugin/*/status", check)
        caplog.set_level(logging.WARNING, "jira_orchestrator.messagebus")
        hostile = "k8s\x1b[2J\nFAKE LINE"
        raw = get_message_bus("attacker").transport  # a client writes any source it likes
        await raw.publish(Message(topic="plugin/attacker/status", source=hostile, payload={}))
        await get_message_bus("attacker").publish(topic="plugin/attacker/status", payload={})
        await watcher.flush()
        assert senders == [None, "attacker"]
        assert watcher.stats()["spoofed"] == 1
        assert [m.payload["reason"] for m in letters] == ["spoofed"]
        assert letters[0].topic == "system/dead-letter/watcher"  # its sender, on its subject
        (line,) = [r.getMessage() for r in caplog.records if "spoofed" in r.getMessage()]
        assert "\n" not in line
        assert "\x1b" not in line
        assert "\\x1b[2J" in line
    finally:
        await close_message_bus()


def test_an_older_dead_letter_store_gets_the_sender_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with DeadLetterStore(path) as store:
        store.add({"reason": "expired", "subscriber": "w", "message": {"topic": "a"}})
    with sqlite3.connect(path) as db:  # as an older version wrote it: no sender column
        db.execute("ALTER TABLE letters DROP COLUMN sender")
    with DeadLetterStore(path) as store:
        (old,) = store.list()
        assert old.sender is None  # unknown: it cannot be replayed without --as
        store.add({"reason": "expired", "subscriber": "w", "message": {"topic": "a"}}, sender="w")
        assert [x.sender for x in store.list()] == [None, "w"]


def test_dlq_list_shows_the_sender_escaped(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from jira_orchestrator.cli import app

    path = tmp_path / "dlq.db"
    with DeadLetterStore(path) as store:
        store.add({"reason": "x", "subscriber": "w", "message": {"topic": "a"}}, sender="ev\x1bil")
        store.add({"reason": "y", "subscriber": "w", "message": {"topic": "a"}})
    result = CliRunner().invoke(app, ["dlq", "list", "--db", str(path)])
    assert result.exit_code == 0, result.output
    assert "sender" in result.stdout
    assert "ev\\x1bil" in result.stdout
    assert "\x1b" not in result.stdout
    assert "unproven" in result.stdout


async def test_in_memory_a_chain_step_is_held_to_its_plugins_rights(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from jira_orchestrator.orchestrator import ChainError, PluginStep, PluginStepError, Sequential

    reset_message_bus()
    try:
        asked: list[Message] = []

        async def lobbi(message: Message) -> None:
            asked.append(message)
            await get_message_bus(LOBBI).respond(
                message.correlation_id or "", {"status": "success", "result": "done"}
            )

        get_message_bus(LOBBI).subscribe(f"plugin/{LOBBI}/request", lobbi)
        catalog = discover_plugins(EXAMPLES)

        def chain(sender: str) -> Sequential:
            step = PluginStep(
                "tenant", LOBBI, "create_tenant", bus=get_message_bus(sender), plugins=catalog
            )
            return Sequential("onboard", [step])

        assert await chain(BACKEND).run(None) == "done"  # canRouteTo: lobbi-platform-manager
        assert await chain(ORCHESTRATOR).run(None) == "done"  # not a plugin: the operator's
        caplog.set_level(logging.WARNING, "jira_orchestrator.orchestrator.chains")
        refused = chain(ATTACKER)
        with pytest.raises(ChainError) as caught:
            await refused.run(None)
        cause: BaseException | None = caught.value
        while cause is not None and not isinstance(cause, PluginStepError):
            cause = cause.__cause__
        assert cause is not None
        assert "may not route work to 'lobbi-platform-manager' (canRouteTo)" in str(cause)
        assert len(asked) == 2  # the refused step sent nothing
        assert refused.steps[0].refused == 1  # type: ignore[attr-defined]
        assert [r for r in caplog.records if "step 'tenant' refused" in r.getMessage()]
    finally:
        await close_message_bus()


def test_every_senders_letters_are_kept_in_the_dead_letter_stream() -> None:
    from jira_orchestrator.transports._nats_jetstream import plan_streams
    from jira_orchestrator.transports.nats import NatsOptions

    specs = plan_streams(NatsOptions().durable, "JO", 60.0)
    assert [(s.name, s.keep_unread) for s in specs] == [
        ("JO_REQUESTS", False),
        ("JO_DEAD_LETTER", True),
    ]
    assert specs[1].filters("system/dead-letter/*") == ["_jo.durable.system.dead-letter.*"]
    assert specs[0].filters("system/dead-letter/*") == []


def test_sender_stamped_topics_are_counted_in_few_metric_families() -> None:
    from jira_orchestrator._core import observe

    assert observe.topic_family("plugin/a/rpc/b") == "plugin/*/rpc/*"
    assert observe.topic_family("plugin/a/rpc") == "plugin/*/rpc"
    assert observe.topic_family("system/dead-letter/a") == "system/dead-letter/*"
    assert observe.topic_family("system/dead-letter") == "system/dead-letter"
