"""The bus on a 3-node NATS cluster: replicated streams, work across nodes, a node lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats.errors
import pytest

from jira_orchestrator import NoResponders
from jira_orchestrator.messagebus import Message, MessageBus, get_message_bus
from jira_orchestrator.transports.nats import NatsOptions, NatsTransport
from jira_orchestrator.transports.nats_cluster import (
    NatsCluster,
    cluster_node_config,
    cluster_nodes,
    cluster_url,
    stream_replicas,
)

WAIT = 60.0  # generous: elections and reconnects on a busy machine
pytestmark = pytest.mark.timeout(240)  # several elections per test, each bounded by WAIT


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path / "cluster", size=3) as started:
        yield started


async def answered(caller: MessageBus, topic: str, payload: Any) -> Any:
    """The answer to a request, asked again while the other node has not yet heard of
    the subscription (interest crosses the routes a moment after the subscribe)."""
    async with asyncio.timeout(WAIT):
        while True:
            try:
                return await caller.request(topic=topic, payload=payload, timeout=WAIT)
            except NoResponders:
                await asyncio.sleep(0.05)  # another server's state, no event to await


async def stream_info(transport: NatsTransport, stream: str) -> Any:
    """The stream's info, once its replicas have elected a leader to answer."""
    assert transport._jsm is not None
    async with asyncio.timeout(WAIT):
        while True:
            try:
                return await transport._jsm.stream_info(stream)
            except nats.errors.TimeoutError:
                continue  # no stream leader yet: elected a moment after the creation


def serve(bus: MessageBus, name: str, seen: list[Any]) -> None:
    async def handle(message: Message) -> None:
        seen.append(message.payload)
        await bus.respond(message.correlation_id, {"by": name, "echo": message.payload})

    bus.subscribe(f"plugin/{name}/request", handle, queue=name)


async def test_streams_are_replicated_three_wise_on_the_cluster(cluster: NatsCluster) -> None:
    transport = NatsTransport(cluster.url_for(first=1))
    try:
        await transport.flush()
        for stream in ("JO_REQUESTS", "JO_DEAD_LETTER"):
            info = await stream_info(transport, stream)
            assert info.config.num_replicas == 3
            assert info.cluster is not None
            assert len(info.cluster.replicas or []) == 2
    finally:
        await transport.close()


async def test_a_request_crosses_nodes_and_survives_the_loss_of_the_servers_node(
    cluster: NatsCluster,
) -> None:
    worker = get_message_bus("worker", cluster.url_for(first=0))
    caller = get_message_bus("caller", cluster.url_for(first=1))
    seen: list[Any] = []
    serve(worker, "worker", seen)
    await worker.transport.flush()
    first = await answered(caller, "plugin/worker/request", 1)
    assert first == {"by": "worker", "echo": 1}
    # each on the node its URL lists first: the request crossed a route
    for bus, node in ((worker, 0), (caller, 1)):
        assert isinstance(bus.transport, NatsTransport)
        assert bus.transport._nc is not None
        assert bus.transport._nc.connected_url is not None
        assert bus.transport._nc.connected_url.port == cluster.nodes[node].port

    await asyncio.to_thread(cluster.kill_node, 0)  # the worker's node: it moves on
    second = await answered(caller, "plugin/worker/request", 2)
    assert second == {"by": "worker", "echo": 2}
    await asyncio.to_thread(cluster.restart_node, 0)
    third = await answered(caller, "plugin/worker/request", 3)
    assert third == {"by": "worker", "echo": 3}
    assert seen == [1, 2, 3]  # each once


async def test_streams_set_up_before_every_node_is_up_are_retried_until_placed(
    cluster: NatsCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a majority of its nodes a cluster has no JetStream leader: the set-up
    retries until the nodes are back, then places the three replicas."""
    for lost in (1, 2):
        await asyncio.to_thread(cluster.kill_node, lost)
    transport = NatsTransport(cluster.url_for(first=0), connect_timeout=WAIT)
    refused = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "retrying" in record.getMessage():
                asyncio.get_running_loop().call_soon_threadsafe(refused.set)

    handler = Watch()
    logging.getLogger("jira_orchestrator.transports.nats").addHandler(handler)
    try:
        setting_up = asyncio.ensure_future(transport.flush(timeout=WAIT))
        async with asyncio.timeout(WAIT):
            await refused.wait()
        assert not setting_up.done()
        for lost in (1, 2):
            await asyncio.to_thread(cluster.restart_node, lost)
        async with asyncio.timeout(WAIT):
            await setting_up
        info = await stream_info(transport, "JO_DEAD_LETTER")
        assert info.config.num_replicas == 3
    finally:
        logging.getLogger("jira_orchestrator.transports.nats").removeHandler(handler)
        await transport.close()


def test_replicas_option_is_checked() -> None:
    assert NatsOptions.from_query("replicas=3").replicas == 3
    with pytest.raises(ValueError, match="replicas must be 1 to 5, not 0"):
        NatsOptions.from_query("replicas=0")


def test_the_replication_factor_is_the_size_up_to_three() -> None:
    assert [stream_replicas(n) for n in (1, 2, 3, 5, 7)] == [1, 2, 3, 3, 3]
    with pytest.raises(ValueError, match="at least 1 node"):
        stream_replicas(0)


def test_node_configurations_route_to_every_other_node() -> None:
    nodes = cluster_nodes(3, ["a.example", "b.example", "a.example"])
    assert [(n.host, n.client_port, n.route_port) for n in nodes] == [
        ("a.example", 4222, 6222),
        ("b.example", 4222, 6222),
        ("a.example", 4223, 6223),
    ]
    text = cluster_node_config(nodes[1], nodes, route_password="s3cret")
    assert 'server_name: "jo-2"' in text
    assert '"nats-route://jo-route:s3cret@a.example:6222"' in text
    assert '"nats-route://jo-route:s3cret@a.example:6223"' in text
    assert "b.example:6222" not in text.split("routes")[1]  # not to itself
    assert 'include "authorization.conf"' in text
    assert cluster_url(nodes, first=1, query="replicas=3") == (
        "nats://b.example:4222,nats://a.example:4223,nats://a.example:4222?replicas=3"
    )
    with pytest.raises(ValueError, match="2 host"):
        cluster_nodes(3, ["a", "b"])
    with pytest.raises(ValueError, match="not a host name"):
        cluster_nodes(1, ["a,b"])
