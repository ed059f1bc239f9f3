"""Fixtures for resilience tests."""

from __future__ import annotations

import pytest

from tests.resilience.support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
