"""The orchestrator: route each request, send it to a plugin, fall back, record the task.

For each request the router decides a primary plugin and fallbacks; the orchestrator sends
``{command, parameters}`` to ``plugin/<id>/request`` under that plugin's resilience policy
(timeout, retry, breaker from its manifest) and, when a plugin fails, is unavailable or its
breaker is open, tries the next: the decision's ``fallbackPlugins``, then the primary's
``errorHandling.fallback.fallbackPlugin``. It says which plugin answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jira_orchestrator._core import observe, tracing
from jira_orchestrator._core.clock import MonotonicClock, format_timestamp, monotonic, wall
from jira_orchestrator._core.errors import (
    CircuitOpenError,
    DeliveryError,
    JiraOrchestratorError,
    NoResponders,
    RequestTimeout,
    RPCError,
)
from jira_orchestrator._core.ids import new_id
from jira_orchestrator._core.protocol import (
    ANYONE,
    ORCHESTRATOR_ID,
    TASK_COMPLETE,
    TASK_START,
    CommandRequest,
    plugin_circuit_breaker,
    plugin_request,
    plugin_status,
)
from jira_orchestrator._core.text import escape_control
from jira_orchestrator.messagebus import (
    Message,
    MessageBus,
    RPCClient,
    RPCServer,
    Subscription,
    current_caller,
    get_message_bus,
)
from jira_orchestrator.orchestrator.deadletters import DeadLetterCollector, DeadLetterStore
from jira_orchestrator.orchestrator.errors import PluginFailed, command_result
from jira_orchestrator.orchestrator.rights import routing_refusal
from jira_orchestrator.orchestrator.tasks import TaskStore
from jira_orchestrator.plugins import CommandRejected, PluginCatalog, discover_plugins
from jira_orchestrator.plugins.manifest import PluginManifest
from jira_orchestrator.resilience import ResiliencePolicy
from jira_orchestrator.routing import (
    NoPlugins,
    Router,
    RoutingDecision,
    RoutingRequest,
    adf_to_text,
)

__all__ = [
    "ORCHESTRATOR_ID",
    "TASK_HEADER",
    "Attempt",
    "DispatchResult",
    "Orchestrator",
    "PluginFailed",
    "PluginHealth",
    "issue_parameters",
]

log = logging.getLogger("jira_orchestrator.orchestrator")

DEFAULT_COMMAND = "handle_issue"
TASK_HEADER = "taskId"
"""Header of a request the orchestrator sends a plugin: the task's id, the same each time
that task is sent (a retry, a fallback, another replica), to key side effects by."""
_METHOD_FAILED = -32603  # JSON-RPC "internal error", what RPCServer answers a failing method


@dataclass
class Attempt:
    """One plugin tried for a task."""

    plugin: str
    outcome: Literal["completed", "failed", "skipped"]
    error: str | None = None
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin,
            "outcome": self.outcome,
            "error": self.error,
            "durationMs": round(self.duration * 1000, 3),
        }


@dataclass
class DispatchResult:
    """What happened to one request: who answered, with what, how long it took."""

    task_id: str
    request_id: str
    issue_key: str | None
    primary: str | None
    plugin: str | None
    outcome: Literal["completed", "failed", "triaged"]
    """``triaged``: the router was not sure enough; nothing was dispatched."""
    result: Any
    error: str | None
    duration: float
    attempts: list[Attempt] = field(default_factory=list)
    decision: RoutingDecision | None = None

    @property
    def fallback_used(self) -> bool:
        """True when a plugin other than the primary answered."""
        return self.plugin is not None and self.plugin != self.primary

    def to_dict(self) -> dict[str, Any]:
        return {
            "taskId": self.task_id,
            "requestId": self.request_id,
            "issueKey": self.issue_key,
            "primaryPlugin": self.primary,
            "plugin": self.plugin,
            "outcome": self.outcome,
            "result": self.result,
            "error": self.error,
            "durationMs": round(self.duration * 1000, 3),
            "fallbackUsed": self.fallback_used,
            "attempts": [attempt.to_dict() for attempt in self.attempts],
        }


@dataclass
class PluginHealth:
    """What the orchestrator knows of a plugin's health."""

    status: str = "unknown"  # unknown, ready, stopped, healthy, degraded, unhealthy
    breaker: str | None = None  # the plugin's own breaker, as it announced it
    last_seen: float | None = None
    reason: str | None = None
    """Why it is stopped or unhealthy, as the orchestrator found out."""


