"""The plugin runtime: the seed's 300-line bootstrap as a `Plugin` and a few decorators.

::

    plugin = Plugin(Path(__file__).parent)          # reads .claude-plugin/plugin.json

    @plugin.command("create_endpoint")                # {command, parameters} on plugin/<id>/request
    async def create_endpoint(path: str, method: str = "GET") -> dict: ...

    @plugin.rpc("ping")                               # plugin://<id>/rpc
    def ping() -> str: ...

    @plugin.on("system/broadcast")                    # any topic pattern
    def on_broadcast(message: Message) -> None: ...

    plugin.run()                                      # until SIGINT or SIGTERM
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from jira_orchestrator._core import tracing
from jira_orchestrator._core.clock import MonotonicClock, format_timestamp, monotonic, wall
from jira_orchestrator._core.errors import (
    CircuitOpenError,
    InvalidParams,
    JiraOrchestratorError,
    MethodNotFound,
    TransportError,
)
from jira_orchestrator._core.protocol import (
    ORCHESTRATOR_ID,
    OUTPUT_ENV,
    STATE_DIR_ENV,
    CommandReply,
    DeadLetterReason,
    plugin_circuit_breaker,
    plugin_events,
    plugin_request,
    plugin_status,
)
from jira_orchestrator._core.tasks import BackgroundTasks
from jira_orchestrator.messagebus import (
    Handler,
    Message,
    MessageBus,
    MessageType,
    RPCClient,
    RPCServer,
    Subscription,
    current_message,
    get_message_bus,
)
from jira_orchestrator.messagebus.rpc import (
    RPCMethod,
    current_caller,
    method_from_function,
    rpc_topic,
)
from jira_orchestrator.plugins.discovery import PluginInfo, load_plugin
from jira_orchestrator.plugins.files import confined
from jira_orchestrator.plugins.manifest import PluginManifest, load_manifest, manifest_path
from jira_orchestrator.plugins.registry import AgentRegistry
from jira_orchestrator.plugins.telemetry import TelemetryPublisher
from jira_orchestrator.resilience import (
    CircuitBreaker,
    CircuitStateChange,
    ResiliencePolicy,
    is_caller_error,
)
from jira_orchestrator.state import DistributedStateManager

__all__ = ["CommandRejected", "Plugin", "PluginMetrics"]

F = TypeVar("F", bound=Callable[..., Any])
BUILTIN_RPC = ("execute_command", "query_agents", "get_status", "health_check")


class CommandRejected(JiraOrchestratorError, PermissionError):
    """A request came from a plugin that ``routing.acceptsRoutingFrom`` does not list."""


@dataclass
class PluginMetrics:
    """Real figures behind ``get_status`` and ``health_check``."""

    clock: MonotonicClock = monotonic
    started: float | None = None
    in_flight: int = 0
    processed: int = 0
    failed: int = 0
    rejected: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=1024))

    def uptime(self) -> float:
        return 0.0 if self.started is None else self.clock() - self.started

    def error_rate(self) -> float:
        total = self.processed + self.failed
        return 0.0 if total == 0 else self.failed / total

    def latency_ms(self) -> dict[str, float | None]:
        ordered = sorted(self.latencies)

        def at(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

        return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}


class Plugin:
    """A running plugin: its manifest, bus handle, RPC server, breaker, state and handlers.

    ``source`` is the plugin folder (holding ``.claude-plugin/plugin.json``), the manifest
    file, or a `PluginManifest`. ``output_dir`` is where commands write what they make
    (default ``$JIRA_ORCHESTRATOR_OUTPUT/<id>``, else ``./output/<id>``); ``state_path``
    overrides the manifest's ``stateManagement.persistence.path``.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | PluginManifest,
        *,
        bus: MessageBus | None = None,
        bus_url: str | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        state_path: str | os.PathLike[str] | None = None,
        clock: MonotonicClock = monotonic,
        debug: bool = False,
    ) -> None:
        if isinstance(source, PluginManifest):
            self.manifest = source
            self.root: Path | None = None
        else:
            path = manifest_path(source)
            self.manifest = load_manifest(path)
            self.root = path.parent.parent
        self.id = self.manifest.name
        self.log = logging.getLogger(f"jira_orchestrator.plugin.{self.id}")
        self.bus = bus if bus is not None else get_message_bus(self.id, bus_url)
        self.debug = debug
        self.metrics = PluginMetrics(clock=clock)
        self.policy = ResiliencePolicy.from_manifest(
            self.manifest, name=self.id, clock=clock, listeners=[self._on_breaker_change]
        )
        base = os.environ.get(OUTPUT_ENV)
        self._output_dir = Path(
            output_dir if output_dir is not None else Path(base or "output") / self.id
        )
        self._state_path = state_path
        self._state: DistributedStateManager | None = None
        self._registry: AgentRegistry | None = None
        self._commands: dict[str, RPCMethod] = {}
        self._rpc: dict[str, Callable[..., Any]] = {}
        self._handlers: list[tuple[str, Handler, dict[str, Any]]] = []
        self._subscriptions: list[Subscription] = []
        self._server: RPCServer | None = None
        self._telemetry: TelemetryPublisher | None = None

    # -- declaring -----------------------------------------------------------------------

    def command(self, name: str | None = None) -> Callable[[F], F]:
        """Decorator: handle ``{command: name, parameters}`` requests.

        Parameters are validated from the function's type hints (a single ``params``
        parameter receives the whole object). The requester gets ``{status: "success",
        result}`` or ``{status: "error", error}``.
        """

        def decorate(function: F) -> F:
            command = name or function.__name__
            self._commands[command] = method_from_function(command, function)
            return function

        return decorate

    def rpc(self, name: str | None = None) -> Callable[[F], F]:
        """Decorator: serve the function on ``plugin://<id>/rpc`` as method ``name``."""

        def decorate(function: F) -> F:
            method = name or function.__name__
            if method in BUILTIN_RPC:
                raise ValueError(f"{method!r} is a built-in RPC method of every plugin")
            self._rpc[method] = function
            if self._server is not None:
                self._server.register(method, function)
            return function

        return decorate

    def on(self, pattern: str, **options: Any) -> Callable[[F], F]:
        """Decorator: call the function for messages matching ``pattern`` once started.

        ``options`` are those of `MessageBus.subscribe` (filter, max_concurrency, ...).
        """

        def decorate(function: F) -> F:
            self._handlers.append((pattern, function, options))
            if self.running:
                self._subscriptions.append(self.bus.subscribe(pattern, function, **options))
            return function

        return decorate

    # -- what handlers use ---------------------------------------------------------------

    @property
    def state(self) -> DistributedStateManager:
        """This plugin's durable state, opened on first use.

        Its file is ``state_path`` if given, else ``$JIRA_ORCHESTRATOR_STATE_DIR/<id>.db``
        if set, else the manifest's ``stateManagement.persistence.path`` under the plugin
        folder (the seed's ``.claude-plugin/state.db``).
        """
        if self._state is None:
            self._state = DistributedStateManager(self.id, path=self._state_file())
        return self._state

    def _state_file(self) -> Path:
        if self._state_path is not None:
            path = Path(self._state_path)
        elif os.environ.get(STATE_DIR_ENV):
            path = Path(os.environ[STATE_DIR_ENV]) / f"{self.id}.db"
        else:
            path = Path(self.manifest.state_management.persistence.path)
            if not path.is_absolute() and self.root is not None:
                path = self.root / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def output_dir(self) -> Path:
        """Where commands write what they make; created on first use."""
        self._output_dir.mkdir(parents=True, exist_ok=True)
        return self._output_dir

    def output_path(self, *parts: str) -> Path:
        """A file under `output_dir` named from outside input: each part made a safe file
        name (``files.safe_name``), its folder created; never a path outside `output_dir`."""
        path = confined(self.output_dir, *parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def breaker(self) -> CircuitBreaker | None:
        """The breaker from ``errorHandling.circuitBreaker``, or None if disabled."""
        return self.policy.breaker

    @property
    def info(self) -> PluginInfo | None:
        """The plugin's folder as discovered (agents, commands, skills), or None."""
        return None if self.root is None else load_plugin(self.root)

    @property
    def agents(self) -> AgentRegistry:
        """This plugin's agents, for ``query_agents``."""
        if self._registry is None:
            info = self.info
            self._registry = AgentRegistry([] if info is None else [info])
        return self._registry

    @property
    def running(self) -> bool:
        """True between `start` and `stop`."""
        return self.metrics.started is not None

    async def delegate(self, target: str, command: str, **parameters: Any) -> Any:
        """Have plugin ``target`` run ``command`` through the orchestrator.

        The orchestrator checks this plugin's ``routing.canRouteTo``; a refusal raises
        `RPCError` naming it.
        """
        client = RPCClient(f"plugin://{ORCHESTRATOR_ID}/rpc", bus=self.bus)
        return await client.call(
            "delegate", {"target": target, "command": command, "parameters": parameters}
        )

    async def publish_event(self, event_type: str, **payload: Any) -> Message:
        """Publish ``{eventType, ...}`` on ``plugin/<id>/events``."""
        return await self.bus.publish(
            topic=plugin_events(self.id),
            message_type=MessageType.EVENT,
            payload={"eventType": event_type, **payload},
        )

    def _requester(self, message: Message) -> str:
        """Who asks for the work ``message`` carries: an RPC caller as the call's subject
        proves it (``""`` for an anonymous call), else the envelope's ``source`` (on NATS
        only the orchestrator and plugins whose ``canRouteTo`` names this one may publish
        ``plugin/<id>/request``)."""
        caller = current_caller()
        if caller is not None:
            return caller
        return "" if message.topic.startswith(rpc_topic(self.id)) else message.source

    def accepts(self, source: str) -> bool:
        """Whether ``routing.acceptsRoutingFrom`` lets ``source`` send this plugin work."""
        allowed = self.manifest.routing.accepts_routing_from
        return "*" in allowed or source in allowed or source == self.id

    # -- running -------------------------------------------------------------------------

    async def execute_command(self, command: str, parameters: Any = None) -> Any:
        """Run a command under the plugin's breaker and return its result.

        Raises `MethodNotFound` for an unknown command, `InvalidParams`, `CircuitOpenError`
        while the breaker is open, or the command's own error.
        """
        message = current_message()
        if message is not None:
            requester = self._requester(message)
            if not self.accepts(requester):
                self.metrics.rejected += 1
                raise CommandRejected(f"{requester!r} may not route work to {self.id!r}")
        method = self._commands.get(command) if isinstance(command, str) else None
        if method is None:
            known = ", ".join(sorted(self._commands)) or "none"
            raise MethodNotFound(f"unknown command {command!r} for {self.id} (known: {known})")
        # Bound outside the breaker: a caller's mistake is not the plugin's failure.
        args, kwargs = method.bind(parameters)
        return await self._guarded(lambda: method.apply(args, kwargs))

    async def _guarded(self, run: Callable[[], Awaitable[Any]]) -> Any:
        """Run a unit of the plugin's work under its breaker, counted in its metrics."""
        metrics = self.metrics
        metrics.in_flight += 1
        started = metrics.clock()
        try:
            breaker = self.policy.breaker
            result = await (breaker.execute(run) if breaker is not None else run())
        except CircuitOpenError:
            raise
        except Exception as error:
            if not is_caller_error(error):
                metrics.failed += 1
            raise
        else:
            metrics.processed += 1
            return result
        finally:
            metrics.latencies.append(metrics.clock() - started)
            metrics.in_flight -= 1

    async def _around_rpc(self, name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        # The plugin's own methods are its work; built-ins (status, health) are not.
        return await (self._guarded(call) if name in self._rpc else call())

    async def _on_request(self, message: Message) -> None:
        payload = message.payload
        if message.correlation_id is None:
            self.log.warning("request on %s without a correlation id ignored", message.topic)
            return
        if not self.accepts(message.source):
            self.metrics.rejected += 1
            error = CommandRejected(f"{message.source!r} may not route work to {self.id!r}")
            rejected = CommandReply.failure(str(error), error_type=type(error).__name__)
            await self.bus.respond(message.correlation_id, rejected.to_payload())
            await self.bus.dead_letter(
                message, reason=DeadLetterReason.REJECTED_SOURCE, error=error
            )
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("command"), str):
            malformed = CommandReply.failure(
                "a request needs {command: str, parameters: {...}}",
                error_type="InvalidParams",
                caller_error=True,
            )
            await self.bus.respond(message.correlation_id, malformed.to_payload())
            return
        command = payload["command"]
        try:
            result = await self.execute_command(command, payload.get("parameters"))
        except CircuitOpenError:
            reply = CommandReply.failure("Service temporarily unavailable", fallback=True)
        except (MethodNotFound, InvalidParams) as error:
            # callerError: the request is at fault, so retrying it or blaming the plugin
            # (its breaker, its health) would be wrong.
            reply = CommandReply.failure(
                error.message, error_type=type(error).__name__, caller_error=True
            )
        except Exception as error:
            self.log.exception("command %r failed", command)
            reply = CommandReply.failure(
                str(error) or type(error).__name__, error_type=type(error).__name__
            )
        else:
            reply = CommandReply.success(result)
        await self.bus.respond(message.correlation_id, reply.to_payload())

    def get_status(self) -> dict[str, Any]:
        """Live figures: uptime, requests in flight, error rate, latency, breaker state."""
        metrics = self.metrics
        breaker = self.policy.breaker
        return {
            "plugin": self.id,
            "version": self.manifest.version,
            "status": "running" if self.running else "stopped",
            "uptime": round(metrics.uptime(), 3),
            "activeRequests": metrics.in_flight,
            "requestsProcessed": metrics.processed,
            "requestsFailed": metrics.failed,
            "requestsRejected": metrics.rejected,
            "errorRate": round(metrics.error_rate(), 4),
            "latencyMs": metrics.latency_ms(),
            "circuitBreakerState": None if breaker is None else breaker.get_state().value,
            "commands": sorted(self._commands),
        }

    def health_check(self) -> dict[str, Any]:
        """healthy, degraded (half-open breaker or error rate over 50%) or unhealthy (open)."""
        breaker = self.policy.breaker
        state = None if breaker is None else breaker.get_state().value
        error_rate = self.metrics.error_rate()
        if not self.running or state in ("open", "forced_open"):
            status = "unhealthy"
        elif state == "half_open" or error_rate > 0.5:
            status = "degraded"
        else:
            status = "healthy"
        return {
            "status": status,
            "latency": self.metrics.latency_ms()["p50"],
            "errorRate": round(error_rate, 4),
            "circuitBreakerState": state,
            "timestamp": format_timestamp(wall()),
        }

    def query_agents(self, criteria: Any = None) -> list[dict[str, Any]]:
        """This plugin's agents ranked for ``criteria`` (see `AgentRegistry.query_agents`)."""
        return self.agents.query_agents(criteria or {})

    async def start(self) -> None:
        """Subscribe, register RPC methods and announce ``{status: "ready"}``."""
        if self.running:
            return
        self.metrics.started = self.metrics.clock()
        self._subscriptions.append(
            self.bus.subscribe(
                plugin_request(self.id),
                self._on_request,
                max_concurrency=self.manifest.orchestration.max_concurrent_tasks,
                queue=self.id,
            )
        )
        for pattern, function, options in self._handlers:
            self._subscriptions.append(self.bus.subscribe(pattern, function, **options))
        server = self._server = RPCServer(
            f"plugin://{self.id}/rpc", bus=self.bus, debug=self.debug, around=self._around_rpc
        )
        server.register("execute_command", self._rpc_execute_command)
        server.register("query_agents", self._rpc_query_agents)
        server.register("get_status", self.get_status)
        server.register("health_check", self.health_check)
        for name, function in self._rpc.items():
            server.register(name, function)
        management = self.manifest.state_management
        if management.persistence.enabled:
            sharing = management.sharing
            await self.state.replicate(
                self.bus,
                exports=(sharing.exports or None) if sharing.enabled else [],
                shared_with=sharing.shared_with,
                imports=sorted({ref.partition("/")[0] for ref in sharing.imports}),
            )
        self._telemetry = TelemetryPublisher.from_env(self.bus)
        if self._telemetry is not None:
            self._telemetry.start()
        await self._announce("ready")
        self.log.info("%s ready", self.id)

    async def _rpc_execute_command(self, command: str, parameters: Any = None) -> Any:
        """Run one of this plugin's commands and return its result."""
        return await self.execute_command(command, parameters)

    def _rpc_query_agents(self, criteria: Any = None) -> list[dict[str, Any]]:
        """This plugin's agents ranked for the criteria."""
        try:
            return self.query_agents(criteria)
        except ValueError as error:
            raise InvalidParams(str(error)) from None

    async def stop(self, *, timeout: float | None = None) -> None:
        """Announce ``draining``, stop taking work, wait for work in flight (at most
        ``timeout``, default the manifest's ``orchestration.drainTimeout``), announce
        ``stopped`` and unsubscribe everything."""
        if not self.running:
            return
        await self._announce("draining")
        limit = self.manifest.orchestration.drain_timeout if timeout is None else timeout
        draining = [subscription.drain() for subscription in self._subscriptions]
        if self._server is not None:
            draining.append(self._server.drain())
        try:
            async with asyncio.timeout(limit):
                await asyncio.gather(*draining)
        except TimeoutError:
            self.log.warning(
                "%s stopped with %d request(s) still in flight", self.id, self.metrics.in_flight
            )
        await self._announce("stopped")
        self.log.info("%s stopped", self.id)
        if self._telemetry is not None:
            await self._telemetry.stop()
            self._telemetry = None
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()
        if self._server is not None:
            self._server.close()
            self._server = None
        self.bus.clear()
        self.metrics.started = None
        if self._state is not None:
            if self._state.replicator is not None:
                await self._state.replicator.stop()
            self._state.close()
            self._state = None

    async def _announce(self, status: str) -> None:
        await self.bus.publish(
            topic=plugin_status(self.id),
            message_type=MessageType.EVENT,
            payload={"status": status, "timestamp": format_timestamp(wall())},
        )

    def _on_breaker_change(self, change: CircuitStateChange) -> None:
        payload = change.to_payload()
        if not self.running:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        _pending.spawn(
            self.bus.publish(topic=plugin_circuit_breaker(self.id), payload=payload), loop=loop
        )

    def run(self) -> None:
        """Start, serve until SIGINT or SIGTERM, then stop cleanly."""

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await self.start()
            try:
                await stop.wait()
            finally:
                await self.stop()

        logging.basicConfig(level=logging.INFO, format=f"[{self.id}] %(levelname)s %(message)s")
        tracing.configure_from_env(service_name=self.id)  # OTEL_* variables, when set
        try:
            asyncio.run(main())
        except TransportError as error:  # a wrong bus URL or a server that is down
            self.log.error("%s cannot run: %s", self.id, error)
            raise SystemExit(1) from None

    def __repr__(self) -> str:
        return f"Plugin({self.id!r}, running={self.running})"


_pending = BackgroundTasks(logging.getLogger("jira_orchestrator.plugin"), "announcing a breaker")
