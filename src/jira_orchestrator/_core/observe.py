"""Metrics, the one facade: components count, a registry keeps, an exporter reads.

Every layer records what it measures through the functions here (`inc`, `observe`,
`set_gauge`); they do nothing until `enable` installs a `MetricsRegistry` for the
process, so a program that never serves ``/metrics`` pays one global lookup per call.
The registry is plain Python (dicts of floats), with no dependency: the web layer turns it
into Prometheus' format (``jira_orchestrator.web.metrics``), and a plugin process sends
its `MetricsRegistry.snapshot` over the bus to the orchestrator, which serves it with a
``plugin`` label.

Every metric the product records is declared once in `METRICS` (name, kind, help,
labels, buckets); docs/observability.md lists the same, and a test keeps them equal.

Recording is meant for the event loop's thread: an increment is a dictionary update,
not a locked operation, so a count made from many threads at once may lose an increment.
"""

from __future__ import annotations

import bisect
import functools
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "METRICS",
    "METRICS_ENV",
    "PREFIX",
    "MetricSpec",
    "MetricsRegistry",
    "Tally",
    "active",
    "disable",
    "enable",
    "inc",
    "observe",
    "set_gauge",
    "switch",
    "topic_family",
]

PREFIX = "jira_orchestrator_"
METRICS_ENV = "JIRA_ORCHESTRATOR_METRICS"
"""Set (to a number of seconds) in a plugin process: record metrics and publish a snapshot
on ``plugin/<id>/telemetry`` that often. ``up`` sets it for the plugins it starts."""

Kind = Literal["counter", "gauge", "histogram"]
MAX_TOPICS = 4096
"""Distinct topics the bus counts one by one between two folds (scrapes or snapshots)."""

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_CONFIDENCE = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_LAG = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: its name without `PREFIX` (and without ``_total``), kind, help, label
    names, and bucket bounds for a histogram."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "bus_published",
            "counter",
            "Messages published on the bus, by topic family.",
            ("family",),
        ),
        MetricSpec(
            "bus_delivered",
            "counter",
            "Messages handed to a subscriber's handler, by topic family and outcome "
            "(handled, failed, expired).",
            ("family", "outcome"),
        ),
        MetricSpec(
            "bus_dead_lettered",
            "counter",
            "Messages sent to system/dead-letter, by the family of their topic and reason.",
            ("family", "reason"),
        ),
        MetricSpec(
            "bus_rejected",
            "counter",
            "Messages refused before sending (bad topic, payload or size).",
        ),
        MetricSpec(
            "bus_request_duration_seconds",
            "histogram",
            "Bus requests, from sending to the response, by topic family and outcome "
            "(ok, error, timeout, no-responders).",
            ("family", "outcome"),
            _LATENCY,
        ),
        MetricSpec(
            "rpc_call_duration_seconds",
            "histogram",
            "RPC calls made with RPCClient, by target plugin, method and outcome.",
            ("target", "method", "outcome"),
            _LATENCY,
        ),
        MetricSpec(
            "breaker_state",
            "gauge",
            "1 for the state each circuit breaker is in, 0 for the others.",
            ("breaker", "state"),
        ),
        MetricSpec(
            "breaker_transitions",
            "counter",
            "Circuit breaker state changes.",
            ("breaker", "from_state", "to_state"),
        ),
        MetricSpec(
            "routing_decisions",
            "counter",
            "Routing decisions, by primary plugin (none: the router abstained).",
            ("plugin",),
        ),
        MetricSpec(
            "routing_abstentions",
            "counter",
            "Requests the router would not route (triage), by reason.",
            ("reason",),
        ),
        MetricSpec(
            "routing_confidence",
            "histogram",
            "Confidence of each routing decision.",
            (),
            _CONFIDENCE,
        ),
        MetricSpec(
            "routing_duration_seconds",
            "histogram",
            "Time the router took to decide.",
            (),
            _LATENCY,
        ),
        MetricSpec(
            "tasks",
            "counter",
            "Tasks the orchestrator finished, by outcome.",
            ("outcome",),
        ),
        MetricSpec(
            "webhook_events",
            "counter",
            "Jira webhook deliveries, by result (received, accepted, duplicates, superseded, "
            "ignored).",
            ("result",),
        ),
        MetricSpec(
            "webhook_rejected",
            "counter",
            "Jira webhook deliveries refused, by reason.",
            ("reason",),
        ),
        MetricSpec(
            "jira_api_calls",
            "counter",
            "Calls to Jira's REST API, by method and HTTP status (error: no answer).",
            ("method", "status"),
        ),
        MetricSpec(
            "state_replication_lag_seconds",
            "histogram",
            "Age of a replicated state change when this replica applies it, by owner.",
            ("plugin",),
            _LAG,
        ),
        MetricSpec(
            "plugin_snapshots",
            "counter",
            "Metric snapshots received from plugin processes, by outcome (kept, invalid).",
            ("outcome",),
        ),
    )
}

