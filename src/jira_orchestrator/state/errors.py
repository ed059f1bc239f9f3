"""Errors of the state package, all under `StateError`.

StateError
├── InvalidStateKey (ValueError)       key not a str, empty, or over the size limit
├── InvalidStateValue (ValueError)     value not JSON, or over the size limit
├── InvalidDelta (ValueError)          a CRDT dict form or remote delta refused
│   └── StateClockDrift (ClockDriftError)  stamped too far ahead of the local clock
├── StateTypeMismatch (TypeError)      the key holds another kind of CRDT
├── StateCorrupt                       the database file is damaged or not ours
├── StateLocked                        another connection holds the database
└── StateClosed                        used after close()
"""

from __future__ import annotations

from jira_orchestrator._core.errors import StateError
from jira_orchestrator._core.hlc import ClockDriftError

__all__ = [
    "InvalidDelta",
    "InvalidStateKey",
    "InvalidStateValue",
    "StateClockDrift",
    "StateClosed",
    "StateCorrupt",
    "StateLocked",
    "StateTypeMismatch",
]


class InvalidStateKey(StateError, ValueError):
    """A key that is not a non-empty str within the size limit."""


class InvalidStateValue(StateError, ValueError):
    """A value that is not JSON (names where), or is over the size limit."""


class InvalidDelta(StateError, ValueError):
    """A CRDT dict form or remote delta that does not parse or is refused; names the field."""


class StateClockDrift(InvalidDelta, ClockDriftError):
    """A remote delta stamped further ahead of the local clock than ``max_drift``."""


class StateTypeMismatch(StateError, TypeError):
    """The key already holds another kind of CRDT (a counter used as a set, ...)."""


class StateCorrupt(StateError):
    """The database file is damaged, not SQLite, or not a state database."""


class StateLocked(StateError):
    """The database is held by another connection (usually another process)."""


class StateClosed(StateError):
    """The store or manager was used after close()."""
