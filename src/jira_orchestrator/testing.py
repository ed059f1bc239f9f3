"""Pytest fixtures for plugin authors (the seed's ``resetMessageBus`` pattern).

Installed as a pytest plugin, so in any project that depends on jira-orchestrator::

    async def test_ready(message_bus, start_plugin):
        plugin = await start_plugin("plugins/fastapi-backend")
        ...

``message_bus`` gives a fresh in-process bus for the test (a factory of handles by plugin
id); ``start_plugin`` starts a `Plugin` (a folder, a manifest or a Plugin object) in this
process, with its state and output in the test's temporary folder, and stops it after.
Async fixtures: install pytest-asyncio (the ``dev`` extra has it).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from jira_orchestrator._core.protocol import OUTPUT_ENV, STATE_DIR_ENV
from jira_orchestrator.messagebus import (
    MessageBus,
    close_message_bus,
    get_message_bus,
    reset_message_bus,
)
from jira_orchestrator.plugins.manifest import PluginManifest
from jira_orchestrator.plugins.runtime import Plugin

__all__ = ["message_bus", "start_plugin"]

_F = TypeVar("_F", bound=Callable[..., Any])


def async_fixture(function: _F) -> _F:
    """pytest-asyncio's fixture decorator (it runs async fixtures), else pytest's.

    Loaded as a pytest plugin in every project that installs jira-orchestrator, this
    module must never break pytest where pytest-asyncio (the ``testing`` extra) is absent.
    """
    try:
        from pytest_asyncio import fixture
    except ImportError:
        return cast(_F, pytest.fixture(function))
    return cast(_F, fixture(function))


BusFactory = Callable[[str], MessageBus]
PluginStarter = Callable[..., Awaitable[Plugin]]


@async_fixture
async def message_bus() -> AsyncIterator[BusFactory]:
    """A fresh in-process bus: call it with a plugin id to get that plugin's handle."""
    reset_message_bus()

    def handle(plugin_id: str) -> MessageBus:
        return get_message_bus(plugin_id, "memory://")

    yield handle
    await close_message_bus()


@async_fixture
async def start_plugin(
    message_bus: BusFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[PluginStarter]:
    """Start plugins in this process; each is stopped when the test ends.

    Plugins created during the test keep their state and output under ``tmp_path``
    (``$JIRA_ORCHESTRATOR_STATE_DIR`` and ``$JIRA_ORCHESTRATOR_OUTPUT`` point there).
    """
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    monkeypatch.setenv(OUTPUT_ENV, str(tmp_path / "output"))
    started: list[Plugin] = []

    async def start(
        source: str | os.PathLike[str] | PluginManifest | Plugin, **options: Any
    ) -> Plugin:
        plugin = (
            source if isinstance(source, Plugin) else Plugin(source, bus_url="memory://", **options)
        )
        await plugin.start()
        started.append(plugin)
        return plugin

    yield start
    for plugin in reversed(started):
        await plugin.stop(timeout=5.0)
