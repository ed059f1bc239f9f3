"""What every handle on one URL shares: the transport, counters, requests in flight and
dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import msgspec
from msgspec import Raw

from jira_orchestrator._core.clock import WallClock, format_timestamp
from jira_orchestrator._core.errors import (
    InvalidMessage,
    InvalidTopic,
    MessageTooLarge,
    TransportClosed,
)
from jira_orchestrator._core.identity import is_dead_letter_topic
from jira_orchestrator._core.ids import new_id
from jira_orchestrator._core.message import (
    Message,
    MessageType,
    private_copy,
)
from jira_orchestrator._core.observe import switch as _metrics
from jira_orchestrator._core.observe import topic_family
from jira_orchestrator._core.protocol import (
    ANYONE,
    ERROR_STATUS,
    DeadLetterReason,
    dead_letter,
    plugin_named,
    plugin_request,
    plugin_response,
)
from jira_orchestrator._core.redact import redact_url
from jira_orchestrator._core.tasks import BackgroundTasks
from jira_orchestrator._core.text import escape_control
from jira_orchestrator._core.topics import normalize_topic
from jira_orchestrator.messagebus._config import (
    BusConfig,
    BusStats,
)
from jira_orchestrator.messagebus._subscription import (
    Subscription,
)
from jira_orchestrator.transports import Reply, Transport, TransportSubscription

if TYPE_CHECKING:
    from jira_orchestrator.messagebus._bus import MessageBus

__all__: list[str] = []

log = logging.getLogger("jira_orchestrator.messagebus")

_ANSWERED_KINDS = frozenset({"request", "rpc"})  # topics whose responder may publish
_BUS_SOURCE = "messagebus"  # the source of a letter no plugin sends (undecodable input)


@dataclass
class _Pending:
    """A request delivered to local subscribers, until one of them answers."""

    reply: Reply
    request: Message
    receivers: int = 0
    answered: bool = False
    errors: list[BaseException] = field(default_factory=list)


class _Awaited:
    """A request waiting in this process, until a response on its responder's topic."""

    __slots__ = ("correlation_id", "response", "task")

    def __init__(self, correlation_id: str, task: asyncio.Task[Any]) -> None:
        self.correlation_id = correlation_id
        self.task = task
        self.response: Message | None = None


