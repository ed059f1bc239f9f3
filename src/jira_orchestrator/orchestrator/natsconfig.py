"""A nats-server ``authorization`` block: one user per plugin, permissions from its manifest.

Each plugin may publish and subscribe on its own subjects (``plugin.<id>.>``,
``state.<id>.>``), publish what its manifest declares in ``communication.messagebus.topics``
and subscribe to what it declares in ``subscriptions``; it may call the orchestrator and the
plugins its ``routing.canRouteTo`` names, read the state it imports
(``stateManagement.sharing.imports``), send dead letters and use inboxes for replies.
Anything else, such as publishing on another plugin's subjects, the server refuses. The
orchestrator's user may do everything.

JetStream's API (``$JS.API.>``) is open to every plugin user: the transport creates its
streams and consumers itself. A tighter set needs a per-plugin JetStream account.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jira_orchestrator.plugins import PluginCatalog, PluginManifest
from jira_orchestrator.transports._nats_subjects import DELIVER_PREFIX, consumer_name, to_subject

__all__ = ["NatsUser", "nats_authorization", "plugin_permissions"]

ORCHESTRATOR = "jira-orchestrator"


@dataclass(frozen=True)
class NatsUser:
    """One user of the generated configuration."""

    name: str
    password: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def _subject(topic: str) -> str:
    return to_subject(topic)


def plugin_permissions(
    manifest: PluginManifest, *, stream_prefix: str = "JO"
) -> tuple[list[str], list[str]]:
    """(publish, subscribe) subject lists of one plugin."""
    me = manifest.name
    publish = [
        f"plugin.{me}.>",
        f"state.{me}.>",
        "system.dead-letter",
        "_jo.durable.system.dead-letter",
        "_INBOX.>",
        "$JS.API.>",
    ]
    subscribe = [
        f"plugin.{me}.>",
        f"state.{me}.>",
        "_INBOX.>",
        f"_jo.durable.plugin.{me}.>",
        f"_jo.presence.plugin.{me}.>",
        # the durable consumer its replicas share for plugin/<id>/request (queue <id>)
        DELIVER_PREFIX + consumer_name(f"{stream_prefix}_REQUESTS", f"plugin/{me}/request", me),
    ]
    for target in [ORCHESTRATOR, *manifest.routing.can_route_to]:
        if target == "*":
            publish += ["plugin.*.request", "plugin.*.rpc", "_jo.durable.plugin.*.request"]
            publish += ["_jo.presence.plugin.*.request"]
            continue
        publish += [
            f"plugin.{target}.request",
            f"plugin.{target}.rpc",
            f"_jo.durable.plugin.{target}.request",
            f"_jo.presence.plugin.{target}.request",
        ]
    messagebus = manifest.communication.messagebus
    publish += [_subject(topic) for topic in messagebus.topics]
    subscribe += [_subject(pattern) for pattern in messagebus.subscriptions]
    for reference in manifest.state_management.sharing.imports:
        exporter = reference.partition("/")[0]
        publish.append(f"state.{exporter}.sync")
        subscribe.append(f"state.{exporter}.export")
    return list(dict.fromkeys(publish)), list(dict.fromkeys(subscribe))


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
        publish, subscribe = plugin_permissions(manifest)
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
