"""The NATS transport: the same bus across processes and machines (extra ``nats``).

``get_message_bus("x", "nats://host:4222")`` is all a plugin changes. Options ride on the
URL's query (``nats://host:4222?ack_wait=10&max_deliver=3``, see `NatsOptions`).

Plain topics travel on core NATS: at most once, in order per publisher, the subject being
the topic with ``.`` for ``/``. Durable topics (`NatsOptions.durable`) are stored by
JetStream and read by queue subscriptions through durable consumers, acked when answered.
Requests use NATS request-reply, so any NATS client can call an SDK plugin. docs/nats.md
tells the whole story. The parts: _nats_connection (options, connect, reconnect, replies),
_nats_subscriptions (core subscriptions, presence probes, JetStream wires), _nats_durable
(deliveries, acks, stores), _nats_jetstream (streams and consumers), _nats_subjects,
_nats_errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import parse_qsl

import msgspec

try:
    import nats.errors
except ImportError as error:  # the core installs without the extra
    raise ImportError(
        "the NATS transport needs the 'nats' extra: pip install 'jira-orchestrator[nats]'"
    ) from error
from nats.aio.client import Client
from nats.aio.msg import Msg

from jira_orchestrator._core.clock import format_timestamp
from jira_orchestrator._core.errors import (
    ConnectionLost,
    InvalidMessage,
    NoResponders,
    PublishTimeout,
    RequestTimeout,
)
from jira_orchestrator._core.message import Message
from jira_orchestrator._core.protocol import (
    RETRYABLE_REASONS,
    DeadLetterReason,
    dead_letter,
    plugin_request,
)
from jira_orchestrator._core.redact import redact_url
from jira_orchestrator._core.tasks import BackgroundTasks
from jira_orchestrator._core.topics import (
    TopicIndex,
    normalize_pattern,
    normalize_topic,
    pattern_matches,
)
from jira_orchestrator.transports._base import (
    Deliver,
    InvalidHook,
    RefusalHook,
    Reply,
    Transport,
)
from jira_orchestrator.transports._nats_errors import map_error
from jira_orchestrator.transports._nats_jetstream import (
    ACK,
    DEAD_LETTER_TOPIC,
    IN_PROGRESS,
    StreamSpec,
    consumer_config,
    consumer_name,
    ensure_streams,
    nak,
    num_delivered,
    plan_streams,
)
from jira_orchestrator.transports._nats_errors import map_error
from jira_orchestrator.transports._nats_jetstream import DEAD_LETTER_TOPIC
from jira_orchestrator.transports._nats_subjects import (
    DURABLE_PREFIX,
    PRESENCE_PREFIX,
    check_not_reserved,
    to_subject,
)
from jira_orchestrator.transports._nats_subscriptions import _NatsSubscriptions

__all__ = ["MSG_ID_HEADER", "REPLY_HEADER", "NatsOptions", "NatsStats", "NatsTransport"]


REPLY_HEADER = "Jo-Reply-To"
"""Header of a durable request: the subject its response goes to (JetStream keeps no reply)."""

MSG_ID_HEADER = "Nats-Msg-Id"
"""JetStream's duplicate-suppression header; the transport sets it to the ``messageId``."""

_PRESENCE_QUEUE = "_jo_presence"
# What JetStream answers for a moment while a server starts: worth another try.
_TRANSIENT_SETUP_ERRORS = (
    ServiceUnavailableError,
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    TimeoutError,
)
_SETUP_RETRY_FIRST = 0.05
_SETUP_RETRY_MAX = 1.0
_MAX_TRACKED_ATTEMPTS = 10_000


