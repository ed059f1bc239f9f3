"""State conformance: replicas converge, late joiners catch up, plugins share state."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator import StateAccessDenied, StateError
from jira_orchestrator.messagebus import MessageBus
from jira_orchestrator.state import DistributedStateManager, change_topic
from tests.conformance.base import eventually

Replica = Callable[..., Any]


class StateConformance:
    """Mixed into a transport's conformance class beside `BusConformance`."""

    @pytest.fixture
    async def replica(
        self, buses: Callable[[str], MessageBus], tmp_path: Path
    ) -> AsyncIterator[Replica]:
        opened: list[DistributedStateManager] = []

        async def open_replica(
            plugin_id: str, name: str, **options: Any
        ) -> DistributedStateManager:
            manager = DistributedStateManager(plugin_id, path=tmp_path / f"{plugin_id}-{name}.db")
            options.setdefault("anti_entropy", None)
            await manager.replicate(buses(plugin_id), **options)
            opened.append(manager)
            return manager

        yield open_replica
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
