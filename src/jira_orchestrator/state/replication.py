"""Replication of a plugin's state over the bus, and sharing state between plugins.

Replicas of one plugin (processes sharing its id, each with its own file) exchange deltas
on ``state/<id>/change``: every local mutation is published once committed, and every
replica merges what it receives (CRDT merges are idempotent and commutative, so order,
duplicates and replays do not matter). Anti-entropy repairs what was missed: a replica
that starts publishes ``state/<id>/sync`` and every peer answers by publishing its full
snapshot on ``state/<id>/change``; the starting replica publishes its own snapshot too
(on ``change`` and, for its exports, on ``export``), so what changed while it was down
reaches its peers and the importers already running at once; each replica also
republishes its snapshot every ``anti_entropy`` seconds. Push, not request/response:
nobody waits on a peer that is down.

Sharing: ``export_state(key, value)`` sets a register other plugins may read with
``import_state(plugin_id, key)``. Changes to exported keys are also published, alone, on
``state/<id>/export``; importers keep a durable mirror of them, so an import answers from
the mirror even while the exporter is offline, and no importer ever receives a key that is
not exported. When the exporter's manifest lists
``stateManagement.sharing.exports``, only those keys may be exported or imported
(`StateAccessDenied` otherwise). A change message is accepted only from the plugin that
owns the state: no plugin can write another's.

Wire form (payloads)::

    state/<id>/change   {"replica": "<replica id>", "delta": {key: crdt_dict}, "snapshot": false}
    state/<id>/export   {"replica": ..., "delta": {exported key: crdt_dict}, "exports": [keys],
                         "sharedWith": [ids], "declared": true, "snapshot": false}
    state/<id>/sync     {"replica": "<asking replica>", "exportsOnly": false}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jira_orchestrator._core import observe
from jira_orchestrator._core.clock import parse_timestamp
from jira_orchestrator._core.errors import StateAccessDenied, StateError
from jira_orchestrator._core.identity import sender_of
from jira_orchestrator._core.protocol import state_change, state_export, state_sync
from jira_orchestrator._core.tasks import BackgroundTasks
from jira_orchestrator._core.text import escape_control
from jira_orchestrator.messagebus import Message, MessageBus, Subscription
from jira_orchestrator.state.crdt import JSON

if TYPE_CHECKING:
    from jira_orchestrator.state.manager import DistributedStateManager, StateDelta

__all__ = ["ReplicationStats", "StateReplicator", "change_topic", "export_topic", "sync_topic"]

log = logging.getLogger("jira_orchestrator.state.replication")

EXPORTED = "__exported__"  # the set of keys export_state has shared, when no list is declared
_POLICY = "__exports__"  # in a mirror: the exporter's importable keys


def change_topic(plugin_id: str) -> str:
    """Where ``plugin_id``'s replicas publish their deltas and snapshots."""
    return state_change(plugin_id)


def export_topic(plugin_id: str) -> str:
    """Where ``plugin_id`` publishes changes to the keys it exports, and nothing else."""
    return state_export(plugin_id)


def sync_topic(plugin_id: str) -> str:
    """Where anyone asks ``plugin_id``'s replicas to publish their full state."""
    return state_sync(plugin_id)


@dataclass
class ReplicationStats:
    """Counters of one replicator."""

    published: int = 0
    applied: int = 0
    rejected: int = 0  # from a plugin that does not own the state, or malformed
    failed_keys: int = 0  # keys a peer sent that could not be merged here


