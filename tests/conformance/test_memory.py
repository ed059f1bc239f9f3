"""The conformance suite on the in-process transport."""

from __future__ import annotations

import pytest

from tests.conformance.base import BusConformance
from tests.conformance.rpc import RPCConformance
from tests.conformance.state import StateConformance


class TestMemoryBus(BusConformance, RPCConformance, StateConformance):
    @pytest.fixture
    def bus_url(self) -> str:
        return "memory://conformance"
