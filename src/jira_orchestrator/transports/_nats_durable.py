"""The NATS transport's durable part: JetStream deliveries, acks, stores and withdrawals.

A queue subscription to a durable topic reads through a JetStream consumer its members
share (`_nats_jetstream` has the streams' and consumers' configurations); this part
acknowledges each delivery once it is settled, keeps a slow handler's request alive,
dead-letters a request whose last delivery fails, stores durable publishes (retrying
through reconnects) and withdraws a request whose caller gave up.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig

from jira_orchestrator._core.clock import format_timestamp
from jira_orchestrator._core.errors import (
    ConnectionLost,
    PublishTimeout,
    RequestTimeout,
    TransportError,
)
from jira_orchestrator._core.message import Message
from jira_orchestrator._core.protocol import RETRYABLE_REASONS, DeadLetterReason, dead_letter
from jira_orchestrator._core.topics import normalize_pattern
from jira_orchestrator.transports._nats_connection import (
    MSG_ID_HEADER,
    REPLY_HEADER,
    _NatsConnection,
    _quietly,
    log,
)
from jira_orchestrator.transports._nats_errors import map_error
from jira_orchestrator.transports._nats_jetstream import (
    ACK,
    IN_PROGRESS,
    StreamSpec,
    consumer_config,
    consumer_name,
    nak,
    num_delivered,
)
from jira_orchestrator.transports._nats_subjects import DURABLE_PREFIX, PRESENCE_PREFIX

if TYPE_CHECKING:
    from jira_orchestrator.transports._nats_subscriptions import _NatsSubscription

__all__: list[str] = []

_ROUTE_HINT = (
    "a plugin's user may send durable requests only to the plugins its manifest's "
    "routing.canRouteTo names (and the orchestrator)"
)
_SETUP_RETRY_FIRST = 0.05
_SETUP_RETRY_MAX = 1.0
_MAX_TRACKED_ATTEMPTS = 10_000


class ConsumerMissing(TransportError):
    """A consumer to bind to does not exist (yet: it is retried like a server starting)."""


class _NatsDurable(_NatsConnection):
    """JetStream deliveries to queue subscriptions, and durable publishes."""

    async def provision(self, pattern: str, queue: str) -> list[str]:
        """Create (or bring up to date) the JetStream consumers that members of ``queue``
        subscribed to ``pattern`` read through, without subscribing; return their names.

        What an orchestrator with JetStream rights does for plugins whose users only bind
        (``jetstream=bind``): ``up`` calls it for every plugin's ``plugin/<id>/request``.
        """
        await self._connection()
        names = []
        for spec in self._streams:
            filters = spec.filters(normalize_pattern(pattern))
            if filters:
                config = await self._create_consumer(spec, pattern, queue, filters)
                assert config.name is not None
                names.append(config.name)
        return names

    async def _create_consumer(
        self, spec: StreamSpec, pattern: str, queue: str, filters: list[str]
    ) -> ConsumerConfig:
        """Create or update the consumer of ``queue`` on ``pattern`` in one stream."""
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
        await self._guarded(
            "$JS.API.CONSUMER.",
            self._jsm.add_consumer(spec.name, config),
            f"create the JetStream consumer {name} on {spec.name}",
        )
        return config

    async def _bound_consumer(
        self, spec: StreamSpec, name: str, pattern: str, queue: str
    ) -> ConsumerConfig:
        """The configuration of an existing consumer this user binds to (``jetstream=bind``)."""
        assert self._jsm is not None
        try:
            info = await self._guarded(
                f"$JS.API.CONSUMER.INFO.{spec.name}.{name}",
                self._jsm.consumer_info(spec.name, name),
                f"look up the JetStream consumer {name} on {spec.name}",
                "a plugin's user may bind only to its own consumers, which the orchestrator "
                "creates (up does it for each plugin's plugin/<id>/request, queue <id>)",
            )
        except nats.js.errors.NotFoundError:
            raise ConsumerMissing(
                f"{self.url}: no JetStream consumer {name} on {spec.name} for queue "
                f"{queue!r} on {pattern!r}; with jetstream=bind it is created by a user with "
                "JetStream rights first (up does it for every plugin's requests)"
            ) from None
        config: ConsumerConfig = info.config
        if config.deliver_subject is None or config.deliver_group != queue:
            raise TransportError(
                f"{self.url}: the JetStream consumer {name} on {spec.name} does not deliver "
                f"to queue {queue!r}"
            )
        return config

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

    async def _on_jetstream(self, subscription: _NatsSubscription, msg: Msg) -> None:
        nc = self._nc
        ack_subject = msg.reply
        if nc is None or not ack_subject:
            return
        if subscription.closed:
            if num_delivered(ack_subject) >= subscription.max_deliver and not self._closed:
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
        final = delivered >= subscription.max_deliver
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
        ack_wait = subscription.ack_wait
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
            deliveries=subscription.max_deliver,
        )
        try:
            await self.publish(letter)
        except Exception:
            log.exception("NATS %s: could not dead-letter %s", self.url, message.topic)
            return  # not acked: the server's max-deliveries advisory is all that is left
        nc = self._nc
        if nc is not None:
            await _quietly(nc.publish(ack_subject, ACK))

    def _track_attempt(self, message_id: str, attempt: tuple[int, bool, str]) -> None:
        attempts = self._attempts
        attempts.pop(message_id, None)
        if len(attempts) >= _MAX_TRACKED_ATTEMPTS:
            del attempts[next(iter(attempts))]
        attempts[message_id] = attempt

    def _publish_error(
        self, error: Exception, message: Message, data: bytes, nc: Client
    ) -> Exception:
        """Our exception for a publish of ``message`` (``data`` encoded) that NATS refused."""
        return map_error(
            error,
            topic=message.topic,
            url=self.url,
            size=len(data),
            limit=nc.max_payload,
            publishing=True,
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
                response = await self._guarded(
                    subject,
                    nc.request(subject, data, timeout=min(remaining, 2.0), headers=dict(headers)),
                    f"send to {subject!r}",
                    _ROUTE_HINT,
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

    async def _withdraw(self, nc: Client, stream: str, sequence: int) -> None:
        """Delete a stored request, so that no member is handed it again.

        Only a transport that manages JetStream may: deleting from the stream is a right a
        plugin's user (``jetstream=bind``) does not have, since it reaches every plugin's
        requests. Its withdrawn request stays, and may be run once more (at least once)."""
        if self.options.jetstream != "manage":
            log.debug(
                "NATS %s: not withdrawing %s #%d (jetstream=bind)", self.url, stream, sequence
            )
            return
        payload = json.dumps({"seq": sequence, "no_erase": True}).encode()
        try:
            response = await nc.request(
                f"$JS.API.STREAM.MSG.DELETE.{stream}",
                payload,
                timeout=self.options.publish_ack_timeout,
            )
        except Exception as error:  # it stays: at worst a member runs it once more
            log.warning("NATS %s: could not withdraw %s #%d: %s", self.url, stream, sequence, error)
            return
        if b'"error"' in response.data and b"no message found" not in response.data:
            log.warning(
                "NATS %s: could not withdraw %s #%d: %s",
                self.url,
                stream,
                sequence,
                response.data.decode(errors="replace"),
            )


def _stored_at(ack: bytes) -> tuple[str, int] | None:
    """(stream, sequence) from JetStream's publish ack, None if it does not say."""
    try:
        answer = json.loads(ack)
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    stream, sequence = answer.get("stream"), answer.get("seq")
    if isinstance(stream, str) and isinstance(sequence, int):
        return stream, sequence
    return None


def _still_waited(message: Message) -> float:
    """Seconds its caller will still wait for a request (see `Message.deadline`)."""
    deadline = message.deadline()
    return 0.0 if deadline is None else max(deadline - time.time(), 0.0)


async def _delivered(result: Awaitable[None] | None) -> None:
    if result is not None:
        await result
