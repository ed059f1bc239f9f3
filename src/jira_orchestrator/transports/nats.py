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

try:
    import nats.errors
except ImportError as error:  # the core installs without the extra
    raise ImportError(
        "the NATS transport needs the 'nats' extra: pip install 'jira-orchestrator[nats]'"
    ) from error
from nats.aio.client import Client
from nats.aio.msg import Msg

from jira_orchestrator._core.errors import (
    ConnectionLost,
    InvalidMessage,
    NoResponders,
    PublishTimeout,
    RequestTimeout,
)
from jira_orchestrator._core.message import Message
from jira_orchestrator._core.topics import pattern_matches
from jira_orchestrator.transports._nats_connection import (
    MSG_ID_HEADER,
    REPLY_HEADER,
    NatsOptions,
    NatsStats,
    log,
)
from jira_orchestrator.transports._nats_errors import map_error
from jira_orchestrator.transports._nats_subjects import (
    DURABLE_PREFIX,
    PRESENCE_PREFIX,
    check_not_reserved,
    to_subject,
)
from jira_orchestrator.transports._nats_subscriptions import _NatsSubscriptions

__all__ = ["MSG_ID_HEADER", "REPLY_HEADER", "NatsOptions", "NatsStats", "NatsTransport"]


class NatsTransport(_NatsSubscriptions):
    """Publish, subscribe and request over NATS, with JetStream for durable topics.

    ``on_invalid(subject, data, error)`` is called for bytes that are not a message (they
    are counted in ``stats.invalid`` and otherwise dropped). Connects lazily, on the first
    use inside the running event loop; `flush` waits until every subscription made so far
    is live on the server.
    """

    def confirms(self, topic: str) -> bool | None:
        """True for a durable topic (JetStream acknowledges each publish once stored);
        None for the others: core NATS does not tell a publisher who received a message."""
        return True if self._route(topic)[1] is not None else None

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

    async def present(self, topic: str, *, timeout: float) -> bool | None:
        """A presence probe for a durable topic (see "On NATS" in docs/protocol.md); None
        for a core topic, which has no probe."""
        durable = self._route(topic)[1]
        if durable is None:
            return None
        nc = await self._prepare()
        return await self._anybody(nc, topic, durable, asyncio.get_running_loop().time() + timeout)

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
