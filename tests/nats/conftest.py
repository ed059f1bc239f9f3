"""Fixtures of the NATS transport tests: a private nats-server per session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from jira_orchestrator.messagebus import close_message_bus, reset_message_bus
from tests.nats._server import NatsServer


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server with JetStream for the session's NATS tests."""
    with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test alone, for tests that stop or restart it."""
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture(autouse=True)
async def fresh_bus() -> AsyncIterator[None]:
    reset_message_bus()
    yield
    await close_message_bus()