LabelValues = tuple[str, ...]
Key = tuple[str, LabelValues]


class MetricsRegistry:
    """The process's recorded values: counters, gauges and histograms, by (name, labels)."""

    def __init__(self) -> None:
        self.counters: dict[Key, float] = {}
        self.gauges: dict[Key, float] = {}
        # (bucket counts, one per bound and +Inf; sum)
        self.histograms: dict[Key, tuple[list[int], list[float]]] = {}
        # The bus's two counts per message, by raw topic: a dictionary update each, no
        # family computed, no tuple built. `fold` moves them into `counters` by family.
        self.published: dict[str, int] = {}
        self.handled: dict[str, int] = {}

    def count_topic(self, counts: dict[str, int], topic: str) -> None:
        """The slow path of the bus's per-topic counts: a topic not seen since the last
        `fold` (which runs at once past `MAX_TOPICS` of them, to bound the memory)."""
        counts[topic] = 1
        if len(counts) > MAX_TOPICS:
            self.fold()

    def fold(self) -> None:
        """Move the per-topic counts into `counters`, by topic family."""
        counters = self.counters
        for counts, name, extra in (
            (self.published, "bus_published", ()),
            (self.handled, "bus_delivered", ("handled",)),
        ):
            for topic, n in counts.items():
                key = (name, (topic_family(topic), *extra))
                counters[key] = counters.get(key, 0.0) + n
            counts.clear()

    def inc(self, name: str, labels: LabelValues = (), amount: float = 1.0) -> None:
        key = (name, labels)
        counters = self.counters
        counters[key] = counters.get(key, 0.0) + amount

    def set_gauge(self, name: str, labels: LabelValues, value: float) -> None:
        self.gauges[(name, labels)] = value

    def observe(self, name: str, labels: LabelValues, value: float) -> None:
        key = (name, labels)
        entry = self.histograms.get(key)
        buckets = METRICS[name].buckets
        if entry is None:
            entry = self.histograms[key] = ([0] * (len(buckets) + 1), [0.0])
        entry[0][bisect.bisect_left(buckets, value)] += 1
        entry[1][0] += value

    def value(self, name: str, labels: LabelValues = ()) -> float:
        """A counter's or gauge's value (0 when never recorded); for tests and tools."""
        self.fold()
        key = (name, labels)
        return self.counters.get(key, self.gauges.get(key, 0.0))

    def snapshot(self) -> dict[str, Any]:
        """Everything recorded, as plain JSON (what a plugin process publishes)."""
        self.fold()
        return {
            "counters": [[n, list(lv), v] for (n, lv), v in self.counters.items()],
            "gauges": [[n, list(lv), v] for (n, lv), v in self.gauges.items()],
            "histograms": [
                [n, list(lv), list(counts), total[0]]
                for (n, lv), (counts, total) in self.histograms.items()
            ],
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> MetricsRegistry:
        """Read a `snapshot` back; raises ValueError naming what is wrong. Metrics this
        version does not know, and histograms whose buckets differ from ours, are left
        out (a plugin on another release)."""
        registry = cls()
        try:
            for name, labels, value in data.get("counters", ()):
                if _known(name, labels, "counter"):
                    registry.counters[(name, _labels(labels))] = _count(value, name)
            for name, labels, value in data.get("gauges", ()):
                if _known(name, labels, "gauge"):
                    registry.gauges[(name, _labels(labels))] = _finite(float(value), name)
            for name, labels, counts, total in data.get("histograms", ()):
                if _known(name, labels, "histogram") and len(counts) == (
                    len(METRICS[name].buckets) + 1
                ):
                    registry.histograms[(name, _labels(labels))] = (
                        [int(_count(c, name)) for c in counts],
                        [_finite(float(total), name)],
                    )
        except (TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"not a metrics snapshot: {error}") from None
        return registry


MAX_LABEL = 200
"""The longest label value a snapshot may carry (ids, reasons and families are short)."""


def _labels(values: list[Any]) -> LabelValues:
    labels = tuple(map(str, values))
    for value in labels:
        if len(value) > MAX_LABEL:
            raise ValueError(f"a label value of {len(value)} characters (at most {MAX_LABEL})")
    return labels


def _finite(value: float, name: str) -> float:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name}: {value} is not a finite number")
    return value


