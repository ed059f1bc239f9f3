"""Who sent a message, from its topic: the sender-stamped topics of the protocol.

On NATS a user may publish only the subjects its permissions allow (docs/security.md), so a
topic that only one plugin may publish names its sender better than the envelope's
``source``, which the sender writes itself. These topics are *sender-stamped*; the segment
that names the sender is the *identity*:

============================================  ============  ===============================
topic                                         identity      published by
============================================  ============  ===============================
``plugin/<id>/<kind>[/...]``                  ``<id>``      the plugin ``<id>`` (status,
                                                            circuit-breaker, events, ...)
``plugin/<target>/rpc/<caller>``              ``<caller>``  a caller of ``<target>``'s RPC
``state/<id>/<kind>[/...]``                   ``<id>``      the plugin ``<id>``
``system/dead-letter/<sender>``               ``<sender>``  whoever writes the letter
============================================  ============  ===============================

except ``plugin/<id>/request`` and ``plugin/<id>/rpc`` (work for ``<id>``, sent by its
callers) and ``state/<id>/sync`` (sent by ``<id>``'s importers), which name no sender.
A receiver believes a message's sender only when the topic's identity and the envelope's
``source`` agree (`sender_of` returns it); otherwise the message is spoofed.

In memory the handle that publishes writes both, from its own id, so the same check holds.
"""

from __future__ import annotations

from jira_orchestrator._core.protocol import DEAD_LETTER_TOPIC
from jira_orchestrator._core.topics import normalize_topic

__all__ = [
    "DEAD_LETTER_PATTERN",
    "DEAD_LETTER_TOPIC",
    "dead_letter_topic",
    "identity_of",
    "is_dead_letter_topic",
    "rpc_call_topic",
    "sender_of",
]


DEAD_LETTER_PATTERN = f"{DEAD_LETTER_TOPIC}/*"
"""Every sender's letters (subscribe to it and to `DEAD_LETTER_TOPIC` to see them all)."""

_ADDRESSED = frozenset({"request", "rpc"})  # plugin/<id>/<kind>: sent *to* <id>, by others


def identity_of(topic: str) -> str | None:
    """The sender a canonical topic names (see the table above), or None if it names none."""
    parts = topic.split("/")
    if len(parts) < 3:
        return None
    head, owner, kind = parts[0], parts[1], parts[2]
    if head == "plugin":
        if kind == "rpc":
            return parts[3] if len(parts) == 4 else None
        return None if kind in _ADDRESSED else owner
    if head == "state":
        return None if kind == "sync" else owner
    if head == "system" and owner == "dead-letter":
        return kind if len(parts) == 3 else None
    return None


def sender_of(topic: str, source: str | None) -> str | None:
    """The verified sender of a message on ``topic`` claiming ``source``: the topic's
    identity when ``source`` agrees with it, else None (no identity, or spoofed)."""
    identity = identity_of(topic)
    return identity if identity is not None and identity == source else None


def dead_letter_topic(sender: str) -> str:
    """The topic on which ``sender`` publishes its dead letters."""
    return normalize_topic(f"{DEAD_LETTER_TOPIC}/{sender}")


def is_dead_letter_topic(topic: str) -> bool:
    """Whether ``topic`` carries dead letters (stamped or not)."""
    return topic == DEAD_LETTER_TOPIC or (
        topic.startswith(DEAD_LETTER_TOPIC + "/") and topic.count("/") == 2
    )


def rpc_call_topic(target: str, caller: str) -> str:
    """The topic on which ``caller`` calls the RPC methods of ``target``."""
    return f"plugin/{target}/rpc/{caller}"
