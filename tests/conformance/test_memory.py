"""The conformance suite on the in-process transport."""

from __future__ import annotations

import pytest

from tests.conformance.base import BusConformance
from tests.conformance.rpc import RPCConformance


class TestMemoryBus(BusConformance, RPCConformance):
    @pytest.fixture
    def bus_url(self) -> str:
        return "memory://conformance"
