"""An in-process ecosystem: the example plugins started on a fresh bus, and an orchestrator."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from jira_orchestrator.messagebus import close_message_bus, reset_message_bus
from jira_orchestrator.orchestrator.dispatcher import Orchestrator
from jira_orchestrator.plugins import Plugin

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"


def load_example(name: str) -> Plugin:
    entry = EXAMPLES / name / "plugin.py"
    spec = importlib.util.spec_from_file_location(f"dispatch_{name}", entry)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin: Plugin = module.plugin
    return plugin


class Ecosystem:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.plugins: dict[str, Plugin] = {}
        self.orchestrator: Orchestrator | None = None

    async def start(self, *names: str, **options: object) -> Orchestrator:
        for name in names or sorted(p.parent.name for p in EXAMPLES.glob("*/plugin.py")):
            plugin = load_example(name)
            await plugin.start()
            self.plugins[name] = plugin
        self.orchestrator = Orchestrator(
            EXAMPLES,
            tasks=self.tmp_path / "tasks.db",
            **options,  # type: ignore[arg-type]
        )
        await self.orchestrator.start()
        return self.orchestrator

    async def stop(self) -> None:
        """Stop all of it; each part even when another one fails to stop."""
        orchestrator, self.orchestrator = self.orchestrator, None
        plugins, self.plugins = list(self.plugins.values()), {}
        async with contextlib.AsyncExitStack() as stack:  # exits run last in, first out
            for plugin in plugins:
                stack.push_async_callback(plugin.stop, timeout=5)
            if orchestrator is not None:
                stack.callback(orchestrator.close)
                stack.push_async_callback(orchestrator.stop)


@pytest.fixture
async def ecosystem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Ecosystem]:
    reset_message_bus()
    monkeypatch.setenv("JIRA_ORCHESTRATOR_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("JIRA_ORCHESTRATOR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DEMO_FAIL", raising=False)
    world = Ecosystem(tmp_path)
    try:
        yield world
    finally:
        try:
            await world.stop()
        finally:
            await close_message_bus()


Start = Callable[..., object]
