"""A NATS deployment exactly as ``up`` configures it, for attacks with one plugin's rights."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jira_orchestrator.cli.up import bus_urls
from jira_orchestrator.messagebus import close_message_bus, reset_message_bus
from jira_orchestrator.orchestrator.natsconfig import (
    ORCHESTRATOR,
    NatsUser,
    nats_authorization,
    provision_consumers,
)
from jira_orchestrator.plugins import PluginCatalog, discover_plugins
from jira_orchestrator.transports.nats import NatsTransport
from jira_orchestrator.transports.nats_server import NatsServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class Deployment:
    """The server ``up`` would start, the URL each process gets, each user's password."""

    server: NatsServer
    catalog: PluginCatalog
    urls: dict[str, str]
    passwords: dict[str, str]
    orchestrator: NatsTransport

    def raw_url(self, user: str) -> str:
        """The user's URL for a raw client: its credentials, no transport options."""
        return self.server.url_for(user, self.passwords[user])


@pytest.fixture
def server_and_catalog(
    tmp_path: Path,
) -> Iterator[tuple[NatsServer, PluginCatalog, str, list[NatsUser]]]:
    catalog = discover_plugins(EXAMPLES / "plugins")
    text, users = nats_authorization(catalog)  # what up writes into the server's config
    with NatsServer(tmp_path / "nats", extra_config=text) as server:
        yield server, catalog, text, users


@pytest.fixture
async def deployment(
    server_and_catalog: tuple[NatsServer, PluginCatalog, str, list[NatsUser]],
) -> AsyncIterator[Deployment]:
    """The embedded server of ``up``, with the streams and consumers ``up`` creates through
    the orchestrator's user before any plugin starts."""
    server, catalog, _, users = server_and_catalog
    urls = bus_urls(server, users)
    orchestrator = NatsTransport(urls[ORCHESTRATOR])
    try:
        await provision_consumers(orchestrator, catalog)
        yield Deployment(server, catalog, urls, {u.name: u.password for u in users}, orchestrator)
    finally:
        with contextlib.suppress(Exception):
            await orchestrator.close()


@pytest.fixture(autouse=True)
async def fresh_bus() -> AsyncIterator[None]:
    reset_message_bus()
    yield
    await close_message_bus()
