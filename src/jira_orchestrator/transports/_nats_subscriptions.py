"""The NATS transport's subscriptions: core subscriptions, presence probes, JetStream wires.

One bus subscription is a core NATS subscription on its subject, plus, for a pattern that
meets a durable topic, a subscription answering presence probes and either the live
durable copies (no queue) or the deliveries of the queue's JetStream consumer.
"""

from __future__ import annotations

import asyncio

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as WireSubscription
from nats.js.errors import ServiceUnavailableError

from jira_orchestrator._core.errors import TransportClosed
from jira_orchestrator._core.message import Message
from jira_orchestrator.transports._base import Deliver, Reply
from jira_orchestrator.transports._nats_connection import REPLY_HEADER, _quietly, log
from jira_orchestrator.transports._nats_durable import (
    _SETUP_RETRY_FIRST,
    _SETUP_RETRY_MAX,
    ConsumerMissing,
    _NatsDurable,
)
from jira_orchestrator.transports._nats_errors import map_error
from jira_orchestrator.transports._nats_jetstream import consumer_name
from jira_orchestrator.transports._nats_subjects import (
    DURABLE_PREFIX,
    PRESENCE_PREFIX,
    check_not_reserved,
    is_internal_subject,
    to_subject,
)

__all__: list[str] = []

_PRESENCE_QUEUE = "_jo_presence"
# What JetStream answers for a moment while a server starts: worth another try.
_TRANSIENT_SETUP_ERRORS = (
    ConsumerMissing,  # with jetstream=bind: the orchestrator may be creating it right now
    ServiceUnavailableError,
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    TimeoutError,
)


class _NatsSubscription:
    """One subscription of the bus: a core subscription, plus durable wires if needed."""

    __slots__ = (
        "ack_wait",
        "closed",
        "consumers",
        "deliver",
        "max_deliver",
        "pattern",
        "queue",
        "transport",
        "wires",
    )

    def __init__(
        self, transport: _NatsSubscriptions, pattern: str, deliver: Deliver, queue: str | None
    ) -> None:
        self.transport = transport
        self.pattern = pattern
        self.deliver = deliver
        self.queue = queue
        self.closed = False
        self.wires: list[WireSubscription] = []
        # (stream, consumer, durable subject) of each JetStream consumer read as a member
        self.consumers: list[tuple[str, str, str]] = []
        # the consumer's: the transport's options, or what an existing one says (bind)
        self.ack_wait = transport.options.ack_wait
        self.max_deliver = transport.options.max_deliver

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


class _NatsSubscriptions(_NatsDurable):
    """Subscriptions, and what waits for them: `flush`, `close`."""

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
            name = consumer_name(spec.name, pattern, queue)
            if self.options.jetstream == "manage":
                config = await self._create_consumer(spec, pattern, queue, filters)
            else:
                config = await self._bound_consumer(spec, name, pattern, queue)
            subscription.ack_wait = config.ack_wait or self.options.ack_wait
            subscription.max_deliver = config.max_deliver or self.options.max_deliver
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

    async def _on_probe(self, msg: Msg) -> None:
        nc = self._nc
        if msg.reply and nc is not None:
            await _quietly(nc.publish(msg.reply, b""))
