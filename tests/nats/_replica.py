"""One replica of a plugin in its own process, for the crash tests.

    python -m tests.nats._replica <bus-url> <plugin-id>

Answers ``plugin/<id>/request`` with ``{"n": <payload>, "pid": <its pid>, "retry":
<metadata.retryCount>}`` in the queue
group ``<id>``, prints ``ready`` once its subscription is live, and runs until killed.
"""

from __future__ import annotations

import asyncio
import os
import sys

from jira_orchestrator.messagebus import Message, get_message_bus
from jira_orchestrator.transports.nats import NatsTransport


async def main(url: str, plugin_id: str) -> None:
    bus = get_message_bus(plugin_id, url)

    async def handle(message: Message) -> None:
        assert message.correlation_id is not None
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
    asyncio.run(main(sys.argv[1], sys.argv[2]))
