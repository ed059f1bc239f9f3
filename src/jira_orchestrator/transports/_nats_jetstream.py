"""JetStream durability for the NATS transport: streams, consumers, acks.

Messages on a durable topic (default ``plugin/*/request`` and ``system/dead-letter``) are
published to ``_jo.durable.<subject>`` and stored by a stream:

- ``<prefix>_REQUESTS`` (interest retention): kept until every queue subscription that
  wants them has acked, and not at all when nobody does;
- ``<prefix>_DEAD_LETTER`` (limits retention, 7 days by default): kept for inspection
  whether or not anybody listens.

A queue subscription reads them through a durable push consumer shared by the queue's
members (deliver group), with explicit acks, ``ack_wait`` and ``max_deliver``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.manager import JetStreamManager

from jira_orchestrator._core.errors import TransportError
from jira_orchestrator._core.protocol import DEAD_LETTER_TOPIC
from jira_orchestrator.transports._nats_subjects import (
    DELIVER_PREFIX,
    DURABLE_PREFIX,
    consumer_name,
    intersect,
    to_subject,
)

__all__ = [
    "ACK",
    "DEAD_LETTER_TOPIC",
    "DEAD_LETTER_TOPICS",
    "DELIVER_PREFIX",
    "IN_PROGRESS",
    "TERM",
    "StreamSpec",
    "consumer_config",
    "consumer_name",
    "ensure_streams",
    "nak",
    "num_delivered",
    "plan_streams",
]

log = logging.getLogger("jira_orchestrator.transports.nats")

DEAD_LETTER_TOPICS = (DEAD_LETTER_TOPIC, f"{DEAD_LETTER_TOPIC}/*")
"""Letters without a sender stamp, and letters on their sender's own topic."""
ACK = b"+ACK"
IN_PROGRESS = b"+WPI"
TERM = b"+TERM"


def nak(delay: float) -> bytes:
    """The ack payload asking for a redelivery after ``delay`` seconds."""
    if delay <= 0:
        return b"-NAK"
    return b'-NAK {"delay": %d}' % int(delay * 1e9)


@dataclass(frozen=True)
class StreamSpec:
    """One stream: its name, the durable topic patterns it stores, how long it keeps them."""

    name: str
    patterns: tuple[str, ...]
    keep_unread: bool
    max_age: float

    @property
    def subjects(self) -> list[str]:
        return [DURABLE_PREFIX + to_subject(pattern) for pattern in self.patterns]

    def filters(self, pattern: str) -> list[str]:
        """The subjects of this stream a subscription to ``pattern`` reads, if any."""
        found: list[str] = []
        for durable in self.patterns:
            common = intersect(pattern, durable)
            if common is not None:
                subject = DURABLE_PREFIX + to_subject(common)
                if subject not in found:
                    found.append(subject)
        return found


def plan_streams(
    patterns: tuple[str, ...], prefix: str, dead_letter_max_age: float
) -> list[StreamSpec]:
    """The streams that hold the durable topic ``patterns``."""
    letters = tuple(p for p in patterns if any(intersect(p, t) == t for t in DEAD_LETTER_TOPICS))
    requests = tuple(p for p in patterns if p not in letters)
    specs: list[StreamSpec] = []
    if requests:
        specs.append(StreamSpec(f"{prefix}_REQUESTS", requests, False, 0.0))
    if letters:
        specs.append(StreamSpec(f"{prefix}_DEAD_LETTER", letters, True, dead_letter_max_age))
    return specs


# What JetStream answers while a cluster forms (no meta leader yet, too few peers up for
# the replicas, a leader being elected): worth another try until the deadline.
_FORMING_CODES = frozenset({10005, 10008, 10023, 10074})
_FIRST_DELAY = 0.05
_MAX_DELAY = 1.0


async def ensure_streams(
    manager: JetStreamManager,
    specs: list[StreamSpec],
    *,
    memory: bool,
    url: str,
    replicas: int = 1,
    within: float = 5.0,
) -> None:
    """Create the streams (``replicas`` copies each on a cluster), or bring an existing
    one's subjects, limits and replicas up to date.

    A cluster that has just started has no JetStream leader for a moment, or fewer nodes
    up than ``replicas``: that is retried with backoff for ``within`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    for spec in specs:
        config = StreamConfig(
            name=spec.name,
            subjects=spec.subjects,
            retention=RetentionPolicy.LIMITS if spec.keep_unread else RetentionPolicy.INTEREST,
            storage=StorageType.MEMORY if memory else StorageType.FILE,
            max_age=spec.max_age or None,
            duplicate_window=120.0,
            num_replicas=replicas,
        )
        delay = _FIRST_DELAY
        while True:
            try:
                await _ensure_stream(manager, config)
                break
            except (
                nats.errors.NoRespondersError,
                nats.errors.TimeoutError,
                nats.js.errors.ServiceUnavailableError,
            ):
                if loop.time() + delay < deadline:
                    log.warning("%s: JetStream not ready for %s; retrying", url, spec.name)
                    await asyncio.sleep(delay)  # backoff: another server's election
                    delay = min(delay * 2, _MAX_DELAY)
                    continue
                raise TransportError(
                    f"{url}: JetStream is not enabled on this server (or its cluster has "
                    f"no leader after {within:g}s); start nats-server with -js, or add "
                    "?durable= to the bus URL to run without durable topics"
                ) from None
            except nats.js.errors.APIError as error:
                if error.err_code in _FORMING_CODES and loop.time() + delay < deadline:
                    log.warning(
                        "%s: JetStream cannot place %s yet (%s); retrying",
                        url,
                        spec.name,
                        error.description,
                    )
                    await asyncio.sleep(delay)  # backoff: nodes still joining the cluster
                    delay = min(delay * 2, _MAX_DELAY)
                    continue
                raise TransportError(
                    f"{url}: cannot set up JetStream stream {spec.name} "
                    f"(replicas={replicas}): {error.description}"
                ) from None


async def _ensure_stream(manager: JetStreamManager, config: StreamConfig) -> None:
    try:
        await manager.add_stream(config)
    except nats.js.errors.BadRequestError as error:
        if error.err_code in _FORMING_CODES:
            raise
        # exists with another configuration (an older subject list, other limits)
        await manager.update_stream(config)


def consumer_config(
    name: str,
    queue: str,
    filters: list[str],
    *,
    ack_wait: float,
    max_deliver: int,
    max_ack_pending: int,
) -> ConsumerConfig:
    """A durable push consumer delivering to the queue group ``queue``."""
    return ConsumerConfig(
        name=name,
        durable_name=name,
        deliver_subject=DELIVER_PREFIX + name,
        deliver_group=queue,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        max_ack_pending=max_ack_pending,
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=filters if len(filters) > 1 else None,
    )


def num_delivered(reply: str) -> int:
    """How many times JetStream has delivered the message with this ack subject (1 = first).

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` (v1) or
    ``$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>...`` (v2, 12+ tokens).
    """
    tokens = reply.split(".")
    try:
        return int(tokens[4] if len(tokens) == 9 else tokens[6])
    except (IndexError, ValueError):
        return 1
