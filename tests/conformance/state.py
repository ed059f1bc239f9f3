"""State conformance: replicas converge, late joiners catch up, plugins share state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator import StateAccessDenied, StateError
from jira_orchestrator.messagebus import MessageBus
from jira_orchestrator.state import DistributedStateManager, change_topic
from tests.conformance.base import WAIT, eventually

Replica = Callable[..., Any]


class StateConformance:
    """Mixed into a transport's conformance class beside `BusConformance`."""

    @pytest.fixture
    async def replica(
        self, buses: Callable[[str], MessageBus], tmp_path: Path
    ) -> AsyncIterator[Replica]:
        opened: list[DistributedStateManager] = []

        async def open_replica(
            plugin_id: str,
            name: str,
            *,
            before: Callable[[DistributedStateManager], object] | None = None,
            **options: Any,
        ) -> DistributedStateManager:
            # anti-entropy off: whatever converges here does so by events alone
            manager = DistributedStateManager(plugin_id, path=tmp_path / f"{plugin_id}-{name}.db")
            opened.append(manager)
            if before is not None:  # local changes made while not replicating
                before(manager)
            options.setdefault("anti_entropy", None)
            await manager.replicate(buses(plugin_id), **options)
            return manager

        try:
            yield open_replica
        finally:
            for manager in opened:
                if manager.replicator is not None:
                    await manager.replicator.stop()
                manager.close()

    async def settle(self, *managers: DistributedStateManager) -> None:
        for manager in managers:
            assert manager.replicator is not None
            await manager.replicator.flush()

    async def test_replicas_of_a_plugin_converge(self, replica: Replica) -> None:
        one = await replica("fastapi-backend", "one")
        two = await replica("fastapi-backend", "two")
        one.set_register("current_config", {"apiUrl": "https://api.example.com", "timeout": 30000})
        one.increment_counter("requests_processed", 5)
        two.increment_counter("requests_processed")
        one.add_to_set("endpoints", {"path": "/api/users", "method": "GET"})
        two.add_to_set("endpoints", {"method": "POST", "path": "/api/users"})
        await self.settle(one, two)
        await eventually(lambda: two.get_counter("requests_processed") == 6)
        await eventually(lambda: one.get_counter("requests_processed") == 6)
        await eventually(lambda: len(one.get_set("endpoints")) == 2)
        assert one.get_set("endpoints") == two.get_set("endpoints")
        assert two.get_register("current_config") == {
            "apiUrl": "https://api.example.com",
            "timeout": 30000,
        }

    async def test_a_replica_that_starts_late_catches_up(self, replica: Replica) -> None:
        early = await replica("worker", "early")
        for n in range(10):
            early.add_to_set("done", n)
        early.set_register("phase", "migrating")
        late = await replica("worker", "late")  # asks for the state when it starts
        await self.settle(late, early)
        await eventually(lambda: late.get_set("done") == list(range(10)))
        assert late.get_register("phase") == "migrating"

    async def test_a_concurrent_add_survives_a_remove(self, replica: Replica) -> None:
        one = await replica("worker", "one")
        two = await replica("worker", "two")
        one.add_to_set("active_tasks", "task_123")
        await self.settle(one)
        await eventually(lambda: two.get_set("active_tasks") == ["task_123"])
        one.remove_from_set("active_tasks", "task_123")
        two.add_to_set("active_tasks", "task_123")  # concurrent with the remove
        await self.settle(one, two)
        await eventually(lambda: one.get_set("active_tasks") == ["task_123"])
        assert two.get_set("active_tasks") == ["task_123"]

    async def test_exported_state_is_imported_even_while_the_exporter_is_offline(
        self, replica: Replica
    ) -> None:
        jira = await replica("jira-orchestrator", "main")
        backend = await replica("fastapi-backend", "main")
        issues = {"issues": [{"key": "SHOP-1", "summary": "Orders API"}]}
        await jira.export_state("jira_issues", issues)
        assert await backend.import_state("jira-orchestrator", "jira_issues") == issues
        await jira.export_state("jira_issues", {"issues": []})
        await self.settle(jira, backend)
        await eventually(lambda: backend.replicator._mirror is not None)  # type: ignore[union-attr]
        assert jira.replicator is not None
        await jira.replicator.stop()  # the exporter goes offline
        assert await backend.import_state("jira-orchestrator", "jira_issues") == {"issues": []}

    async def test_only_declared_exports_can_be_imported(self, replica: Replica) -> None:
        exporter = await replica("lobbi-platform-manager", "main", exports=["tenants"])
        importer = await replica("fastapi-backend", "main")
        await exporter.export_state("tenants", ["acme-corp"])
        exporter.set_register("secrets", {"token": "s3cr3t"})
        with pytest.raises(StateAccessDenied, match="may not export"):
            await exporter.export_state("secrets", {"token": "s3cr3t"})
        assert await importer.import_state("lobbi-platform-manager", "tenants") == ["acme-corp"]
        with pytest.raises(StateAccessDenied, match="does not export 'secrets'"):
            await importer.import_state("lobbi-platform-manager", "secrets")
        mirror = importer.replicator._mirror  # type: ignore[union-attr]
        assert mirror is not None
        assert "lobbi-platform-manager/secrets" not in mirror.snapshot()

    async def test_importing_from_a_plugin_never_seen_is_a_clear_error(
        self, replica: Replica
    ) -> None:
        importer = await replica("fastapi-backend", "main")
        with pytest.raises(StateError, match="no state of 'ghost'"):
            await importer.import_state("ghost", "anything", timeout=0.2)

    async def test_a_plugin_cannot_write_another_plugins_state(
        self, replica: Replica, buses: Callable[[str], MessageBus]
    ) -> None:
        victim = await replica("lobbi-platform-manager", "main")
        victim.set_register("plan", "starter")
        forged = {"plan": {"type": "lww", "value": "enterprise", "timestamp": "9999999999999:0:x"}}
        intruder = buses("intruder")
        await intruder.publish(
            topic=change_topic("lobbi-platform-manager"),
            payload={"replica": "fake", "delta": forged, "snapshot": False},
        )
        await self.settle(victim)
        assert victim.get_register("plan") == "starter"
        assert victim.replicator is not None
        assert victim.replicator.stats.rejected == 1

    async def test_sharing_without_replication_says_what_to_do(self, tmp_path: Path) -> None:
        manager = DistributedStateManager("lonely", path=tmp_path / "lonely.db")
        try:
            with pytest.raises(StateError, match="replicate"):
                await manager.export_state("k", 1)
        finally:
            manager.close()

    async def test_replication_through_another_plugins_handle_is_refused(
        self, buses: Callable[[str], MessageBus], tmp_path: Path
    ) -> None:
        manager = DistributedStateManager("owner", path=tmp_path / "owner.db")
        try:
            with pytest.raises(StateAccessDenied):
                await manager.replicate(buses("someone-else"))
        finally:
            manager.close()

    # -- start order: importers that start before the exporter ------------------------------

    async def test_an_importer_started_first_gets_the_exports_when_the_exporter_starts(
        self, replica: Replica
    ) -> None:
        issues = {"issues": [{"key": "SHOP-1"}]}
        backend = await replica("fastapi-backend", "main", imports=["jira-orchestrator"])
        await self.settle(backend)  # asked for jira's state; nobody answered
        mirror = backend.replicator._mirror  # type: ignore[union-attr]
        assert mirror is not None
        arrived = mirror.watch("jira-orchestrator/jira_issues")
        jira = await replica(
            "jira-orchestrator",
            "main",
            exports=["jira_issues"],
            before=lambda m: m.set_register("jira_issues", issues),
        )
        async with asyncio.timeout(WAIT):
            change = await anext(arrived)
        assert change.value == issues
        await arrived.aclose()
        assert await backend.import_state("jira-orchestrator", "jira_issues", timeout=0) == issues
        assert jira.replicator is not None

    async def test_an_import_waiting_for_a_plugin_answers_when_it_starts(
        self, replica: Replica
    ) -> None:
        backend = await replica("fastapi-backend", "main")
        waiting = asyncio.create_task(
            backend.import_state("jira-orchestrator", "jira_issues", timeout=WAIT)
        )
        await self.settle(backend)
        assert not waiting.done()
        await replica(
            "jira-orchestrator",
            "main",
            exports=["jira_issues"],
            before=lambda m: m.set_register("jira_issues", ["SHOP-1"]),
        )
        assert await waiting == ["SHOP-1"]

    async def test_a_restarted_exporter_sends_what_changed_while_it_was_down(
        self, replica: Replica
    ) -> None:
        backend = await replica("fastapi-backend", "main", imports=["jira-orchestrator"])
        jira = await replica("jira-orchestrator", "main")
        await jira.export_state("sprint", "S1")
        await self.settle(jira, backend)
        assert await backend.import_state("jira-orchestrator", "sprint") == "S1"
        assert jira.replicator is not None
        await jira.replicator.stop()
        jira.close()
        mirror = backend.replicator._mirror  # type: ignore[union-attr]
        assert mirror is not None
        changed = mirror.watch("jira-orchestrator/sprint")
        restarted = await replica(  # the same file, changed offline, then replicating again
            "jira-orchestrator", "main", before=lambda m: m.set_register("sprint", "S2")
        )
        async with asyncio.timeout(WAIT):
            assert (await anext(changed)).value == "S2"
        await changed.aclose()
        assert await backend.import_state("jira-orchestrator", "sprint") == "S2"
        assert restarted.get_register("sprint") == "S2"

    async def test_an_exporter_with_two_replicas_started_after_the_importer(
        self, replica: Replica
    ) -> None:
        earlier = await replica("jira-orchestrator", "one")
        await earlier.export_state("tenants", ["acme"])
        assert earlier.replicator is not None
        await earlier.replicator.stop()  # it ran once and is down when the importer starts
        earlier.close()
        backend = await replica("fastapi-backend", "main", imports=["jira-orchestrator"])
        waiting = asyncio.create_task(
            backend.import_state("jira-orchestrator", "tenants", timeout=WAIT)
        )
        await self.settle(backend)
        one = await replica("jira-orchestrator", "one")
        assert await waiting == ["acme"]
        two = await replica("jira-orchestrator", "two")  # a new replica, empty so far
        await self.settle(one, two, backend)
        await eventually(lambda: two.get_register("tenants") == ["acme"])
        await two.export_state("plan", "enterprise")
        await self.settle(two, backend)
        mirror = backend.replicator._mirror  # type: ignore[union-attr]
        assert mirror is not None
        await eventually(lambda: mirror.get_register("jira-orchestrator/plan") == "enterprise")
        assert await backend.import_state("jira-orchestrator", "tenants") == ["acme"]
        for running in (one, two):
            assert running.replicator is not None
            await running.replicator.stop()
        # Alone, a new empty replica does not hide what the others exported: it exports
        # what it knows, and the importer keeps what it learnt from the others.
        three = await replica("jira-orchestrator", "three")
        await self.settle(three, backend)
        assert await backend.import_state("jira-orchestrator", "tenants") == ["acme"]
        assert await backend.import_state("jira-orchestrator", "plan") == "enterprise"
