"""What the dashboard learns from the bus as it happens: each plugin's lifecycle, breaker,
work in flight and recent outcomes, the latest decisions, and the stream of events the
pages receive over server-sent events.

`LiveView` subscribes one bus handle (without a queue group, so it sees every event
beside the orchestrator and the dead-letter collector) to::

    plugin/*/status             ready, draining, stopped (the plugin's announcements)
    plugin/*/circuit-breaker    the plugin's breaker: closed, open, half_open
    routing/decision            every decision the router publishes
    orchestration/task-start    work sent to a plugin (in flight)
    orchestration/task-complete each attempt's outcome and duration (success rate, p50)
    system/dead-letter          letters as they arrive

A malformed event is counted in ``malformed`` and otherwise ignored: the bus is shared, and
a stranger's message must not break the view. ``heartbeat`` (seconds) also asks every known
plugin's ``health_check`` over RPC that often: a plugin that was ready before the dashboard
started is seen, and silence turns into ``stopped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jira_orchestrator._core.clock import WallClock, format_timestamp, wall
from jira_orchestrator._core.errors import JiraOrchestratorError, NoResponders
from jira_orchestrator._core.identity import DEAD_LETTER_PATTERN, sender_of
from jira_orchestrator._core.protocol import (
    ANYONE,
    ROUTING_DECISION,
    TASK_COMPLETE,
    TASK_START,
    plugin_circuit_breaker,
    plugin_status,
)
from jira_orchestrator.messagebus import (
    DEAD_LETTER_TOPIC,
    Message,
    MessageBus,
    RPCClient,
    Subscription,
)

__all__ = ["DEFAULT_WINDOW", "LiveView", "PluginView"]

log = logging.getLogger("jira_orchestrator.web.dashboard")

DEFAULT_WINDOW = 300.0
"""Seconds of outcomes behind a plugin's success rate and median latency."""
_FEED = 200  # decisions kept in memory for the live feed
_OUTCOMES = 10_000  # outcomes kept per plugin, at most
_TASKS = 10_000  # tasks in flight remembered, at most
_QUEUE = 256  # events waiting for one slow page before the oldest are dropped


@dataclass
class PluginView:
    """One plugin as the dashboard sees it."""

    id: str
    status: str = "unknown"
    """The plugin's own announcement: ready, draining, stopped (unknown until it speaks)."""
    health: str | None = None
    """The last ``health_check`` answer: healthy, degraded, unhealthy."""
    breaker: str | None = None
    breaker_failures: int | None = None
    in_flight: int = 0
    last_seen: float | None = None
    outcomes: deque[tuple[float, bool, float]] = field(
        default_factory=lambda: deque(maxlen=_OUTCOMES)
    )

    def figures(self, now: float, window: float) -> dict[str, Any]:
        """The JSON form, with the success rate and p50 over the last ``window`` seconds."""
        while self.outcomes and self.outcomes[0][0] < now - window:
            self.outcomes.popleft()
        recent = list(self.outcomes)
        succeeded = sum(1 for _, ok, _ in recent if ok)
        durations = sorted(ms for _, _, ms in recent)
        p50 = durations[max(0, math.ceil(len(durations) / 2) - 1)] if durations else None
        return {
            "id": self.id,
            "status": self.status,
            "health": self.health,
            "breaker": self.breaker,
            "breakerFailures": self.breaker_failures,
            "inFlight": self.in_flight,
            "completed": succeeded,
            "failed": len(recent) - succeeded,
            "successRate": round(succeeded / len(recent), 4) if recent else None,
            "p50Ms": None if p50 is None else round(p50, 3),
            "lastSeen": None if self.last_seen is None else format_timestamp(self.last_seen),
            "lastSeenAgo": None if self.last_seen is None else round(now - self.last_seen, 1),
        }


def _text(value: Any, limit: int = 512) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


