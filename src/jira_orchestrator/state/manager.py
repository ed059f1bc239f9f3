"""`DistributedStateManager`: a plugin's registers, counters and sets, durable and mergeable.

Every mutation is committed to SQLite (fsynced) before the call returns, then handed as a
*delta* to the ``on_delta`` hook, which is where replication plugs in:

- a delta, like a snapshot, is ``{key: crdt_dict}`` (JSON-serialisable, see `crdt`);
- ``on_delta(delta)`` is called after each local mutation, synchronously, outside the
  manager's lock, after the commit; it must not block (schedule the publish) and its
  exceptions are logged, not raised, since the mutation is already acknowledged;
- on receipt, ``apply_remote(delta)`` merges and persists, and never calls ``on_delta``;
- ``snapshot()`` is the full state, for anti-entropy: a replica that missed deltas calls
  ``apply_remote(peer_snapshot)`` and converges.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeAlias, TypeVar

from jira_orchestrator._core.errors import StateError
from jira_orchestrator._core.hlc import ClockDriftError, HybridLogicalClock
from jira_orchestrator.state.crdt import (
    CRDT,
    JSON,
    LWWRegister,
    ORSet,
    PNCounter,
    canonical_json,
    crdt_from_dict,
)
from jira_orchestrator.state.errors import (
    InvalidDelta,
    InvalidStateKey,
    InvalidStateValue,
    StateClockDrift,
    StateClosed,
    StateCorrupt,
    StateTypeMismatch,
)
from jira_orchestrator.state.store import DEFAULT_MAX_KEY_BYTES, StateStore, validate_key

if TYPE_CHECKING:
    from jira_orchestrator.messagebus import MessageBus
    from jira_orchestrator.state.replication import StateReplicator

__all__ = [
    "DEFAULT_STATE_PATH",
    "DistributedStateManager",
    "StateChange",
    "StateDelta",
    "StateWatch",
]

DEFAULT_STATE_PATH = Path(".claude-plugin") / "state.db"

StateDelta: TypeAlias = dict[str, dict[str, Any]]
"""``{key: crdt_dict}``: passed to ``on_delta``, from ``snapshot``, to ``apply_remote``."""

_C = TypeVar("_C", bound=CRDT)
_PLUGIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_COMPACT_FLOOR_BYTES = 32 * 1024  # a set's deltas are kept apart up to this much at least
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StateChange:
    """A key's new value; ``remote`` is True when it came from `apply_remote`."""

    key: str
    value: JSON
    remote: bool


