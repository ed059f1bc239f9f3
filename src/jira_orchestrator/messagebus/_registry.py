"""The buses of this process: one shared bus per URL, one handle per plugin id on it."""

from __future__ import annotations

import asyncio
import logging
import os

from jira_orchestrator._core.errors import (
    InvalidTopic,
)
from jira_orchestrator._core.redact import redact_url
from jira_orchestrator._core.tasks import BackgroundTasks
from jira_orchestrator._core.topics import normalize_topic
from jira_orchestrator.messagebus._bus import MessageBus
from jira_orchestrator.messagebus._config import DEFAULT_URL, URL_ENV, BusConfig
from jira_orchestrator.messagebus._shared import _SharedBus
from jira_orchestrator.transports import open_transport

__all__ = ["close_message_bus", "get_message_bus", "reset_message_bus"]


def _plugin_id(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidTopic(repr(value), 0, "a plugin id must be a string")
    if normalize_topic(value) != value or "/" in value:
        raise InvalidTopic(value, 0, "a plugin id must be a single topic segment")
    return value


_cores: dict[str, _SharedBus] = {}
_closing = BackgroundTasks(logging.getLogger("jira_orchestrator.messagebus"), "closing a bus")


def _default_url() -> str:
    return os.environ.get(URL_ENV) or DEFAULT_URL


def get_message_bus(
    plugin_id: str, url: str | None = None, *, config: BusConfig | None = None
) -> MessageBus:
    """The bus handle of ``plugin_id`` on ``url`` (default ``$JIRA_ORCHESTRATOR_BUS_URL``
    or ``memory://``); the same handle for the same id and URL.

    ``config`` applies when the URL's bus is first created; a different config for a bus
    that exists raises ``ValueError`` (call `reset_message_bus` first).
    """
    plugin_id = _plugin_id(plugin_id)
    url = url or _default_url()
    core = _cores.get(url)
    if core is not None and core.closed:
        del _cores[url]
        core = None
    if core is None:
        core = _cores[url] = _SharedBus(url, open_transport(url), config or BusConfig())
    elif config is not None and config != core.config:
        raise ValueError(
            f"the bus on {redact_url(url)} already runs with {core.config}; reset it first"
        )
    handle = core.handles.get(plugin_id)
    if handle is None:
        handle = core.handles[plugin_id] = MessageBus(core, plugin_id)
    return handle


def reset_message_bus() -> None:
    """Forget every bus of this process (for tests): subscriptions end, handles go stale.

    Transports that need the event loop to close are closed in the background when a loop
    is running; use `close_message_bus` to wait for it.
    """
    cores = list(_cores.values())
    _cores.clear()
    for core in cores:
        for handle in list(core.handles.values()):
            handle.clear()
        core.closed = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:  # without a loop, the transport's own loop is gone already
            _closing.spawn(core.transport.close(), loop=loop)


async def close_message_bus() -> None:
    """Close every bus of this process and wait until their transports are closed."""
    cores = list(_cores.values())
    _cores.clear()
    for core in cores:
        await core.close()
