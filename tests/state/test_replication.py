"""StateReplicator on the in-process bus: limits on what peers send, and start order.

The start-order tests run in fake loop time (``looptime``) with the default 30 s
anti-entropy: state that arrives while the loop clock is still under a second came by
events, not by the periodic republishing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator.messagebus import (
    DEAD_LETTER_TOPIC,
    Message,
    MessageBus,
    close_message_bus,
    get_message_bus,
)
from jira_orchestrator.state import DistributedStateManager, change_topic

URL = "memory://state-replication"
ANTI_ENTROPY = 30.0

Open = Callable[..., Any]


@pytest.fixture
async def open_replica(tmp_path: Path) -> AsyncIterator[Open]:
    opened: list[DistributedStateManager] = []

    async def make(
        plugin_id: str, name: str, *, replicate: bool = True, **options: Any
    ) -> DistributedStateManager:
        limits = {k: options.pop(k) for k in ("max_value_bytes",) if k in options}
        manager = DistributedStateManager(
            plugin_id, path=tmp_path / f"{plugin_id}-{name}.db", **limits
        )
        opened.append(manager)
        if replicate:
            options.setdefault("anti_entropy", ANTI_ENTROPY)
            await manager.replicate(get_message_bus(plugin_id, URL), **options)
        return manager

    try:
        yield make
    finally:
        for manager in opened:
            if manager.replicator is not None:
                await manager.replicator.stop()
            manager.close()
        await close_message_bus()


async def settle(*managers: DistributedStateManager) -> None:
    for manager in managers:
        assert manager.replicator is not None
        await manager.replicator.flush()


class Letters:
    def __init__(self, bus: MessageBus) -> None:
        self.received: list[Message] = []
        self.arrived = asyncio.Event()
        bus.subscribe(f"{DEAD_LETTER_TOPIC}/*", self)

    def __call__(self, message: Message) -> None:
        self.received.append(message)
        self.arrived.set()


# -- limits on what peers send ------------------------------------------------------------


async def test_a_peer_delta_over_the_value_limit_is_refused_counted_and_dead_lettered(
    open_replica: Open,
) -> None:
    sender = await open_replica("worker", "sender", anti_entropy=None)
    receiver = await open_replica("worker", "receiver", anti_entropy=None, max_value_bytes=100)
    letters = Letters(get_message_bus("watcher", URL))
    await settle(sender, receiver)  # their start-up exchange is over
    sender.set_register("small", "fits")
    sender.set_register("big", "x" * 200)  # within the sender's limit, not the receiver's
    sender.increment_counter("after")
    await settle(sender, receiver)
    async with asyncio.timeout(10):
        await letters.arrived.wait()
    assert receiver.get_register("small") == "fits"
    assert receiver.get_register("big") is None
    assert receiver.get_counter("after") == 1  # the replicator kept going
    assert receiver.replicator is not None
    assert receiver.replicator.stats.failed_keys == 1
    (letter,) = letters.received
    assert letter.payload["reason"] == "state-merge-error"
    assert letter.payload["error"]["type"] == "InvalidDelta"
    assert "'big'" in letter.payload["error"]["message"]
    assert "over the limit of 100" in letter.payload["error"]["message"]


async def test_a_counter_total_over_the_limit_is_refused_not_a_crash(
    open_replica: Open,
) -> None:
    receiver = await open_replica("worker", "receiver", anti_entropy=None, max_value_bytes=100)
    forger = get_message_bus("worker", URL)  # a replica of the same plugin, buggy or hostile
    huge = {"type": "pncounter", "p": {"peer": 10**150}, "n": {}}
    fine = {"type": "pncounter", "p": {"peer": 3}, "n": {}}
    await forger.publish(
        topic=change_topic("worker"),
        payload={"replica": "peer", "delta": {"huge": huge, "fine": fine}, "snapshot": False},
    )
    await settle(receiver)
    assert receiver.get_counter("fine") == 3
    assert receiver.get_counter("huge") == 0
    assert receiver.replicator is not None
    assert receiver.replicator.stats.failed_keys == 1


# -- start order: no waiting for anti-entropy ------------------------------------------------


@pytest.mark.looptime
async def test_an_importer_started_first_has_the_exports_as_the_exporter_starts(
    open_replica: Open,
) -> None:
    loop = asyncio.get_running_loop()
    backend = await open_replica("fastapi-backend", "main", imports=["jira-orchestrator"])
    await settle(backend)
    started = loop.time()
    jira = await open_replica("jira-orchestrator", "main", replicate=False)
    jira.set_register("jira_issues", ["SHOP-1"])
    await jira.replicate(get_message_bus("jira-orchestrator", URL), exports=["jira_issues"])
    value = await backend.import_state("jira-orchestrator", "jira_issues", timeout=1.0)
    assert value == ["SHOP-1"]
    assert loop.time() - started < 1.0  # well before the 30 s anti-entropy round


@pytest.mark.looptime
async def test_an_import_waiting_for_a_plugin_answers_within_a_second_of_its_start(
    open_replica: Open,
) -> None:
    loop = asyncio.get_running_loop()
    backend = await open_replica("fastapi-backend", "main")
    waiting = asyncio.create_task(backend.import_state("jira-orchestrator", "sprint", timeout=60))
    await asyncio.sleep(5)  # fake time: the exporter starts 5 s after the import began
    assert not waiting.done()
    started = loop.time()
    jira = await open_replica("jira-orchestrator", "main")
    await jira.export_state("sprint", "S1")
    assert await waiting == "S1"
    assert loop.time() - started < 1.0


@pytest.mark.looptime
async def test_a_restarted_exporter_reaches_a_running_importer_at_once(
    open_replica: Open,
) -> None:
    loop = asyncio.get_running_loop()
    backend = await open_replica("fastapi-backend", "main", imports=["jira-orchestrator"])
    jira = await open_replica("jira-orchestrator", "main")
    await jira.export_state("sprint", "S1")
    await settle(jira, backend)
    assert await backend.import_state("jira-orchestrator", "sprint") == "S1"
    assert jira.replicator is not None
    await jira.replicator.stop()
    jira.close()
    mirror = backend.replicator._mirror  # type: ignore[union-attr]
    assert mirror is not None
    changes = mirror.watch("jira-orchestrator/sprint")
    started = loop.time()
    again = await open_replica("jira-orchestrator", "main", replicate=False)
    again.set_register("sprint", "S2")  # changed while not replicating
    await again.replicate(get_message_bus("jira-orchestrator", URL))
    async with asyncio.timeout(1.0):
        assert (await anext(changes)).value == "S2"
    assert loop.time() - started < 1.0
    await changes.aclose()


@pytest.mark.looptime
async def test_two_exporter_replicas_after_the_importer_answer_at_once(
    open_replica: Open,
) -> None:
    loop = asyncio.get_running_loop()
    earlier = await open_replica("jira-orchestrator", "one")
    await earlier.export_state("tenants", ["acme"])
    assert earlier.replicator is not None
    await earlier.replicator.stop()
    earlier.close()
    backend = await open_replica("fastapi-backend", "main", imports=["jira-orchestrator"])
    started = loop.time()
    one = await open_replica("jira-orchestrator", "one")
    assert await backend.import_state("jira-orchestrator", "tenants", timeout=1.0) == ["acme"]
    two = await open_replica("jira-orchestrator", "two")  # new and empty
    await two.export_state("plan", "enterprise")
    await settle(one, two, backend)
    assert await backend.import_state("jira-orchestrator", "plan", timeout=1.0) == "enterprise"
    assert await backend.import_state("jira-orchestrator", "tenants", timeout=0) == ["acme"]
    assert one.get_register("plan") == "enterprise"
    assert two.get_register("tenants") == ["acme"]
    assert loop.time() - started < 1.0
