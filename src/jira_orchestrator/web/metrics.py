"""``GET /metrics``: the process's metrics and its plugin processes', in Prometheus' format.

    metrics = MetricsEndpoint(bus=orchestrator.bus)   # enables recording in this process
    async with metrics, HTTPServer([*metrics.routes(), ...]) as web:
        ...

It reads the registry the components record into (`jira_orchestrator._core.observe`)
at each scrape, plus the latest snapshot each plugin process published on
``plugin/<id>/telemetry``. Every sample has a ``process`` label: ``orchestrator`` (or the
name given) for this process, the plugin's id for a plugin process. Needs the ``web``
extra (prometheus-client). See docs/observability.md.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from jira_orchestrator._core import observe
from jira_orchestrator._core.clock import MonotonicClock, monotonic
from jira_orchestrator._core.message import Message
from jira_orchestrator._core.observe import METRICS, PREFIX, MetricsRegistry
from jira_orchestrator._core.protocol import ANYONE, plugin_telemetry
from jira_orchestrator.messagebus import MessageBus, Subscription
from jira_orchestrator.web.server import error_response

__all__ = ["METRICS_PATH", "MetricsEndpoint", "render"]

log = logging.getLogger("jira_orchestrator.web.metrics")

METRICS_PATH = "/metrics"
PROCESS_LABEL = "process"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # understood by every Prometheus
_STALE_PERIODS = 3  # a plugin's snapshot older than this many of its periods is dropped


@dataclass
class _Snapshot:
    registry: MetricsRegistry
    received: float
    interval: float


class _Collector(Collector):
    def __init__(self, endpoint: MetricsEndpoint) -> None:
        self.endpoint = endpoint

    def collect(self) -> Iterator[Metric]:
        return iter(_families(self.endpoint.sources()))


def _families(sources: Mapping[str, MetricsRegistry]) -> list[Metric]:
    for registry in sources.values():
        registry.fold()
    families: list[Metric] = []
    for spec in METRICS.values():
        labels = [PROCESS_LABEL, *spec.labels]
        name = PREFIX + spec.name
        family: Any
        if spec.kind == "counter":
            family = CounterMetricFamily(name, spec.help, labels=labels)
            for process, registry in sources.items():
                for (metric, values), value in registry.counters.items():
                    if metric == spec.name:
                        family.add_metric([process, *values], value)
        elif spec.kind == "gauge":
            family = GaugeMetricFamily(name, spec.help, labels=labels)
            for process, registry in sources.items():
                for (metric, values), value in registry.gauges.items():
                    if metric == spec.name:
                        family.add_metric([process, *values], value)
        else:
            family = HistogramMetricFamily(name, spec.help, labels=labels)
            bounds = [*(repr(float(b)) for b in spec.buckets), "+Inf"]
            for process, registry in sources.items():
                for (metric, values), (counts, total) in registry.histograms.items():
                    if metric == spec.name:
                        cumulative, running = [], 0
                        for bound, count in zip(bounds, counts, strict=True):
                            running += count
                            cumulative.append((bound, float(running)))
                        family.add_metric([process, *values], cumulative, total[0])
        families.append(family)
    return families


def render(sources: Mapping[str, MetricsRegistry]) -> bytes:
    """Prometheus' text format of these registries (process name -> registry)."""
    registry = CollectorRegistry(auto_describe=False)

    class _Fixed(Collector):
        def collect(self) -> Iterator[Metric]:
            return iter(_families(sources))

    registry.register(_Fixed())
    return generate_latest(registry)


class MetricsEndpoint:
    """The ``/metrics`` route, and the listener for plugin processes' snapshots.

    ``bus`` (optional) is the handle that listens on ``plugin/*/telemetry``; ``process``
    names this process's samples; ``token``, when set, must come as
    ``Authorization: Bearer <token>`` (what the dashboard requires off loopback).
    Creating one enables metric recording in this process.
    """

    def __init__(
        self,
        *,
        bus: MessageBus | None = None,
        process: str = "orchestrator",
        token: str | None = None,
        clock: MonotonicClock = monotonic,
    ) -> None:
        observe.enable()
        self.bus = bus
        self.process = process
        self.token = token
        self.clock = clock
        self.plugins: dict[str, _Snapshot] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        self._subscription: Subscription | None = None

    @property
    def local(self) -> MetricsRegistry:
        """This process's registry (recording is on while the endpoint exists)."""
        return observe.enable()

    # -- plugin processes' snapshots ---------------------------------------------------

    async def start(self) -> None:
        """Listen for plugin processes' snapshots (when given a bus)."""
        if self.bus is not None and self._subscription is None:
            self._subscription = self.bus.subscribe(
                plugin_telemetry(ANYONE), self._on_snapshot, overflow="drop_oldest", queue_size=256
            )

    async def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.unsubscribe()
            self._subscription = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _on_snapshot(self, message: Message) -> None:
        plugin = message.topic.split("/")[1]
        payload = message.payload
        try:
            if message.source != plugin:
                raise ValueError(f"sent by {message.source!r}, not by {plugin!r}")
            if plugin == self.process:
                raise ValueError(f"{plugin!r} is this process's own name")
            if not isinstance(payload, Mapping) or not isinstance(payload.get("metrics"), Mapping):
                raise ValueError("the payload is not {metrics: {...}, interval, timestamp}")
            registry = MetricsRegistry.from_snapshot(payload["metrics"])
            interval = float(payload.get("interval", 0))
            if not 0 < interval < 86_400:
                interval = 60.0
        except (ValueError, TypeError) as error:
            self.local.inc("plugin_snapshots", ("invalid",))
            log.warning("metrics snapshot on %s refused: %s", message.topic, error)
            return
        self.local.inc("plugin_snapshots", ("kept",))
        self.plugins[plugin] = _Snapshot(registry, self.clock(), interval)

    def sources(self) -> dict[str, MetricsRegistry]:
        """Process name -> registry: this process's, and each plugin process's latest
        snapshot (dropped once it is three of its periods old: the process is gone)."""
        now = self.clock()
        for plugin, snapshot in list(self.plugins.items()):
            if now - snapshot.received > _STALE_PERIODS * snapshot.interval:
                del self.plugins[plugin]
        found = {self.process: self.local}
        found.update((plugin, snapshot.registry) for plugin, snapshot in self.plugins.items())
        return found

    # -- HTTP --------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [Route(METRICS_PATH, self.handle, methods=["GET"], name="metrics")]

    def render(self) -> bytes:
        """The text a scrape gets now."""
        return generate_latest(self.registry)

    async def handle(self, request: Request) -> Response:
        if self.token is not None:
            given = request.headers.get("authorization", "")
            scheme, _, credential = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                credential.strip().encode(), self.token.encode()
            ):
                return error_response(
                    401, "unauthorized", "send Authorization: Bearer <the dashboard's token>"
                )
        # Query strings (Prometheus' name[] filters, anything else) are ignored: the whole
        # set is small, and a filter would be one more thing to parse from strangers.
        return Response(self.render(), media_type=CONTENT_TYPE)
