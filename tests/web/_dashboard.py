"""An ecosystem with the dashboard on it, for the dashboard's tests: the example plugins on
a fresh memory bus, an orchestrator with its stores in a temporary folder, the dashboard
watching the bus, and the HTTP server serving it on a free port."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator.messagebus import close_message_bus, reset_message_bus
from jira_orchestrator.orchestrator import Orchestrator, SagaStore
from jira_orchestrator.orchestrator.deadletters import DeadLetterStore
from jira_orchestrator.plugins import Plugin
from jira_orchestrator.web import HTTPServer
from jira_orchestrator.web.dashboard import Dashboard

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "plugins"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JIRA = "https://example.atlassian.net"


def load_example(name: str) -> Plugin:
    entry = EXAMPLES / name / "plugin.py"
    spec = importlib.util.spec_from_file_location(f"dashboard_{name}", entry)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin: Plugin = module.plugin
    return plugin


class World:
    """What a test sees: ``orchestrator``, ``dashboard``, ``server`` (``url``), ``plugins``."""

    def __init__(self, orchestrator: Orchestrator, dashboard: Dashboard, server: HTTPServer):
        self.orchestrator = orchestrator
        self.dashboard = dashboard
        self.server = server
        self.plugins: dict[str, Plugin] = {}

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def letters(self) -> DeadLetterStore:
        assert self.orchestrator.dead_letters is not None
        return self.orchestrator.dead_letters.store


@asynccontextmanager
async def ecosystem(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    plugins: tuple[str, ...] | None = None,
    token: str | None = None,
    **options: Any,
) -> AsyncIterator[World]:
    """Start everything (the dashboard before the plugins, so it hears them announce
    themselves); stop and release everything on the way out, whatever happened."""
    reset_message_bus()
    monkeypatch.setenv("JIRA_ORCHESTRATOR_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("JIRA_ORCHESTRATOR_STATE_DIR", str(tmp_path / "state"))
    orchestrator = Orchestrator(
        EXAMPLES,
        tasks=tmp_path / "tasks.db",
        decisions=tmp_path / "decisions.db",
        dead_letters=tmp_path / "dead-letters.db",
    )
    sagas = SagaStore(tmp_path / "sagas.db")
    assert orchestrator.dead_letters is not None
    dashboard = Dashboard.of(orchestrator, sagas=sagas, token=token, jira_url=JIRA, **options)
    assert dashboard.dead_letters is orchestrator.dead_letters.store
    assert dashboard.decisions is orchestrator.router.store
    server = HTTPServer(dashboard.routes(), port=0, shutdown_timeout=2)
    world = World(orchestrator, dashboard, server)
    try:
        await dashboard.start()
        await server.start()
        for name in (
            plugins
            if plugins is not None
            else sorted(p.parent.name for p in EXAMPLES.glob("*/plugin.py"))
        ):
            plugin = load_example(name)
            await plugin.start()
            world.plugins[name] = plugin
        await orchestrator.start()
        yield world
    finally:
        await dashboard.stop()
        await server.stop()
        await orchestrator.stop()
        for plugin in world.plugins.values():
            await plugin.stop(timeout=5)
        orchestrator.close()
        sagas.close()
        await close_message_bus()
