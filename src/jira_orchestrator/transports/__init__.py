"""Layer 1: transports. ``open_transport(url)`` picks one by the URL's scheme.

``memory://`` is the in-process default; ``nats://host:4222`` (extra ``nats``) runs the
same bus across processes and machines.
"""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from jira_orchestrator._core.errors import UnknownTransport
from jira_orchestrator._core.redact import redact_url
from jira_orchestrator.transports._base import (
    Deliver,
    InvalidHook,
    RefusalHook,
    Reply,
    Transport,
    TransportSubscription,
)
from jira_orchestrator.transports.memory import MemoryTransport

__all__ = [
    "Deliver",
    "InvalidHook",
    "MemoryTransport",
    "RefusalHook",
    "Reply",
    "Transport",
    "TransportSubscription",
    "open_transport",
]


def open_transport(url: str) -> Transport:
    """A new transport for ``url``; raise `UnknownTransport` for an unknown scheme."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme == "memory":
        return MemoryTransport(url)
    if scheme in {"nats", "tls", "ws", "wss"}:
        try:
            module = importlib.import_module("jira_orchestrator.transports.nats")
        except ImportError as error:  # depends on the installed extras
            raise UnknownTransport(
                f"{redact_url(url)}: the NATS transport needs the 'nats' extra: "
                "pip install 'jira-orchestrator[nats]'"
            ) from error
        transport: Transport = module.NatsTransport(url)
        return transport
    raise UnknownTransport(
        f"{redact_url(url)!r}: unknown bus URL scheme {scheme!r}; use memory:// or nats://host:port"
    )
