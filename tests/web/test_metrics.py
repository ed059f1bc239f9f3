"""``/metrics`` over real HTTP, parsed with prometheus-client's own parser, moved by real
traffic: bus publishes, deliveries and dead letters, requests, a breaker opening, routing
decisions, webhooks, and the snapshots plugin processes send over the bus."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jira_orchestrator._core import observe
from jira_orchestrator.integrations.jira import WebhookInbox, WebhookReceiver
from jira_orchestrator.messagebus import (
    MessageBus,
    RPCClient,
    RPCServer,
    close_message_bus,
    get_message_bus,
)
from jira_orchestrator.plugins.telemetry import TelemetryPublisher
from jira_orchestrator.resilience import CircuitBreaker
from jira_orchestrator.routing import Router
from jira_orchestrator.state import DistributedStateManager
from jira_orchestrator.web import HTTPServer
from jira_orchestrator.web.metrics import MetricsEndpoint, render

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"
TOKEN = "s3cret-dashboard-token"


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    observe.disable()
    yield
    observe.disable()


@pytest.fixture
async def bus() -> AsyncIterator[MessageBus]:
    yield get_message_bus("jira-orchestrator")
    await close_message_bus()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    answer = await client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset({"process": "orchestrator", **labels}.items())), 0.0)


def issue_body(key: str = "OPS-1") -> bytes:
    return json.dumps(
        {
            "timestamp": 1767261600000,
            "webhookEvent": "jira:issue_updated",
            "issue": {
                "id": "1" + key.split("-")[1],
                "key": key,
                "fields": {
                    "updated": "2026-01-01T10:00:00.000+0000",
                    "project": {"key": key.split("-")[0]},
                },
            },
        }
    ).encode()


async def test_metrics_move_with_real_traffic(bus: MessageBus, tmp_path: Path) -> None:
    inbox = WebhookInbox(tmp_path / "inbox.db")
    receiver = WebhookReceiver(inbox, secret=None, projects={"OPS"})
    metrics = MetricsEndpoint(bus=bus)
    try:
        async with (
            metrics,
            HTTPServer([*metrics.routes(), *receiver.routes()], port=0) as web,
            httpx.AsyncClient(base_url=web.url) as client,
        ):
            before = await scrape(client)
            assert value(before, "jira_orchestrator_bus_published_total", family="a/**") == 0

            # the bus: published, delivered (handled and failed), dead-lettered
            def handler(message: object) -> None:
                if getattr(message, "payload", None) == "boom":
                    raise ValueError("boom")

            bus.subscribe("a/b", handler)
            bus.subscribe("plugin/x/request", lambda m: bus.respond(m.correlation_id, "pong"))
            for payload in (1, 2, "boom"):
                await bus.publish(topic="a/b", payload=payload)
            assert await bus.request(topic="plugin/x/request", payload="ping") == "pong"
            await bus.flush()

            # a breaker opening
            breaker = CircuitBreaker("backend", threshold=1)

            async def fail() -> None:
                raise ConnectionError("down")

            with pytest.raises(ConnectionError):
                await breaker.execute(fail)

            # routing decisions: one routed, one the router abstains on
            router = Router.from_directory(EXAMPLES, min_confidence=0.0)
            decision = router.route("build a REST API endpoint for the orders service in Python")
            assert decision.primary_plugin is not None
            shy = Router.from_directory(EXAMPLES, min_confidence=1.0)
            assert shy.route(decision.text).primary_plugin is None

            # webhooks: accepted, duplicate, rejected, ignored
            sent = {"X-Atlassian-Webhook-Identifier": "d-1"}
            for expected in (202, 200):  # accepted, then a duplicate
                answer = await client.post("/webhooks/jira", content=issue_body(), headers=sent)
                assert answer.status_code == expected
            assert (await client.post("/webhooks/jira", content=b"{not json")).status_code == 400
            other = issue_body("KAN-2")
            assert (await client.post("/webhooks/jira", content=other)).status_code == 202

            after = await scrape(client)
    finally:
        await receiver.aclose()
        inbox.close()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("jira_orchestrator_bus_published_total", family="a/**") == 3
    assert moved("jira_orchestrator_bus_delivered_total", family="a/**", outcome="handled") == 2
    assert moved("jira_orchestrator_bus_delivered_total", family="a/**", outcome="failed") == 1
    assert (
        moved("jira_orchestrator_bus_dead_lettered_total", family="a/**", reason="handler-error")
        == 1
    )
    ok = {"family": "plugin/*/request", "outcome": "ok"}
    assert moved("jira_orchestrator_bus_request_duration_seconds_count", **ok) == 1
    assert moved("jira_orchestrator_bus_request_duration_seconds_bucket", le="+Inf", **ok) == 1
    assert value(after, "jira_orchestrator_breaker_state", breaker="backend", state="open") == 1
    assert value(after, "jira_orchestrator_breaker_state", breaker="backend", state="closed") == 0
    assert (
        value(
            after,
            "jira_orchestrator_breaker_transitions_total",
            breaker="backend",
            from_state="closed",
            to_state="open",
        )
        == 1
    )
    assert moved("jira_orchestrator_routing_decisions_total", plugin=decision.primary_plugin) == 1
    assert moved("jira_orchestrator_routing_decisions_total", plugin="none") == 1
    assert moved("jira_orchestrator_routing_abstentions_total", reason="below-confidence") == 1
    assert moved("jira_orchestrator_routing_confidence_count") == 2
    assert moved("jira_orchestrator_webhook_events_total", result="received") == 4
    assert moved("jira_orchestrator_webhook_events_total", result="accepted") == 1
    assert moved("jira_orchestrator_webhook_events_total", result="duplicates") == 1
    assert moved("jira_orchestrator_webhook_events_total", result="ignored") == 1
    assert moved("jira_orchestrator_webhook_rejected_total", reason="not-json") == 1


async def test_plugin_processes_snapshots_are_served_with_their_process_label(
    bus: MessageBus,
) -> None:
    metrics = MetricsEndpoint(bus=bus)
    backend = get_message_bus("backend")
    async with (
        metrics,
        HTTPServer(metrics.routes(), port=0) as web,
        httpx.AsyncClient(base_url=web.url) as client,
    ):
        observe.inc("tasks", ("completed",))  # as if the plugin had recorded it
        await TelemetryPublisher(backend, interval=5.0).publish()
        # a snapshot on backend's topic sent by somebody else is refused and counted
        await get_message_bus("mallory").publish(
            topic="plugin/backend/telemetry",
            payload={"metrics": {"counters": [["tasks", ["completed"], 1e9]]}},
        )
        await bus.flush()
        samples = await scrape(client)
    plugin = frozenset({"process": "backend", "outcome": "completed"}.items())
    assert samples[("jira_orchestrator_tasks_total", plugin)] == 1
    assert value(samples, "jira_orchestrator_plugin_snapshots_total", outcome="kept") == 1
    assert value(samples, "jira_orchestrator_plugin_snapshots_total", outcome="invalid") == 1


async def test_stale_snapshots_are_dropped(bus: MessageBus) -> None:
    now = [100.0]
    metrics = MetricsEndpoint(bus=bus, clock=lambda: now[0])
    async with metrics:
        await TelemetryPublisher(get_message_bus("backend"), interval=5.0).publish()
        await bus.flush()
        assert "backend" in metrics.sources()
        now[0] += 15.1  # three periods without news: the process is gone
        assert "backend" not in metrics.sources()


async def test_bad_requests_to_metrics_and_the_token(bus: MessageBus) -> None:
    metrics = MetricsEndpoint(bus=bus, token=TOKEN)
    async with (
        metrics,
        HTTPServer(metrics.routes(), port=0) as web,
        httpx.AsyncClient(base_url=web.url) as client,
    ):
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert (wrong.status_code, wrong.json()["error"]) == (401, "unauthorized")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for method in ("POST", "PUT", "DELETE"):
            refused = await client.request(method, "/metrics", headers=auth)
            assert (refused.status_code, refused.json()) == (405, {"error": "method-not-allowed"})
        odd = await client.get("/metrics?name[]=x&%ff=%fe&x=" + "y" * 5000, headers=auth)
        assert odd.status_code == 200
        assert "jira_orchestrator_bus_published_total" in odd.text
        head = await client.head("/metrics", headers=auth)
        assert head.status_code == 200
        assert TOKEN not in odd.text


async def test_no_secret_in_metrics() -> None:
    url = "memory://orchestrator:hunter2@local"
    bus = get_message_bus("jira-orchestrator", url)
    try:
        metrics = MetricsEndpoint(bus=bus, token=TOKEN)
        async with metrics:
            await bus.publish(topic="a/b", payload={"password": "hunter2"})
            await bus.flush()
            text = metrics.render().decode()
    finally:
        await close_message_bus()
    assert "jira_orchestrator_bus_published_total" in text
    assert "hunter2" not in text
    assert TOKEN not in text


def test_topic_families_keep_label_values_few() -> None:
    assert observe.topic_family("plugin/backend/request") == "plugin/*/request"
    assert observe.topic_family("state/backend/change") == "state/*/change"
    assert observe.topic_family("routing/decision") == "routing/decision"
    assert observe.topic_family("orders/eu/created") == "orders/**"


def test_metrics_cost_nothing_but_a_lookup_when_off() -> None:
    assert observe.active() is None
    observe.inc("tasks", ("completed",))
    observe.observe("routing_confidence", (), 0.5)
    assert observe.active() is None  # nothing was created


def test_docs_list_every_metric_with_its_labels() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    for spec in observe.METRICS.values():
        name = observe.PREFIX + spec.name + ("_total" if spec.kind == "counter" else "")
        labels = ", ".join(f"`{label}`" for label in ("process", *spec.labels))
        assert f"| `{name}` | {spec.kind} | {labels} |" in page, name


async def test_replication_lag_and_rpc_calls_are_recorded(tmp_path: Path) -> None:
    registry = observe.enable()
    url = "memory://observed-state"
    bus = get_message_bus("backend", url)
    replicas = [
        DistributedStateManager("backend", path=tmp_path / f"{name}.db") for name in ("a", "b")
    ]
    try:
        for replica in replicas:
            await replica.replicate(bus, anti_entropy=None)
        replicas[0].increment_counter("deployments")
        for replica in replicas:
            assert replica.replicator is not None
            await replica.replicator.flush()
        assert replicas[1].get_counter("deployments") == 1
        server = RPCServer("plugin://backend/rpc", bus=bus)
        server.register("ping", lambda: "pong")
        assert (
            await RPCClient("plugin://backend/rpc", bus=get_message_bus("caller", url)).call("ping")
            == "pong"
        )
    finally:
        for replica in replicas:
            if replica.replicator is not None:
                await replica.replicator.stop()
            replica.close()
        await close_message_bus()
    text = render({"orchestrator": registry}).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    lag = families["jira_orchestrator_state_replication_lag_seconds"]
    counts = [s for s in lag.samples if s.name.endswith("_count")]
    assert [(s.labels["process"], s.labels["plugin"]) for s in counts] == [
        ("orchestrator", "backend")
    ]
    assert counts[0].value >= 1
    calls = families["jira_orchestrator_rpc_call_duration_seconds"]
    ok = [s for s in calls.samples if s.name.endswith("_count") and s.labels["method"] == "ping"]
    assert [(s.labels["target"], s.labels["outcome"], s.value) for s in ok] == [
        ("backend", "ok", 1.0)
    ]


@pytest.mark.parametrize(
    "payload",
    [
        "not an object",
        {"metrics": "not an object"},
        {"metrics": {"counters": [["tasks"]]}},
        {"metrics": {"counters": [["tasks", ["completed"], -5]]}},
        {"metrics": {"counters": [["tasks", ["completed"], "NaN"]]}},
        {"metrics": {"counters": [["tasks", ["x" * 201], 1]]}},
        {"metrics": {"histograms": [["routing_confidence", [], ["a"] * 11, 0]]}},
        {"metrics": {}, "interval": "soon"},
    ],
)
async def test_a_bad_snapshot_is_refused_counted_and_the_endpoint_keeps_serving(
    bus: MessageBus, payload: object
) -> None:
    metrics = MetricsEndpoint(bus=bus)
    async with metrics:
        await get_message_bus("backend").publish(topic="plugin/backend/telemetry", payload=payload)
        await bus.flush()
        assert "backend" not in metrics.sources()
        assert metrics.local.value("plugin_snapshots", ("invalid",)) == 1
        assert b"jira_orchestrator_plugin_snapshots_total" in metrics.render()


async def test_metrics_of_another_release_are_left_out(bus: MessageBus) -> None:
    metrics = MetricsEndpoint(bus=bus)
    snapshot = {
        "counters": [["tasks", ["completed"], 2], ["from_the_future", ["x"], 1]],
        "histograms": [["routing_confidence", [], [1, 2], 0.5]],  # other buckets
    }
    async with metrics:
        await get_message_bus("backend").publish(
            topic="plugin/backend/telemetry", payload={"metrics": snapshot, "interval": 5}
        )
        await bus.flush()
        kept = metrics.sources()["backend"]
    assert kept.counters == {("tasks", ("completed",)): 2.0}
    assert kept.histograms == {}
