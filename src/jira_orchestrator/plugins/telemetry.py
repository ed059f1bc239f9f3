"""A plugin process's metrics, sent to the orchestrator over the bus.

With ``$JIRA_ORCHESTRATOR_METRICS`` set to a number of seconds (``up`` sets it for the
plugins it starts), a `Plugin` records metrics and publishes a snapshot of them on
``plugin/<id>/telemetry`` that often, and once more when it stops. The orchestrator's
``/metrics`` serves them with a ``process`` label (see docs/observability.md), so one
scrape covers every process without opening a port per plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from jira_orchestrator._core import observe
from jira_orchestrator._core.clock import format_timestamp, wall
from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator._core.protocol import plugin_telemetry
from jira_orchestrator.messagebus import MessageBus

__all__ = ["TelemetryPublisher", "telemetry_topic"]

log = logging.getLogger("jira_orchestrator.plugins.telemetry")


def telemetry_topic(plugin_id: str) -> str:
    """Where plugin ``plugin_id`` publishes its metric snapshots."""
    return plugin_telemetry(plugin_id)


class TelemetryPublisher:
    """Publishes this process's metric snapshot every ``interval`` seconds."""

    def __init__(self, bus: MessageBus, interval: float) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, not {interval!r}")
        self.bus = bus
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls, bus: MessageBus) -> TelemetryPublisher | None:
        """One publisher when ``$JIRA_ORCHESTRATOR_METRICS`` asks for it, else None."""
        interval = observe.interval_from_env()
        return None if interval is None else cls(bus, interval)

    def start(self) -> None:
        observe.enable()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._repeat(), name=f"telemetry of {self.bus.plugin_id}"
            )

    async def publish(self) -> None:
        """Publish one snapshot now."""
        registry = observe.active()
        if registry is None:
            return
        await self.bus.publish(
            topic=telemetry_topic(self.bus.plugin_id),
            payload={
                "metrics": registry.snapshot(),
                "interval": self.interval,
                "timestamp": format_timestamp(wall()),
            },
        )

    async def _repeat(self) -> None:
        while True:
            try:
                await self.publish()
            except JiraOrchestratorError as error:  # the bus is down: the next one may pass
                log.warning("metrics snapshot not sent: %s", error)
            await asyncio.sleep(self.interval)  # a period, not a wait for something

    async def stop(self) -> None:
        """Stop the period and send a last snapshot (the counts of the final moments)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        with contextlib.suppress(JiraOrchestratorError):
            await self.publish()
