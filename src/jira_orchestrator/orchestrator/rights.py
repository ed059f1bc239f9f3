"""What an identity may do, from the plugins' manifests: route work, publish a topic.

The rules the NATS server enforces from `plugin_permissions`, and those only the
orchestrator can (``acceptsRoutingFrom``), in one place for every path that checks them:
``dispatch`` and ``delegate`` (`Orchestrator.routing_refusal`), chains (`PluginStep`) and
dead-letter replays (`replay_identity`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from jira_orchestrator.orchestrator.natsconfig import plugin_permissions
from jira_orchestrator.plugins import PluginCatalog, PluginManifest
from jira_orchestrator.transports._nats_subjects import to_subject

__all__ = ["Plugins", "manifests_of", "publish_refusal", "routing_refusal"]

Plugins = PluginCatalog | Mapping[str, PluginManifest] | Iterable[PluginManifest]
"""Plugins' manifests: a catalog, a mapping of id to manifest, or manifests."""


def manifests_of(plugins: Plugins) -> dict[str, PluginManifest]:
    """The manifests of ``plugins`` by plugin id."""
    if isinstance(plugins, PluginCatalog):
        return {plugin.name: plugin.manifest for plugin in plugins.plugins}
    if isinstance(plugins, Mapping):
        return dict(plugins)
    return {manifest.name: manifest for manifest in plugins}


def routing_refusal(
    manifests: Mapping[str, PluginManifest], source: str, target: str
) -> str | None:
    """Why plugin ``source`` may not hand work to ``target`` (its ``canRouteTo``, the
    target's ``acceptsRoutingFrom``, either not being a plugin here), or None."""
    manifest = manifests.get(source)
    allowed = () if manifest is None else manifest.routing.can_route_to
    if target not in allowed and "*" not in allowed:
        return f"{source!r} may not route work to {target!r} (canRouteTo)"
    wanted = manifests.get(target)
    if wanted is None:
        return f"{target!r} is not a plugin of this orchestrator"
    accepted = wanted.routing.accepts_routing_from
    if source != target and "*" not in accepted and source not in accepted:
        return f"{target!r} does not take work from {source!r} (acceptsRoutingFrom)"
    return None


def publish_refusal(manifest: PluginManifest, topic: str) -> str | None:
    """Why the plugin of ``manifest`` may not publish ``topic`` (its NATS permissions:
    its own subjects, ``canRouteTo``, ``communication.messagebus.topics``), or None."""
    allowed, _ = plugin_permissions(manifest)
    if _subject_allowed(to_subject(topic), allowed):
        return None
    return (
        f"{manifest.name!r} may not publish on {topic!r} "
        "(its manifest's rights: communication, routing.canRouteTo)"
    )


def _subject_allowed(subject: str, patterns: Iterable[str]) -> bool:
    """Whether a NATS permission list (``*`` one token, ``>`` the rest) allows ``subject``."""
    tokens = subject.split(".")
    for pattern in patterns:
        wanted = pattern.split(".")
        for position, token in enumerate(wanted):
            if token == ">":
                if len(tokens) > position:
                    return True
                break
            if position >= len(tokens) or token not in ("*", tokens[position]):
                break
        else:
            if len(wanted) == len(tokens):
                return True
    return False
