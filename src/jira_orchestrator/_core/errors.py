"""The exception tree of jira-orchestrator.

The errors of the core and the transports are defined here; each package draws its own
tree below `JiraOrchestratorError` (``state/errors.py``, ``orchestrator/errors.py``, ...),
and every public exception of the package is one (tests/test_exported_members.py).
Backend errors (NATS, SQLite, pydantic) are mapped to these at the boundary and never
leak. Where it helps, a class also inherits the stdlib type a caller would guess
(``ValueError``, ``TimeoutError``).

    JiraOrchestratorError
    ├── InvalidMessage (ValueError)          a message or envelope that cannot be accepted
    │   ├── InvalidTopic                     topic or pattern grammar, names the position
    │   └── MessageTooLarge                  encoded size over the configured limit
    ├── InvalidEndpoint (ValueError)         a malformed ``plugin://<id>/rpc`` address
    ├── TransportError                       the transport failed or is unusable
    │   ├── TransportClosed                  used after close()
    │   ├── ConnectionLost                   the connection dropped under a call
    │   └── UnknownTransport (ValueError)    no transport for that URL scheme
    ├── DeliveryError                        a message could not be handed over
    │   ├── PublishTimeout (TimeoutError)    backpressure: a subscriber queue stayed full
    │   ├── NoResponders                     a request found nobody subscribed
    │   ├── RequestTimeout (TimeoutError)    a request got no answer in time
    │   └── RemoteError                      the responder failed; carries its error type
    ├── RPCError                             a JSON-RPC 2.0 error, with ``code``
    │   ├── MethodNotFound                   -32601
    │   └── InvalidParams (ValueError)       -32602, names each bad parameter
    ├── CircuitOpenError                     a breaker refused the call
    ├── StateError                           replicated state
    │   └── StateAccessDenied (PermissionError)
    └── ManifestError (ValueError)           plugin.json and plugin files, every problem at once
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CircuitOpenError",
    "ConnectionLost",
    "DeliveryError",
    "InvalidEndpoint",
    "InvalidMessage",
    "InvalidParams",
    "InvalidTopic",
    "JiraOrchestratorError",
    "ManifestError",
    "MessageTooLarge",
    "MethodNotFound",
    "NoResponders",
    "PublishTimeout",
    "RPCError",
    "RemoteError",
    "RequestTimeout",
    "StateAccessDenied",
    "StateError",
    "TransportClosed",
    "TransportError",
    "UnknownTransport",
]


class JiraOrchestratorError(Exception):
    """Base of every error raised by jira-orchestrator."""


class InvalidMessage(JiraOrchestratorError, ValueError):
    """A message that cannot be accepted: bad field, bad bytes, bad payload."""


class InvalidTopic(InvalidMessage):
    """A topic or subscription pattern that breaks the topic grammar."""

    def __init__(self, topic: str, position: int, reason: str) -> None:
        self.topic = topic
        self.position = position
        self.reason = reason
        super().__init__(f"invalid topic {topic!r} at position {position}: {reason}")


class MessageTooLarge(InvalidMessage):
    """The encoded message is larger than the configured limit."""

    def __init__(self, size: int, limit: int, topic: str) -> None:
        self.size = size
        self.limit = limit
        self.topic = topic
        super().__init__(
            f"message on {topic!r} is {size} bytes encoded, over the limit of {limit} bytes"
        )


class InvalidEndpoint(JiraOrchestratorError, ValueError):
    """A malformed ``plugin://<id>/rpc`` address."""


class TransportError(JiraOrchestratorError):
    """The transport failed or cannot be used."""


class TransportClosed(TransportError):
    """The transport (or the bus using it) was closed."""


class ConnectionLost(TransportError):
    """The connection dropped while a call was under way."""


class UnknownTransport(TransportError, ValueError):
    """No transport is known for the URL's scheme."""


class DeliveryError(JiraOrchestratorError):
    """A message could not be delivered or answered."""


class PublishTimeout(DeliveryError, TimeoutError):
    """A subscriber's queue stayed full for longer than the publish timeout."""


class NoResponders(DeliveryError):
    """A request was sent to a topic nobody subscribes to."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"no responders subscribed to {topic!r}")


class RequestTimeout(DeliveryError, TimeoutError):
    """A request got no response within its timeout."""

    def __init__(self, topic: str, timeout: float) -> None:
        self.topic = topic
        self.timeout = timeout
        super().__init__(f"no response on {topic!r} within {timeout:g}s")


class RemoteError(DeliveryError):
    """The responder's handler failed; ``error_type`` and ``message`` are the remote error's."""

    def __init__(self, error_type: str, message: str, *, source: str | None = None) -> None:
        self.error_type = error_type
        self.remote_message = message
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"{error_type}{where}: {message}")


class RPCError(JiraOrchestratorError):
    """A JSON-RPC 2.0 error. ``code`` follows the spec (-32601 unknown method, ...)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"[{code}] {message}")


class MethodNotFound(RPCError):
    """The RPC server has no such method (JSON-RPC -32601)."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(-32601, message, data)


class InvalidParams(RPCError, ValueError):
    """The parameters do not fit the method's signature (JSON-RPC -32602)."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(-32602, message, data)


class CircuitOpenError(JiraOrchestratorError):
    """A circuit breaker refused the call because it is open (or half-open and full)."""


class StateError(JiraOrchestratorError):
    """Replicated state could not be read or written."""


class StateAccessDenied(StateError, PermissionError):
    """A plugin asked for state it may not read or write."""


class ManifestError(JiraOrchestratorError, ValueError):
    """One or more problems in a plugin's files, each as ``file: json.path: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems) if self.problems else "invalid manifest")