@dataclass(frozen=True)
class NatsOptions:
    """Options of a NATS transport; each can be set in the URL query. Durations in seconds.

    ``durable`` is a comma-separated list of topic patterns in the query (empty: none, for
    a server without JetStream).
    """

    durable: tuple[str, ...] = (plugin_request("*"), DEAD_LETTER_TOPIC)
    ack_wait: float = 30.0
    max_deliver: int = 5
    retry_delay: float = 0.1
    max_ack_pending: int = 1000
    stream_prefix: str = "JO"
    storage: str = "file"
    dead_letter_max_age: float = 7 * 24 * 3600.0
    publish_ack_timeout: float = 10.0
    presence_ttl: float = 1.0
    connect_timeout: float = 5.0
    reconnect_wait: float = 0.5
    name: str = "jira-orchestrator"

    def __post_init__(self) -> None:
        object.__setattr__(self, "durable", tuple(normalize_pattern(p) for p in self.durable))
        if self.max_deliver < 1:
            raise ValueError(f"max_deliver must be at least 1, not {self.max_deliver}")
        if self.storage not in ("file", "memory"):
            raise ValueError(f"storage must be 'file' or 'memory', not {self.storage!r}")
        for name in ("ack_wait", "publish_ack_timeout", "connect_timeout", "reconnect_wait"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")

    @classmethod
    def from_query(cls, query: str) -> NatsOptions:
        """Options from a URL query string; raise ``ValueError`` naming an unknown key."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key not in known:
                raise ValueError(f"unknown NATS bus URL option {key!r}; known: {sorted(known)}")
            default = getattr(cls, key)
            if key == "durable":
                values[key] = tuple(p.strip() for p in value.split(",") if p.strip())
            elif isinstance(default, str):
                values[key] = value
            elif isinstance(default, int):
                values[key] = int(value)
            else:
                values[key] = float(value)
        return cls(**values)


@dataclass
class NatsStats:
    """Counters of one NATS transport."""

    invalid: int = 0
    retried: int = 0
    suppressed_dead_letters: int = 0
    presence_probes: int = 0
    reconnects: int = 0
    disconnects: int = 0
    setup_retries: int = 0
    """Subscriptions set up again after JetStream refused for a moment."""


class _NatsSubscription:
    """One subscription of the bus: a core subscription, plus durable wires if needed."""

    __slots__ = ("closed", "consumers", "deliver", "pattern", "queue", "transport", "wires")

    def __init__(
        self, transport: NatsTransport, pattern: str, deliver: Deliver, queue: str | None
    ) -> None:
        self.transport = transport
        self.pattern = pattern
        self.deliver = deliver
        self.queue = queue
        self.closed = False
        self.wires: list[WireSubscription] = []
        # (stream, consumer, durable subject) of each JetStream consumer read as a member
        self.consumers: list[tuple[str, str, str]] = []

    def unsubscribe(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport._forget(self)

    async def on_core(self, msg: Msg) -> None:
        """A message on the topic's own subject: an event, or a core request with a reply."""
        if self.closed or is_internal_subject(msg.subject):
            return
        transport = self.transport
        message = transport._decode(msg, msg.reply)
        if message is None:
            return
        reply = transport._replier(msg.reply) if msg.reply else None
        await transport._hand_over(self, message, reply)

    async def on_durable_copy(self, msg: Msg) -> None:
        """A durable topic's message seen live by a subscription without a queue."""
        if self.closed:
            return
        transport = self.transport
        reply_to = msg.headers.get(REPLY_HEADER) if msg.headers else None
        message = transport._decode(msg, reply_to)
        if message is None:
            return
        reply = transport._replier(reply_to) if reply_to else None
        await transport._hand_over(self, message, reply)

    async def on_jetstream(self, msg: Msg) -> None:
        """A durable message from the queue's JetStream consumer; acked when settled."""
        await self.transport._on_jetstream(self, msg)


class NatsTransport(Transport):
    """Publish, subscribe and request over NATS, with JetStream for durable topics.

    ``on_invalid(subject, data, error)`` is called for bytes that are not a message and for
    an envelope whose topic is not its subject's (they are counted in ``stats.invalid`` and
    otherwise dropped), then ``on_refused(subject, data, error, reply)`` when their sender
    waits for a reply.
    Connects lazily, on the first use inside the running event loop; `flush` waits until
    every subscription made so far is live on the server.
    """

    def __init__(self, url: str, *, options: NatsOptions | None = None, **overrides: Any) -> None:
        self.url = redact_url(url)
        """The URL as shown in logs and errors: its password as ``***``."""
        address, _, query = url.partition("?")
        self._servers = [server.strip() for server in address.split(",") if server.strip()]
        base = options if options is not None else NatsOptions.from_query(query)
        self.options = replace(base, **overrides) if overrides else base
        self.stats = NatsStats()
        self.on_invalid: InvalidHook | None = None
        self.on_refused: RefusalHook | None = None
        self._streams: list[StreamSpec] = plan_streams(
            self.options.durable, self.options.stream_prefix, self.options.dead_letter_max_age
        )
        self._nc: Client | None = None
        self._jsm: JetStreamManager | None = None
        self._connecting: asyncio.Task[Client] | None = None
        self._connected = asyncio.Event()
        self._subscriptions: dict[_NatsSubscription, None] = {}
        self._local: TopicIndex[_NatsSubscription] = TopicIndex()
        self._unstarted: list[_NatsSubscription] = []
        self._setups: set[asyncio.Task[None]] = set()
        self._setup_errors: list[BaseException] = []
        self._background = BackgroundTasks(log, f"NATS {self.url}: background work")
        self._routes: dict[str, tuple[str, str | None]] = {}
        self._inbox = ""
        self._tokens = itertools.count(1)
        self._replies: dict[str, tuple[asyncio.Future[Msg], bool]] = {}
        self._presence: dict[str, float] = {}
        # messageId -> (delivery number, last delivery?, ack subject) of durable requests
        # being handled here, so the bus's per-attempt dead letters can be held back
        self._attempts: dict[str, tuple[int, bool, str]] = {}
        self._closed = False

    # -- connection ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now (False before first use and while
        reconnecting)."""
        return self._nc is not None and self._nc.is_connected

    async def _connection(self) -> Client:
        if self._closed:
            raise TransportClosed(f"transport {self.url} is closed")
        if self._nc is not None:
            return self._nc
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
        task = self._connecting
        try:
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and self._connecting is task:
                self._connecting = None  # a later call tries again
            raise

    async def _connect(self) -> Client:
        options = self.options
        nc = Client()
        last_error: list[BaseException] = []

        async def error_cb(error: Exception) -> None:
            last_error.append(error)
            log.warning("NATS %s: %s: %s", self.url, type(error).__name__, redact_url(str(error)))

        async def disconnected_cb() -> None:
            self._connected.clear()
            if not self._closed:
                self.stats.disconnects += 1
                log.warning("NATS %s: disconnected; reconnecting", self.url)
                self._fail_core_requests()

        async def reconnected_cb() -> None:
            self._connected.set()
            self.stats.reconnects += 1
            log.warning("NATS %s: reconnected", self.url)

        try:
            await asyncio.wait_for(
                nc.connect(
                    servers=self._servers,
                    name=options.name,
                    error_cb=error_cb,
                    disconnected_cb=disconnected_cb,
                    reconnected_cb=reconnected_cb,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,  # subscriptions must come back, however long
                    reconnect_time_wait=options.reconnect_wait,  # type: ignore[arg-type]
                    connect_timeout=max(1, int(options.connect_timeout)),
                ),
                options.connect_timeout,
            )
        except (TimeoutError, nats.errors.Error, OSError) as error:
            cause = last_error[-1] if last_error else error
            await _quietly(nc.close())
            raise TransportError(
                f"cannot connect to NATS at {self.url} within {options.connect_timeout:g}s: "
                f"{type(cause).__name__}: {cause}"
            ) from None
        try:
            self._inbox = nc.new_inbox() + "."
            await nc.subscribe(self._inbox + "*", cb=self._on_reply)
            if self._streams:
                self._jsm = nc.jsm()
                await ensure_streams(
                    self._jsm, self._streams, memory=options.storage == "memory", url=self.url
                )
        except BaseException:
            await _quietly(nc.close())
            raise
        self._connected.set()
        self._nc = nc
        return nc

    async def _prepare(self) -> Client:
        """The connection, once every subscription made so far is set up on the server."""
        nc = self._nc if self._nc is not None else await self._connection()
        if self._closed:
            raise TransportClosed(f"transport {self.url} is closed")
        if self._unstarted:
            for subscription in self._unstarted:
                self._start(subscription)
            self._unstarted.clear()
        while self._setups:
            await asyncio.wait(list(self._setups))
        if self._setup_errors:
            error = self._setup_errors.pop(0)
            raise error
        return nc

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until the server has everything sent so far, and its answers are handed over.

        Subscriptions (and unsubscriptions) made so far are then live on the server, and
        every message it sent back before (core NATS, and durable copies for subscriptions
        without a queue) has been given to its subscription's ``deliver``. Deliveries from
        JetStream consumers (queue subscriptions to durable topics) run on the server's own
        schedule and are not covered. Waits through a reconnect; raises `ConnectionLost` if
        not connected within ``timeout``.
        """
        nc = await self._prepare()
        if self._background:  # unsubscribes under way
            await asyncio.wait(list(self._background))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self._reconnected(deadline)
            try:
                # Twice: nats-py writes flush()'s PING straight to the socket, ahead of
                # commands (a SUB) still queued for its flusher task, so one PONG can come
                # back before the server has read them. By the first PONG the flusher has
                # written them, so the second PING follows them and its PONG covers them.
                for _ in range(2):
                    await nc.flush(timeout=max(deadline - loop.time(), 0.001))  # type: ignore[arg-type]
                break
            except nats.errors.ConnectionClosedError:
                raise TransportClosed(f"transport {self.url} is closed") from None
            except (nats.errors.Error, OSError) as error:
                if loop.time() >= deadline:
                    raise map_error(error, topic="<flush>", url=self.url, timeout=timeout) from None
        # Messages before the PONG are parsed into nats-py's per-subscription queues; its
        # callback task marks each done once our callback (and so ``deliver``) returned.
        for subscription in list(self._subscriptions):
            for wire in subscription.wires:
                await wire._pending_queue.join()

    def confirms(self, topic: str) -> bool | None:
        """True for a durable topic (JetStream acknowledges each publish once stored);
        None for the others: core NATS does not tell a publisher who received a message."""
        return True if self._route(topic)[1] is not None else None

    async def present(self, topic: str, *, timeout: float) -> bool | None:
        """A presence probe for a durable topic (see "On NATS" in docs/protocol.md); None
        for a core topic, which has no probe."""
        durable = self._route(topic)[1]
        if durable is None:
            return None
        nc = await self._prepare()
        return await self._anybody(nc, topic, durable, asyncio.get_running_loop().time() + timeout)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        wires: list[WireSubscription] = []
        consumers: list[tuple[str, str, str]] = []
        for subscription in list(self._subscriptions):
            subscription.closed = True
            wires += reversed(subscription.wires)  # the JetStream deliveries first
            subscription.wires = []
            consumers += subscription.consumers
        self._subscriptions.clear()
        tasks = [*self._setups, *self._background]
        if self._connecting is not None and not self._connecting.done():
            tasks.append(self._connecting)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        closed = TransportClosed(f"transport {self.url} is closed")
        for future, _ in self._replies.values():
            if not future.done():
                future.set_exception(closed)
        self._replies.clear()
        nc = self._nc
        if nc is not None:
            # Unsubscribe first, and wait for the server to have it: a socket that is merely
            # closed may still be handed a JetStream message, stuck until ack_wait expires.
            for wire in wires:
                await _quietly(wire.unsubscribe())
            await _quietly(nc.flush(timeout=self.options.connect_timeout))  # type: ignore[arg-type]
            await self._let_go(nc, consumers)
            await _quietly(nc.close())

    async def _let_go(self, nc: Client, consumers: list[tuple[str, str, str]]) -> None:
        """Return once JetStream no longer counts this member of ``consumers``' queues.

        The server learns that a consumer's last member left a moment after the member
        unsubscribed; a message stored in that moment is handed to the member that left
        and kept, unacknowledged, for ``ack_wait`` before anyone else gets it. So a member
        that leaves waits, bounded by ``connect_timeout``, until the server has seen it go,
        unless another subscriber of the topic still answers presence probes.
        """
        jsm = self._jsm
        if jsm is None or not consumers or not nc.is_connected:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.connect_timeout
        for stream, name, subject in dict.fromkeys(consumers):
            probe = PRESENCE_PREFIX + subject[len(DURABLE_PREFIX) :]
            try:
                await nc.request(probe, b"", timeout=max(deadline - loop.time(), 0.001))
                continue  # another member (or subscriber) is there: it gets what comes
            except nats.errors.NoRespondersError:
                pass  # we were the last: wait until the consumer knows
            except Exception as error:
                log.debug("NATS %s: presence probe on leaving: %s", self.url, error)
                continue
            delay = _SETUP_RETRY_FIRST / 5
            while True:
                try:
                    info = await jsm.consumer_info(
                        stream, name, timeout=max(deadline - loop.time(), 0.001)
                    )
                except Exception as error:
                    log.debug("NATS %s: consumer %s on leaving: %s", self.url, name, error)
                    break
                if not info.push_bound or loop.time() + delay >= deadline:
                    break
                # another process's state, with no event to await; bounded by the deadline
                await asyncio.sleep(delay)
                delay = min(delay * 2, _SETUP_RETRY_MAX / 10)

    # -- subscriptions -------------------------------------------------------------------

    def subscribe(
        self, pattern: str, deliver: Deliver, *, queue: str | None = None
    ) -> _NatsSubscription:
        if self._closed:
            raise TransportClosed(f"transport {self.url} is closed")
        check_not_reserved(pattern)
        if queue is not None and (not queue or any(c.isspace() for c in queue)):
            raise ValueError(f"a queue name must be non-empty, without whitespace: {queue!r}")
        subscription = _NatsSubscription(self, pattern, deliver, queue)
        self._subscriptions[subscription] = None
        self._local.add(pattern, subscription)
        self._presence.clear()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # No loop yet (subscribing at import time): set up on the first use in a loop.
            self._unstarted.append(subscription)
        else:
            self._start(subscription)
        return subscription

    def _start(self, subscription: _NatsSubscription) -> None:
        task = asyncio.get_running_loop().create_task(self._set_up(subscription))
        self._setups.add(task)
        task.add_done_callback(self._setups.discard)

    async def _set_up(self, subscription: _NatsSubscription) -> None:
        """Wire a subscription up on the server. JetStream refusing for a moment (503, no
        responders, a timeout: a server just (re)started) is retried with backoff for up
        to ``connect_timeout``; any other error, or one lasting longer, drops the
        subscription, is logged and raised by the next `flush` or publish."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.connect_timeout
        delay = _SETUP_RETRY_FIRST
        while True:
            try:
                await self._wire_up(subscription)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                retry = (
                    isinstance(error, _TRANSIENT_SETUP_ERRORS)
                    and not subscription.closed
                    and not self._closed
                    and loop.time() + delay < deadline
                )
                if not retry:
                    mapped = map_error(error, topic=subscription.pattern, url=self.url)
                    log.error(
                        "NATS %s: cannot subscribe to %r: %s",
                        self.url,
                        subscription.pattern,
                        mapped,
                    )
                    self._setup_errors.append(mapped)
                    subscription.unsubscribe()
                    return
                self.stats.setup_retries += 1
                log.warning(
                    "NATS %s: cannot subscribe to %r yet (%s); retrying in %gs",
                    self.url,
                    subscription.pattern,
                    type(error).__name__,
                    delay,
                )
                await self._tear_down(subscription)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _SETUP_RETRY_MAX)

    async def _wire_up(self, subscription: _NatsSubscription) -> None:
        """The core subscription, presence probes and JetStream consumer of one subscription."""
        nc = await self._connection()
        if subscription.closed:
            return
        wires = subscription.wires
        pattern, queue = subscription.pattern, subscription.queue
        wires.append(
            await nc.subscribe(to_subject(pattern), queue=queue or "", cb=subscription.on_core)
        )
        for spec in self._streams:
            filters = spec.filters(pattern)
            if not filters:
                continue
            for subject in filters:
                probe = PRESENCE_PREFIX + subject[len(DURABLE_PREFIX) :]
                wires.append(await nc.subscribe(probe, queue=_PRESENCE_QUEUE, cb=self._on_probe))
            if queue is None:
                # Without a queue there is nobody to resume after a crash: read the live
                # copies on core NATS, in order with the publisher's other messages.
                for subject in filters:
                    wires.append(await nc.subscribe(subject, cb=subscription.on_durable_copy))
                continue
            assert self._jsm is not None
            name = consumer_name(spec.name, pattern, queue)
            config = consumer_config(
                name,
                queue,
                filters,
                ack_wait=self.options.ack_wait,
                max_deliver=self.options.max_deliver,
                max_ack_pending=self.options.max_ack_pending,
            )
            await self._jsm.add_consumer(spec.name, config)
            subscription.consumers += [(spec.name, name, subject) for subject in filters]
            assert config.deliver_subject is not None
            wires.append(
                await nc.subscribe(
                    config.deliver_subject, queue=queue, cb=subscription.on_jetstream
                )
            )
        if subscription.closed:
            await self._tear_down(subscription)

    def _forget(self, subscription: _NatsSubscription) -> None:
        self._subscriptions.pop(subscription, None)
        self._local.remove(subscription)
        self._presence.clear()
        if subscription in self._unstarted:
            self._unstarted.remove(subscription)
        if subscription.wires and not self._closed:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # no running loop: the connection's loop is gone with it
                subscription.wires = []
            else:
                self._spawn(self._tear_down(subscription, leaving=True))

    async def _tear_down(self, subscription: _NatsSubscription, *, leaving: bool = False) -> None:
        wires, subscription.wires = subscription.wires, []
        consumers, subscription.consumers = subscription.consumers, []
        for wire in reversed(wires):  # the JetStream deliveries first
            await _quietly(wire.unsubscribe())
        nc = self._nc
        if leaving and consumers and nc is not None:
            await _quietly(nc.flush(timeout=self.options.connect_timeout))  # type: ignore[arg-type]
            await self._let_go(nc, consumers)

    # -- receiving -----------------------------------------------------------------------

    def _decode(self, msg: Msg, reply_to: str | None) -> Message | None:
        """The message ``msg`` carries; None for bytes that are not one, or for an envelope
        whose topic is not its subject's (the subject wins: it is what the server checked
        the sender's permissions against), told to `on_invalid` with a way to answer
        ``reply_to``."""
        try:
            message = Message.decode(msg.data)
            subject = msg.subject
            if subject.startswith(DURABLE_PREFIX):
                subject = subject[len(DURABLE_PREFIX) :]
            if message.topic != subject and message.topic != normalize_topic(subject):
                raise InvalidMessage(
                    f"the envelope's topic {message.topic!r} is not the topic of the subject "
                    f"{subject!r} it arrived on"
                )
            return message
        except InvalidMessage as error:
            self.stats.invalid += 1
            hook = self.on_invalid
            if hook is None:
                log.warning(
                    "NATS %s: dropped undecodable bytes on %s: %s", self.url, msg.subject, error
                )
            else:
                subject = msg.subject
                if subject.startswith(DURABLE_PREFIX):
                    subject = subject[len(DURABLE_PREFIX) :]
                refused = self.on_refused
                try:
                    hook(subject, bytes(msg.data), error)
                    if reply_to and refused is not None:
                        refused(subject, bytes(msg.data), error, self._replier(reply_to))
                except Exception:
                    log.exception("on_invalid hook failed for %s", msg.subject)
            return None

    def _replier(self, subject: str) -> Reply:
        async def reply(response: Message) -> None:
            nc = self._nc
            if nc is None or self._closed:
                raise TransportClosed(f"transport {self.url} is closed")
            try:
                await nc.publish(subject, response.encode())
            except Exception as error:
                raise map_error(error, topic=response.topic, url=self.url) from None

        return reply

    async def _hand_over(
        self, subscription: _NatsSubscription, message: Message, reply: Reply | None
    ) -> None:
        try:
            pending = subscription.deliver(message, reply)
            if pending is not None:
                await pending
        except Exception:
            log.exception(
                "NATS %s: delivering %s to %r failed",
                self.url,
                message.topic,
                subscription.pattern,
            )

    async def _on_jetstream(self, subscription: _NatsSubscription, msg: Msg) -> None:
        nc = self._nc
        ack_subject = msg.reply
        if nc is None or not ack_subject:
            return
        if subscription.closed:
            if num_delivered(ack_subject) >= self.options.max_deliver and not self._closed:
                # JetStream will not deliver it again: dead-letter it rather than drop it
                late = self._decode(msg, None)
                if late is not None:
                    self._spawn(self._unanswered(subscription, late, ack_subject))
                    return
            await _quietly(nc.publish(ack_subject, nak(0)))  # let another member have it
            return
        message = self._decode(msg, msg.headers.get(REPLY_HEADER) if msg.headers else None)
        if message is None:
            await _quietly(nc.publish(ack_subject, ACK))  # redelivering bad bytes cannot help
            return
        delivered = num_delivered(ack_subject)
        if delivered > 1:  # tell the handler it may have seen this one before
            metadata = message.metadata
            message = msgspec.structs.replace(
                message,
                metadata=msgspec.structs.replace(
                    metadata, retry_count=metadata.retry_count + delivered - 1
                ),
            )
        reply_to = msg.headers.get(REPLY_HEADER) if msg.headers else None
        if reply_to is None:
            # A durable publish nobody waits for: acked once the bus has queued it.
            try:
                await _delivered(subscription.deliver(message, None))
            except Exception:
                log.exception(
                    "NATS %s: delivering %s failed; redelivering", self.url, message.topic
                )
                await _quietly(nc.publish(ack_subject, nak(self.options.retry_delay)))
                return
            await _quietly(nc.publish(ack_subject, ACK))
            return
        final = delivered >= self.options.max_deliver
        message_id = message.message_id
        self._track_attempt(message_id, (delivered, final, ack_subject))
        settled = False

        async def reply(response: Message) -> None:
            nonlocal settled
            if settled:
                return
            settled = True
            if response.headers.get("status") == "error" and not final:
                self.stats.retried += 1
                await _quietly(nc.publish(ack_subject, nak(self.options.retry_delay)))
                return
            try:
                await nc.publish(reply_to, response.encode())
            finally:
                self._attempts.pop(message_id, None)
                await _quietly(nc.publish(ack_subject, ACK))

        loop = asyncio.get_running_loop()
        ack_wait = self.options.ack_wait
        # While the caller still waits and the handler runs, tell JetStream the request is
        # in progress, so a handler slower than ack_wait is not run a second time.
        waited_until = loop.time() + _still_waited(message)

        def keep_alive() -> None:
            if not settled and not self._closed and loop.time() < waited_until:
                self._spawn(_quietly(nc.publish(ack_subject, IN_PROGRESS)))
                loop.call_later(ack_wait / 2, keep_alive)

        if waited_until > loop.time() + ack_wait / 2:
            loop.call_later(ack_wait / 2, keep_alive)
        if final:
            # JetStream stops after the last delivery without a word to anyone; if this one
            # is not answered either, dead-letter it here, before its ack deadline.
            def give_up() -> None:
                nonlocal settled
                if not settled and not self._closed:
                    settled = True
                    self._attempts.pop(message_id, None)
                    self._spawn(self._unanswered(subscription, message, ack_subject))

            loop.call_later(max(ack_wait * 0.9, waited_until - loop.time()), give_up)
        try:
            await _delivered(subscription.deliver(message, reply))
        except Exception:
            log.exception("NATS %s: delivering %s failed; redelivering", self.url, message.topic)
            if not settled:
                settled = True
                await _quietly(nc.publish(ack_subject, nak(self.options.retry_delay)))

    async def _unanswered(
        self, subscription: _NatsSubscription, message: Message, ack_subject: str
    ) -> None:
        """Dead-letter a request that its last delivery left unanswered, then ack it."""
        letter = dead_letter(
            DeadLetterReason.MAX_DELIVERIES,
            source=subscription.queue or "",
            timestamp=format_timestamp(time.time()),
            subscriber=subscription.queue,
            subscription=subscription.pattern,
            original=message,
            deliveries=self.options.max_deliver,
        )
        try:
            await self.publish(letter)
        except Exception:
            log.exception("NATS %s: could not dead-letter %s", self.url, message.topic)
            return  # not acked: the server's max-deliveries advisory is all that is left
        nc = self._nc
        if nc is not None:
            await _quietly(nc.publish(ack_subject, ACK))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._background.spawn(coroutine)

    def _track_attempt(self, message_id: str, attempt: tuple[int, bool, str]) -> None:
        attempts = self._attempts
        attempts.pop(message_id, None)
        if len(attempts) >= _MAX_TRACKED_ATTEMPTS:
            del attempts[next(iter(attempts))]
        attempts[message_id] = attempt

    async def _on_probe(self, msg: Msg) -> None:
        nc = self._nc
        if msg.reply and nc is not None:
            await _quietly(nc.publish(msg.reply, b""))

    async def _on_reply(self, msg: Msg) -> None:
        entry = self._replies.get(msg.subject[len(self._inbox) :])
        if entry is not None and not entry[0].done():
            entry[0].set_result(msg)

    def _fail_core_requests(self) -> None:
        # A core request's reply cannot survive the disconnect; a durable one's can, since
        # the inbox subscription comes back and JetStream redelivers, so that one waits.
        for future, durable in self._replies.values():
            if not durable and not future.done():
                future.set_exception(
                    ConnectionLost(f"the NATS connection to {self.url} dropped under a request")
                )

    # -- sending -------------------------------------------------------------------------

    def _route(self, topic: str) -> tuple[str, str | None]:
        route = self._routes.get(topic)
        if route is None:
            check_not_reserved(topic)
            subject = to_subject(topic)
            durable = any(pattern_matches(p, topic) for p in self.options.durable)
            route = (subject, DURABLE_PREFIX + subject if durable else None)
            if len(self._routes) >= 8192:
                self._routes.clear()
            self._routes[topic] = route
        return route

    async def publish(self, message: Message) -> None:
        nc = self._nc
        if nc is None or self._setups or self._unstarted or self._setup_errors or self._closed:
            nc = await self._prepare()
        subject, durable = self._route(message.topic)
        if durable is None:
            data = message.encode()
            try:
                await nc.publish(subject, data)
            except Exception as error:
                raise self._publish_error(error, message, data, nc) from None
            return
        loop = asyncio.get_running_loop()
        await self._store(
            nc, durable, message, None, loop.time() + self.options.publish_ack_timeout
        )

    async def publish_dead_letter(
        self, letter: Message, *, about: Message | None, reason: str
    ) -> None:
        """Hold back the bus's letter for an attempt JetStream will redeliver; the last
        attempt's letter says how many ``deliveries`` there were."""
        attempt = None if about is None else self._attempts.get(about.message_id)
        if attempt is not None:
            delivered, final, ack_subject = attempt
            if reason in RETRYABLE_REASONS:
                if not final:
                    self.stats.suppressed_dead_letters += 1
                    return
                letter = msgspec.structs.replace(
                    letter, payload={**letter.payload, "deliveries": delivered}
                )
            else:  # dead-lettered for another reason (expired): settled, so no redelivery
                nc = self._nc
                if nc is not None:
                    self._spawn(_quietly(nc.publish(ack_subject, ACK)))
        await self.publish(letter)

    async def _store(
        self, nc: Client, subject: str, message: Message, reply_to: str | None, deadline: float
    ) -> tuple[str, int] | None:
        """Publish to JetStream and wait for its ack, retrying through reconnects; return
        where it is stored (stream, sequence), if the ack says.

        A retry carries the same ``Nats-Msg-Id``, so JetStream stores the message once.
        """
        headers = {MSG_ID_HEADER: message.message_id}
        if reply_to is not None:
            headers[REPLY_HEADER] = reply_to
        data = message.encode()
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                if not nc.is_connected:
                    raise ConnectionLost(
                        f"{self.url}: not reconnected in time to store {message.topic!r}"
                    )
                if reply_to is not None:
                    raise RequestTimeout(message.topic, self.options.publish_ack_timeout)
                raise PublishTimeout(
                    f"{self.url}: JetStream did not acknowledge {message.topic!r} in time"
                )
            try:
                response = await nc.request(
                    subject, data, timeout=min(remaining, 2.0), headers=dict(headers)
                )
            except (
                nats.errors.TimeoutError,
                nats.errors.ConnectionReconnectingError,
                nats.errors.OutboundBufferLimitError,
                nats.errors.StaleConnectionError,
            ):
                await self._reconnected(deadline)
                continue
            except Exception as error:
                raise self._publish_error(error, message, data, nc) from None
            if b'"error"' in response.data:
                raise TransportError(
                    f"{self.url}: JetStream refused {message.topic!r}: {response.data.decode()}"
                )
            return _stored_at(response.data)

    async def _reconnected(self, deadline: float) -> None:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining > 0 and not self._connected.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), remaining)

    async def request(self, message: Message, *, timeout: float) -> Message:
        nc = self._nc
        if nc is None or self._setups or self._unstarted or self._setup_errors or self._closed:
            nc = await self._prepare()
        if self._inbox_refused is not None:
            raise self._inbox_refused
        subject, durable = self._route(message.topic)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        token = self._token()
        future: asyncio.Future[Msg] = loop.create_future()
        self._replies[token] = (future, durable is not None)
        inbox = self._inbox + token
        stored: tuple[str, int] | None = None
        stack = contextlib.ExitStack()
        try:
            if durable is None:
                if not nc.is_connected:
                    # its answer could not come back while the connection is down
                    raise ConnectionLost(f"{self.url}: reconnecting; cannot send {message.topic!r}")
                data = message.encode()
                stack.enter_context(self._sending(subject, future))
                try:
                    await nc.publish(subject, data, reply=inbox)
                except Exception as error:
                    raise map_error(
                        error,
                        topic=message.topic,
                        url=self.url,
                        size=len(data),
                        limit=nc.max_payload,
                    ) from None
            else:
                if not await self._anybody(nc, message.topic, durable, deadline):
                    raise NoResponders(message.topic)
                try:
                    stored = await self._store(nc, durable, message, inbox, deadline)
                except (RequestTimeout, PublishTimeout):
                    raise RequestTimeout(message.topic, timeout) from None
            try:
                answer = await asyncio.wait_for(future, max(deadline - loop.time(), 0))
            except TimeoutError:
                raise RequestTimeout(message.topic, timeout) from None
            except asyncio.CancelledError:
                # The caller withdrew the request (it gave up on the member that took it,
                # and asks another): JetStream must not hand it to anybody again.
                if durable is not None and stored is not None:
                    self._spawn(self._withdraw(nc, *stored))
                raise
        finally:
            stack.close()
            self._replies.pop(token, None)
        if answer.headers and answer.headers.get("Status") == "503":
            raise NoResponders(message.topic)
        try:
            return Message.decode(answer.data)
        except InvalidMessage as error:
            raise InvalidMessage(
                f"the reply to {message.topic!r} is not a message: {error}"
            ) from None

    async def _anybody(self, nc: Client, topic: str, durable: str, deadline: float) -> bool:
        """Whether some subscription, here or elsewhere, would answer a durable request."""
        if self._local.match(topic):
            return True
        loop = asyncio.get_running_loop()
        if self._presence.get(topic, 0.0) > loop.time():
            return True
        self.stats.presence_probes += 1
        token = self._token()
        future: asyncio.Future[Msg] = loop.create_future()
        self._replies[token] = (future, False)
        probe = PRESENCE_PREFIX + durable[len(DURABLE_PREFIX) :]
        try:
            with self._sending(probe, future):
                await nc.publish(probe, b"", reply=self._inbox + token)
                wait = min(max(deadline - loop.time(), 0), 2.0)
                try:
                    answer = await asyncio.wait_for(future, wait)
                except TimeoutError:
                    log.debug("NATS %s: presence probe for %s unanswered; trying", self.url, topic)
                    return True  # subscribed, but too busy to say so: let the request try
        except (ConnectionLost, nats.errors.Error) as error:
            raise map_error(error, topic=topic, url=self.url) from None
        finally:
            self._replies.pop(token, None)
        if answer.headers and answer.headers.get("Status") == "503":
            return False
        log.debug("NATS %s: presence probe for %s answered: %r", self.url, topic, answer.headers)
        self._presence[topic] = loop.time() + self.options.presence_ttl
        return True
