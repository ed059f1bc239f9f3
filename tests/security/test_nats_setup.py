"""How a transport finds its rights: inbox prefixes, binding to consumers it may not create,
and a clear error at once when it tries what its user may not do."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import nats
import nats.aio.msg
import pytest

from jira_orchestrator._core.errors import TransportError
from jira_orchestrator._core.message import Message
from jira_orchestrator.orchestrator.natsconfig import (
    ORCHESTRATOR,
    nats_authorization,
    plugin_permissions,
)
from jira_orchestrator.plugins import PluginManifest, discover_plugins, parse_manifest
from jira_orchestrator.transports._nats_subjects import consumer_name
from jira_orchestrator.transports.nats import NatsOptions, NatsTransport
from jira_orchestrator.transports.nats_server import NatsServer
from tests.security.conftest import EXAMPLES, Deployment


@pytest.mark.parametrize(
    ("url", "prefix"),
    [
        ("nats://lobbi:secret@127.0.0.1:4222", "_INBOX.lobbi"),
        ("nats://k8s%2Dhelm:p%40ss@h:1,nats://other:x@h:2", "_INBOX.k8s-helm"),
        ("nats://127.0.0.1:4222", "_INBOX"),
        ("nats://s3cr3t-token@127.0.0.1:4222", "_INBOX"),  # a token never goes into subjects
        ("nats://a.b:secret@127.0.0.1:4222", "_INBOX"),  # not one subject token
        ("nats://lobbi:secret@h:1?inbox_prefix=_INBOX.mine", "_INBOX.mine"),
    ],
)
def test_the_inbox_prefix_comes_from_the_urls_user(url: str, prefix: str) -> None:
    assert NatsTransport(url).inbox_prefix == prefix


@pytest.mark.parametrize(
    ("query", "fragment"),
    [("jetstream=own", "jetstream must be"), ("inbox_prefix=_INBOX.>", "inbox_prefix must be")],
)
def test_bad_rights_options_are_refused(query: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        NatsOptions.from_query(query)


def test_no_plugin_gets_the_jetstream_api_or_every_inbox() -> None:
    _, users = nats_authorization(discover_plugins(EXAMPLES / "plugins"))
    for user in users[1:]:
        assert not any(s.startswith(("$JS.API.>", "_INBOX.>", ">")) for s in user.publish)
        assert not any(s in (">", "_INBOX.>") for s in user.subscribe)
        assert f"_INBOX.{user.name}.>" in user.subscribe
        jetstream = [s for s in user.publish if s.startswith("$JS.")]
        mine = consumer_name("JO_REQUESTS", f"plugin/{user.name}/request", user.name)
        assert jetstream == [
            f"$JS.API.CONSUMER.INFO.JO_REQUESTS.{mine}",
            f"$JS.ACK.JO_REQUESTS.{mine}.>",
        ]
    answers = {u.name: sorted(s for s in u.publish if s.startswith("_INBOX.")) for u in users[1:]}
    # who may be asked by whom: the orchestrator, and the plugins whose canRouteTo names it
    assert answers["exec-automator"] == [
        f"_INBOX.{ORCHESTRATOR}.>",
        "_INBOX.k8s-helm-deployer.>",
        "_INBOX.lobbi-platform-manager.>",
    ]
    assert answers["lobbi-platform-manager"] == [
        "_INBOX.fastapi-backend.>",
        f"_INBOX.{ORCHESTRATOR}.>",
    ]
    assert answers["frontend-design-system"] == [f"_INBOX.{ORCHESTRATOR}.>"]


def test_plugin_permissions_alone_answer_the_orchestrator() -> None:
    manifest = discover_plugins(EXAMPLES / "plugins").plugins[0].manifest
    publish, _ = plugin_permissions(manifest)
    assert [s for s in publish if s.startswith("_INBOX.")] == [f"_INBOX.{ORCHESTRATOR}.>"]


async def test_a_plugin_that_manages_jetstream_without_the_rights_is_told_at_once(
    deployment: Deployment,
) -> None:
    """A plugin's URL without ?jetstream=bind: the server refuses the stream set-up, and
    the transport says so (rather than wait for a timeout) and counts it."""
    transport = NatsTransport(deployment.raw_url("frontend-design-system"))
    try:
        with pytest.raises(TransportError, match="may not create the JetStream streams") as info:
            await transport.flush()
        assert "jetstream=bind" in str(info.value)
        assert deployment.passwords["frontend-design-system"] not in str(info.value)
        assert transport.stats.permission_violations >= 1
    finally:
        await transport.close()


def _ignore(message: object, reply: object) -> None:
    return None


async def test_a_plugin_may_bind_to_no_consumer_but_its_own(deployment: Deployment) -> None:
    """A second queue of the same plugin has a consumer of another name: the server refuses
    to even describe it, and the transport says what a plugin may bind to."""
    url = deployment.urls["frontend-design-system"]
    assert url.endswith("?jetstream=bind")
    transport = NatsTransport(url)
    try:
        transport.subscribe("plugin/frontend-design-system/request", _ignore, queue="other")
        with pytest.raises(TransportError, match="may not look up the JetStream consumer") as info:
            await transport.flush()
        assert "its own consumers" in str(info.value)
    finally:
        await transport.close()


async def test_binding_to_a_consumer_nobody_created_names_it(deployment: Deployment) -> None:
    """A user that may look consumers up, binding where nobody created one."""
    transport = NatsTransport(deployment.urls[ORCHESTRATOR] + "?jetstream=bind")
    try:
        transport.subscribe("plugin/nobody/request", _ignore, queue="nobody")
        name = consumer_name("JO_REQUESTS", "plugin/nobody/request", "nobody")
        with pytest.raises(TransportError, match=f"no JetStream consumer {name} on JO_REQUESTS"):
            await transport.flush()
    finally:
        await transport.close()


async def test_a_plugin_started_before_its_consumer_binds_once_it_exists(
    deployment: Deployment,
) -> None:
    """Started before the orchestrator created its consumer, a plugin retries (counted in
    setup_retries) and binds once it is there, within connect_timeout."""
    retrying = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "cannot subscribe to 'plugin/late/request' yet" in record.getMessage():
                retrying.set()

    watch = Watch()
    logger = logging.getLogger("jira_orchestrator.transports.nats")
    logger.addHandler(watch)
    transport = NatsTransport(deployment.urls[ORCHESTRATOR] + "?jetstream=bind&connect_timeout=60")
    try:
        transport.subscribe("plugin/late/request", _ignore, queue="late")
        flushed = asyncio.ensure_future(transport.flush())
        await asyncio.wait_for(retrying.wait(), 30)
        assert not flushed.done()
        assert transport.stats.setup_retries >= 1
        await deployment.orchestrator.provision("plugin/late/request", "late")
        await asyncio.wait_for(flushed, 30)
    finally:
        logger.removeHandler(watch)
        await transport.close()


async def test_a_user_that_may_not_read_its_inbox_is_told_which_prefix_to_set(
    tmp_path: Path,
) -> None:
    """A server of one's own whose permissions name another inbox convention: the request
    fails at once, saying so, instead of waiting its timeout for an answer that cannot
    come."""
    permissions = {
        "publish": {"allow": [">"]},
        "subscribe": {"allow": ["plugin.>", "_INBOX_odd.>"]},
        "allow_responses": True,
    }
    text = (
        "authorization {\n  users = [\n"
        f'    {{user: "odd", password: "pw", permissions: {json.dumps(permissions)}}}\n'
        "  ]\n}\n"
    )
    with NatsServer(tmp_path / "nats", jetstream=False, extra_config=text) as server:
        responder = await nats.connect(server.url_for("odd", "pw"), inbox_prefix="_INBOX_odd")
        try:

            async def answer(msg: nats.aio.msg.Msg) -> None:
                await msg.respond(Message(topic="plugin/x/response").encode())

            await responder.subscribe("plugin.x.request", cb=answer)
            await responder.flush()
            transport = NatsTransport(server.url_for("odd", "pw") + "?durable=")
            try:
                with pytest.raises(TransportError, match="set inbox_prefix"):
                    await transport.request(Message(topic="plugin/x/request"), timeout=60)
                assert transport.stats.permission_violations >= 1
                with pytest.raises(TransportError, match="set inbox_prefix"):
                    await transport.request(Message(topic="plugin/x/request"), timeout=60)
            finally:
                await transport.close()
            ok = NatsTransport(server.url_for("odd", "pw") + "?durable=&inbox_prefix=_INBOX_odd")
            try:
                assert ok.inbox_prefix == "_INBOX_odd"
                answered = await ok.request(Message(topic="plugin/x/request"), timeout=60)
                assert answered.topic == "plugin/x/response"
            finally:
                await ok.close()
        finally:
            await responder.close()


def test_a_plugin_routing_to_everyone_is_answered_by_everyone_itself_included() -> None:
    def manifest(name: str, routes: list[str]) -> PluginManifest:
        return parse_manifest(
            {
                "name": name,
                "version": "1.0.0",
                "description": "routes",
                "routing": {"canRouteTo": routes},
            },
            source=f"{name}/plugin.json",
        )

    _, users = nats_authorization([manifest("hub", ["*"]), manifest("leaf", [])])
    answers = {u.name: [s for s in u.publish if s.startswith("_INBOX.")] for u in users[1:]}
    assert answers == {
        "hub": [f"_INBOX.{ORCHESTRATOR}.>", "_INBOX.hub.>"],  # its other replicas ask it too
        "leaf": [f"_INBOX.{ORCHESTRATOR}.>", "_INBOX.hub.>"],
    }


def test_a_plugin_may_not_send_requests_where_the_target_does_not_take_them() -> None:
    """acceptsRoutingFrom is enforced by the server: a plugin whose canRouteTo names a
    target that does not admit it gets no right to that target's request subjects, so an
    envelope claiming another source cannot slip a request past the target's choice."""

    def manifest(name: str, routes: list[str], accepts: list[str]) -> PluginManifest:
        return parse_manifest(
            {
                "name": name,
                "version": "1.0.0",
                "description": "routes",
                "routing": {"canRouteTo": routes, "acceptsRoutingFrom": accepts},
            },
            source=f"{name}/plugin.json",
        )

    _, users = nats_authorization(
        [
            manifest("pushy", ["picky", "open"], ["*"]),
            manifest("hub", ["*"], ["*"]),
            manifest("picky", [], ["hub"]),
            manifest("open", [], ["*"]),
        ]
    )
    rights = {user.name: set(user.publish) for user in users[1:]}
    for subject in ("plugin.picky.request", "_jo.durable.plugin.picky.request"):
        assert subject not in rights["pushy"]
        assert subject in rights["hub"]
    assert "plugin.picky.rpc.pushy" not in rights["pushy"]
    assert {"plugin.open.request", "_jo.durable.plugin.open.request"} <= rights["pushy"]
    # '*' is every plugin that takes its work, never a wildcard past a target's choice
    assert "plugin.*.request" not in rights["hub"]
    assert {"plugin.open.request", "plugin.pushy.request"} <= rights["hub"]
    # and picky answers on the inboxes of those who may ask it, not pushy's
    answers = {s for s in rights["picky"] if s.startswith("_INBOX.")}
    assert answers == {f"_INBOX.{ORCHESTRATOR}.>", "_INBOX.hub.>"}
