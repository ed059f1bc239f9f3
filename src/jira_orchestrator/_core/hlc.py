"""Hybrid logical clock: timestamps that follow wall time but never go backwards.

A timestamp is ``(wall_ms, counter, node)``, compared in that order, so two timestamps
from different nodes are never equal and every event has a total order that respects
causality: an event stamped after receiving a timestamp is greater than it. A node with a
skewed clock cannot win forever: a remote timestamp more than ``max_drift`` seconds ahead
of the local wall clock is rejected instead of dragging every clock forward with it.
(Kulkarni et al., "Logical Physical Clocks", 2014.)
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from jira_orchestrator._core.errors import JiraOrchestratorError

__all__ = [
    "ClockDriftError",
    "HybridLogicalClock",
    "InvalidTimestamp",
    "Timestamp",
]

_FORM = re.compile(r"(0|[1-9][0-9]*):(0|[1-9][0-9]*):(.+)", re.DOTALL)


class InvalidTimestamp(JiraOrchestratorError, ValueError):
    """A timestamp string or field that does not parse."""


class ClockDriftError(JiraOrchestratorError, ValueError):
    """A remote timestamp is further ahead of the local wall clock than ``max_drift``."""

    def __init__(self, remote: Timestamp, local_wall_ms: int, max_drift: float) -> None:
        self.remote = remote
        self.local_wall_ms = local_wall_ms
        self.max_drift = max_drift
        ahead = (remote.wall_ms - local_wall_ms) / 1000
        super().__init__(
            f"timestamp {remote} from node {remote.node!r} is {ahead:.3f}s ahead of the local "
            f"wall clock, over the allowed drift of {max_drift:g}s (is that node's clock wrong?)"
        )


@dataclass(frozen=True, order=True, slots=True)
class Timestamp:
    """One HLC reading; ``str()`` gives the compact form ``"<wall_ms>:<counter>:<node>"``."""

    wall_ms: int
    counter: int
    node: str

    def __post_init__(self) -> None:
        for name in ("wall_ms", "counter"):
            field = getattr(self, name)
            if type(field) is not int or field < 0:
                raise InvalidTimestamp(f"timestamp {name} must be an int >= 0, got {field!r}")
        if not isinstance(self.node, str) or not self.node:
            raise InvalidTimestamp(f"timestamp node must be a non-empty str, got {self.node!r}")

    def __str__(self) -> str:
        return f"{self.wall_ms}:{self.counter}:{self.node}"

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        """Read the compact form written by ``str()``; raises `InvalidTimestamp`."""
        if not isinstance(text, str):
            raise InvalidTimestamp(f"timestamp must be a str, got {type(text).__name__}")
        match = _FORM.fullmatch(text)
        if match is None:
            raise InvalidTimestamp(f"timestamp {text!r} is not '<wall_ms>:<counter>:<node>'")
        return cls(int(match[1]), int(match[2]), match[3])

    def to_json(self) -> str:
        """The JSON form, which is the compact string."""
        return str(self)

    @classmethod
    def from_json(cls, data: object) -> Timestamp:
        """Inverse of `to_json`; raises `InvalidTimestamp`."""
        if not isinstance(data, str):
            raise InvalidTimestamp(f"timestamp must be a str, got {type(data).__name__}")
        return cls.parse(data)


class HybridLogicalClock:
    """A node's hybrid logical clock. Thread-safe.

    ``clock`` returns wall time in seconds (``time.time`` by default). ``last`` seeds the
    clock with the greatest timestamp the node issued or saw before a restart, so it keeps
    moving forward even if the wall clock went back meanwhile.
    """

    def __init__(
        self,
        node: str,
        *,
        clock: Callable[[], float] = time.time,
        max_drift: float = 60.0,
        last: Timestamp | None = None,
    ) -> None:
        if not isinstance(node, str) or not node:
            raise ValueError(f"node must be a non-empty str, got {node!r}")
        if isinstance(max_drift, bool) or not isinstance(max_drift, int | float):
            raise TypeError(f"max_drift must be seconds as a number, got {max_drift!r}")
        if not max_drift > 0:
            raise ValueError(f"max_drift must be > 0 seconds, got {max_drift!r}")
        if last is not None and not isinstance(last, Timestamp):
            raise TypeError(f"last must be a Timestamp, got {type(last).__name__}")
        self.node = node
        self.max_drift = float(max_drift)
        self._clock = clock
        self._lock = threading.Lock()
        self._wall_ms = last.wall_ms if last else 0
        self._counter = last.counter if last else 0

    def _read_wall_ms(self) -> int:
        return int(self._clock() * 1000)

    def now(self) -> Timestamp:
        """Stamp a local event: greater than every timestamp issued or seen so far."""
        with self._lock:
            wall = self._read_wall_ms()
            if wall > self._wall_ms:
                self._wall_ms, self._counter = wall, 0
            else:
                self._counter += 1
            return Timestamp(self._wall_ms, self._counter, self.node)

    def update(self, remote: Timestamp) -> Timestamp:
        """Stamp the receipt of ``remote``; the result is greater than it.

        Raises `ClockDriftError` (leaving the clock unchanged) if ``remote`` is more than
        ``max_drift`` seconds ahead of the local wall clock.
        """
        if not isinstance(remote, Timestamp):
            raise TypeError(f"remote must be a Timestamp, got {type(remote).__name__}")
        with self._lock:
            wall = self._read_wall_ms()
            if remote.wall_ms - wall > self.max_drift * 1000:
                raise ClockDriftError(remote, wall, self.max_drift)
            top = max(self._wall_ms, remote.wall_ms, wall)
            if top == self._wall_ms == remote.wall_ms:
                counter = max(self._counter, remote.counter) + 1
            elif top == self._wall_ms:
                counter = self._counter + 1
            elif top == remote.wall_ms:
                counter = remote.counter + 1
            else:
                counter = 0
            self._wall_ms, self._counter = top, counter
            return Timestamp(top, counter, self.node)
