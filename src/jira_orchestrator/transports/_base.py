"""The transport interface: what the bus needs from a wire, and nothing more.

A transport moves `Message` objects between subscriptions matched by topic pattern, and
carries a request to one responder per queue group and its reply back. Priorities,
filters, per-subscriber queues, dead letters and RPC live above it, in the bus.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol

from jira_orchestrator._core.errors import InvalidMessage
from jira_orchestrator._core.message import Message

__all__ = [
    "Deliver",
    "InvalidHook",
    "RefusalHook",
    "Reply",
    "Transport",
    "TransportSubscription",
]

Reply = Callable[[Message], Awaitable[None]]
"""Sends the response to a request; given to ``Deliver`` with each request message."""

Deliver = Callable[[Message, Reply | None], Awaitable[None] | None]
"""Called by the transport for each message a subscription receives.

It returns None when the message was taken at once, or an awaitable the transport must
await before delivering the next message to the same subscription: that is the
transport's backpressure. (Not a coroutine function, so the common case costs no
coroutine: the in-process bus moves a message in a few microseconds.)
"""


InvalidHook = Callable[[str, bytes, InvalidMessage], None]
"""Told of bytes that arrived on ``subject`` but are not a message (networked transports)."""

RefusalHook = Callable[[str, bytes, InvalidMessage, Reply], None]
"""Given the way to answer the sender of such bytes when it waits for a reply."""


class TransportSubscription(Protocol):
    """A live subscription; ``unsubscribe`` stops deliveries and is idempotent."""

    def unsubscribe(self) -> None: ...


class Transport(abc.ABC):
    """Publish, subscribe, request and close. ``pattern`` and topics are canonical."""

    url: str
    on_invalid: InvalidHook | None = None
    """Set by the bus to dead-letter undecodable input; a transport calls it, never raises."""
    on_refused: RefusalHook | None = None
    """Set by the bus to answer the sender of undecodable input that waits for a reply;
    a transport calls it after `on_invalid`, never raises."""

    @abc.abstractmethod
    def subscribe(
        self, pattern: str, deliver: Deliver, *, queue: str | None = None
    ) -> TransportSubscription:
        """Start delivering messages matching ``pattern``.

        Subscriptions that share a ``queue`` name share its messages: each message goes to
        one of them. Effective for publishes made after this call returns, from this process.
        """

    @abc.abstractmethod
    async def publish(self, message: Message) -> None:
        """Deliver ``message`` to every matching subscription (one per queue group)."""

    def publish_nowait(self, message: Message) -> Awaitable[None] | None:
        """`publish`, or None when the message is already delivered without waiting.

        What the bus calls. By default the `publish` coroutine, for the caller to await; a
        transport that can often deliver at once (the in-process one) overrides it to skip
        creating that coroutine, returning an awaitable only when it must wait.
        """
        return self.publish(message)

    async def publish_dead_letter(
        self, letter: Message, *, about: Message | None, reason: str
    ) -> None:
        """Publish the bus's dead letter ``letter`` about message ``about`` (None: bytes
        that were not a message), written for ``reason``.

        A transport that redelivers a failed message (JetStream) overrides this to hold
        back the letter of an attempt it will retry; the letter itself it never reads.
        """
        await self.publish(letter)

    @abc.abstractmethod
    async def request(self, message: Message, *, timeout: float) -> Message:
        """Deliver a request and return the first reply.

        Raises `NoResponders` at once when nobody subscribes, `RequestTimeout` after
        ``timeout`` seconds.
        """

    def confirms(self, topic: str) -> bool | None:
        """Whether a publish on ``topic`` made now is known to reach a subscriber.

        True: a subscriber takes it (in this process), or the server stores it until one
        does and acknowledges that to the publisher; False: nobody would receive it; None
        (the default): this transport cannot tell.
        """
        return None

    async def present(self, topic: str, *, timeout: float) -> bool | None:
        """Whether some subscriber, in this process or another, would take a request on
        ``topic`` now, asked within ``timeout`` seconds without sending one.

        True or False when the transport can tell (in-process subscriptions; presence
        probes on NATS's durable topics), None (the default) when it cannot.
        """
        return None

    async def flush(self) -> None:  # noqa: B027 - optional: a no-op where nothing is in flight
        """Wait until the wire has taken every message published so far (no-op in memory).

        On a networked transport, messages this process subscribes to are back before it
        returns, so `MessageBus.flush` can then wait for local handlers.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop all subscriptions and release the wire; later calls raise `TransportClosed`."""

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