def issue_parameters(issue: Mapping[str, Any] | str, files: Sequence[str] = ()) -> dict[str, Any]:
    """The ``parameters`` of a ``handle_issue`` command (`jira_orchestrator.plugins.Issue`)."""
    if isinstance(issue, str):
        return {"summary": issue, "files": list(files)}
    fields = issue.get("fields", issue)
    description = fields.get("description") or ""
    if not isinstance(description, str):
        description = adf_to_text(description, where="fields.description")
    issue_type = fields.get("issuetype") or fields.get("issueType") or {}
    components = [
        c.get("name", "") if isinstance(c, Mapping) else str(c)
        for c in fields.get("components") or []
    ]
    return {
        "key": str(issue.get("key") or issue.get("id") or ""),
        "summary": fields.get("summary") or "",
        "description": description,
        "issueType": issue_type.get("name", "Task")
        if isinstance(issue_type, Mapping)
        else str(issue_type),
        "labels": list(fields.get("labels") or []),
        "components": components,
        "files": list(files) or list(fields.get("files") or []),
    }


class Orchestrator:
    """Routes and dispatches requests to the plugins of a catalog over a bus.

    ``plugins`` is a plugins directory or a `PluginCatalog`. ``tasks`` is a `TaskStore` or
    a SQLite path (default: in memory); ``decisions`` a SQLite path for routing decisions;
    ``dead_letters`` a SQLite path where every ``system/dead-letter`` letter is stored.
    ``heartbeat`` is how often, in seconds, to call every plugin's ``health_check``
    (None: only at `start`).
    """

    def __init__(
        self,
        plugins: str | os.PathLike[str] | PluginCatalog,
        *,
        bus: MessageBus | None = None,
        bus_url: str | None = None,
        tasks: TaskStore | str | os.PathLike[str] | None = None,
        decisions: str | os.PathLike[str] | None = None,
        dead_letters: str | os.PathLike[str] | None = None,
        clock: MonotonicClock = monotonic,
        heartbeat: float | None = None,
        health_timeout: float = 2.0,
        min_confidence: float = 0.0,
    ) -> None:
        if isinstance(plugins, PluginCatalog):
            self.catalog = plugins
        else:
            try:
                self.catalog = discover_plugins(Path(plugins))
            except NotADirectoryError as error:
                raise NoPlugins(str(error)) from None
        self.bus = bus if bus is not None else get_message_bus(ORCHESTRATOR_ID, bus_url)
        self.clock = clock
        self.manifests: dict[str, PluginManifest] = {
            plugin.name: plugin.manifest for plugin in self.catalog.plugins
        }
        self.policies: dict[str, ResiliencePolicy] = {
            name: ResiliencePolicy.from_manifest(manifest, name=f"dispatch:{name}", clock=clock)
            for name, manifest in self.manifests.items()
        }
        self.health: dict[str, PluginHealth] = {name: PluginHealth() for name in self.manifests}
        self.tasks = tasks if isinstance(tasks, TaskStore) else TaskStore(tasks or ":memory:")
        self.router = Router(
            self.catalog.plugins,
            availability=self.availability,
            bus=self.bus,
            store=decisions,
            requester=ORCHESTRATOR_ID,
            min_confidence=min_confidence,
            unavailable_reason=self.unavailable_reason,
        )
        self.abstentions = 0
        """Requests the router was not sure enough to dispatch (``routing.minConfidence``)."""
        self.heartbeat = heartbeat
        self.health_timeout = health_timeout
        self.dead_letters = (
            None
            if dead_letters is None
            else DeadLetterCollector(self.bus, DeadLetterStore(dead_letters))
        )
        self._subscriptions: list[Subscription] = []
        self._server: RPCServer | None = None
        self._beat: asyncio.Task[None] | None = None
        self.refused_delegations = 0
        self.refused_dispatches = 0
        """``dispatch`` calls refused: an anonymous caller, or a plugin whose ``canRouteTo``
        allows none of the plugins fit for the request."""
        self.spoofed = 0
        """Status and breaker events whose ``source`` was not the plugin their topic names."""
        self._lost_watch: dict[str, set[asyncio.Future[str]]] = {}

    # -- health ----------------------------------------------------------------------------

    def availability(self, plugin_id: str) -> float:
        """0 (do not send) to 1 (healthy), from breakers and announced health."""
        policy = self.policies.get(plugin_id)
        own = None if policy is None or policy.breaker is None else policy.breaker.state.value
        health = self.health.get(plugin_id, PluginHealth())
        if own in ("open", "forced_open") or health.breaker in ("open", "forced_open"):
            return 0.0
        if health.status in ("stopped", "unhealthy"):
            return 0.0
        if own == "half_open" or health.breaker == "half_open" or health.status == "degraded":
            return 0.5
        return 1.0

    async def _announcer(self, message: Message) -> str | None:
        """The plugin a status or breaker event speaks for: the one its topic names
        (``plugin/<id>/status``), which on NATS only that plugin's user may publish. An
        envelope whose ``source`` says otherwise is spoofed: counted, logged in one line
        and dead-lettered (``spoofed``) by `MessageBus.verified_sender`, never believed."""
        with contextlib.suppress(JiraOrchestratorError):
            plugin = await self.bus.verified_sender(message)
            if plugin is not None:
                return plugin
        self.spoofed += 1
        return None

    def unavailable_reason(self, plugin_id: str) -> str:
        """Why `availability` is 0 for ``plugin_id``, in a few words (for decisions)."""
        policy = self.policies.get(plugin_id)
        own = None if policy is None or policy.breaker is None else policy.breaker.state.value
        health = self.health.get(plugin_id, PluginHealth())
        if own in ("open", "forced_open"):
            return "its dispatch circuit breaker is open"
        if health.breaker in ("open", "forced_open"):
            return "its own circuit breaker is open"
        if health.status in ("stopped", "unhealthy"):
            return f"{health.status}: {health.reason or 'as it announced'}"
        return "down"

    async def _on_status(self, message: Message) -> None:
        plugin = await self._announcer(message)
        if plugin in self.health and isinstance(message.payload, Mapping):
            status = message.payload.get("status")
            if isinstance(status, str):
                self.health[plugin].status = status
                self.health[plugin].reason = None
                self.health[plugin].last_seen = self.clock()

    async def _on_breaker(self, message: Message) -> None:
        plugin = await self._announcer(message)
        if plugin in self.health and isinstance(message.payload, Mapping):
            state = message.payload.get("state")
            if isinstance(state, str):
                self.health[plugin].breaker = state
                self.health[plugin].last_seen = self.clock()

    async def refresh_health(self) -> dict[str, PluginHealth]:
        """Ask every plugin for ``health_check`` at once; silence counts against it.

        A plugin without an RPC endpoint (the least a plugin must serve is
        ``plugin/<id>/request``, docs/protocol.md) is judged by its status announcements
        and by whether anybody serves its requests (the transport's presence check).
        """

        async def check(plugin: str) -> None:
            client = RPCClient(f"plugin://{plugin}/rpc", bus=self.bus)
            health = self.health[plugin]
            try:
                answer = await client.call("health_check", timeout=self.health_timeout)
            except NoResponders:
                await self._presence(plugin)
            except (RequestTimeout, DeliveryError, JiraOrchestratorError) as error:
                health.status = "unhealthy"
                health.reason = f"its health check failed: {error}"
            else:
                health.reason = None
                if isinstance(answer, Mapping):
                    health.status = str(answer.get("status", "unknown"))
                    state = answer.get("circuitBreakerState")
                    health.breaker = state if isinstance(state, str) else None
                health.last_seen = self.clock()

        await asyncio.gather(*(check(plugin) for plugin in self.health))
        return self.health

    async def _presence(self, plugin: str) -> None:
        """Health of a plugin that has no RPC endpoint: whoever serves its requests."""
        health = self.health[plugin]
        try:
            present = await self.bus.transport.present(
                plugin_request(plugin), timeout=self.health_timeout
            )
        except JiraOrchestratorError as error:
            health.status = "unhealthy"
            health.reason = f"its presence check failed: {error}"
            return
        if present is False:
            self.plugin_lost(plugin, "nobody answers its requests or its health check")
        elif present:
            if health.status not in ("ready", "draining"):
                health.status = "ready"
                health.reason = None
            health.last_seen = self.clock()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen to plugins' status and breaker events, serve RPC, check health."""
        bus = self.bus
        self._subscriptions = [
            bus.subscribe(plugin_status(ANYONE), self._on_status),
            bus.subscribe(plugin_circuit_breaker(ANYONE), self._on_breaker),
        ]
        server = self._server = RPCServer(f"plugin://{bus.plugin_id}/rpc", bus=bus)
        server.register("dispatch", self._rpc_dispatch)
        server.register("delegate", self._rpc_delegate)
        server.register("status", self.status)
        if self.dead_letters is not None:
            self.dead_letters.start()
        await self.refresh_health()
        if self.heartbeat:
            self._beat = asyncio.get_running_loop().create_task(self._heartbeat(self.heartbeat))

    async def _heartbeat(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.refresh_health()

    async def stop(self) -> None:
        """Stop listening and serving (tasks in flight finish with their callers)."""
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()
        if self.dead_letters is not None:
            await self.bus.flush()
            await self.dead_letters.flush()
            self.dead_letters.stop()
        if self._server is not None:
            self._server.close()
            self._server = None
        await self.router.wait_published()

    def close(self) -> None:
        """Release the task, decision and dead-letter databases."""
        self.tasks.close()
        self.router.close()
        if self.dead_letters is not None:
            self.dead_letters.store.close()

    def status(self) -> dict[str, Any]:
        """Plugins' health and availability, task counts, and delegations refused."""
        return {
            "plugins": {
                name: {
                    "status": health.status,
                    "reason": health.reason,
                    "breaker": health.breaker,
                    "availability": self.availability(name),
                    "dispatchBreaker": None
                    if self.policies[name].breaker is None
                    else self.policies[name].breaker.state.value,  # type: ignore[union-attr]
                }
                for name, health in self.health.items()
            },
            "tasks": self.tasks.counts(),
            "refusedDelegations": self.refused_delegations,
            "refusedDispatches": self.refused_dispatches,
            "spoofed": self.spoofed,
            "abstentions": self.abstentions,
        }

    # -- dispatch --------------------------------------------------------------------------

    def candidates(self, decision: RoutingDecision) -> list[str]:
        """Who to try, in order: primary, the decision's fallbacks, the primary's
        ``errorHandling.fallback.fallbackPlugin``; then the fallback plugins of relevant
        plugins the router left out because they were unavailable (so work whose only
        fitting plugin is down still reaches that plugin's declared fallback)."""
        order: list[str] = []
        if decision.primary_plugin is not None:
            order.append(decision.primary_plugin)
        order.extend(decision.fallback_plugins)
        down = [p for p in decision.excluded if p in self.policies and not self.availability(p)]
        for plugin in [*order[:1], *down]:
            if plugin in self.policies:
                extra = self.policies[plugin].fallback_plugin
                if extra is not None:
                    order.append(extra)
        return [plugin for plugin in dict.fromkeys(order) if plugin in self.manifests]

    async def dispatch(
        self,
        request: Mapping[str, Any] | str,
        *,
        command: str = DEFAULT_COMMAND,
        parameters: Mapping[str, Any] | None = None,
        files: Sequence[str] = (),
        task_id: str | None = None,
        decision: RoutingDecision | None = None,
        requester: str | None = None,
    ) -> DispatchResult:
        """Route ``request`` (a Jira issue or text) and have a plugin do it.

        ``decision``, when the caller has already routed the request (to show the decision
        before the work starts), is used instead of routing it again. ``requester``, a
        plugin of the catalog, dispatches with its own rights: only plugins its
        ``routing.canRouteTo`` names and whose ``acceptsRoutingFrom`` admits it are tried
        (the others are skipped, ``refused``). Never raises for a plugin's failure: the
        result says what happened. Raises `InvalidRequest` for a request the router cannot
        read.
        """
        with tracing.span("dispatch", attributes={"jo.command": command}, root=True) as span:
            result = await self._dispatch(
                request, command, parameters, files, task_id, decision, requester
            )
            if span is not None:
                span.set_attribute("jo.task_id", result.task_id)
                span.set_attribute("jo.outcome", result.outcome)
                span.set_attribute("jo.plugin", result.plugin or "")
        observe.inc("tasks", (result.outcome,))
        return result

    async def _dispatch(
        self,
        request: Mapping[str, Any] | str,
        command: str,
        parameters: Mapping[str, Any] | None,
        files: Sequence[str],
        task_id: str | None,
        decision: RoutingDecision | None,
        requester: str | None,
    ) -> DispatchResult:
        routing = (
            RoutingRequest.from_text(request, files=files, requester=requester)
            if isinstance(request, str)
            else RoutingRequest.from_jira(request, files=files, requester=requester)
        )
        params = dict(parameters) if parameters is not None else issue_parameters(request, files)
        task_id = task_id or new_id()
        if self.tasks.get(task_id) is None:
            self.tasks.create(
                task_id,
                {"request": request, "parameters": params, "files": list(files)},
                command,
            )
        started = self.clock()
        if decision is None:
            decision = await self.router.aroute(routing)
        if decision.triaged:
            return await self._triaged(task_id, routing, decision, started)
        candidates = self.candidates(decision)
        await self._event(
            TASK_START,
            {
                "taskId": task_id,
                "requestId": decision.request_id,
                "issueKey": routing.issue_key,
                "plugin": decision.primary_plugin,
                "candidates": candidates,
                "command": command,
            },
        )
        attempts: list[Attempt] = []
        answered: str | None = None
        result: Any = None
        errors: list[str] = []
        for plugin in candidates:
            refusal = None if requester is None else self.routing_refusal(requester, plugin)
            if refusal is not None:
                attempts.append(Attempt(plugin, "skipped", f"refused: {refusal}"))
                continue
            if self.availability(plugin) == 0.0:
                why = f"unavailable ({self.unavailable_reason(plugin)})"
                attempts.append(Attempt(plugin, "skipped", why))
                continue
            self.tasks.running(task_id, plugin, [a.to_dict() for a in attempts])
            begun = self.clock()
            try:
                result = await self._send(plugin, command, params, task_id=task_id)
            except CircuitOpenError:
                attempts.append(Attempt(plugin, "skipped", "circuit open", self.clock() - begun))
                continue
            except Exception as failure:
                message = str(failure) or type(failure).__name__
                attempts.append(Attempt(plugin, "failed", message, self.clock() - begun))
                errors.append(message)
                self.router.record_outcome(decision.request_id, plugin, False)
                continue
            attempts.append(Attempt(plugin, "completed", None, self.clock() - begun))
            self.router.record_outcome(decision.request_id, plugin, True)
            answered = plugin
            break
        outcome: Literal["completed", "failed"] = "completed" if answered else "failed"
        error: str | None = None
        if answered is None:
            error = "; ".join(errors) if errors else "no plugin could take the request"
        duration = self.clock() - started
        self.tasks.finish(
            task_id,
            status=outcome,
            plugin=answered,
            attempts=[a.to_dict() for a in attempts],
            result=result if answered else None,
            error=error,
        )
        dispatched = DispatchResult(
            task_id=task_id,
            request_id=decision.request_id,
            issue_key=routing.issue_key,
            primary=decision.primary_plugin,
            plugin=answered,
            outcome=outcome,
            result=result if answered else None,
            error=error,
            duration=duration,
            attempts=attempts,
            decision=decision,
        )
        completion = dispatched.to_dict()
        completion.pop("result")
        await self._event(TASK_COMPLETE, completion)
        return dispatched

    async def _triaged(
        self, task_id: str, routing: RoutingRequest, decision: RoutingDecision, started: float
    ) -> DispatchResult:
        """The router was not sure enough: nothing is dispatched, a person picks among the
        decision's candidates."""
        self.abstentions += 1
        candidates = ", ".join(score.plugin for score in decision.candidates)
        error = (
            f"not sure enough to route (confidence {decision.confidence:.0%},"
            f" needs {decision.min_confidence:.0%}); candidates: {candidates or 'none'}"
        )
        self.tasks.finish(task_id, status="triaged", plugin=None, attempts=[], error=error)
        dispatched = DispatchResult(
            task_id=task_id,
            request_id=decision.request_id,
            issue_key=routing.issue_key,
            primary=None,
            plugin=None,
            outcome="triaged",
            result=None,
            error=error,
            duration=self.clock() - started,
            decision=decision,
        )
        completion = dispatched.to_dict()
        completion.pop("result")
        await self._event(TASK_COMPLETE, completion)
        return dispatched

    async def _send(
        self,
        plugin: str,
        command: str,
        parameters: Mapping[str, Any],
        *,
        task_id: str | None = None,
    ) -> Any:
        """One command to one plugin under its policy; raise unless it succeeded."""
        manifest = self.manifests[plugin]
        policy = self.policies[plugin]
        timeout = policy.timeout or manifest.orchestration.task_timeout

        async def attempt() -> Any:
            reply = await self.bus.request(
                topic=plugin_request(plugin),
                destination=plugin,
                payload=CommandRequest(command=command, parameters=dict(parameters)).model_dump(),
                timeout=timeout,
                headers=None if task_id is None else {TASK_HEADER: task_id},
            )
            return command_result(plugin, reply)

        # The request is durable, so nothing on the bus says that the process holding it
        # died: without this, the wait would last the whole timeout (``taskTimeout``, 300 s
        # by default) before any fallback. `plugin_lost` ends it at once.
        work = asyncio.ensure_future(policy.execute(attempt))
        lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        watching = self._lost_watch.setdefault(plugin, set())
        watching.add(lost)
        try:
            await asyncio.wait((work, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.discard(lost)
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        if work.cancelled() and lost.done():
            raise PluginFailed(plugin, f"lost while handling the request: {lost.result()}")
        return work.result()

    def plugin_lost(self, plugin: str, reason: str) -> None:
        """Record that ``plugin`` is gone (its process died, nobody answers for it).

        It is marked stopped, so the router sends it nothing, and every request it was
        handling gives up on it now and goes to the next candidate. A plugin that stops
        cleanly does not need this: it finishes its requests before it says "stopped".
        """
        health = self.health.get(plugin)
        if health is None:
            return
        health.status = "stopped"
        health.reason = reason
        waiting = self._lost_watch.pop(plugin, set())
        if waiting:
            log.warning(
                "%s lost (%s): %d request(s) it held go to fallbacks", plugin, reason, len(waiting)
            )
        for future in waiting:
            if not future.done():
                future.set_result(reason)

    async def resume(self) -> list[DispatchResult]:
        """Dispatch again every task a previous run left pending or running.

        Delivery is at least once: a plugin may see a task twice if the orchestrator died
        after the plugin finished it but before the task was recorded as completed.
        """
        results = []
        for task in self.tasks.unfinished():
            stored = task.request
            log.warning("resuming task %s left %s by an earlier run", task.id, task.status)
            results.append(
                await self.dispatch(
                    stored["request"],
                    command=task.command,
                    parameters=stored.get("parameters"),
                    files=stored.get("files") or (),
                    task_id=task.id,
                )
            )
        return results

    # -- delegation between plugins -----------------------------------------------------------

    def can_route(self, source: str, target: str) -> bool:
        """Whether ``source``'s ``routing.canRouteTo`` lets it hand work to ``target``."""
        manifest = self.manifests.get(source)
        if manifest is None:
            return False
        allowed = manifest.routing.can_route_to
        return target in allowed or "*" in allowed

    def routing_refusal(self, source: str, target: str) -> str | None:
        """Why plugin ``source`` may not hand work to ``target`` (its ``canRouteTo``, the
        target's ``acceptsRoutingFrom``, either not being a plugin here), or None."""
        return routing_refusal(self.manifests, source, target)

    async def delegate(
        self, source: str, target: str, command: str, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        """Run ``command`` on ``target`` for ``source``; raise `CommandRejected` when
        ``routing.canRouteTo`` of ``source`` does not list ``target`` or the target's
        ``acceptsRoutingFrom`` does not admit ``source``."""
        refusal = self.routing_refusal(source, target)
        if refusal is not None:
            raise CommandRejected(refusal)
        return await self._send(target, command, parameters or {})

    def _refused(self, what: str, refusal: str) -> RPCError:
        """The answer to a refused RPC call, after one log line (any plugin can ask as often
        as it likes: one line each, never a traceback)."""
        if what == "delegation":
            self.refused_delegations += 1
            count = self.refused_delegations
        else:
            self.refused_dispatches += 1
            count = self.refused_dispatches
        log.warning("%s refused (%d so far): %s", what, count, escape_control(refusal))
        # the reply every failing method gets, without the server's error log
        return RPCError(
            _METHOD_FAILED,
            f"CommandRejected: {refusal}",
            {"type": "CommandRejected", "message": refusal},
        )

    def _caller(self, method: str) -> str:
        """The verified caller of the running RPC method; raise `CommandRejected` for an
        anonymous call (on ``plugin/<orchestrator>/rpc``, which any plugin may publish)."""
        caller = current_caller()
        if caller is None:
            raise CommandRejected(
                f"{method} needs a caller who says who it is: call on "
                f"plugin/{self.bus.plugin_id}/rpc/<your plugin id>"
            )
        return caller

    async def _rpc_delegate(
        self, target: str, command: str, parameters: dict[str, Any] | None = None
    ) -> Any:
        """Hand work to another plugin, as allowed by the caller's ``canRouteTo``."""
        try:
            source = self._caller("delegate")
            refusal = self.routing_refusal(source, target)
            if refusal is not None:
                raise CommandRejected(refusal)
        except CommandRejected as refusal:
            raise self._refused("delegation", str(refusal)) from None
        return await self._send(target, command, parameters or {})

    async def _rpc_dispatch(
        self, request: dict[str, Any] | str, command: str = DEFAULT_COMMAND
    ) -> dict[str, Any]:
        """Route and dispatch a request (a Jira issue or text); return what happened.

        A plugin that calls it dispatches with its own rights (`dispatch`'s ``requester``);
        any other identity is the operator's (on NATS only the orchestrator's user may call
        under a name that is not its own plugin's).
        """
        try:
            caller = self._caller("dispatch")
            if caller in self.manifests and not any(
                self.routing_refusal(caller, target) is None for target in self.manifests
            ):
                raise CommandRejected(
                    f"{caller!r} may not route work to any plugin (canRouteTo, acceptsRoutingFrom)"
                )
        except CommandRejected as refusal:
            raise self._refused("dispatch", str(refusal)) from None
        requester = caller if caller in self.manifests else None
        result = await self.dispatch(request, command=command, requester=requester)
        refused = [a.plugin for a in result.attempts if (a.error or "").startswith("refused: ")]
        if result.plugin is None and refused:
            self.refused_dispatches += 1
            log.warning(
                "dispatch refused (%d so far): %r may not route this work to %s",
                self.refused_dispatches,
                escape_control(caller),
                escape_control(", ".join(refused)),
            )
        return result.to_dict()

    async def _event(self, topic: str, payload: dict[str, Any]) -> None:
        payload = {**payload, "timestamp": format_timestamp(wall())}
        try:
            await self.bus.publish(topic=topic, payload=payload)
        except Exception:  # an event that cannot be sent must not fail the task
            log.exception("could not publish %s", topic)
