"""A replica of one plugin's state in its own process, for the convergence test.

Usage: python -m tests.nats._state_replica URL PATH SEED. It makes 40 random mutations
through a bus that drops 20% of the state messages it sends, prints ``DONE <increments>``,
then keeps replicating (anti-entropy every 0.2 s) and prints its state as one JSON line
every 0.1 s until its standard input closes.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from typing import Any

from jira_orchestrator.messagebus import Message, get_message_bus
from jira_orchestrator.state import DistributedStateManager


async def main(url: str, path: str, seed: int) -> None:
    rng = random.Random(seed)
    bus = get_message_bus("converging", url)
    transport = bus.transport
    send = transport.publish

    async def lossy(message: Message) -> None:
        if message.topic.startswith("state/") and rng.random() < 0.2:
            return  # lost on the way
        await send(message)

    transport.publish = lossy  # type: ignore[method-assign]
    manager = DistributedStateManager("converging", path=path)
    await manager.replicate(bus, anti_entropy=0.2)
    increments = 0
    for n in range(40):
        choice = rng.random()
        if choice < 0.4:
            step = rng.randint(1, 5)
            manager.increment_counter("hits", step)
            increments += step
        elif choice < 0.8:
            manager.add_to_set("seen", f"{seed}-{n}")
        else:
            manager.set_register("leader", f"{seed}-{n}")
        await asyncio.sleep(0)
    print(f"DONE {increments}", flush=True)
    loop = asyncio.get_running_loop()
    closed = loop.run_in_executor(None, sys.stdin.read)
    while not closed.done():
        state: dict[str, Any] = {
            "hits": manager.get_counter("hits"),
            "seen": manager.get_set("seen"),
            "leader": manager.get_register("leader"),
        }
        print(json.dumps(state, sort_keys=True), flush=True)
        await asyncio.sleep(0.1)
    assert manager.replicator is not None
    await manager.replicator.stop()
    manager.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
