"""The conformance suite on the NATS transport, against a private nats-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance.base import BusConformance
from tests.conformance.rpc import RPCConformance
from tests.conformance.state import StateConformance
from tests.nats._server import NatsServer


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(tmp_path_factory.mktemp("nats-conformance")) as server:
        yield server


class TestNatsBus(BusConformance, RPCConformance, StateConformance):
    @pytest.fixture
    def bus_url(self, nats_server: NatsServer) -> str:
        return nats_server.url
