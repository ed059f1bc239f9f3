"""The conformance suite on the NATS transport: one private nats-server, and a 3-node
cluster whose streams are replicated 3-wise, each bus of a test on another node."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from jira_orchestrator.transports.nats_cluster import NatsCluster
from tests.conformance.base import BusConformance
from tests.conformance.rpc import RPCConformance
from tests.conformance.state import StateConformance
from tests.nats._server import NatsServer


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(tmp_path_factory.mktemp("nats-conformance")) as server:
        yield server


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path_factory.mktemp("nats-cluster-conformance"), size=3) as cluster:
        yield cluster


class TestNatsBus(BusConformance, RPCConformance, StateConformance):
    @pytest.fixture
    def bus_url(self, nats_server: NatsServer) -> str:
        return nats_server.url


_NODES = itertools.count()


class TestNatsClusterBus(BusConformance, RPCConformance, StateConformance):
    """The same behaviours on a 3-node cluster with streams replicated 3-wise (their
    leaders, and the consumers', spread over the nodes). Each test connects to the next
    node first; its buses share that connection, as the suite's ordering promises are
    those of one connection (tests/nats/test_cluster.py crosses nodes)."""

    @pytest.fixture
    def bus_url(self, nats_cluster: NatsCluster) -> str:
        return nats_cluster.url_for(first=next(_NODES))
