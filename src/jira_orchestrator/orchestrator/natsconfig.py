"""A nats-server ``authorization`` block: one user per plugin, permissions from its manifest.

Each plugin may publish and subscribe on its own subjects (``plugin.<id>.>``,
``state.<id>.>``), publish what its manifest declares in ``communication.messagebus.topics``
and subscribe to what it declares in ``subscriptions``; it may call the orchestrator and the
plugins its ``routing.canRouteTo`` names (and hear their responses published on
``plugin.<target>.response``), read the state it imports
(``stateManagement.sharing.imports``) and send its own dead letters. Anything else, such
as publishing on another plugin's subjects, the server refuses. The orchestrator's user may
do everything.

Subjects that say who sent a message (docs/protocol.md, "Identity") carry the plugin's own
id, so a plugin can speak only for itself: it calls RPC methods on
``plugin.<target>.rpc.<id>`` and sends dead letters on ``system.dead-letter.<id>``; it may
not publish the anonymous ``plugin.<target>.rpc`` nor ``system.dead-letter``.

JetStream: no plugin user may call JetStream's API beyond its own consumer. The
orchestrator's user creates the streams and, for each plugin, the durable consumer its
replicas share for ``plugin/<id>/request`` (`provision_consumers`, which ``up`` runs before
starting any plugin); a plugin's transport binds to it (``?jetstream=bind`` in its URL)
and may only look it up (``$JS.API.CONSUMER.INFO.<stream>.<consumer>``), receive its
deliveries and acknowledge them (``$JS.ACK.<stream>.<consumer>.>``). Storing a durable
request or a dead letter is an ordinary publish (``_jo.durable.<subject>``), allowed for
the targets the plugin may route to; no plugin may read, delete or purge a stream.

Replies: every user receives replies on inboxes of its own, ``_INBOX.<user>.>`` (the
transport sets nats-py's ``inbox_prefix`` from the URL's user), and may subscribe to no
other. Core requests are answered through the server's ``allow_responses``; a durable
request arrives through JetStream, so a plugin may also publish to the inboxes of those
allowed to ask it (the orchestrator, and plugins whose ``canRouteTo`` names it or ``*``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jira_orchestrator._core.protocol import ORCHESTRATOR_ID, plugin_request, plugin_response
from jira_orchestrator.plugins import PluginCatalog, PluginManifest
from jira_orchestrator.transports._nats_subjects import DELIVER_PREFIX, consumer_name, to_subject

if TYPE_CHECKING:
    from jira_orchestrator.transports.nats import NatsTransport

__all__ = [
    "NatsUser",
    "inbox_of",
    "nats_authorization",
    "plugin_permissions",
    "provision_consumers",
]

ORCHESTRATOR = ORCHESTRATOR_ID


@dataclass(frozen=True)
class NatsUser:
    """One user of the generated configuration."""

    name: str
    password: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def _subject(topic: str) -> str:
    return to_subject(topic)


def inbox_of(user: str) -> str:
    """The inbox prefix of a user: where the replies to its requests arrive."""
    return f"_INBOX.{user}"


def _request_consumer(plugin: str, stream_prefix: str) -> tuple[str, str]:
    """(stream, consumer) through which the replicas of ``plugin`` read its requests."""
    stream = f"{stream_prefix}_REQUESTS"
    return stream, consumer_name(stream, plugin_request(plugin), plugin)


def plugin_permissions(
    manifest: PluginManifest,
    *,
    stream_prefix: str = "JO",
    requesters: Iterable[str] = (ORCHESTRATOR,),
    targets: Iterable[str] | None = None,
) -> tuple[list[str], list[str]]:
    """(publish, subscribe) subject lists of one plugin.

    ``requesters``: the users that may send it durable requests, whose inboxes it answers
    (`nats_authorization` names the orchestrator and every plugin routing to it).
    ``targets``: the plugins it may send requests to; by default its ``canRouteTo`` as
    written (`nats_authorization` keeps only those whose ``acceptsRoutingFrom`` admits it,
    so the server itself refuses a request its target would not take).
    """
    me = manifest.name
    stream, consumer = _request_consumer(me, stream_prefix)
    publish = [
        f"plugin.{me}.>",
        f"state.{me}.>",
        f"system.dead-letter.{me}",
        f"_jo.durable.system.dead-letter.{me}",
        # its own consumer, and nothing else of JetStream's API
        f"$JS.API.CONSUMER.INFO.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
        # leaving, a member asks whether another still answers its requests
        f"_jo.presence.plugin.{me}.request",
    ]
    # answers to durable requests (they come through JetStream, not allow_responses)
    publish += [inbox_of(user) + ".>" for user in dict.fromkeys(requesters)]
    subscribe = [
        f"plugin.{me}.>",
        f"state.{me}.>",
        inbox_of(me) + ".>",
        f"_jo.durable.plugin.{me}.>",
        f"_jo.presence.plugin.{me}.>",
        # the durable consumer its replicas share for plugin/<id>/request (queue <id>)
        DELIVER_PREFIX + consumer,
    ]
    chosen = manifest.routing.can_route_to if targets is None else list(targets)
    for target in [ORCHESTRATOR, *chosen]:
        if target == "*":
            publish += ["plugin.*.request", f"plugin.*.rpc.{me}", "_jo.durable.plugin.*.request"]
            publish += ["_jo.presence.plugin.*.request"]
            subscribe.append("plugin.*.response")
            continue
        publish += [
            f"plugin.{target}.request",
            f"plugin.{target}.rpc.{me}",
            f"_jo.durable.plugin.{target}.request",
            f"_jo.presence.plugin.{target}.request",
        ]
        # a target that correlates on its own may answer there (docs/protocol.md)
        subscribe.append(_subject(plugin_response(target)))
    messagebus = manifest.communication.messagebus
    publish += [_subject(topic) for topic in messagebus.topics]
    subscribe += [_subject(pattern) for pattern in messagebus.subscriptions]
    for reference in manifest.state_management.sharing.imports:
        exporter = reference.partition("/")[0]
        publish.append(f"state.{exporter}.sync")
        subscribe.append(f"state.{exporter}.export")
    return list(dict.fromkeys(publish)), list(dict.fromkeys(subscribe))


def _routes(source: PluginManifest, target: PluginManifest) -> bool:
    """Whether ``source`` may send ``target`` requests: the one names the other in
    ``canRouteTo`` and the other admits it in ``acceptsRoutingFrom`` (both may say ``*``)."""
    allowed = source.routing.can_route_to
    accepted = target.routing.accepts_routing_from
    return (target.name in allowed or "*" in allowed) and (
        source.name == target.name or "*" in accepted or source.name in accepted
    )


def nats_authorization(
    manifests: PluginCatalog | Iterable[PluginManifest],
    *,
    passwords: Mapping[str, str] | None = None,
) -> tuple[str, list[NatsUser]]:
    """The ``authorization { users = [...] }`` text and its users (orchestrator first).

    ``passwords`` fixes some users' passwords; the others get random ones.
    """
    loaded = (
        [plugin.manifest for plugin in manifests.plugins]
        if isinstance(manifests, PluginCatalog)
        else list(manifests)
    )
    chosen = dict(passwords or {})

    def password(name: str) -> str:
        return chosen.get(name) or secrets.token_urlsafe(18)

    users = [NatsUser(ORCHESTRATOR, password(ORCHESTRATOR), (">",), (">",))]
    for manifest in sorted(loaded, key=lambda m: m.name):
        if manifest.name == ORCHESTRATOR:
            continue
        asking = [other.name for other in loaded if _routes(other, manifest)]
        targets = [other.name for other in loaded if _routes(manifest, other)]
        publish, subscribe = plugin_permissions(
            manifest, requesters=[ORCHESTRATOR, *sorted(asking)], targets=sorted(targets)
        )
        users.append(
            NatsUser(manifest.name, password(manifest.name), tuple(publish), tuple(subscribe))
        )
    entries = []
    for user in users:
        permissions = {
            "publish": {"allow": list(user.publish)},
            "subscribe": {"allow": list(user.subscribe)},
            "allow_responses": True,
        }
        # nats-server's configuration accepts JSON values, so json.dumps quotes safely.
        entries.append(
            f"    {{user: {json.dumps(user.name)}, password: {json.dumps(user.password)}, "
            f"permissions: {json.dumps(permissions)}}}"
        )
    text = "authorization {\n  users = [\n" + ",\n".join(entries) + "\n  ]\n}\n"
    return text, users


async def provision_consumers(
    transport: NatsTransport, manifests: PluginCatalog | Iterable[PluginManifest]
) -> list[str]:
    """Create, through ``transport`` (a user with JetStream rights, the orchestrator's), the
    streams and each plugin's durable request consumer, which its replicas bind to with
    nothing but their own rights. Return the consumers' names."""
    loaded = (
        [plugin.manifest for plugin in manifests.plugins]
        if isinstance(manifests, PluginCatalog)
        else list(manifests)
    )
    names: list[str] = []
    for manifest in sorted(loaded, key=lambda m: m.name):
        if manifest.name != ORCHESTRATOR:
            names += await transport.provision(f"plugin/{manifest.name}/request", manifest.name)
    return names
