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

from jira_orchestrator._core.errors import PublishTimeout
from jira_orchestrator._core.message import Message
from jira_orchestrator.transports import Reply, TransportSubscription

if TYPE_CHECKING:
    from jira_orchestrator.messagebus._bus import MessageBus, _Core

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
        # one FIFO per priority (index 1..10): O(1) push, pop and drop-oldest
        self._levels: list[deque[tuple[int, Message, bool]]] = [deque() for _ in range(11)]
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
            for _, message, tracked in level:
                if tracked:
                    self.bus._core.release(message, self.bus.plugin_id, failed=None)
            level.clear()
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
        self._seq += 1
        priority = message.priority
        self._levels[priority].append((self._seq, message, tracked))
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

    def _pop(self) -> tuple[Message, bool]:
        levels = self._levels
        top = self._top
        while not levels[top]:
            top -= 1
        _, message, tracked = levels[top].popleft()
        self._top = top
        self._size -= 1
        if self._blocked and self._size <= self._resume_at:
            self._wake_blocked()
        return message, tracked

    def _wake_blocked(self) -> None:
        while self._blocked:
            waiter = self._blocked.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _drop_oldest(self) -> None:
        oldest: deque[tuple[int, Message, bool]] | None = None
        for level in self._levels:
            if level and (oldest is None or level[0][0] < oldest[0][0]):
                oldest = level
        assert oldest is not None
        _, message, tracked = oldest.popleft()
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
        loop = asyncio.get_running_loop()
        core = self.bus._core
        while not self._closed:
            if not self._size:
                waiter: asyncio.Future[None] = loop.create_future()
                self._idle.append(waiter)
                await waiter
                continue
            message, tracked = self._pop()
            self._busy += 1
            try:
                await self._process(core, message, tracked)
            finally:
                self._busy -= 1
                if not self._size and not self._busy:
                    self._settled.set()

    async def _process(self, core: _Core, message: Message, tracked: bool) -> None:
        deadline = message.metadata.expires_at_seconds()
        if deadline is not None and deadline <= core.clock():
            self.stats.expired += 1
            await core.expired(self, message, tracked)
            return
        token = trace.set(message)
        try:
            if self._is_async:
                await self.handler(message)
            else:
                result = self.handler(message)
                if inspect.isawaitable(result):
                    await result
        except Exception as error:
            self.stats.failed += 1
            if tracked:
                core.release(message, self.bus.plugin_id, failed=error)
            await core.handler_failed(self, message, error, stage="handler")
        else:
            self.stats.handled += 1
            if tracked:
                core.release(message, self.bus.plugin_id, failed=None)
        finally:
            trace.reset(token)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
