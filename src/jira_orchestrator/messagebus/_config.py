"""The options and counters of a bus, and the names it publishes under."""

from __future__ import annotations

from dataclasses import dataclass

from jira_orchestrator._core.clock import WallClock, wall
from jira_orchestrator._core.message import (
    DEFAULT_MAX_MESSAGE_SIZE,
)
from jira_orchestrator._core.protocol import ANYONE, BUS_URL_ENV, DEAD_LETTER_TOPIC, ERROR_STATUS

__all__ = [
    "ANYONE",
    "DEAD_LETTER_TOPIC",
    "DEFAULT_URL",
    "ERROR_STATUS",
    "URL_ENV",
    "BusConfig",
    "BusStats",
]

DEFAULT_URL = "memory://"
URL_ENV = BUS_URL_ENV


@dataclass(frozen=True)
class BusConfig:
    """Options of one bus (one URL in one process). Durations in seconds."""

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    queue_size: int = 10_000
    publish_timeout: float = 30.0
    request_timeout: float = 30.0
    clock: WallClock = wall

    def __post_init__(self) -> None:
        if self.max_message_size < 1024:
            raise ValueError(f"max_message_size must be at least 1024, not {self.max_message_size}")
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {self.queue_size}")
        if not self.publish_timeout > 0 or not self.request_timeout > 0:
            raise ValueError("publish_timeout and request_timeout must be positive")


@dataclass
class BusStats:
    """Counters of one bus, across all its handles."""

    published: int = 0
    requests: int = 0
    responses: int = 0
    handler_errors: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    expired: int = 0
    rejected: int = 0
    invalid: int = 0
    publish_timeouts: int = 0
    spoofed: int = 0
    """Messages on a sender-stamped topic whose ``source`` was not the topic's identity."""