class StateWatch:
    """Async iterator of a key's `StateChange`; made by `DistributedStateManager.watch`.

    Keeps the newest ``maxsize`` changes: a consumer that falls behind skips older ones but
    always gets the latest value. Ends when closed or when the manager closes.
    """

    def __init__(self, manager: DistributedStateManager, key: str, maxsize: int) -> None:
        self.key = key
        self._manager = manager
        self._loop = asyncio.get_running_loop()
        self._pending: collections.deque[StateChange] = collections.deque(maxlen=maxsize)
        self._wakeup = asyncio.Event()
        self._closed = False

    def _push(self, change: StateChange | None) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._deliver(change)
        else:
            try:
                self._loop.call_soon_threadsafe(self._deliver, change)
            except RuntimeError:  # the watcher's loop is closed: nobody is listening
                self._manager._unwatch(self)

    def _deliver(self, change: StateChange | None) -> None:
        if change is None:
            self._closed = True
        else:
            self._pending.append(change)
        self._wakeup.set()

    def __aiter__(self) -> StateWatch:
        return self

    async def __anext__(self) -> StateChange:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._pending.popleft()

    async def aclose(self) -> None:
        """Stop watching; pending changes are dropped."""
        self._manager._unwatch(self)
        self._pending.clear()
        self._deliver(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class DistributedStateManager:
    """A plugin's state: LWW registers, PN-counters and add-wins sets, one kind per key.

    Mutations are synchronous and durable: on disk (SQLite WAL, fsynced) when they return.
    Thread-safe. ``path`` defaults to ``.claude-plugin/state.db`` in the working directory;
    one manager owns a file at a time (`StateLocked` otherwise). ``clock`` gives wall time
    in seconds for the register timestamps; remote timestamps more than ``max_drift``
    seconds ahead are rejected (`StateClockDrift`). See the module docstring for
    ``on_delta``, `apply_remote` and `snapshot`.
    """

    def __init__(
        self,
        plugin_id: str,
        *,
        path: str | os.PathLike[str] | None = None,
        on_delta: Callable[[StateDelta], object] | None = None,
        clock: Callable[[], float] = time.time,
        max_drift: float = 60.0,
        max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
        max_value_bytes: int = 1 << 20,
        lock_timeout: float = 5.0,
    ) -> None:
        if not isinstance(plugin_id, str) or not _PLUGIN_ID.fullmatch(plugin_id):
            raise ValueError(
                f"plugin_id must be letters, digits, '.', '_' or '-' (at most 128), "
                f"got {plugin_id!r}"
            )
        for name, limit in (("max_key_bytes", max_key_bytes), ("max_value_bytes", max_value_bytes)):
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"{name} must be an int >= 1, got {limit!r}")
        self.plugin_id = plugin_id
        self.on_delta = on_delta
        self.max_key_bytes = max_key_bytes
        self.max_value_bytes = max_value_bytes
        self._lock = threading.RLock()
        self._closed = False
        self._watches: dict[str, set[StateWatch]] = {}
        self.replicator: StateReplicator | None = None
        self._store = StateStore(
            DEFAULT_STATE_PATH if path is None else path,
            plugin_id=plugin_id,
            timeout=lock_timeout,
            max_key_bytes=max_key_bytes,
        )
        try:
            self._state = self._load()
            stamps = [c.timestamp for c in self._state.values() if isinstance(c, LWWRegister)]
            last = max((ts for ts in stamps if ts is not None), default=None)
            self._clock = HybridLogicalClock(
                self._store.replica_id, clock=clock, max_drift=max_drift, last=last
            )
        except BaseException:
            self._store.close()
            raise

    def _load(self) -> dict[str, CRDT]:
        state: dict[str, CRDT] = {}
        for key, data in self._store.load().items():
            try:
                state[key] = crdt_from_dict(data)
            except InvalidDelta as exc:
                raise StateCorrupt(f"state database {self.path}: key {key!r}: {exc}") from None
        self._row_bytes = self._store.row_sizes()
        self._log_bytes: dict[str, int] = {}
        for key, data, size in self._store.load_log():
            try:
                delta = crdt_from_dict(data)
                state.setdefault(key, type(delta)()).merge(delta)
            except (InvalidDelta, StateTypeMismatch) as exc:
                raise StateCorrupt(
                    f"state database {self.path}: a delta of key {key!r}: {exc}"
                ) from None
            self._log_bytes[key] = self._log_bytes.get(key, 0) + size
        return state

    @property
    def path(self) -> Path:
        """The absolute path of the SQLite file."""
        return self._store.path

    @property
    def replica_id(self) -> str:
        """This file's replica id, random at creation and kept across restarts."""
        return self._store.replica_id

    def _check_open(self) -> None:
        if self._closed:
            raise StateClosed(f"state manager of {self.plugin_id!r} is closed")

    def _get(self, key: object, kind: type[_C]) -> _C | None:
        key = validate_key(key, self.max_key_bytes)
        with self._lock:
            self._check_open()
            current = self._state.get(key)
        if current is not None and not isinstance(current, kind):
            raise StateTypeMismatch(f"key {key!r} holds a {current.KIND}, not a {kind.KIND}")
        return current

    def _mutate(self, key: object, kind: type[_C], change: Callable[[_C], _C]) -> _C:
        """Apply ``change(current)``, which returns a delta and leaves ``current`` as is."""
        key = validate_key(key, self.max_key_bytes)
        with self._lock:
            current = self._get(key, kind)
            base = current if current is not None else kind()
            delta = change(base)
            if delta == kind():  # nothing changed (a remove of an absent element, + 0)
                return base
            delta.check_size(self.max_value_bytes)  # a counter's total, as a remote gets
            old = self._old_value(key, current, kind)
            wire = delta.to_dict()
            if kind is ORSet and not self._compaction_due(key):
                # A set can be large and a delta is small: append the delta, then merge it
                # in place once it is on disk. No copy, no rewriting of the whole set.
                self._log_bytes[key] = (
                    self._log_bytes.get(key, 0) + self._store.append({key: wire})[key]
                )
                base.merge(delta)
                updated: _C = base
            else:  # small values, or time to write the set whole and drop its deltas
                updated = base.copy()
                updated.merge(delta)
                self._put({key: updated})
            self._state[key] = updated
            self._notify(key, old, updated, remote=False)
        self._send({key: wire})
        return updated

    def _compaction_due(self, key: str) -> bool:
        # Deltas are appended until they outweigh the row they follow (and a floor), so
        # rewriting a set costs its size once per as many bytes of deltas: amortised O(1).
        logged = self._log_bytes.get(key, 0)
        return logged >= max(_COMPACT_FLOOR_BYTES, self._row_bytes.get(key, 0))

    def _put(self, rows: Mapping[str, CRDT]) -> None:
        sizes = self._store.put({key: crdt.to_dict() for key, crdt in rows.items()})
        self._row_bytes.update(sizes)
        for key in sizes:
            self._log_bytes.pop(key, None)

    def _old_value(self, key: str, current: CRDT | None, kind: type[CRDT]) -> JSON:
        """The value watchers compare against, computed only when someone watches."""
        if not self._watches.get(key):
            return None
        return (current if current is not None else kind()).value

    def _notify(self, key: str, old: JSON, after: CRDT, *, remote: bool) -> None:
        watches = self._watches.get(key)
        if not watches:
            return
        value = after.value
        if canonical_json(old) == canonical_json(value):
            return
        for watch in list(watches):
            watch._push(StateChange(key, value, remote))

    def _send(self, delta: StateDelta) -> None:
        hook = self.on_delta
        if hook is None:
            return
        try:
            hook(delta)
        except Exception:
            # The mutation is committed and acknowledged; anti-entropy repairs a lost delta.
            _log.exception("state %s: on_delta hook failed", self.plugin_id)

    def set_register(self, key: str, value: JSON) -> None:
        """Set a last-writer-wins register; raises `InvalidStateValue` if not JSON."""
        canonical_json(value, max_bytes=self.max_value_bytes)
        self._mutate(key, LWWRegister, lambda _: LWWRegister(value, self._clock.now()))

    def get_register(self, key: str, default: JSON = None) -> JSON:
        """The register's value, or ``default`` if the key was never set."""
        with self._lock:
            reg = self._get(key, LWWRegister)
            return default if reg is None else reg.value

    def increment_counter(self, key: str, n: int = 1) -> int:
        """Add ``n`` (an int) to a counter; returns the new value."""
        return self._mutate(key, PNCounter, lambda c: c.copy().increment(self.replica_id, n)).value

    def decrement_counter(self, key: str, n: int = 1) -> int:
        """Subtract ``n`` (an int) from a counter; returns the new value."""
        return self._mutate(key, PNCounter, lambda c: c.copy().decrement(self.replica_id, n)).value

    def get_counter(self, key: str) -> int:
        """The counter's value; 0 if the key was never used."""
        with self._lock:
            counter = self._get(key, PNCounter)
            return 0 if counter is None else counter.value

    def add_to_set(self, key: str, element: JSON) -> None:
        """Add a JSON element (objects are equal whatever their key order)."""
        canonical_json(element, max_bytes=self.max_value_bytes, what="element")
        self._mutate(key, ORSet, lambda s: s.add_delta(element, self.replica_id))

    def remove_from_set(self, key: str, element: JSON) -> None:
        """Remove an element; a concurrent add elsewhere wins (add-wins)."""
        canonical_json(element, what="element")
        self._mutate(key, ORSet, lambda s: s.remove_delta(element))

    def get_set(self, key: str) -> list[JSON]:
        """The set's elements, sorted by canonical JSON; ``[]`` if the key was never used."""
        with self._lock:  # sets change in place (see _mutate)
            found = self._get(key, ORSet)
            return [] if found is None else found.value

    def watch(self, key: str, *, maxsize: int = 64) -> StateWatch:
        """An async iterator of the key's changes, local and remote, from now on.

        Call it inside a running event loop; mutations from other threads are delivered
        through that loop.
        """
        key = validate_key(key, self.max_key_bytes)
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, got {maxsize!r}")
        try:
            watch = StateWatch(self, key, maxsize)
        except RuntimeError:
            raise RuntimeError("watch() must be called inside a running event loop") from None
        with self._lock:
            self._check_open()
            self._watches.setdefault(key, set()).add(watch)
        return watch

    def _unwatch(self, watch: StateWatch) -> None:
        with self._lock:
            self._watches.get(watch.key, set()).discard(watch)

    def snapshot(self) -> StateDelta:
        """The full state of every key, for anti-entropy."""
        with self._lock:
            self._check_open()
            return {key: crdt.to_dict() for key, crdt in self._state.items()}

    def apply_remote(self, delta: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Merge a delta or snapshot from another replica, durably; returns the changed keys.

        All or nothing: raises `InvalidDelta` (malformed, a bad key, a value over
        ``max_value_bytes`` as local writes get, or `StateClockDrift`: a register timestamp
        more than ``max_drift`` ahead) or `StateTypeMismatch` (a key of another kind here)
        before writing anything.
        """
        if not isinstance(delta, Mapping):
            raise InvalidDelta(f"a delta must be a dict of key -> CRDT, got {type(delta).__name__}")
        remote: dict[str, CRDT] = {}
        for key, data in delta.items():
            try:
                validate_key(key, self.max_key_bytes)
            except InvalidStateKey as exc:
                raise InvalidDelta(f"delta key: {exc}") from None
            try:
                crdt = remote[key] = crdt_from_dict(data)
                crdt.check_size(self.max_value_bytes)
            except (InvalidDelta, InvalidStateValue) as exc:
                raise InvalidDelta(f"delta key {key!r}: {exc}") from None
        stamps = [c.timestamp for c in remote.values() if isinstance(c, LWWRegister)]
        latest = max((ts for ts in stamps if ts is not None), default=None)
        with self._lock:
            self._check_open()
            merged: dict[str, tuple[CRDT | None, CRDT]] = {}
            for key, theirs in remote.items():
                mine = self._get(key, type(theirs))
                updated = mine.copy() if mine is not None else type(theirs)()
                if updated.merge(theirs):
                    merged[key] = (mine, updated)
            if latest is not None:
                try:
                    self._clock.update(latest)
                except ClockDriftError as exc:
                    raise StateClockDrift(exc.remote, exc.local_wall_ms, exc.max_drift) from None
            olds = {
                key: self._old_value(key, mine, type(new)) for key, (mine, new) in merged.items()
            }
            self._put({key: updated for key, (_, updated) in merged.items()})
            for key, (_, updated) in merged.items():
                self._state[key] = updated
                self._notify(key, olds[key], updated, remote=True)
        return sorted(merged)

    async def replicate(self, bus: MessageBus, **options: Any) -> StateReplicator:
        """Replicate this state over ``bus`` (the plugin's own handle) and enable sharing.

        ``options`` are those of `StateReplicator` (``exports``, ``imports``,
        ``anti_entropy``, ``mirror_path``). Idempotent. Stop with ``await
        manager.replicator.stop()`` before `close`.
        """
        if self.replicator is None:
            from jira_orchestrator.state.replication import StateReplicator

            replicator = StateReplicator(self, bus, **options)
            await replicator.start()
            self.replicator = replicator
        return self.replicator

    def _sharing(self) -> StateReplicator:
        if self.replicator is None:
            raise StateError(
                f"state of {self.plugin_id}: sharing needs replication; call "
                "`await manager.replicate(bus)` first (a started Plugin does)"
            )
        return self.replicator

    async def export_state(self, key: str, value: JSON) -> None:
        """Set ``key`` and let other plugins import it (see `StateReplicator`).

        Raises `StateAccessDenied` when the manifest's ``sharing.exports`` omits ``key``.
        """
        await self._sharing().export_state(key, value)

    async def import_state(self, plugin_id: str, key: str, *, timeout: float = 2.0) -> JSON:
        """``plugin_id``'s latest exported value of ``key``, even while it is offline.

        Raises `StateAccessDenied` for a key it does not export to this plugin, and
        `StateError` when nothing of ``plugin_id`` has ever reached this replica.
        """
        return await self._sharing().import_state(plugin_id, key, timeout=timeout)

    def close(self) -> None:
        """Close the file and end every watch; idempotent."""
        with self._lock:
            self._closed = True
            self._store.close()
            watches = [w for group in self._watches.values() for w in group]
            self._watches.clear()
        for watch in watches:
            watch._push(None)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
