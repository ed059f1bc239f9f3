"""Topics to NATS subjects, and the subjects the NATS transport keeps for itself.

A canonical topic ``plugin/x/request`` is the subject ``plugin.x.request``; in patterns
``*`` stays ``*`` and a trailing ``**`` becomes ``>``. The transport's own traffic lives
under ``_jo.`` (durable copies, presence probes, JetStream deliveries) and NATS's under
``_INBOX.`` and ``$``; topics whose first segment is ``_jo`` or ``_INBOX`` are refused so
that they can never be mistaken for it.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from jira_orchestrator._core.errors import InvalidTopic

__all__ = [
    "DELIVER_PREFIX",
    "DURABLE_PREFIX",
    "PRESENCE_PREFIX",
    "check_not_reserved",
    "consumer_name",
    "intersect",
    "is_internal_subject",
    "to_subject",
]

DURABLE_PREFIX = "_jo.durable."
"""Where a message on a durable topic is published (and stored by JetStream)."""

PRESENCE_PREFIX = "_jo.presence."
"""Probed by a durable request to learn, at once, whether anybody would answer it."""

DELIVER_PREFIX = "_jo.deliver."
"""Deliver subjects of the JetStream push consumers of queue subscriptions."""

_RESERVED_FIRST_SEGMENTS = frozenset({"_jo", "_INBOX"})


@lru_cache(maxsize=8192)
def to_subject(canonical: str) -> str:
    """The NATS subject (or subject pattern) of a canonical topic or pattern."""
    subject = canonical.replace("/", ".")
    if subject == "**":
        return ">"
    if subject.endswith(".**"):
        return subject[:-2] + ">"
    return subject


def check_not_reserved(canonical: str) -> None:
    """Raise `InvalidTopic` for a topic or pattern in the transport's reserved namespace."""
    first = canonical.split("/", 1)[0]
    if first in _RESERVED_FIRST_SEGMENTS:
        raise InvalidTopic(
            canonical, 0, f"topics starting with {first!r} are reserved by the NATS transport"
        )


def is_internal_subject(subject: str) -> bool:
    """Whether a subject carries NATS's or the transport's own traffic, never a topic."""
    return subject.startswith(("_jo.", "_INBOX.", "$"))


def intersect(first: str, second: str) -> str | None:
    """The canonical pattern matching exactly the topics both patterns match, or None."""
    merged = _intersect(first.split("/"), second.split("/"))
    return None if merged is None else "/".join(merged)


def _intersect(a: list[str], b: list[str]) -> list[str] | None:
    # '**' is only ever the last segment, so it swallows the other side's rest whole.
    if a == ["**"]:
        return b if b else None
    if b == ["**"]:
        return a if a else None
    if not a or not b:
        return [] if not a and not b else None
    x, y = a[0], b[0]
    if x == "*":
        head = y
    elif y == "*" or x == y:
        head = x
    else:
        return None
    rest = _intersect(a[1:], b[1:])
    return None if rest is None else [head, *rest]


_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def consumer_name(stream: str, pattern: str, queue: str) -> str:
    """The durable consumer every member of ``queue`` subscribed to ``pattern`` shares."""
    digest = hashlib.sha256(f"{stream}\n{pattern}\n{queue}".encode()).hexdigest()[:12]
    readable = _NAME_CHARS.sub("_", queue)[:40]
    return f"{readable}_{digest}"
