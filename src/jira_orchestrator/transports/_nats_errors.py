"""nats-py errors to the jira-orchestrator exception tree, at the transport's boundary.

nats.errors.NoRespondersError                 -> NoResponders
nats.errors.TimeoutError (and asyncio's)      -> RequestTimeout, or PublishTimeout on publish
nats.errors.ConnectionClosedError             -> TransportClosed
StaleConnection, UnexpectedEOF, Reconnecting,
OutboundBufferLimit, Draining, OSError        -> ConnectionLost
nats.errors.MaxPayloadError                   -> MessageTooLarge
nats.errors.BadSubjectError                   -> InvalidTopic
nats.js.errors.* and every other nats error   -> TransportError (the server's description)
"""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors

from jira_orchestrator._core.errors import (
    ConnectionLost,
    InvalidTopic,
    JiraOrchestratorError,
    MessageTooLarge,
    NoResponders,
    PublishTimeout,
    RequestTimeout,
    TransportClosed,
    TransportError,
)

__all__ = ["map_error"]

_LOST = (
    nats.errors.StaleConnectionError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.ConnectionDrainingError,
    nats.errors.FlushTimeoutError,
    OSError,
)


def map_error(
    error: BaseException,
    *,
    topic: str,
    url: str,
    timeout: float | None = None,
    size: int = 0,
    limit: int = 0,
    publishing: bool = False,
) -> JiraOrchestratorError:
    """Our exception for a nats-py (or socket) error met while handling ``topic``.

    The most specific class is matched first: nats-py's timeout errors are also
    ``asyncio.TimeoutError`` and its reconnect errors are plain ``nats.errors.Error``.
    """
    if isinstance(error, JiraOrchestratorError):
        return error
    if isinstance(error, nats.errors.NoRespondersError | nats.js.errors.NoStreamResponseError):
        if isinstance(error, nats.js.errors.NoStreamResponseError):
            return TransportError(
                f"{url}: no JetStream stream answered for {topic!r}; is JetStream enabled "
                "on the server (nats-server -js)?"
            )
        return NoResponders(topic)
    if isinstance(error, nats.errors.ConnectionClosedError):
        return TransportClosed(f"the NATS connection to {url} is closed")
    if isinstance(error, _LOST):
        return ConnectionLost(f"{url}: the NATS connection dropped while sending {topic!r}")
    if isinstance(error, nats.errors.TimeoutError | asyncio.TimeoutError):
        if publishing:
            return PublishTimeout(
                f"{url}: JetStream did not acknowledge {topic!r} within {timeout or 0:g}s"
            )
        return RequestTimeout(topic, timeout or 0.0)
    if isinstance(error, nats.errors.MaxPayloadError):
        return MessageTooLarge(size, limit, topic)
    if isinstance(error, nats.errors.BadSubjectError):
        return InvalidTopic(topic, 0, "not a valid NATS subject")
    if isinstance(error, nats.js.errors.APIError):
        return TransportError(f"{url}: JetStream refused {topic!r}: {error.description}")
    return TransportError(f"{url}: NATS error on {topic!r}: {type(error).__name__}: {error}")