def _count(value: Any, name: str) -> float:
    count = _finite(float(value), name)
    if count < 0:
        raise ValueError(f"{name}: a count cannot be negative ({count})")
    return count


def _known(name: object, labels: object, kind: str) -> bool:
    spec = METRICS.get(name) if isinstance(name, str) else None
    return (
        spec is not None
        and spec.kind == kind
        and isinstance(labels, list)
        and len(labels) == len(spec.labels)
    )


class _Switch:
    """Where the hot paths look: one attribute read, no call, when metrics are off."""

    __slots__ = ("registry",)

    def __init__(self) -> None:
        self.registry: MetricsRegistry | None = None


switch = _Switch()
"""``switch.registry`` is the registry recording now, or None (read it, never set it)."""


def enable() -> MetricsRegistry:
    """Start recording in this process (idempotent); returns the registry."""
    if switch.registry is None:
        switch.registry = MetricsRegistry()
    return switch.registry


def disable() -> None:
    """Stop recording and forget what was recorded (for tests and benchmarks)."""
    switch.registry = None


def active() -> MetricsRegistry | None:
    """The registry recording now, or None when metrics are off."""
    return switch.registry


def inc(name: str, labels: LabelValues = (), amount: float = 1.0) -> None:
    """Add ``amount`` to a counter of `METRICS`; nothing when metrics are off."""
    registry = switch.registry
    if registry is not None:
        registry.inc(name, labels, amount)


def observe(name: str, labels: LabelValues, value: float) -> None:
    """Record one observation in a histogram of `METRICS`; nothing when metrics are off."""
    registry = switch.registry
    if registry is not None:
        registry.observe(name, labels, value)


def set_gauge(name: str, labels: LabelValues, value: float) -> None:
    """Set a gauge of `METRICS`; nothing when metrics are off."""
    registry = switch.registry
    if registry is not None:
        registry.set_gauge(name, labels, value)


def set_states(name: str, key: str, states: Iterable[str], current: str) -> None:
    """An enum as gauges: ``name{<key>, state}`` is 1 for ``current``, 0 for the others."""
    registry = switch.registry
    if registry is not None:
        for state in states:
            registry.set_gauge(name, (key, state), 1.0 if state == current else 0.0)


_PER_PLUGIN = frozenset({"plugin", "state"})


@functools.lru_cache(maxsize=4096)
def topic_family(topic: str) -> str:
    """The label a topic is counted under, with few values whatever the traffic:
    ``plugin/<id>/request`` is ``plugin/*/request``, ``state/<id>/change`` is
    ``state/*/change``, ``plugin/<id>/rpc/<caller>`` is ``plugin/*/rpc/*``,
    ``system/dead-letter/<sender>`` is ``system/dead-letter/*``, the other reserved
    ``system``, ``routing`` and ``orchestration`` topics are themselves, and any other topic
    is its first segment and ``/**``."""
    first, _, rest = topic.partition("/")
    if first in _PER_PLUGIN:
        _, _, tail = rest.partition("/")
        if tail.startswith("rpc/"):  # plugin/<id>/rpc/<caller>: one family for all callers
            return f"{first}/*/rpc/*"
        return f"{first}/*/{tail}" if tail else f"{first}/*"
    if topic.startswith("system/dead-letter/"):  # each sender's letters: one family
        return "system/dead-letter/*"
    if first in ("system", "routing", "orchestration"):
        return topic
    return f"{first}/**"


def interval_from_env(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between snapshots from `METRICS_ENV`, or None when it is unset or not a
    positive number."""
    text = (os.environ if environ is None else environ).get(METRICS_ENV, "").strip()
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if seconds > 0 else None


class Tally(Counter[str]):
    """A `collections.Counter` a component already keeps, mirrored into the metric
    ``metric`` (one label: the key) as it is incremented."""

    def __init__(self, metric: str) -> None:
        super().__init__()
        self.metric = metric

    def __setitem__(self, key: str, value: int) -> None:
        delta = value - self.get(key, 0)
        super().__setitem__(key, value)
        registry = switch.registry
        if registry is not None and delta > 0:
            registry.inc(self.metric, (key,), delta)