class LiveView:
    """Plugins, recent decisions and an event stream, fed by a bus handle.

    ``plugins`` names the plugins expected (shown as ``unknown`` until they speak); others
    appear when they publish. `start` subscribes, `stop` unsubscribes and ends every stream.
    """

    def __init__(
        self,
        bus: MessageBus,
        *,
        plugins: Iterable[str] = (),
        window: float = DEFAULT_WINDOW,
        heartbeat: float | None = None,
        health_timeout: float = 2.0,
        clock: WallClock = wall,
    ) -> None:
        if not window > 0:
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        if heartbeat is not None and not heartbeat > 0:
            raise ValueError(f"heartbeat must be a positive number of seconds, got {heartbeat!r}")
        self.bus = bus
        self.window = window
        self.heartbeat = heartbeat
        self.health_timeout = health_timeout
        self.clock = clock
        self.plugins: dict[str, PluginView] = {name: PluginView(name) for name in plugins}
        self.decisions: deque[dict[str, Any]] = deque(maxlen=_FEED)
        self.malformed = 0
        self.dead_letters_seen = 0
        self._tasks: OrderedDict[str, str] = OrderedDict()  # task id -> plugin counted
        self._listeners: set[asyncio.Queue[tuple[str, dict[str, Any]] | None]] = set()
        self._subscriptions: list[Subscription] = []
        self._beat: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe (idempotent); with a ``heartbeat``, start asking plugins' health."""
        if self._subscriptions:
            return
        handlers = {
            plugin_status(ANYONE): self._on_status,
            plugin_circuit_breaker(ANYONE): self._on_breaker,
            ROUTING_DECISION: self._on_decision,
            TASK_START: self._on_task_start,
            TASK_COMPLETE: self._on_task_complete,
            DEAD_LETTER_TOPIC: self._on_dead_letter,
            DEAD_LETTER_PATTERN: self._on_dead_letter,
        }
        self._subscriptions = [
            self.bus.subscribe(pattern, handler, queue_size=10_000, overflow="drop_oldest")
            for pattern, handler in handlers.items()
        ]
        if self.heartbeat is not None:
            self._beat = asyncio.get_running_loop().create_task(self._beating(self.heartbeat))

    async def stop(self) -> None:
        """Unsubscribe, stop the heartbeat and end every event stream."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()
        for queue in list(self._listeners):
            self._offer(queue, None)

    # -- streams ----------------------------------------------------------------------------

    def listen(self) -> asyncio.Queue[tuple[str, dict[str, Any]] | None]:
        """A queue of ``(event, data)`` for one page; None when the view stops."""
        queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue(_QUEUE)
        self._listeners.add(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[tuple[str, dict[str, Any]] | None]) -> None:
        self._listeners.discard(queue)

    @property
    def listeners(self) -> int:
        """How many pages are listening."""
        return len(self._listeners)

    @staticmethod
    def _offer(
        queue: asyncio.Queue[tuple[str, dict[str, Any]] | None],
        item: tuple[str, dict[str, Any]] | None,
    ) -> None:
        while True:
            try:
                queue.put_nowait(item)
                return
            except asyncio.QueueFull:  # a slow page loses its oldest events, not the view
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        for queue in list(self._listeners):
            self._offer(queue, (event, data))

    # -- figures ----------------------------------------------------------------------------

    def plugin(self, name: str) -> PluginView:
        view = self.plugins.get(name)
        if view is None:
            view = self.plugins[name] = PluginView(name)
        return view

    def snapshot(self) -> list[dict[str, Any]]:
        """Every plugin's figures, by name."""
        now = self.clock()
        return [self.plugins[name].figures(now, self.window) for name in sorted(self.plugins)]

    def _changed(self, view: PluginView) -> None:
        self._emit("plugin", view.figures(self.clock(), self.window))

    def _bad(self, message: Message, why: str) -> None:
        self.malformed += 1
        log.debug("dashboard ignores %s %s: %s", message.topic, message.message_id, why)

    # -- handlers ---------------------------------------------------------------------------

    def _source(self, message: Message) -> str | None:
        """The plugin a status or breaker event speaks for, as its topic proves it; None
        (and ignored) when its ``source`` claims another (the orchestrator dead-letters it)."""
        sender = sender_of(message.topic, message.source)
        if sender is None:
            self._bad(message, "its source is not the plugin its topic names")
        return sender

    async def _on_status(self, message: Message) -> None:
        payload = message.payload
        status = payload.get("status") if isinstance(payload, Mapping) else None
        if not isinstance(status, str) or not status:
            self._bad(message, "no status")
            return
        sender = self._source(message)
        if sender is None:
            return
        view = self.plugin(sender)
        view.status = status[:64]
        view.last_seen = self.clock()
        if status == "stopped":
            view.in_flight = 0
        self._changed(view)

    async def _on_breaker(self, message: Message) -> None:
        payload = message.payload
        state = payload.get("state") if isinstance(payload, Mapping) else None
        if not isinstance(state, str) or not state:
            self._bad(message, "no state")
            return
        sender = self._source(message)
        if sender is None:
            return
        view = self.plugin(sender)
        view.breaker = state[:64]
        failures = payload.get("failures") if isinstance(payload, Mapping) else None
        view.breaker_failures = failures if isinstance(failures, int) else None
        view.last_seen = self.clock()
        self._changed(view)

    async def _on_decision(self, message: Message) -> None:
        payload = message.payload
        if not isinstance(payload, Mapping) or not isinstance(payload.get("requestId"), str):
            self._bad(message, "not a decision")
            return
        summary = {
            "id": payload["requestId"][:256],
            "createdAt": _text(payload.get("createdAt"), 64) or message.timestamp[:64],
            "primaryPlugin": _text(payload.get("primaryPlugin"), 256),
            "confidence": payload.get("confidence")
            if isinstance(payload.get("confidence"), int | float)
            else None,
            "fallbackPlugins": [
                p[:256] for p in payload.get("fallbackPlugins") or [] if isinstance(p, str)
            ][:10],
            "text": None,
        }
        self.decisions.appendleft(summary)
        self._emit("decision", summary)

    async def _on_task_start(self, message: Message) -> None:
        payload = message.payload
        task = payload.get("taskId") if isinstance(payload, Mapping) else None
        plugin = payload.get("plugin") if isinstance(payload, Mapping) else None
        if not isinstance(task, str) or not isinstance(plugin, str) or not plugin:
            self._bad(message, "no taskId or plugin")
            return
        if task in self._tasks:
            return  # a redelivery
        self._tasks[task] = plugin
        while len(self._tasks) > _TASKS:
            _, forgotten = self._tasks.popitem(last=False)
            self.plugin(forgotten).in_flight = max(0, self.plugin(forgotten).in_flight - 1)
        view = self.plugin(plugin)
        view.in_flight += 1
        self._changed(view)
        self._emit("task", {"taskId": task[:256], "plugin": plugin, "status": "running"})

    async def _on_task_complete(self, message: Message) -> None:
        payload = message.payload
        if not isinstance(payload, Mapping) or not isinstance(payload.get("taskId"), str):
            self._bad(message, "no taskId")
            return
        now = self.clock()
        touched: set[str] = set()
        counted = self._tasks.pop(payload["taskId"], None)
        if counted is not None:
            view = self.plugin(counted)
            view.in_flight = max(0, view.in_flight - 1)
            touched.add(counted)
        attempts = payload.get("attempts")
        for attempt in attempts if isinstance(attempts, list) else []:
            if not isinstance(attempt, Mapping) or not isinstance(attempt.get("plugin"), str):
                continue
            outcome = attempt.get("outcome")
            if outcome not in ("completed", "failed"):
                continue  # skipped: the plugin did no work
            duration = attempt.get("durationMs")
            ms = float(duration) if isinstance(duration, int | float) else 0.0
            self.plugin(attempt["plugin"]).outcomes.append((now, outcome == "completed", ms))
            touched.add(attempt["plugin"])
        for name in sorted(touched):
            self._changed(self.plugin(name))
        self._emit(
            "task",
            {
                "taskId": payload["taskId"][:256],
                "plugin": _text(payload.get("plugin"), 256),
                "status": _text(payload.get("outcome"), 64),
            },
        )

    async def _on_dead_letter(self, message: Message) -> None:
        payload = message.payload
        self.dead_letters_seen += 1
        original = payload.get("message") if isinstance(payload, Mapping) else None
        self._emit(
            "dead-letter",
            {
                "reason": _text(payload.get("reason"), 128)
                if isinstance(payload, Mapping)
                else None,
                "topic": _text(original.get("topic")) if isinstance(original, Mapping) else None,
            },
        )

    # -- heartbeat --------------------------------------------------------------------------

    async def _beating(self, every: float) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(every)

    async def refresh(self) -> None:
        """Ask every known plugin's ``health_check`` at once (silence: ``stopped``)."""
        await asyncio.gather(*(self._check(name) for name in list(self.plugins)))

    async def _check(self, name: str) -> None:
        view = self.plugin(name)
        before = (view.status, view.health, view.breaker)
        try:
            answer = await RPCClient(f"plugin://{name}/rpc", bus=self.bus).call(
                "health_check", timeout=self.health_timeout
            )
        except NoResponders:
            view.status, view.health = "stopped", None
        except (TimeoutError, JiraOrchestratorError) as exc:
            view.health = "unhealthy"
            log.debug("health_check of %s failed: %s", name, exc)
        else:
            if isinstance(answer, Mapping):
                view.health = _text(answer.get("status"), 64)
                state = answer.get("circuitBreakerState")
                view.breaker = _text(state, 64)
                if view.status in ("unknown", "stopped"):
                    view.status = "ready"  # it answers: it was ready before we listened
            view.last_seen = self.clock()
            self._changed(view)
            return
        if (view.status, view.health, view.breaker) != before:
            self._changed(view)