class _SharedBus:
    """What every handle on one URL shares: the transport, config, counters, replies."""

    def __init__(self, url: str, transport: Transport, config: BusConfig) -> None:
        self.url = url
        self.transport = transport
        self.config = config
        self.clock = config.clock
        self.stats = BusStats()
        self.handles: dict[str, MessageBus] = {}
        self.pending: dict[str, _Pending] = {}
        self.closed = False
        self.awaited: dict[str, _Awaited] = {}
        self._response_topics: dict[str, TransportSubscription] = {}
        self.background = BackgroundTasks(log, "sending a dead letter or an error reply")
        transport.on_invalid = self.invalid
        transport.on_refused = self.refuse

    def invalid(self, subject: str, data: bytes, error: InvalidMessage) -> None:
        """Bytes that are not a message arrived: count them and dead-letter them as text."""
        self.stats.invalid += 1
        log.warning("undecodable input on %s: %s", escape_control(subject), escape_control(error))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        letter = dead_letter(
            DeadLetterReason.INVALID_MESSAGE,
            source=self.identity,
            timestamp=format_timestamp(self.clock()),
            subscriber=None,
            subscription=subject,
            error=error,
            raw=data,
            max_size=self.config.max_message_size,
        )
        self.background.spawn(
            self._send_letter(letter, None, DeadLetterReason.INVALID_MESSAGE), loop=loop
        )

    @property
    def identity(self) -> str:
        """Who this bus speaks as when no handle does (a letter about bytes that are not a
        message): the URL's user (on NATS a user may publish only its own letters), else
        the first handle's plugin id."""
        user = urlsplit(self.url.split(",", 1)[0]).username
        if user:
            with contextlib.suppress(InvalidTopic):  # a user name that is no plugin id
                name = unquote(user)
                if normalize_topic(name) == name and "/" not in name:
                    return name
        return next(iter(self.handles), _BUS_SOURCE)

    def refuse(self, subject: str, data: bytes, error: InvalidMessage, reply: Reply) -> None:
        """Answer the sender of bytes that are not a message with the error (it waits)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.background.spawn(reply(self._refusal(subject, data, error)), loop=loop)

    def _refusal(self, subject: str, data: bytes, error: InvalidMessage) -> Message:
        """The error response to a request that is not a message: to its correlation id
        when that much of it can be read, from the plugin its subject names."""
        try:
            responder = plugin_named(normalize_topic(subject))
        except InvalidMessage:
            responder = None
        try:
            envelope = msgspec.json.decode(data)
        except msgspec.DecodeError:
            envelope = None
        found = envelope.get("correlationId") if isinstance(envelope, dict) else None
        correlation_id = found if isinstance(found, str) and found else None
        source = responder or _BUS_SOURCE
        return _response(
            Message(topic=plugin_request(source), correlation_id=correlation_id),
            source=source,
            payload={"error": {"type": type(error).__name__, "message": str(error)}},
            status=ERROR_STATUS,
            clock=self.clock,
        )

    def await_response(self, request: Message) -> _Awaited | None:
        """Let a response to ``request`` also come on its responder's topic.

        A responder answers on the request's reply address, or, when it correlates on its
        own (a plugin in another language), publishes the response on
        ``plugin/<responder>/response`` (docs/protocol.md). For a request on
        ``plugin/<id>/request`` or ``plugin/<id>/rpc`` this process listens there too;
        such a response cancels the transport's wait in the requesting task, which then
        takes it (see `MessageBus.request_message`). None for other topics.
        """
        responder = plugin_named(request.topic)
        task = asyncio.current_task()
        if (
            responder is None
            or task is None
            or request.correlation_id is None
            or not request.topic.startswith("plugin/")
            or request.topic.rpartition("/")[2] not in _ANSWERED_KINDS
        ):
            return None
        topic = plugin_response(responder)
        if topic not in self._response_topics:
            self._response_topics[topic] = self.transport.subscribe(topic, self._on_response)
        awaited = self.awaited[request.correlation_id] = _Awaited(request.correlation_id, task)
        return awaited

    def _on_response(self, message: Message, reply: Reply | None) -> None:
        correlation_id = message.correlation_id
        awaited = None if correlation_id is None else self.awaited.get(correlation_id)
        if awaited is None or awaited.response is not None:
            return  # another process's request, or answered already: first response wins
        awaited.response = private_copy(message) if type(message.payload) is Raw else message
        # Not at once: a reply that came first has already scheduled the task, which then
        # returns that one and forgets this request before the interruption runs.
        asyncio.get_running_loop().call_soon(self._interrupt, awaited)

    def _interrupt(self, awaited: _Awaited) -> None:
        if self.awaited.get(awaited.correlation_id) is awaited:
            self.stats.responses += 1
            awaited.task.cancel()

    def check_sendable(self, message: Message) -> None:
        """Raise unless the bus is open and the message within the size limit."""
        if self.closed:
            raise TransportClosed(f"the bus on {redact_url(self.url)} is closed")
        size = len(message.encode())
        if size > self.config.max_message_size:
            raise MessageTooLarge(size, self.config.max_message_size, message.topic)

    async def send(self, message: Message) -> None:
        self.check_sendable(message)
        self.stats.published += 1
        metrics = _metrics.registry
        if metrics is not None:
            metrics.inc("bus_published", (topic_family(message.topic),))
        await self.transport.publish(message)

    def track(self, message: Message, reply: Reply) -> bool:
        """Remember how to answer a request delivered here; False if it has no id."""
        correlation_id = message.correlation_id
        if correlation_id is None:
            return False
        pending = self.pending.get(correlation_id)
        if pending is None:
            pending = self.pending[correlation_id] = _Pending(reply, message)
        pending.receivers += 1
        return True

    def release(self, message: Message, responder: str, *, failed: BaseException | None) -> None:
        """A local receiver of a request is done with it.

        When every local receiver is done, none answered and one failed, the requester gets
        the failure at once instead of waiting for its timeout.
        """
        assert message.correlation_id is not None
        pending = self.pending.get(message.correlation_id)
        if pending is None:
            return
        pending.receivers -= 1
        if failed is not None:
            pending.errors.append(failed)
        if pending.receivers > 0:
            return
        if pending.answered or not pending.errors:
            # Nobody answered yet but nobody failed: keep the route for a late respond(),
            # bounded by the request's own timeout.
            if pending.answered:
                del self.pending[message.correlation_id]
            else:
                self._expire_later(message)
            return
        del self.pending[message.correlation_id]
        error = pending.errors[0]
        response = _response(
            pending.request,
            source=responder,
            payload={"error": {"type": type(error).__name__, "message": str(error)}},
            status=ERROR_STATUS,
            clock=self.clock,
        )
        reply = pending.reply

        self.background.spawn(reply(response))

    def _expire_later(self, message: Message) -> None:
        timeout_ms = message.metadata.timeout_ms
        delay = self.config.request_timeout if timeout_ms is None else timeout_ms / 1000
        correlation_id = message.correlation_id
        assert correlation_id is not None

        def forget() -> None:
            pending = self.pending.get(correlation_id)
            if pending is not None and pending.receivers <= 0:
                del self.pending[correlation_id]

        asyncio.get_running_loop().call_later(delay, forget)

    async def answer(self, correlation_id: str, response: Message) -> bool:
        pending = self.pending.pop(correlation_id, None)
        if pending is None or pending.answered:
            return False
        pending.answered = True
        self.stats.responses += 1
        await pending.reply(response)
        return True

    async def handler_failed(
        self, subscription: Subscription, message: Message, error: Exception, *, stage: str
    ) -> None:
        self.stats.handler_errors += 1
        log.error(
            "%s of %r for %r failed on %s: %s: %s",
            stage,
            subscription.bus.plugin_id,
            subscription.pattern,
            message.topic,
            type(error).__name__,
            escape_control(error),
            exc_info=error,
        )
        await self.dead_letter(
            message,
            reason=DeadLetterReason(f"{stage}-error"),
            subscriber=subscription.bus.plugin_id,
            subscription=subscription.pattern,
            error=error,
        )

    async def expired(self, subscription: Subscription, message: Message, tracked: bool) -> None:
        self.stats.expired += 1
        if tracked:
            self.release(message, subscription.bus.plugin_id, failed=None)
        await self.dead_letter(
            message,
            reason=DeadLetterReason.EXPIRED,
            subscriber=subscription.bus.plugin_id,
            subscription=subscription.pattern,
        )

    async def dead_letter(
        self,
        message: Message,
        *,
        reason: DeadLetterReason | str,
        subscriber: str,
        subscription: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Publish a message that could not be handled on ``system/dead-letter``."""
        if is_dead_letter_topic(message.topic) or self.closed:
            return  # never dead-letter a dead letter: that loop has no end
        letter = dead_letter(
            reason,
            source=subscriber or _BUS_SOURCE,
            timestamp=format_timestamp(self.clock()),
            subscriber=subscriber,
            subscription=subscription,
            original=message,
            error=error,
            max_size=self.config.max_message_size,
        )
        await self._send_letter(letter, message, reason)

    async def _send_letter(
        self, letter: Message, about: Message | None, reason: DeadLetterReason | str
    ) -> None:
        self.stats.dead_lettered += 1
        metrics = _metrics.registry
        if metrics is not None:
            # about: the message; else the subject undecodable bytes came on
            topic = about.topic if about is not None else letter.payload["subscription"]
            topic = topic if "/" in topic else topic.replace(".", "/")
            metrics.inc("bus_dead_lettered", (topic_family(topic), str(reason)))
        try:
            await self.transport.publish_dead_letter(letter, about=about, reason=reason)
        except Exception:
            where = letter.payload["subscription"] if about is None else about.topic
            log.exception("could not publish a dead letter for %s", where)

    async def close(self) -> None:
        if self.closed:
            return
        for handle in list(self.handles.values()):
            handle.clear()
        self.closed = True
        await self.transport.close()


def _response(
    request: Message,
    *,
    source: str,
    payload: Any,
    status: str | None,
    clock: WallClock,
) -> Message:
    message_id = new_id()
    headers = {"traceId": request.headers.get("traceId") or message_id, "spanId": message_id}
    if "spanId" in request.headers:
        headers["parentSpanId"] = request.headers["spanId"]
    if status is not None:
        headers["status"] = status
    requester = request.source
    return Message(
        message_id=message_id,
        topic=plugin_response(source),
        message_type=MessageType.RESPONSE,
        correlation_id=request.correlation_id,
        source=source,
        destination=requester or ANYONE,
        timestamp=format_timestamp(clock()),
        priority=request.priority,
        headers=headers,
        payload=payload,
    )
