"""The in-process transport: the embedded default and the test double at once."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable
from typing import Any

import msgspec
from msgspec.structs import force_setattr

from jira_orchestrator._core.errors import NoResponders, RequestTimeout, TransportClosed
from jira_orchestrator._core.message import Message
from jira_orchestrator._core.topics import TopicIndex
from jira_orchestrator.transports._base import Deliver, Transport

__all__ = ["MemoryTransport"]

_ROUTES_LIMIT = 4096
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _shared(message: Message) -> Message:
    """The message as every receiver of one delivery shares it: its payload as JSON bytes.

    Encoded once per publish, the payload is then safe from the publisher's later changes,
    and each subscription decodes a copy of its own just before its handler runs (see
    `Subscription`), so that copy lives only while it is handled.
    """
    shared: Message = message.__copy__()  # type: ignore[attr-defined]  # not in the stubs
    force_setattr(shared, "payload", msgspec.Raw(_encode(message.payload)))
    return shared


def _own(message: Message) -> Message:
    """A copy of ``message`` with a payload and headers of its own (for one receiver)."""
    own: Message = message.__copy__()  # type: ignore[attr-defined]  # not in the stubs
    force_setattr(own, "headers", dict(message.headers))
    force_setattr(own, "payload", _decode(_encode(message.payload)))
    return own


async def _all(waiting: list[Awaitable[None]]) -> None:
    """Await every delivery that waits, side by side; then raise the first failure."""
    results: list[Any] = await asyncio.gather(*waiting, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


class _MemorySubscription:
    __slots__ = ("deliver", "queue", "transport")

    def __init__(self, transport: MemoryTransport, deliver: Deliver, queue: str | None) -> None:
        self.transport: MemoryTransport | None = transport
        self.deliver = deliver
        self.queue = queue

    def unsubscribe(self) -> None:
        if self.transport is not None:
            self.transport._remove(self)
            self.transport = None


class MemoryTransport(Transport):
    """Delivers within this process by direct calls.

    Like a wire, it gives every subscription its own copy of the message's payload and
    headers: what one subscriber or the publisher changes afterwards, no other sees (the
    payload travels as `msgspec.Raw` JSON, decoded by each subscription). A
    subscription whose delivery waits (backpressure) holds up neither the others nor the
    ones after it: each gets the message at once, and the publish then waits for the
    ones that push back, side by side.
    """

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._index: TopicIndex[_MemorySubscription] = TopicIndex()
        # topic -> its subscriptions, while no queue group exists (a group's turn changes
        # on every publish); emptied whenever a subscription comes or goes
        self._routes: dict[str, tuple[_MemorySubscription, ...]] = {}
        self._grouped = 0
        self._turn = itertools.count()
        self._closed = False

    def subscribe(
        self, pattern: str, deliver: Deliver, *, queue: str | None = None
    ) -> _MemorySubscription:
        self._check_open()
        subscription = _MemorySubscription(self, deliver, queue)
        self._index.add(pattern, subscription)
        self._routes.clear()
        if queue is not None:
            self._grouped += 1
        return subscription

    def _remove(self, subscription: _MemorySubscription) -> None:
        if subscription.queue is not None:
            self._grouped -= 1
        self._index.remove(subscription)
        self._routes.clear()

    def _targets(self, topic: str) -> tuple[_MemorySubscription, ...]:
        matched = self._index.match(topic)
        if not self._grouped:
            if len(self._routes) >= _ROUTES_LIMIT:
                self._routes.clear()
            self._routes[topic] = matched
            return matched
        targets: list[_MemorySubscription] = []
        groups: dict[str, list[_MemorySubscription]] = {}
        for subscription in matched:
            if subscription.queue is None:
                targets.append(subscription)
            else:
                groups.setdefault(subscription.queue, []).append(subscription)
        turn = next(self._turn)
        targets.extend(members[turn % len(members)] for members in groups.values())
        return tuple(targets)

    async def publish(self, message: Message) -> None:
        waiting = self.publish_nowait(message)
        if waiting is not None:
            await waiting

    def publish_nowait(self, message: Message) -> Awaitable[None] | None:
        """`publish` without a coroutine when no subscriber pushes back (the common case).

        Returns None once every matching subscription has the message, or an awaitable
        that finishes the delivery (a subscriber's backpressure, then the rest in order).
        The bus calls this directly: one coroutine less per publish.
        """
        if self._closed:
            self._check_open()
        targets = self._routes.get(message.topic)
        if targets is None:
            targets = self._targets(message.topic)
        if not targets:
            return None
        shared = _shared(message)
        waits: list[Awaitable[None]] | None = None
        for subscription in targets:
            waiting = subscription.deliver(shared, None)
            if waiting is not None:
                if waits is None:
                    waits = [waiting]
                else:
                    waits.append(waiting)
        if waits is None:
            return None
        return waits[0] if len(waits) == 1 else _all(waits)

    async def request(self, message: Message, *, timeout: float) -> Message:
        self._check_open()
        targets = self._targets(message.topic)
        if not targets:
            raise NoResponders(message.topic)
        answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

        async def reply(response: Message) -> None:
            if not answer.done():
                # the responder's payload stays its own, as on a wire
                answer.set_result(_own(response))

        shared = _shared(message)
        try:
            async with asyncio.timeout(timeout):
                waits = [
                    waiting
                    for subscription in targets
                    if (waiting := subscription.deliver(shared, reply)) is not None
                ]
                if waits:
                    await _all(waits)
                return await answer
        except TimeoutError:
            raise RequestTimeout(message.topic, timeout) from None

    def confirms(self, topic: str) -> bool:
        """Whether a subscription of this process matches ``topic`` (canonical)."""
        return bool(self._index.match(topic))

    async def present(self, topic: str, *, timeout: float) -> bool:
        return self.confirms(topic)

    async def close(self) -> None:
        self._closed = True
        for _, subscription in list(self._index.entries()):
            subscription.unsubscribe()

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed(f"transport {self.url} is closed")
