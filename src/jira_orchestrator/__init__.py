"""jira-orchestrator: routing engine and plugin SDK for agent plugins around Jira work."""

from jira_orchestrator._core.errors import (
    CircuitOpenError,
    ConnectionLost,
    DeliveryError,
    InvalidEndpoint,
    InvalidMessage,
    InvalidTopic,
    JiraOrchestratorError,
    ManifestError,
    MessageTooLarge,
    NoResponders,
    PublishTimeout,
    RemoteError,
    RequestTimeout,
    RPCError,
    StateAccessDenied,
    StateError,
    TransportClosed,
    TransportError,
    UnknownTransport,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "CircuitOpenError",
    "ConnectionLost",
    "DeliveryError",
    "InvalidEndpoint",
    "InvalidMessage",
    "InvalidTopic",
    "JiraOrchestratorError",
    "ManifestError",
    "MessageTooLarge",
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
    "__version__",
]
