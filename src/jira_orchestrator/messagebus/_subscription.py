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

from jira_orchestrator._core.clock import parse_timestamp
from jira_orchestrator._core.errors import PublishTimeout
from jira_orchestrator._core.message import Message
from jira_orchestrator.transports import Reply, TransportSubscription

if TYPE_CHECKING:
    from jira_orchestrator.messagebus._bus import MessageBus

__all__ = ["Handler", "MessageFilter", "Overflow", "Subscription", "SubscriptionStats", "trace"]

log = logging.getLogger("jira_orchestrator.messagebus")

Handler = Callable[[Message], Awaitable[Any] | Any]
"""A message handler, sync or async; its return value is ignored."""

MessageFilter = Callable[[Message], bool]
Overflow = Literal["block", "drop_oldest"]

trace: contextvars.ContextVar[Message | None] = contextvars.ContextVar(
    "jira_orchestrator_current_message", default=None
)
"""The message whose handler is running, so publishes inside it continue its trace."""


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
    """A queued request whose outcome this subscription reports (see `_Core.track`)."""

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
        self._levels: list[deque[Message | _Tracked]] = [deque() for _ in range(11)]
        # Arrival numbers beside each level, for drop_oldest to find the oldest message
        # across priorities; only that policy needs them.
        self._ages: list[deque[int]] | None = (
            [deque() for _ in range(11)] if overflow == "drop_oldest" else None
        )
        self._size = 0
        self._top = 0  # highest priority that may hold messages
        # Blocked publishers resume only once the queue has drained a tenth: waking one per
        # message would cost a future and two task switches per message at full load.
        self._resume_at = queue_size - max(1, queue_size // 10)
        self._seq = 0
        self._idle: deque[asyncio.Future[None]] = deque()
        self._blocked: deque[asyncio.Future[None]] = deque()
        self._workers: list[asyncio.Task[None]] = []
        self._closed = False
        self._busy = 0  # handlers running now
        self._settled = asyncio.Event()  # set while nothing is queued or running
        self._settled.set()
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
        await self._settled.wait()
        self.unsubscribe()

    def unsubscribe(self) -> None:
        """Stop receiving; queued messages are discarded, running handlers cancelled.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._wire is not None:
            self._wire.unsubscribe()
        for level in self._levels:
            for entry in level:
                if isinstance(entry, _Tracked):
                    self.bus._core.release(entry.message, self.bus.plugin_id, failed=None)
            level.clear()
        if self._ages is not None:
            for ages in self._ages:
                ages.clear()
        self._size = 0
        for waiter in (*self._idle, *self._blocked):
            if not waiter.done():
                waiter.set_result(None)
        self._idle.clear()
        self._blocked.clear()
        self._settled.set()
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
                return self._push_when_space(message, tracked)
            self._drop_oldest()
        self._push(message, tracked)
        return None

    async def _push_when_space(self, message: Message, tracked: bool) -> None:
        await self._wait_for_space(message)
        if self._closed:
            if tracked:
                self.bus._core.release(message, self.bus.plugin_id, failed=None)
            return
        self._push(message, tracked)

    def _push(self, message: Message, tracked: bool) -> None:
        priority = message.priority
        self._levels[priority].append(_Tracked(message) if tracked else message)
        if self._ages is not None:
            self._seq += 1
            self._ages[priority].append(self._seq)
        if priority > self._top:
            self._top = priority
        self._size += 1
        self._settled.clear()
        if self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
        elif len(self._workers) < self.max_concurrency:
            self._workers.append(asyncio.get_running_loop().create_task(self._work()))

    def _wake_blocked(self) -> None:
        while self._blocked:
            waiter = self._blocked.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _drop_oldest(self) -> None:
        assert self._ages is not None, "only the drop_oldest policy drops"
        oldest = -1
        for priority, ages in enumerate(self._ages):
            if ages and (oldest < 0 or ages[0] < self._ages[oldest][0]):
                oldest = priority
        assert oldest >= 0
        self._ages[oldest].popleft()
        entry = self._levels[oldest].popleft()
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
                while self._size >= self.queue_size and not self._closed:
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._blocked.append(waiter)
                    await waiter
        except TimeoutError:
            self.bus._core.stats.publish_timeouts += 1
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
                            self._settled.set()
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
                while not levels[top]:
                    top -= 1
                self._top = top
                entry = levels[top].popleft()
                if self._ages is not None:
                    self._ages[top].popleft()
                self._size -= 1
                if self._blocked and self._size <= self._resume_at:
                    self._wake_blocked()
                if isinstance(entry, _Tracked):
                    message, tracked = entry.message, True
                else:
                    message, tracked = entry, False
                expires_at = message.metadata.expires_at
                if expires_at is not None and parse_timestamp(expires_at) <= core.clock():
                    stats.expired += 1
                    await core.expired(self, message, tracked)
                    continue
                set_trace(message)
                try:
                    if is_async:
                        await self.handler(message)
                    else:
                        result = self.handler(message)
                        if inspect.isawaitable(result):
                            await result
                except Exception as error:
                    stats.failed += 1
                    if tracked:
                        core.release(message, self.bus.plugin_id, failed=error)
                    await core.handler_failed(self, message, error, stage="handler")
                else:
                    stats.handled += 1
                    if tracked:
                        core.release(message, self.bus.plugin_id, failed=None)
        finally:
            if busy:  # cancelled (unsubscribed) or failed while handling
                self._busy -= 1
                if not self._size and not self._busy:
                    self._settled.set()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