class StateReplicator:
    """Keeps one `DistributedStateManager` in step with its replicas and its imports.

    ``exports`` is the manifest's ``stateManagement.sharing.exports`` (None: any key
    passed to ``export_state``), ``shared_with`` its ``sharedWith`` (plugin ids that may
    import; ``*`` is anyone); ``imports`` names plugins whose exported state to mirror
    from the start; ``mirror_path`` is the mirror's SQLite file (default: beside the
    state file). Use `DistributedStateManager.replicate` rather than building one.
    """

    def __init__(
        self,
        manager: DistributedStateManager,
        bus: MessageBus,
        *,
        exports: Sequence[str] | None = None,
        shared_with: Sequence[str] = ("*",),
        imports: Iterable[str] = (),
        anti_entropy: float | None = 30.0,
        mirror_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if bus.plugin_id != manager.plugin_id:
            raise StateAccessDenied(
                f"the state of {manager.plugin_id!r} can only be replicated through its own "
                f"bus handle, not {bus.plugin_id!r}'s"
            )
        self.manager = manager
        self.bus = bus
        self.owner = manager.plugin_id
        self.exports = None if exports is None else list(exports)
        self.shared_with = list(shared_with)
        self.anti_entropy = anti_entropy
        self.stats = ReplicationStats()
        self._imports = list(imports)
        self._mirror_path = Path(mirror_path) if mirror_path else _beside(manager.path)
        self._mirror: DistributedStateManager | None = None
        self._mirrored: dict[str, asyncio.Event] = {}  # plugin -> set at its next message
        self._subscriptions: list[Subscription] = []
        self._tasks = BackgroundTasks(log, "publishing a state change")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._beat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Publish local changes, merge the replicas', and ask them for their state."""
        self._loop = asyncio.get_running_loop()
        self.manager.on_delta = self._local_delta
        self._subscriptions.append(
            self.bus.subscribe(change_topic(self.owner), self._on_change, max_concurrency=1)
        )
        self._subscriptions.append(self.bus.subscribe(sync_topic(self.owner), self._on_sync))
        await self.bus.publish(
            topic=sync_topic(self.owner), payload={"replica": self.manager.replica_id}
        )
        # Announce this replica's state: what changed while it was down reaches its peers,
        # and its exports reach the importers already running, without waiting for them
        # to ask or for the next anti-entropy round.
        await self.publish_snapshot()
        for plugin in self._imports:
            await self._mirror_plugin(plugin)
        if self.anti_entropy:
            self._beat = self._loop.create_task(self._repeat(self.anti_entropy))

    async def stop(self) -> None:
        """Stop replicating; local mutations stay durable and are sent again at next start."""
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        self.manager.on_delta = None
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()
        await self._tasks.wait()
        if self._mirror is not None:
            self._mirror.close()
            self._mirror = None

    async def flush(self) -> None:
        """Wait until local changes are published and this process's subscribers have
        merged what was published so far (for tests and orderly shutdowns)."""
        await asyncio.sleep(0)  # run the publishes that mutating threads scheduled
        await self._tasks.wait()
        await self.bus.flush()

    # -- replicas of this plugin ------------------------------------------------------------

    def exported_keys(self) -> list[str]:
        """Keys other plugins may import from this one."""
        if self.exports is not None:
            return list(self.exports)
        return [str(key) for key in self.manager.get_set(EXPORTED)]

    def _local_delta(self, delta: StateDelta) -> None:
        # Called in the mutating thread after the commit: hand over to the loop.
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._spawn, delta, False)

    def _spawn(self, delta: StateDelta, snapshot: bool) -> None:
        self._tasks.spawn(self._publish(delta, snapshot))

    async def _publish(self, delta: StateDelta, snapshot: bool, *, replicas: bool = True) -> None:
        replica = self.manager.replica_id
        try:
            if replicas:
                await self.bus.publish(
                    topic=change_topic(self.owner),
                    payload={"replica": replica, "delta": delta, "snapshot": snapshot},
                )
                self.stats.published += 1
            exports = self.exported_keys()
            shared = {key: crdt for key, crdt in delta.items() if key in exports}
            if shared or snapshot or EXPORTED in delta:
                await self.bus.publish(
                    topic=export_topic(self.owner),
                    payload={
                        "replica": replica,
                        "delta": shared,
                        "exports": exports,
                        "sharedWith": self.shared_with,
                        "declared": self.exports is not None,
                        "snapshot": snapshot,
                    },
                )
        except Exception:  # anti-entropy sends it again; the mutation is already durable
            log.exception("state %s: could not publish a delta", self.owner)

    async def publish_snapshot(self, *, exports_only: bool = False) -> None:
        """Publish the full state (what peers use to repair missed deltas)."""
        await self._publish(self.manager.snapshot(), True, replicas=not exports_only)

    async def _repeat(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.publish_snapshot()

    async def _on_sync(self, message: Message) -> None:
        payload = message.payload if isinstance(message.payload, Mapping) else {}
        if payload.get("replica") != self.manager.replica_id:
            await self.publish_snapshot(exports_only=bool(payload.get("exportsOnly")))

    async def _on_change(self, message: Message) -> None:
        decoded = self._decode(message, self.owner)
        if decoded is None:
            return
        replica, delta, _ = decoded
        if replica == self.manager.replica_id:
            return
        await self._merge(self.manager, delta, message, lambda key: key)

    def _decode(
        self, message: Message, owner: str
    ) -> tuple[str, Mapping[str, Any], list[str]] | None:
        payload = message.payload
        # the owner's topic and the owner's name in the envelope, both (_core.identity)
        if sender_of(message.topic, message.source) != owner:
            self.stats.rejected += 1
            log.warning(
                "state of %s: refused a change sent by %r (only %s writes its state)",
                owner,
                message.source,
                owner,
            )
            return None
        if (
            not isinstance(payload, Mapping)
            or not isinstance(payload.get("delta"), Mapping)
            or not isinstance(payload.get("replica"), str)
        ):
            self.stats.rejected += 1
            log.warning("state of %s: malformed change message on %s", owner, message.topic)
            return None
        exports = payload.get("exports")
        keys = [k for k in exports if isinstance(k, str)] if isinstance(exports, list) else []
        return payload["replica"], payload["delta"], keys

    async def _merge(
        self,
        target: DistributedStateManager,
        delta: Mapping[str, Any],
        message: Message,
        rename: Any,
    ) -> None:
        metrics = observe.active()
        if metrics is not None:
            with contextlib.suppress(ValueError):
                lag = self.bus.config.clock() - parse_timestamp(message.timestamp)
                owner = (message.source or "-",)
                metrics.observe("state_replication_lag_seconds", owner, max(0.0, lag))
        # Key by key: one key that cannot merge (another kind here, a skewed clock) must
        # not keep the others from converging. It goes to the dead letters instead.
        for key, crdt in delta.items():
            try:
                if target.apply_remote({rename(key): crdt}):
                    self.stats.applied += 1
            except StateError as error:
                self.stats.failed_keys += 1
                log.warning(
                    "state: key %r from %r not merged: %s",
                    key,
                    message.source,
                    escape_control(error),
                )
                await self.bus.dead_letter(message, reason="state-merge-error", error=error)

    # -- sharing between plugins ------------------------------------------------------------

    async def export_state(self, key: str, value: JSON) -> None:
        """Set ``key`` and let other plugins import it."""
        if self.exports is not None and key not in self.exports:
            raise StateAccessDenied(
                f"{self.owner} may not export {key!r}: stateManagement.sharing.exports "
                f"lists only {self.exports}"
            )
        self.manager.set_register(key, value)
        if self.exports is None and key not in self.manager.get_set(EXPORTED):
            self.manager.add_to_set(EXPORTED, key)

    async def import_state(self, plugin_id: str, key: str, *, timeout: float = 2.0) -> JSON:
        """The latest value of ``plugin_id``'s exported ``key``, from the local mirror.

        The first import of a plugin subscribes to it and asks its replicas for their
        state. An import waits at most ``timeout`` seconds while nothing of ``plugin_id``
        has reached this replica or it exports nothing yet; a plugin that starts in the
        meantime answers at once, since a replica announces its exports when it starts.
        Raises `StateAccessDenied` for a key the exporter does not export, `StateError`
        when no state of ``plugin_id`` has ever reached this replica.
        """
        if plugin_id == self.owner:
            return self.manager.get_register(key)
        mirror = await self._mirror_plugin(plugin_id)
        policy = f"{plugin_id}/{_POLICY}"
        try:
            async with asyncio.timeout(timeout):
                # Wait while nothing of it has arrived, or while it exports nothing yet (a
                # plugin that has just started may export in a moment).
                while not mirror.get_register(policy):
                    await self._mirrored[plugin_id].wait()
        except TimeoutError:
            if mirror.get_register(policy) is None:
                raise StateError(
                    f"no state of {plugin_id!r} has reached {self.owner!r} "
                    f"(is {plugin_id} running, and does it export state?)"
                ) from None
        allowed = mirror.get_register(policy) or []
        if not isinstance(allowed, list) or key not in allowed:
            raise StateAccessDenied(f"{plugin_id} does not export {key!r} (it exports {allowed})")
        return mirror.get_register(f"{plugin_id}/{key}")

    async def _mirror_plugin(self, plugin_id: str) -> DistributedStateManager:
        mirror = self._open_mirror()
        if plugin_id not in self._mirrored:
            self._mirrored[plugin_id] = asyncio.Event()

            async def on_change(message: Message) -> None:
                await self._on_foreign_change(plugin_id, message)

            self._subscriptions.append(self.bus.subscribe(export_topic(plugin_id), on_change))
            await self.bus.publish(
                topic=sync_topic(plugin_id),
                payload={"replica": self.manager.replica_id, "exportsOnly": True},
            )
        return mirror

    async def _on_foreign_change(self, plugin_id: str, message: Message) -> None:
        decoded = self._decode(message, plugin_id)
        if decoded is None:
            return
        _, delta, exports = decoded
        audience = message.payload.get("sharedWith", ["*"])
        mirror = self._open_mirror()
        known = mirror.get_register(f"{plugin_id}/{_POLICY}")
        if isinstance(audience, list) and "*" not in audience and self.owner not in audience:
            exports = []  # this plugin may import nothing from that one
        elif message.payload.get("declared") is False and isinstance(known, list):
            # Keys shared by export_state are never withdrawn, and a replica that has not
            # caught up yet (a new one) knows fewer of them: what any replica exported stays.
            exports = [*known, *exports]
        policy = sorted(set(exports))
        if known != policy:
            mirror.set_register(f"{plugin_id}/{_POLICY}", policy)
        shared = {key: crdt for key, crdt in delta.items() if key in exports}
        await self._merge(mirror, shared, message, lambda key: f"{plugin_id}/{key}")
        arrived, self._mirrored[plugin_id] = self._mirrored[plugin_id], asyncio.Event()
        arrived.set()  # wakes the imports waiting for this message, and only them

    def _open_mirror(self) -> DistributedStateManager:
        if self._mirror is None:
            from jira_orchestrator.state.manager import DistributedStateManager

            self._mirror = DistributedStateManager(f"{self.owner}.imports", path=self._mirror_path)
        return self._mirror


def _beside(path: Path) -> Path:
    return path.with_name(f"{path.stem}.imports{path.suffix or '.db'}")
