"""Replication latency: ``set_register`` on one replica until another replica sees it.

Each sample sets a register on replica A (a durable, fsynced commit) and waits until
replica B, a second manager of the same plugin with its own file, has merged it: what a
reader on another replica waits for. The baseline in the same run is the durable commit
alone (``set_register`` with replication off), so the ratio shows what replication adds.
Over NATS the two replicas share one connection to a private nats-server on loopback, so
each delta makes the round trip through the server. Run: ``make bench`` or
``.venv/bin/python bench/bench_state_replication.py``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import percentile, report
from jira_orchestrator.messagebus import close_message_bus, get_message_bus
from jira_orchestrator.state import DistributedStateManager

SAMPLES = 1_000


async def measure(url: str, folder: Path) -> tuple[list[float], list[float]]:
    a = DistributedStateManager("bench", path=folder / "a.db")
    b = DistributedStateManager("bench", path=folder / "b.db")
    alone = DistributedStateManager("alone", path=folder / "alone.db")
    # Two replicas in one process share their plugin's bus handle; each has its own
    # subscription and file, and ignores its own deltas by replica id.
    await a.replicate(get_message_bus("bench", url), anti_entropy=None)
    await b.replicate(get_message_bus("bench", url), anti_entropy=None)
    seen = asyncio.Event()
    watch = b.watch("reg")
    loop = asyncio.get_running_loop()

    async def reader() -> None:
        async for _ in watch:
            seen.set()

    task = loop.create_task(reader())
    replicated, local = [], []
    for n in range(SAMPLES):
        seen.clear()
        started = time.perf_counter()
        a.set_register("reg", n)
        await asyncio.wait_for(seen.wait(), 5)
        replicated.append(time.perf_counter() - started)
        started = time.perf_counter()
        alone.set_register("reg", n)
        local.append(time.perf_counter() - started)
    task.cancel()
    for manager in (a, b):
        assert manager.replicator is not None
        await manager.replicator.stop()
        manager.close()
    alone.close()
    await close_message_bus()
    return replicated, local


async def main(urls: list[str]) -> None:
    rows: list[dict[str, Any]] = []
    for url in urls:
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
            replicated, local = await measure(url, Path(tmp))
        for q in (50, 95, 99):
            ours = percentile(replicated, q) * 1000
            base = percentile(local, q) * 1000
            rows.append(
                {
                    "figure": f"{url.split(':')[0]}: set_register -> seen by replica, p{q} (ms)",
                    "replicated": ours,
                    "durable commit alone": base,
                    "ratio": ours / base,
                    "target": "p95 < 10 ms" if q == 95 and url.startswith("memory") else "",
                }
            )
    report("state_replication", rows)


if __name__ == "__main__":
    from jira_orchestrator.transports.nats_server import NatsServer

    with tempfile.TemporaryDirectory() as scratch, NatsServer(Path(scratch)) as server:
        asyncio.run(main(["memory://", server.url]))
