"""The message bus handle: what one plugin sees of the bus on one URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict
from time import perf_counter
from typing import Any, overload

from jira_orchestrator._core import tracing
from jira_orchestrator._core.clock import format_timestamp
from jira_orchestrator._core.errors import (
    InvalidMessage,
    NoResponders,
    RemoteError,
    RequestTimeout,
    TransportClosed,
)
from jira_orchestrator._core.identity import identity_of, is_dead_letter_topic, sender_of
from jira_orchestrator._core.ids import new_id
from jira_orchestrator._core.message import _NO_METADATA as NO_METADATA
from jira_orchestrator._core.message import (
    DEFAULT_PRIORITY,
    Message,
    MessageMetadata,
    MessageType,
    is_plain_json,
    payload_size,
    restamp,
    validate_payload,
)
from jira_orchestrator._core.observe import switch as _metrics
from jira_orchestrator._core.observe import topic_family
from jira_orchestrator._core.protocol import plugin_request, plugin_response
from jira_orchestrator._core.redact import redact_url
from jira_orchestrator._core.text import escape_control
from jira_orchestrator._core.topics import MAX_TOPIC_LENGTH, normalize_pattern, normalize_topic
from jira_orchestrator.messagebus._config import (
    ANYONE,
    ERROR_STATUS,
    BusConfig,
)
from jira_orchestrator.messagebus._shared import _response, _SharedBus
from jira_orchestrator.messagebus._subscription import (
    Handler,
    MessageFilter,
    Overflow,
    Subscription,
    handler_clock,
    trace,
)
from jira_orchestrator.transports import Transport

__all__ = ["MessageBus", "current_message", "remaining_time"]

_EVENT = MessageType.EVENT
_MAX_ID_LENGTH = 40  # `new_id`: 16 characters of prefix and a hex counter of up to 64 bits

log = logging.getLogger("jira_orchestrator.messagebus")


class MessageBus:
    """The bus as one plugin sees it; get one with `get_message_bus`.

    Every message published through a handle has ``source`` set to its plugin id.
    """

    def __init__(self, core: _SharedBus, plugin_id: str) -> None:
        self._core = core
        self.plugin_id = plugin_id
        self._subscriptions: list[Subscription] = []
        # What publish's fast path copies: an event from this plugin, all else at defaults.
        self._template = Message(topic="template", source=plugin_id)  # topic replaced
        # Bytes of such an event without its payload, at most: the template's own, plus
        # room for any topic, three ids (messageId, traceId, spanId) and the timestamp.
        envelope = len(self._template.encode()) + MAX_TOPIC_LENGTH + 3 * _MAX_ID_LENGTH + 32
        # A payload of at most this many bytes makes an event within the size limit.
        self._payload_budget = core.config.max_message_size - envelope

    @property
    def url(self) -> str:
        """The transport URL this handle publishes on."""
        return self._core.url

    @property
    def transport(self) -> Transport:
        """The transport under this bus (shared by every handle on the same URL)."""
        return self._core.transport

    @property
    def config(self) -> BusConfig:
        """The options of this bus."""
        return self._core.config

    def stats(self) -> dict[str, int]:
        """Counters of the whole bus on this URL (all handles)."""
        return asdict(self._core.stats)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """This handle's live subscriptions."""
        return tuple(self._subscriptions)

    @overload
    def subscribe(
        self,
        pattern: str,
        handler: Handler,
        *,
        filter: MessageFilter | None = None,
        max_concurrency: int = 1,
        queue_size: int | None = None,
        overflow: Overflow = "block",
        queue: str | None = None,
    ) -> Subscription: ...

    @overload
    def subscribe(
        self,
        pattern: str,
        handler: None = None,
        *,
        filter: MessageFilter | None = None,
        max_concurrency: int = 1,
        queue_size: int | None = None,
        overflow: Overflow = "block",
        queue: str | None = None,
    ) -> Callable[[Handler], Subscription]: ...

    def subscribe(
        self,
        pattern: str,
        handler: Handler | None = None,
        *,
        filter: MessageFilter | None = None,
        max_concurrency: int = 1,
        queue_size: int | None = None,
        overflow: Overflow = "block",
        queue: str | None = None,
    ) -> Subscription | Callable[[Handler], Subscription]:
        """Call ``handler`` for each message whose topic matches ``pattern``.

        ``*`` matches one segment, a trailing ``**`` one or more. ``filter`` runs before a
        message is queued. Subscriptions sharing a ``queue`` name share the messages, each
        going to one of them (replicas of a plugin). Without ``handler``, returns a
        decorator. Raises `InvalidTopic` for a malformed pattern.
        """
        canonical = normalize_pattern(pattern)
        if handler is None:

            def decorate(function: Handler) -> Subscription:
                return self.subscribe(
                    canonical,
                    function,
                    filter=filter,
                    max_concurrency=max_concurrency,
                    queue_size=queue_size,
                    overflow=overflow,
                    queue=queue,
                )

            return decorate
        if not callable(handler):
            raise TypeError(
                f"handler for {pattern!r} must be callable, not {type(handler).__name__}"
            )
        if self._core.closed:
            raise TransportClosed(f"the bus on {redact_url(self._core.url)} is closed")
        subscription = Subscription(
            self,
            canonical,
            handler,
            filter=filter,
            max_concurrency=max_concurrency,
            queue_size=self._core.config.queue_size if queue_size is None else queue_size,
            overflow=overflow,
            queue=queue,
        )
        subscription._wire = self._core.transport.subscribe(
            canonical, subscription.deliver, queue=queue
        )
        self._subscriptions.append(subscription)
        return subscription

    def _forget(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def clear(self) -> None:
        """Remove every subscription of this handle."""
        for subscription in list(self._subscriptions):
            subscription.unsubscribe()

    def _message(
        self,
        message: Message | None,
        *,
        topic: str | None,
        message_type: MessageType | str,
        payload: Any,
        headers: dict[str, str] | None,
        priority: int,
        destination: str,
        correlation_id: str | None,
        metadata: MessageMetadata | None,
    ) -> Message:
        clock = self._core.clock
        if message is not None:
            if topic is not None:
                raise TypeError("pass either a Message or topic=..., not both")
            validate_payload(message.payload, topic=message.topic)
            return Message(
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                timestamp=message.timestamp,
                source=self.plugin_id,  # never trust the caller's source
                destination=message.destination,
                topic=message.topic,
                message_type=message.message_type,
                priority=message.priority,
                headers=_traced(message.headers, message.message_id),
                payload=message.payload,
                metadata=message.metadata,
            )
        if topic is None:
            raise TypeError("publish needs topic=... (or a Message)")
        canonical = normalize_topic(topic)
        validate_payload(payload, topic=canonical)
        message_id = new_id()
        return Message(
            message_id=message_id,
            correlation_id=correlation_id,
            timestamp=format_timestamp(clock()),
            source=self.plugin_id,
            destination=destination,
            topic=canonical,
            message_type=message_type,  # type: ignore[arg-type]  # validated in Message
            priority=priority,
            headers=_traced(headers, message_id),
            payload=payload,
            metadata=NO_METADATA if metadata is None else metadata,
        )

    async def publish(
        self,
        message: Message | None = None,
        /,
        *,
        topic: str | None = None,
        message_type: MessageType | str = _EVENT,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        priority: int = DEFAULT_PRIORITY,
        destination: str = ANYONE,
        correlation_id: str | None = None,
        metadata: MessageMetadata | None = None,
    ) -> Message:
        """Publish a message and return it as sent (with its id, source and trace headers).

        Raises `InvalidTopic`, `InvalidMessage` (payload not plain JSON, priority out of
        1..10), `MessageTooLarge`, or `PublishTimeout` when a blocking subscriber stays full.
        """
        core = self._core
        if message is None and tracing.in_trace():
            headers = {} if headers is None else dict(headers)
            tracing.inject(headers)
        try:
            if (
                message is None
                and topic is not None
                and message_type is _EVENT
                and priority is DEFAULT_PRIORITY
                and destination is ANYONE
                and correlation_id is None
                and metadata is None
                and headers is None
            ):
                # Fast path: an event with every envelope option at its default (the very
                # default objects, hence `is`). The same checks and errors as `_message` then
                # `_SharedBus.check_sendable`, in the same order, for less than half the cost: the
                # message is a copy of this handle's template with the per-message fields
                # replaced (`restamp`: nothing is validated twice), and its size is bounded by
                # its payload's; the whole message is encoded only when that comes near the
                # limit.
                canonical = normalize_topic(topic)
                if not is_plain_json(payload):
                    validate_payload(payload, topic=canonical)  # raises, naming the path
                message_id = new_id()
                if trace.get() is None:  # a new trace: its ids are within the envelope bound
                    trace_headers = {"traceId": message_id, "spanId": message_id}
                    budget = self._payload_budget
                else:  # continuing one: ids from elsewhere, of any length (in JSON, up to
                    # 6 bytes a character)
                    trace_headers = _traced(None, message_id)
                    budget = self._payload_budget - 6 * sum(map(len, trace_headers.values()))
                timestamp = format_timestamp(core.clock())
                built = restamp(
                    self._template, message_id, timestamp, canonical, trace_headers, payload
                )
                if core.closed or payload_size(payload, topic=canonical) > budget:
                    core.check_sendable(built)  # raises, or measures the whole message exactly
            else:
                built = self._message(
                    message,
                    topic=topic,
                    message_type=message_type,
                    payload=payload,
                    headers=headers,
                    priority=priority,
                    destination=destination,
                    correlation_id=correlation_id,
                    metadata=metadata,
                )
                core.check_sendable(built)
        except InvalidMessage:
            core.stats.rejected += 1  # every refusal: topic, payload, priority, size
            metrics = _metrics.registry
            if metrics is not None:
                metrics.inc("bus_rejected")
            raise
        core.stats.published += 1
        metrics = _metrics.registry
        if metrics is not None:
            counts, topic = metrics.published, built.topic
            seen = counts.get(topic)
            if seen is None:
                metrics.count_topic(counts, topic)
            else:
                counts[topic] = seen + 1
        # Not through core.send, and in memory without a coroutine: see publish_nowait.
        waiting = core.transport.publish_nowait(built)
        if waiting is not None:
            await waiting
        return built

    async def request_message(
        self,
        *,
        topic: str,
        payload: Any = None,
        destination: str = "*",
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
        priority: int = DEFAULT_PRIORITY,
        message_type: MessageType | str = MessageType.REQUEST,
    ) -> Message:
        """Like `request`, but return the whole response message."""
        seconds = self._core.config.request_timeout if timeout is None else timeout
        if not seconds > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if not tracing.in_trace():
            return await self._request_message(
                topic, payload, destination, seconds, headers, priority, message_type
            )
        with tracing.span(f"{topic} request", kind="client"):
            headers = {} if headers is None else dict(headers)
            tracing.inject(headers)
            return await self._request_message(
                topic, payload, destination, seconds, headers, priority, message_type
            )

    async def _request_message(
        self,
        topic: str,
        payload: Any,
        destination: str,
        seconds: float,
        headers: dict[str, str] | None,
        priority: int,
        message_type: MessageType | str,
    ) -> Message:
        try:
            request = self._message(
                None,
                topic=topic,
                message_type=message_type,
                payload=payload,
                headers=headers,
                priority=priority,
                destination=destination,
                correlation_id=new_id(),
                # The deadline travels with the request: a receiver that gets to it after
                # the caller gave up dead-letters it as expired instead of running it.
                metadata=MessageMetadata(
                    timeout_ms=max(1, round(seconds * 1000)),
                    expires_at=format_timestamp(self._core.clock() + seconds),
                ),
            )
            self._core.check_sendable(request)
        except InvalidMessage:
            self._core.stats.rejected += 1
            raise
        self._core.stats.requests += 1
        metrics = _metrics.registry
        if metrics is None:
            response = await self._exchange(request, seconds)
        else:
            started = perf_counter()
            outcome = "error"
            try:
                response = await self._exchange(request, seconds)
                outcome = "error" if response.headers.get("status") == ERROR_STATUS else "ok"
            except RequestTimeout:
                outcome = "timeout"
                raise
            except NoResponders:
                outcome = "no-responders"
                raise
            finally:
                metrics.observe(
                    "bus_request_duration_seconds",
                    (topic_family(request.topic), outcome),
                    perf_counter() - started,
                )
        if response.headers.get("status") == ERROR_STATUS:
            error = response.payload.get("error") if isinstance(response.payload, dict) else None
            error = error if isinstance(error, dict) else {}
            raise RemoteError(
                str(error.get("type", "Error")),
                str(error.get("message", response.payload)),
                source=response.source or destination,
            )
        return response

    async def _exchange(self, request: Message, seconds: float) -> Message:
        """Send ``request`` and return the first response, from the transport's reply path
        or, for a plugin's request or RPC, from its responder's topic."""
        core = self._core
        awaited = core.await_response(request)
        if awaited is None:
            return await core.transport.request(request, timeout=seconds)
        try:
            return await core.transport.request(request, timeout=seconds)
        except asyncio.CancelledError:
            # A response on the responder's topic ended the wait (`await_response`): it is
            # the answer, unless this task was also cancelled by someone else.
            task = asyncio.current_task()
            if awaited.response is None or task is None or task.uncancel() > 0:
                raise
            return awaited.response
        finally:
            core.awaited.pop(awaited.correlation_id, None)

    async def request(
        self,
        *,
        topic: str,
        payload: Any = None,
        destination: str = "*",
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
        priority: int = DEFAULT_PRIORITY,
    ) -> Any:
        """Send a request and return the response's payload (the seed's ``response``).

        ``timeout`` is in seconds (default: the bus's, 30). Raises `NoResponders` at once
        when nobody subscribes to ``topic``, `RequestTimeout` after the timeout, and
        `RemoteError` when every responder's handler failed.
        """
        response = await self.request_message(
            topic=topic,
            payload=payload,
            destination=destination,
            timeout=timeout,
            headers=headers,
            priority=priority,
        )
        return response.payload

    async def respond(
        self, correlation_id: str, payload: Any, *, status: str | None = None
    ) -> Message:
        """Answer the request with ``correlation_id`` and return the response sent.

        The first answer wins; a later one for the same request is dropped. A request this
        process never received (a peer that correlates on its own) gets the response on
        ``plugin/<requester>/response``.
        """
        if not isinstance(correlation_id, str) or not correlation_id:
            raise TypeError("respond needs the request's correlation id (a non-empty string)")
        pending = self._core.pending.get(correlation_id)
        request = (
            pending.request
            if pending is not None
            else Message(topic=plugin_request(self.plugin_id), correlation_id=correlation_id)
        )
        try:
            validate_payload(payload, topic=plugin_response(self.plugin_id))
            response = _response(
                request,
                source=self.plugin_id,
                payload=payload,
                status=status,
                clock=self._core.clock,
            )
            self._core.check_sendable(response)
        except InvalidMessage:
            self._core.stats.rejected += 1
            raise
        if pending is None:
            await self._core.send(response)
        else:
            await self._core.answer(correlation_id, response)
        return response

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until every message published so far has been handled by this process's
        subscribers, including what their handlers publish in turn.

        For tests and orderly shutdowns; raises ``TimeoutError`` after ``timeout`` seconds.
        """
        core = self._core
        async with asyncio.timeout(timeout):
            while True:
                await core.transport.flush()
                busy = [
                    subscription
                    for handle in core.handles.values()
                    for subscription in handle._subscriptions
                    if not subscription._quiet
                ]
                if not busy:
                    return
                for subscription in busy:
                    await subscription._wait_quiet()

    async def dead_letter(
        self, message: Message, *, reason: str, error: BaseException | None = None
    ) -> None:
        """Send a message this plugin refuses or cannot handle to ``system/dead-letter``."""
        current = trace.get()
        await self._core.dead_letter(
            message,
            reason=reason,
            subscriber=self.plugin_id,
            subscription=None if current is None else current.topic,
            error=error,
        )

    async def verified_sender(self, message: Message) -> str | None:
        """Who sent ``message``, as its topic proves it (docs/protocol.md, "Identity").

        The identity of a sender-stamped topic (``plugin/<id>/status``,
        ``plugin/<target>/rpc/<caller>``, ``system/dead-letter/<sender>``, ...) when the
        envelope's ``source`` agrees with it; None for a topic that names nobody. A message
        whose ``source`` claims someone else is spoofed: counted (``stats()["spoofed"]``),
        logged in one line and dead-lettered (``spoofed``) by this handle; None too.
        """
        sender = sender_of(message.topic, message.source)
        if sender is not None:
            return sender
        identity = identity_of(message.topic)
        if identity is None:
            return None
        core = self._core
        core.stats.spoofed += 1
        log.warning(
            "spoofed message on %s: source %s is not %s (%d so far); dead-lettered",
            escape_control(message.topic),
            escape_control(repr(message.source)),
            escape_control(repr(identity)),
            core.stats.spoofed,
        )
        if not is_dead_letter_topic(message.topic):
            await self.dead_letter(message, reason="spoofed")
        return None

    def __repr__(self) -> str:
        return f"MessageBus({self.plugin_id!r}, url={redact_url(self._core.url)!r})"


def _traced(headers: dict[str, str] | None, message_id: str) -> dict[str, str]:
    """Headers with ``traceId`` and ``spanId``, continuing the trace of the running handler.

    A message is its own span (``spanId`` is its ``messageId``) and a message that starts
    a trace gives it its id, which saves drawing two more ids on every publish.
    """
    current = trace.get()
    if headers is None and current is None:  # a message that starts a trace: the usual case
        return {"traceId": message_id, "spanId": message_id}
    result = {} if headers is None else dict(headers)
    if "traceparent" not in result and tracing.in_trace():
        tracing.inject(result)  # a Message object published inside a span
    if current is not None and "traceparent" in current.headers and "traceparent" not in result:
        result["traceparent"] = current.headers["traceparent"]  # passed on, traced here or not
    if "traceId" not in result:
        if current is not None and "traceId" in current.headers:
            result["traceId"] = current.headers["traceId"]
        else:
            result["traceId"] = message_id
    if (
        current is not None
        and "spanId" in current.headers
        and "parentSpanId" not in result
        and result["traceId"] == current.headers.get("traceId")
    ):
        result["parentSpanId"] = current.headers["spanId"]
    if "spanId" not in result:
        result["spanId"] = message_id
    return result


def current_message() -> Message | None:
    """The message whose handler is running in this task, or None."""
    return trace.get()


def remaining_time() -> float | None:
    """Seconds left before the running handler's message expires (its sender gives up).

    0.0 once the deadline has passed; None outside a handler or for a message without a
    deadline (see `Message.deadline`). Measured with the bus's clock.
    """
    message = trace.get()
    if message is None:
        return None
    deadline = message.deadline()
    if deadline is None:
        return None
    return max(0.0, deadline - handler_clock.get()())
