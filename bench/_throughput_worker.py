"""The other process of `bench_throughput.py`: the plugins, or the raw responder, on NATS.

    python bench/_throughput_worker.py plugins URL FOLDER   # every FOLDER/*/plugin.py
    python bench/_throughput_worker.py raw URL SUBJECT      # a trivial nats-py handler

It prints ``ready`` once it serves, and stops (plugins drained) when its standard input
closes, so it never outlives the benchmark.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any


async def _until_stdin_closes() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


async def plugins(url: str, folder: Path) -> None:
    os.environ["JIRA_ORCHESTRATOR_BUS_URL"] = url
    from jira_orchestrator.cli.demo import load_entry_point
    from jira_orchestrator.messagebus import close_message_bus

    entries = sorted(folder.glob("*/plugin.py"))  # noqa: ASYNC240 (before it serves)
    loaded = [load_entry_point(entry) for entry in entries]
    for plugin in loaded:
        await plugin.start()
    print("ready", flush=True)
    await _until_stdin_closes()
    for plugin in loaded:
        await plugin.stop()
    await close_message_bus()


async def raw(url: str, subject: str) -> None:
    import nats

    client = await nats.connect(url)

    async def answer(msg: Any) -> None:
        request = json.loads(msg.data)
        reply = {
            "messageId": f"raw-{request['messageId']}",
            "messageType": "response",
            "payload": {"status": "success", "result": {"key": request["payload"]["key"]}},
        }
        await client.publish(msg.reply, json.dumps(reply).encode())

    await client.subscribe(subject, queue="raw", cb=answer)
    await client.flush()
    print("ready", flush=True)
    await _until_stdin_closes()
    await client.close()


if __name__ == "__main__":
    mode, url, where = sys.argv[1:4]
    asyncio.run(plugins(url, Path(where)) if mode == "plugins" else raw(url, where))
