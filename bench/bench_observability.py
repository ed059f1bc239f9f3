"""Metrics and tracing on against off, in the same run: bus throughput, request round
trips and routing latency.

"off" is the product as it runs without ``/metrics`` or ``OTEL_*``. "on" records every
metric (`observe.enable`) and traces with the OpenTelemetry SDK (a BatchSpanProcessor and
an exporter that drops the spans, so the figure is the product's cost, not a backend's).
With tracing on, the bus only makes spans for messages that belong to a trace, so the "on"
rows are: messages outside any trace (heartbeats, events, telemetry), and every message a
trace of its own (a root span around each publish, request or decision; each delivery in
a consumer span), sampled at 1% (``OTEL_TRACES_SAMPLER=parentbased_traceidratio``) and
at 100%: the worst case. Times are the process's CPU time (see `clock`). Runs alternate
off/on and keep the best of each, so a busy machine disturbs both alike. Run:
``make bench`` or ``.venv/bin/python bench/bench_observability.py``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import percentile, report
from jira_orchestrator._core import observe, tracing
from jira_orchestrator.messagebus import Message, close_message_bus, get_message_bus
from jira_orchestrator.routing import Router

ROOT = Path(__file__).resolve().parent.parent
clock = time.process_time
"""CPU time of this process (its threads included: the span processor's work counts): on a
shared machine, other processes' load inflates wall time by as much as the effect
measured here, and CPU time is what the instrumentation costs."""
N = 50_000
ROUND_TRIPS = 3_000
RUNS = 5
PAYLOAD = {"eventType": "task_completed", "taskId": "task_123", "result": {"files": 2}}
REQUESTS = [
    "Add a REST endpoint for orders to the FastAPI backend",
    "Deploy billing-api to the EKS cluster with a Helm chart",
    "Make the design system's buttons accessible",
    "Automate the nightly export with a scheduled job",
    "Set up the platform's tenant onboarding",
]


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _on(provider: TracerProvider | None) -> None:
    observe.enable()
    if provider is None:
        tracing.disable()
    else:
        tracing.enable(provider)


def _off() -> None:
    observe.disable()
    tracing.disable()


async def bus_throughput(n: int, traced: bool) -> float:
    receiver, sender = get_message_bus("receiver"), get_message_bus("sender")
    done = asyncio.Event()
    remaining = n

    def handler(message: Message) -> None:
        nonlocal remaining
        remaining -= 1
        if not remaining:
            done.set()

    receiver.subscribe("plugin/receiver/events", handler)
    started = clock()
    if traced:  # each message a trace of its own, as each Jira event is
        for _ in range(n):
            with tracing.span("bench", root=True):
                await sender.publish(topic="plugin/receiver/events", payload=dict(PAYLOAD))
    else:
        for _ in range(n):
            await sender.publish(topic="plugin/receiver/events", payload=dict(PAYLOAD))
    await done.wait()
    elapsed = clock() - started
    await close_message_bus()
    return n / elapsed


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


async def round_trips(n: int, traced: bool) -> list[float]:
    server, client = get_message_bus("backend"), get_message_bus("client")

    async def answer(message: Message) -> None:
        assert message.correlation_id is not None
        await server.respond(message.correlation_id, {"status": "success"})

    server.subscribe("plugin/backend/request", answer)
    samples = []
    for _ in range(n):
        started = clock()
        with tracing.span("bench", root=True) if traced else _nothing():
            await client.request(topic="plugin/backend/request", payload=PAYLOAD)
        samples.append(clock() - started)
    await close_message_bus()
    return samples


def routing(router: Router, rounds: int, traced: bool) -> list[float]:
    samples = []
    for _ in range(rounds):
        for text in REQUESTS:
            started = clock()
            with tracing.span("bench", root=True) if traced else _nothing():
                router.route(text)
            samples.append(clock() - started)
    return samples


def main() -> None:
    every = TracerProvider()
    every.add_span_processor(BatchSpanProcessor(_Drop(), max_queue_size=100_000))
    sampled = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.01)))
    sampled.add_span_processor(BatchSpanProcessor(_Drop(), max_queue_size=100_000))
    router = Router.from_directory(ROOT / "examples" / "plugins")
    modes: dict[str, tuple[bool, TracerProvider | None, bool]] = {
        "off": (False, None, False),
        "metrics on": (True, None, False),
        "metrics and tracing on, outside traces": (True, every, False),
        "both on, every message a trace, 1% sampled": (True, sampled, True),
        "both on, every message a trace, all sampled": (True, every, True),
    }
    best_rate = dict.fromkeys(modes, 0.0)
    trips: dict[str, list[float]] = {mode: [] for mode in modes}
    routes: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(RUNS):
        for mode, (enabled, provider, traced) in modes.items():
            if enabled:
                _on(provider)
            else:
                _off()
            best_rate[mode] = max(best_rate[mode], asyncio.run(bus_throughput(N, traced)))
            trips[mode] += asyncio.run(round_trips(ROUND_TRIPS // RUNS, traced))
            routes[mode] += routing(router, 40, traced)
            if provider is not None:  # export now, not on the next mode's time
                provider.force_flush()
    _off()
    every.shutdown()
    sampled.shutdown()
    rows = []
    for mode in modes:
        rows.append(
            {
                "mode": mode,
                "bus msg/s": best_rate[mode],
                "bus vs off": best_rate[mode] / best_rate["off"],
                "request p50 us": percentile(trips[mode], 50) * 1e6,
                "request p50 vs off": percentile(trips[mode], 50) / percentile(trips["off"], 50),
                "route p50 ms": percentile(routes[mode], 50) * 1e3,
                "route p99 ms": percentile(routes[mode], 99) * 1e3,
                "route p50 vs off": percentile(routes[mode], 50) / percentile(routes["off"], 50),
            }
        )
    report("observability", rows)


if __name__ == "__main__":
    main()
