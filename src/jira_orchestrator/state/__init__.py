"""Layer 2: replicated plugin state. CRDTs (pure), the SQLite store, the manager."""

from jira_orchestrator._core.errors import StateAccessDenied, StateError
from jira_orchestrator.state.crdt import CRDT, LWWRegister, ORSet, PNCounter, crdt_from_dict
from jira_orchestrator.state.errors import (
    InvalidDelta,
    InvalidStateKey,
    InvalidStateValue,
    StateClockDrift,
    StateClosed,
    StateCorrupt,
    StateLocked,
    StateTypeMismatch,
)
from jira_orchestrator.state.manager import (
    DistributedStateManager,
    StateChange,
    StateDelta,
    StateWatch,
)
from jira_orchestrator.state.replication import (
    ReplicationStats,
    StateReplicator,
    change_topic,
    export_topic,
    sync_topic,
)
from jira_orchestrator.state.store import StateStore

__all__ = [
    "CRDT",
    "DistributedStateManager",
    "InvalidDelta",
    "InvalidStateKey",
    "InvalidStateValue",
    "LWWRegister",
    "ORSet",
    "PNCounter",
    "ReplicationStats",
    "StateAccessDenied",
    "StateChange",
    "StateClockDrift",
    "StateClosed",
    "StateCorrupt",
    "StateDelta",
    "StateError",
    "StateLocked",
    "StateReplicator",
    "StateStore",
    "StateTypeMismatch",
    "StateWatch",
    "change_topic",
    "crdt_from_dict",
    "export_topic",
    "sync_topic",
]
