"""Routing errors, under the project's exception tree.

JiraOrchestratorError
└── RoutingError
    ├── InvalidRequest (ValueError)      empty text, malformed ADF, a bad batch line
    ├── UnknownRequest (KeyError)        an outcome or correction for an unknown id
    ├── NoPlugins                        the plugins directory holds no usable plugin
    └── RoutingStoreError                the decision store: locked, disk full, damaged,
                                         another program's file
"""

from __future__ import annotations

from jira_orchestrator._core.errors import JiraOrchestratorError

__all__ = ["InvalidRequest", "NoPlugins", "RoutingError", "RoutingStoreError", "UnknownRequest"]


class RoutingError(JiraOrchestratorError):
    """Base of the routing engine's errors."""


class InvalidRequest(RoutingError, ValueError):
    """A request that cannot be routed; ``where`` names the field, file or line."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class UnknownRequest(RoutingError, KeyError):
    """No decision with this request id was made or stored."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(request_id)

    def __str__(self) -> str:
        return f"no routing decision with request id {self.request_id!r}"


class NoPlugins(RoutingError):
    """There is no plugin to route to (an empty or unreadable plugins directory)."""


class RoutingStoreError(RoutingError):
    """The decision store cannot be opened, read or written: locked by another process
    for longer than its timeout, disk full, damaged, or another program's database."""
