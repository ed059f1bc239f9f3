"""One replica of a plugin in its own process, for the crash tests.

    python -m tests.nats._replica <bus-url> <plugin-id> [<hold-after>]

Answers ``plugin/<id>/request`` with ``{"n": <payload>, "pid": <its pid>, "retry":
<metadata.retryCount>}`` in the queue
group ``<id>``, prints ``ready`` once its subscription is live, and runs until killed.
With ``<hold-after>``, it answers that many requests, then holds every later one without
answering and prints ``holding`` once: a kill then certainly finds requests under way.
"""

from __future__ import annotations

import asyncio
import os
import sys

from jira_orchestrator.messagebus import Message, get_message_bus
from jira_orchestrator.transports.nats import NatsTransport


async def main(url: str, plugin_id: str, hold_after: int | None = None) -> None:
    bus = get_message_bus(plugin_id, url)
    answered = 0
    forever = asyncio.Event()

    async def handle(message: Message) -> None:
        nonlocal answered
        assert message.correlation_id is not None
        if hold_after is not None and answered >= hold_after:
            if answered == hold_after:
                answered += 1
                print("holding", flush=True)
            await forever.wait()
        answered += 1
        await asyncio.sleep(0.002)  # a handler doing some work, so a kill finds some under way
        await bus.respond(
            message.correlation_id,
            {"n": message.payload, "pid": os.getpid(), "retry": message.metadata.retry_count},
        )

    bus.subscribe(f"plugin/{plugin_id}/request", handle, queue=plugin_id, max_concurrency=8)
    transport = bus.transport
    assert isinstance(transport, NatsTransport)
    await transport.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None))
