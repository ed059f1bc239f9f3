"""One subscription: a bounded priority queue and the workers that drain it."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from msgspec import Raw

from jira_orchestrator._core import tracing
from jira_orchestrator._core.clock import WallClock, wall
from jira_orchestrator._core.errors import PublishTimeout
from jira_orchestrator._core.message import _NO_METADATA as NO_METADATA
from jira_orchestrator._core.message import Message, private_copy
from jira_orchestrator._core.observe import switch as metrics_switch
from jira_orchestrator._core.observe import topic_family
from jira_orchestrator._core.protocol import DeadLetterReason
from jira_orchestrator._core.tracing import TRACEPARENT
from jira_orchestrator._core.tracing import is_on as tracing_on
from jira_orchestrator.transports import Reply, TransportSubscription

if TYPE_CHECKING:
    from jira_orchestrator.messagebus._bus import MessageBus

__all__ = [
    "QUEUE_FULL",
    "Handler",
    "MessageFilter",
    "Overflow",
    "Subscription",
    "SubscriptionStats",
    "handler_clock",
    "trace",
]

log = logging.getLogger("jira_orchestrator.messagebus")

Handler = Callable[[Message], Awaitable[Any] | Any]
"""A message handler, sync or async; its return value is ignored."""

MessageFilter = Callable[[Message], bool]
Overflow = Literal["block", "drop_oldest"]

trace: contextvars.ContextVar[Message | None] = contextvars.ContextVar(
    "jira_orchestrator_current_message", default=None
)
"""The message whose handler is running, so publishes inside it continue its trace."""

handler_clock: contextvars.ContextVar[WallClock] = contextvars.ContextVar(
    "jira_orchestrator_handler_clock", default=wall
)
"""The wall clock of the bus whose worker runs the handler (set once per worker task)."""

QUEUE_FULL = DeadLetterReason.QUEUE_FULL
"""Dead-letter reason of a message a stalled subscription could not take."""


@dataclass
class SubscriptionStats:
    """Counters of one subscription."""

    received: int = 0
    handled: int = 0
    failed: int = 0
    filtered: int = 0
    dropped: int = 0
    expired: int = 0


class _Tracked:
    """A queued request whose outcome this subscription reports (see `_SharedBus.track`)."""

    __slots__ = ("message",)

    def __init__(self, message: Message) -> None:
        self.message = message


class Subscription:
    """A live subscription. Created by `MessageBus.subscribe`.

    Messages wait in a queue of at most ``queue_size``, highest priority first and FIFO
    within a priority, and are handled by up to ``max_concurrency`` workers (1 keeps
    them in order). When the queue is full, ``overflow="block"`` makes the publisher wait
    (at most the bus's publish timeout, then `PublishTimeout`) and ``"drop_oldest"``
    drops the oldest queued message and counts it.

    A blocking subscription that kept a publisher waiting for the whole publish timeout is
    *stalled*: until its handler takes the next message, nobody waits for it, and what does
    not fit its queue is counted as dropped and dead-lettered (reason ``queue-full``), so
    one stuck subscriber never holds up the publishers, or the other subscribers, of a
    topic. Memory grows with use: a priority's queue is allocated when a message of that
    priority first arrives.

    A transport may deliver one message to several subscriptions with its payload as JSON
    bytes (`msgspec.Raw`, the in-process transport does); each subscription decodes a copy
    of its own before its filter or its handler sees it.
    """

    def __init__(
        self,
        bus: MessageBus,
        pattern: str,
        handler: Handler,
        *,
        filter: MessageFilter | None,
        max_concurrency: int,
        queue_size: int,
        overflow: Overflow,
        queue: str | None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        if overflow not in ("block", "drop_oldest"):
            raise ValueError(f"overflow must be 'block' or 'drop_oldest', not {overflow!r}")
        self.bus = bus
        self.pattern = pattern
        self.handler = handler
        self.filter = filter
        self.max_concurrency = max_concurrency
        self.queue_size = queue_size
        self.overflow: Overflow = overflow
        self.queue = queue
        self.stats = SubscriptionStats()
        # One FIFO per priority (index 1..10): O(1) push, pop and drop-oldest. A queued
        # entry is the message itself (no tuple per delivery, so nothing for the garbage
        # collector), or a `_Tracked` for a request this subscription must report on.
        # Each FIFO is created when its priority is first used: an empty deque costs 600
        # bytes, and most subscriptions only ever see one or two priorities.
        self._levels: list[deque[Message | _Tracked] | None] = [None] * 11
        # Arrival numbers beside each level, for drop_oldest to find the oldest message
        # across priorities; only that policy needs them.
        self._ages: list[deque[int] | None] | None = (
            [None] * 11 if overflow == "drop_oldest" else None
        )
        self._size = 0
        self._top = 0  # highest priority that may hold messages
        # Blocked publishers resume only once the queue has drained a tenth: waking one per
        # message would cost a future and two task switches per message at full load.
        self._resume_at = queue_size - max(1, queue_size // 10)
        self._seq = 0
        self._idle: list[asyncio.Future[None]] = []  # at most max_concurrency
        self._blocked: list[asyncio.Future[None]] = []
        self._stalled = False  # kept a publisher waiting its whole timeout; see the class
        self._workers: list[asyncio.Task[None]] = []
        self._closed = False
        self._busy = 0  # handlers running now
        self._quiet = True  # nothing queued or running
        self._quieted: asyncio.Event | None = None  # made only for someone waiting for quiet
        self._is_async = inspect.iscoroutinefunction(handler)
        self._wire: TransportSubscription | None = None

    @property
    def active(self) -> bool:
        """False once unsubscribed."""
        return not self._closed

    @property
    def pending(self) -> int:
        """Messages queued and not yet handed to a worker."""
        return self._size

    async def drain(self) -> None:
        """Stop receiving, finish what is queued and running, then unsubscribe.

        Bound it with ``asyncio.timeout``; `unsubscribe` after a timeout cancels the rest.
        """
        if self._wire is not None:
            self._wire.unsubscribe()
            self._wire = None
        await self._wait_quiet()
        self.unsubscribe()

    async def _wait_quiet(self) -> None:
        """Return once nothing is queued or running."""
        while not self._quiet:
            quieted = self._quieted
            if quieted is None:
                quieted = self._quieted = asyncio.Event()
            await quieted.wait()

    def _settle(self) -> None:
        self._quiet = True
        quieted = self._quieted
        if quieted is not None:
            self._quieted = None
            quieted.set()

    def unsubscribe(self) -> None:
        """Stop receiving; queued messages are discarded, running handlers cancelled.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._wire is not None:
            self._wire.unsubscribe()
        for level in self._levels:
            if level is None:
                continue
            for entry in level:
                if isinstance(entry, _Tracked):
                    self.bus._core.release(entry.message, self.bus.plugin_id, failed=None)
            level.clear()
        if self._ages is not None:
            for ages in self._ages:
                if ages is not None:
                    ages.clear()
        self._size = 0
        for waiter in (*self._idle, *self._blocked):
            if not waiter.done():
                waiter.set_result(None)
        self._idle.clear()
        self._blocked.clear()
        self._settle()
        current = asyncio.current_task() if _loop_running() else None
        for worker in self._workers:
            if worker is not current:
                worker.cancel()
        self._workers.clear()
        self.bus._forget(self)

    def deliver(self, message: Message, reply: Reply | None) -> Awaitable[None] | None:
        """Queue a message from the transport (the transport's `Deliver`).

        Returns None when the message is queued at once, or an awaitable the transport
        must await (backpressure, or reporting a failed filter).
        """
        if self._closed:
            return None
        self.stats.received += 1
        if self.filter is not None:
            if type(message.payload) is Raw:
                message = private_copy(message)  # the filter may look at the payload
            try:
                wanted = self.filter(message)
            except Exception as error:
                self.stats.failed += 1
                return self.bus._core.handler_failed(self, message, error, stage="filter")
            if not wanted:
                self.stats.filtered += 1
                return None
        tracked = reply is not None and self.bus._core.track(message, reply)
        if self._size >= self.queue_size:
            if self.overflow == "block":
                if self._stalled:
                    return self._refuse(message, tracked, None)
                return self._push_when_space(message, tracked)
            self._drop_oldest()
        self._push(message, tracked)
        return None

    async def _push_when_space(self, message: Message, tracked: bool) -> None:
        try:
            await self._wait_for_space(message)
        except PublishTimeout as error:
            await self._refuse(message, tracked, error)
            raise
        if self._closed:
            if tracked:
                self.bus._core.release(message, self.bus.plugin_id, failed=None)
            return
        if self._size >= self.queue_size:  # stalled while this publisher waited
            await self._refuse(message, tracked, None)
            return
        self._push(message, tracked)

    async def _refuse(self, message: Message, tracked: bool, error: PublishTimeout | None) -> None:
        """Count and dead-letter a message this stalled subscription has no room for."""
        core = self.bus._core
        if type(message.payload) is Raw:
            message = private_copy(message)
        if error is None:
            error = PublishTimeout(
                f"subscription {self.pattern!r} of {self.bus.plugin_id!r} is stalled with "
                f"its queue full ({self.queue_size} messages); {message.topic!r} not delivered"
            )
        self.stats.dropped += 1
        core.stats.dropped += 1
        if tracked:  # the requester hears of it now rather than at its timeout
            core.release(message, self.bus.plugin_id, failed=error)
        await core.dead_letter(
            message,
            reason=QUEUE_FULL,
            subscriber=self.bus.plugin_id,
            subscription=self.pattern,
            error=error,
        )

    def _push(self, message: Message, tracked: bool) -> None:
        priority = message.priority
        level = self._levels[priority]
        if level is None:
            level = self._levels[priority] = deque()
        level.append(_Tracked(message) if tracked else message)
        ages = self._ages
        if ages is not None:
            self._seq += 1
            kept = ages[priority]
            if kept is None:
                kept = ages[priority] = deque()
            kept.append(self._seq)
        if priority > self._top:
            self._top = priority
        self._size += 1
        self._quiet = False
        if self._idle:
            waiter = self._idle.pop()
            if not waiter.done():
                waiter.set_result(None)
        elif len(self._workers) < self.max_concurrency:
            self._workers.append(asyncio.get_running_loop().create_task(self._work()))

    def _wake_blocked(self) -> None:
        blocked, self._blocked = self._blocked, []
        for waiter in blocked:
            if not waiter.done():
                waiter.set_result(None)

    def _drop_oldest(self) -> None:
        assert self._ages is not None, "only the drop_oldest policy drops"
        oldest: deque[int] | None = None
        level: deque[Message | _Tracked] | None = None
        for priority, ages in enumerate(self._ages):
            if ages and (oldest is None or ages[0] < oldest[0]):
                oldest, level = ages, self._levels[priority]
        assert oldest is not None
        assert level is not None
        oldest.popleft()
        entry = level.popleft()
        if isinstance(entry, _Tracked):
            message, tracked = entry.message, True
        else:
            message, tracked = entry, False
        self._size -= 1
        self.stats.dropped += 1
        self.bus._core.stats.dropped += 1
        if tracked:
            self.bus._core.release(message, self.bus.plugin_id, failed=None)
        log.debug("%s dropped the oldest queued message on %s", self.pattern, message.topic)

    async def _wait_for_space(self, message: Message) -> None:
        timeout = self.bus._core.config.publish_timeout
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while self._size >= self.queue_size and not self._closed and not self._stalled:
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._blocked.append(waiter)
                    await waiter
        except TimeoutError:
            self.bus._core.stats.publish_timeouts += 1
            if self._size >= self.queue_size and not self._closed:
                # Stalled: nobody waits for it any more (see the class); the other
                # publishers waiting for it give their messages up now.
                self._stalled = True
                self._wake_blocked()
                log.warning(
                    "subscription %r of %r is stalled: its queue stayed full for %gs; "
                    "what does not fit is dead-lettered until it takes a message again",
                    self.pattern,
                    self.bus.plugin_id,
                    timeout,
                )
            raise PublishTimeout(
                f"subscription {self.pattern!r} of {self.bus.plugin_id!r} kept its queue full "
                f"({self.queue_size} messages) for {timeout:g}s; {message.topic!r} not delivered"
            ) from None

    async def _work(self) -> None:
        # The handling is inlined here, not a coroutine per message: at full load that
        # coroutine cost about as much as the rest of the delivery. For the same reason a
        # worker counts itself busy from its first message until it finds the queue empty,
        # not message by message.
        #
        # `trace` is set before each handler and never reset: asyncio runs each task in its
        # own copy of the context, so only this worker sees the value, and it is replaced
        # before every handler. Publishers and other tasks never see it.
        loop = asyncio.get_running_loop()
        core = self.bus._core
        clock = core.clock
        handler_clock.set(clock)  # for `remaining_time`; this task's context only
        stats = self.stats
        is_async = self._is_async
        set_trace = trace.set
        busy = False
        try:
            while not self._closed:
                if not self._size:
                    if busy:
                        busy = False
                        self._busy -= 1
                        if not self._busy:
                            self._settle()
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._idle.append(waiter)
                    await waiter
                    continue
                if not busy:
                    busy = True
                    self._busy += 1
                # pop the oldest message of the highest priority
                levels = self._levels
                top = self._top
                level = levels[top]
                while not level:
                    top -= 1
                    level = levels[top]
                self._top = top
                entry = level.popleft()
                if self._ages is not None:
                    self._ages[top].popleft()  # type: ignore[union-attr]  # beside its level
                self._size -= 1
                self._stalled = False  # it moves again
                if self._blocked and self._size <= self._resume_at:
                    self._wake_blocked()
                if isinstance(entry, _Tracked):
                    message, tracked = entry.message, True
                else:
                    message, tracked = entry, False
                if type(message.payload) is Raw:  # shared by the receivers of a publish
                    message = private_copy(message)
                # A caller that gave up must not see its work done afterwards.
                if message.metadata is not NO_METADATA:
                    deadline = message.deadline()
                    if deadline is not None and deadline <= clock():
                        stats.expired += 1
                        metrics = metrics_switch.registry
                        if metrics is not None:
                            metrics.inc("bus_delivered", (topic_family(message.topic), "expired"))
                        await core.expired(self, message, tracked)
                        continue
                set_trace(message)
                try:
                    if tracing_on() and TRACEPARENT in message.headers:
                        await self._handle_in_span(message)
                    elif is_async:
                        await self.handler(message)
                    else:
                        result = self.handler(message)
                        if inspect.isawaitable(result):
                            await result
                except Exception as error:
                    stats.failed += 1
                    metrics = metrics_switch.registry
                    if metrics is not None:
                        metrics.inc("bus_delivered", (topic_family(message.topic), "failed"))
                    if tracked:
                        core.release(message, self.bus.plugin_id, failed=error)
                    await core.handler_failed(self, message, error, stage="handler")
                else:
                    stats.handled += 1
                    metrics = metrics_switch.registry
                    if metrics is not None:
                        counts, topic = metrics.handled, message.topic
                        seen = counts.get(topic)
                        if seen is None:
                            metrics.count_topic(counts, topic)
                        else:
                            counts[topic] = seen + 1
                    if tracked:
                        core.release(message, self.bus.plugin_id, failed=None)
        finally:
            if busy:  # cancelled (unsubscribed) or failed while handling
                self._busy -= 1
                if not self._size and not self._busy:
                    self._settle()

    async def _handle_in_span(self, message: Message) -> None:
        """The handler inside a consumer span, the child of the message's traceparent."""
        with tracing.span(
            f"{message.topic} process",
            headers=message.headers,
            kind="consumer",
            attributes={
                "messaging.system": "jira-orchestrator",
                "messaging.destination.name": message.topic,
                "messaging.message.id": message.message_id,
                "messaging.consumer.group.name": self.bus.plugin_id,
            },
        ):
            result = self.handler(message)
            if inspect.isawaitable(result):
                await result


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
