"""RPC between plugins: ``RPCServer("plugin://<id>/rpc")`` and ``RPCClient``.

Calls travel as bus requests on ``plugin/<id>/rpc/<caller>`` (the caller's own subject, so
the server knows who calls: `current_caller`; ``plugin/<id>/rpc`` for anonymous callers)
whose payload is a JSON-RPC 2.0 request object, and come back as a JSON-RPC 2.0 response
object, so a plugin in any language can serve or call methods (see docs/protocol.md).
Parameters are validated from the handler's type hints, strictly as JSON (no ``"5"`` for an
int); errors carry JSON-RPC codes. A call's deadline travels with it: the server cancels a
method whose caller stopped waiting, and calls a method makes get at most the time its own
caller has left.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
import traceback
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, get_type_hints, overload

import msgspec
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from jira_orchestrator._core import observe
from jira_orchestrator._core.errors import (
    DeliveryError,
    InvalidEndpoint,
    InvalidMessage,
    InvalidParams,
    MessageTooLarge,
    MethodNotFound,
    RequestTimeout,
    RPCError,
)
from jira_orchestrator._core.identity import identity_of, rpc_call_topic
from jira_orchestrator._core.message import Message, validate_payload
from jira_orchestrator._core.protocol import plugin_rpc
from jira_orchestrator._core.text import escape_control
from jira_orchestrator.messagebus._bus import MessageBus
from jira_orchestrator.messagebus._registry import get_message_bus
from jira_orchestrator.messagebus._subscription import Subscription

__all__ = [
    "RPCClient",
    "RPCMethod",
    "RPCServer",
    "current_caller",
    "method_from_function",
    "parse_endpoint",
    "rpc_topic",
]

log = logging.getLogger("jira_orchestrator.rpc")

INVALID_REQUEST = -32600
INTERNAL_ERROR = -32603
DEPTH_HEADER = "rpc-depth"
"""Header of a call made by a running method: how many calls up the chain it is (1, 2, ...)."""
_ENDPOINT = re.compile(r"plugin://(?P<id>[A-Za-z0-9_\-:@~+=]+)/rpc/?")

RPCHandler = Callable[..., Any]
Around = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]


def parse_endpoint(endpoint: str) -> str:
    """The plugin id of a ``plugin://<id>/rpc`` address; raise `InvalidEndpoint`."""
    if not isinstance(endpoint, str):
        raise InvalidEndpoint(f"an RPC endpoint must be a string, not {type(endpoint).__name__}")
    match = _ENDPOINT.fullmatch(endpoint)
    if match is None:
        raise InvalidEndpoint(
            f"{endpoint!r} is not an RPC endpoint; expected plugin://<plugin-id>/rpc"
        )
    return match.group("id")


def rpc_topic(plugin_id: str) -> str:
    """The bus topic an RPC server of ``plugin_id`` listens on."""
    return plugin_rpc(plugin_id)


@dataclass(frozen=True)
class RPCMethod:
    """A registered method: how to validate its parameters and call it."""

    name: str
    function: RPCHandler
    description: str
    model: type[BaseModel] | None  # named parameters, validated from type hints
    whole: TypeAdapter[Any] | None  # a single ``params`` parameter taking the whole object
    positional: tuple[str, ...]

    def schema(self) -> dict[str, Any]:
        """JSON Schema of the parameters."""
        if self.model is not None:
            return self.model.model_json_schema()
        if self.whole is not None:
            return self.whole.json_schema()
        return {"type": "object", "properties": {}}

    async def call(self, params: Any) -> Any:
        """Validate ``params``, call the function, and return its JSON-ready result."""
        args, kwargs = self.bind(params)
        return await self.apply(args, kwargs)

    async def apply(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Call the function with arguments from `bind`; return its JSON-ready result."""
        result = self.function(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return _jsonable(result)

    def bind(self, params: Any) -> tuple[list[Any], dict[str, Any]]:
        """Validated arguments for the call; raise `InvalidParams` naming each bad one."""
        if self.whole is not None:
            whole = self.whole
            try:
                value = _strictly(
                    {} if params is None else params, whole.validate_json, whole.validate_python
                )
            except ValidationError as error:
                raise InvalidParams(_describe(error, self.name), _details(error)) from None
            return [value], {}
        if self.model is None:
            if params not in (None, {}, []):
                raise InvalidParams(f"{self.name} takes no parameters")
            return [], {}
        if params is None:
            params = {}
        if isinstance(params, list):
            if len(params) > len(self.positional):
                raise InvalidParams(
                    f"{self.name} takes at most {len(self.positional)} positional parameters, "
                    f"got {len(params)}"
                )
            params = dict(zip(self.positional, params, strict=False))
        if not isinstance(params, dict):
            raise InvalidParams(
                f"{self.name}: params must be an object or an array, not {type(params).__name__}"
            )
        model = self.model
        try:
            validated = _strictly(params, model.model_validate_json, model.model_validate)
        except ValidationError as error:
            raise InvalidParams(_describe(error, self.name), _details(error)) from None
        return [], {name: getattr(validated, name) for name in type(validated).model_fields}


def _strictly(params: Any, from_json: Callable[..., Any], from_python: Callable[..., Any]) -> Any:
    """Validate ``params`` strictly, as the JSON they are: ``"5"`` or ``true`` is no int,
    while an ISO string is a datetime and ``"red"`` an enum member. Values a local call
    passes that are not JSON (a datetime object) get pydantic's strict Python mode."""
    try:
        data = msgspec.json.encode(params)
    except (TypeError, ValueError, OverflowError):
        return from_python(params, strict=True)
    return from_json(data, strict=True)


def _describe(error: ValidationError, method: str) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "params"
        problems.append(f"params.{where}: {item['msg']}" if where != "params" else item["msg"])
    return f"invalid params for {method}: " + "; ".join(problems)


def _details(error: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(part) for part in item["loc"]], "msg": item["msg"], "type": item["type"]}
        for item in error.errors()
    ]


def method_from_function(name: str, function: RPCHandler) -> RPCMethod:
    """Describe ``function`` as a method whose parameters are validated from its type hints.

    A single parameter named ``params``, or a single parameter typed with a pydantic
    model, receives the whole params object (the seed's style). A function with
    ``**kwargs`` ignores parameters it does not name; otherwise they are refused.
    """
    if not callable(function):
        raise TypeError(f"RPC method {name!r} must be callable, not {type(function).__name__}")
    signature = inspect.signature(function)
    try:
        hints = get_type_hints(function)
    except Exception as error:
        # Validating against a guess would accept or refuse the wrong calls: say so now.
        raise TypeError(
            f"cannot read the type hints of {name!r} ({error}); define the types it uses "
            "at module level"
        ) from None
    parameters = [
        p
        for p in signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    description = inspect.getdoc(function) or ""
    if len(parameters) == 1 and (
        parameters[0].name == "params" or _is_model(hints.get(parameters[0].name))
    ):
        # The seed's style (one ``params`` parameter), or one pydantic model: the whole
        # params object is that one argument.
        annotation = hints.get(parameters[0].name, Any)
        return RPCMethod(name, function, description, None, TypeAdapter(annotation), ())
    if not parameters:
        return RPCMethod(name, function, description, None, None, ())
    fields: dict[str, Any] = {}
    for parameter in parameters:
        annotation = hints.get(parameter.name, Any)
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    # A function taking **kwargs accepts (and ignores) parameters it does not name.
    takes_more = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    model = create_model(
        f"{_model_name(name)}Params",
        __config__=ConfigDict(extra="ignore" if takes_more else "forbid"),
        **fields,
    )
    positional = tuple(
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )
    return RPCMethod(name, function, description, model, None, positional)


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _model_name(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name)) or "Method"


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    return value


@dataclass
class _Call:
    """The call a method runs for: its caller's deadline (loop time) and depth in a chain."""

    deadline: float | None
    depth: int
    running: bool = True
    caller: str | None = None


_current_call: ContextVar[_Call | None] = ContextVar("jira_orchestrator_rpc_call", default=None)


def current_caller() -> str | None:
    """Who called the RPC method running in this task, as the call's subject proves it
    (``plugin/<id>/rpc/<caller>``); None outside a method and for an anonymous call (on
    ``plugin/<id>/rpc``). Never the envelope's ``source`` alone: a caller writes that itself.
    """
    call = _current_call.get()
    return None if call is None else call.caller


def _deadline(message: Message, now: float) -> float | None:
    """Seconds until the caller of ``message`` stops waiting (None: it did not say)."""
    deadline = message.deadline()
    return None if deadline is None else deadline - now


def _depth(message: Message) -> int:
    value = message.headers.get(DEPTH_HEADER, "0")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else 0


class RPCServer:
    """Serves methods on ``plugin://<id>/rpc``.

    ``RPCServer("plugin://your-plugin/rpc")`` starts serving at once on that plugin's bus
    handle; ``max_concurrency`` calls run side by side (the rest queue). Replicas of a
    plugin share calls (queue group). Set ``debug=True`` to send tracebacks to callers.

    A method still running when its caller's deadline passes (the request's ``timeout`` or
    ``expiresAt``) is cancelled and its slot freed; nothing is answered, since nobody waits.
    ``calls``, ``errors`` and ``timeouts`` count the calls, the error answers and the
    methods cancelled so; ``spoofed`` the calls refused because their ``source`` was not
    the caller their subject names. It listens on ``plugin/<id>/rpc/*`` (callers who say
    who they are, `current_caller`) and on ``plugin/<id>/rpc`` (anonymous callers), each
    with ``max_concurrency`` slots.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        bus: MessageBus | None = None,
        max_concurrency: int = 16,
        debug: bool = False,
        around: Around | None = None,
    ) -> None:
        self.plugin_id = parse_endpoint(endpoint)
        self.endpoint = endpoint
        self.bus = bus if bus is not None else get_message_bus(self.plugin_id)
        if self.bus.plugin_id != self.plugin_id:
            raise InvalidEndpoint(
                f"{endpoint!r} belongs to {self.plugin_id!r}, not to the bus handle of "
                f"{self.bus.plugin_id!r}"
            )
        self.debug = debug
        self.around = around
        self._methods: dict[str, RPCMethod] = {}
        self.calls = 0
        self.errors = 0
        self.timeouts = 0
        self.spoofed = 0
        self._subscriptions: list[Subscription] = [
            self.bus.subscribe(
                pattern,
                self._handle,
                max_concurrency=max_concurrency,
                queue=f"{self.plugin_id}-rpc",
            )
            for pattern in (rpc_call_topic(self.plugin_id, "*"), rpc_topic(self.plugin_id))
        ]
        self.register("rpc.discover", self._discover)

    @property
    def methods(self) -> tuple[str, ...]:
        """Names of the registered methods."""
        return tuple(self._methods)

    @overload
    def register(self, name: str, function: RPCHandler) -> RPCHandler: ...

    @overload
    def register(self, name: str, function: None = None) -> Callable[[RPCHandler], RPCHandler]: ...

    def register(
        self, name: str, function: RPCHandler | None = None
    ) -> RPCHandler | Callable[[RPCHandler], RPCHandler]:
        """Serve ``function`` as method ``name``; without ``function``, a decorator.

        Registering a name again replaces the method.
        """
        if not isinstance(name, str) or not name:
            raise ValueError("an RPC method name must be a non-empty string")
        if function is None:

            def decorate(handler: RPCHandler) -> RPCHandler:
                self.register(name, handler)
                return handler

            return decorate
        self._methods[name] = method_from_function(name, function)
        return function

    def method(self, name: str | None = None) -> Callable[[RPCHandler], RPCHandler]:
        """Decorator: serve the function under ``name`` (default: its own name)."""

        def decorate(handler: RPCHandler) -> RPCHandler:
            self.register(name or handler.__name__, handler)
            return handler

        return decorate

    def close(self) -> None:
        """Stop serving; calls in progress are cancelled (see `drain`)."""
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.unsubscribe()

    async def drain(self) -> None:
        """Stop taking calls and finish those already taken; bound it with a timeout."""
        subscriptions, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(subscription.drain() for subscription in subscriptions))

    def _discover(self) -> dict[str, Any]:
        """List the methods of this server with JSON Schemas of their parameters."""
        return {
            "endpoint": self.endpoint,
            "methods": [
                {"name": m.name, "description": m.description, "params": m.schema()}
                for m in self._methods.values()
            ],
        }

    async def invoke(self, name: str, params: Any = None) -> Any:
        """Call a method here, as a remote call would (validation included)."""
        method = self._methods.get(name)
        if method is None:
            raise MethodNotFound(f"method {name!r} not found on {self.endpoint}")
        if self.around is None:
            return await method.call(params)
        return await self.around(name, lambda: method.call(params))

    async def _handle(self, message: Message) -> None:
        request = message.payload
        call_id = request.get("id") if isinstance(request, dict) else None
        if message.correlation_id is None:
            log.warning("RPC call on %s without a correlation id ignored", message.topic)
            return
        self.calls += 1
        method = request.get("method") if isinstance(request, dict) else None
        caller = await self.bus.verified_sender(message)
        if caller is None and identity_of(message.topic) is not None:
            self.spoofed += 1  # counted, logged and dead-lettered by verified_sender
            self.errors += 1
            await self.bus.respond(
                message.correlation_id,
                _error_reply(
                    call_id,
                    INVALID_REQUEST,
                    f"refused: the call's source {escape_control(repr(message.source))} is not "
                    f"the caller its subject names ({message.topic})",
                    None,
                ),
            )
            return
        left = _deadline(message, self.bus.config.clock())
        loop = asyncio.get_running_loop()
        call = _Call(None if left is None else loop.time() + left, _depth(message), caller=caller)
        reply: dict[str, Any] | None = None
        if left is None or left > 0:
            token = _current_call.set(call)
            try:
                async with asyncio.timeout_at(call.deadline):
                    reply = await self._reply(request, call_id, call)
            except TimeoutError:
                pass  # the deadline's (`_reply` answers for the method's own exceptions)
            finally:
                call.running = False
                _current_call.reset(token)
        if reply is None:
            # The caller has stopped waiting: nobody to answer. One line, and only at the
            # head of a chain of calls (each server of the chain would say the same).
            self.timeouts += 1
            log.log(
                logging.DEBUG if call.depth else logging.WARNING,
                "RPC method %r of %s cancelled: its caller stopped waiting",
                method,
                self.endpoint,
            )
            return
        try:
            await self.bus.respond(message.correlation_id, reply)
        except (InvalidMessage, TypeError, ValueError, OverflowError) as error:
            # Raised while encoding the answer: the result cannot travel. Say so, as JSON-RPC.
            self.errors += 1
            if isinstance(error, MessageTooLarge):
                problem = f"too large to send ({error})"
            else:
                problem = f"not JSON: {type(error).__name__}: {error}"
            await self.bus.respond(
                message.correlation_id,
                _error_reply(
                    call_id, INTERNAL_ERROR, f"the result of {method!r} is {problem}", None
                ),
            )

    async def _reply(self, request: Any, call_id: Any, call: _Call) -> dict[str, Any] | None:
        """The JSON-RPC response object to ``request``: its result or its error (None once
        its caller has stopped waiting)."""
        try:
            if (
                not isinstance(request, dict)
                or request.get("jsonrpc") != "2.0"
                or not isinstance(request.get("method"), str)
            ):
                raise RPCError(
                    INVALID_REQUEST,
                    "invalid JSON-RPC 2.0 request: needs jsonrpc '2.0' and a string method",
                )
            result = await self.invoke(request["method"], request.get("params"))
            validate_payload(result)
            return {"jsonrpc": "2.0", "result": result, "id": call_id}
        except RPCError as error:
            self.errors += 1
            return _error_reply(call_id, error.code, error.message, error.data)
        except InvalidMessage as error:
            self.errors += 1
            return _error_reply(
                call_id,
                INTERNAL_ERROR,
                f"the result of {request['method']!r} is not JSON: {error}",
                None,
            )
        except Exception as error:
            if (
                isinstance(error, RequestTimeout)
                and call.deadline is not None
                and asyncio.get_running_loop().time() >= call.deadline
            ):
                return None  # a call it made ran out of this call's own time
            self.errors += 1
            data: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
            if self.debug:
                data["traceback"] = traceback.format_exc()
            if isinstance(error, DeliveryError):
                # A call this method made failed (timed out, nobody answering): the method's
                # caller learns it from the answer; the log gets one line, not a traceback.
                log.warning(
                    "RPC method %r of %s failed: %s: %s",
                    request.get("method"),
                    self.endpoint,
                    type(error).__name__,
                    escape_control(error),
                )
            else:
                log.exception("RPC method %r of %s failed", request.get("method"), self.endpoint)
            return _error_reply(call_id, INTERNAL_ERROR, f"{type(error).__name__}: {error}", data)


def _error_reply(call_id: Any, code: int, message: str, data: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "error": error, "id": call_id}


class RPCClient:
    """Calls methods on ``plugin://<id>/rpc``.

    ``await client.call(method, params)`` returns the method's value itself. Raises
    `MethodNotFound`, `InvalidParams`, `RPCError` (code -32603 for a failing method, with
    the remote error's type in ``data``), `NoResponders` when no server runs,
    `RequestTimeout`. A call made inside a running method waits no longer than that
    method's own caller still waits.
    """

    def __init__(
        self, endpoint: str, *, bus: MessageBus | None = None, timeout: float = 30.0
    ) -> None:
        self.plugin_id = parse_endpoint(endpoint)
        self.endpoint = endpoint
        self.bus = bus if bus is not None else get_message_bus("rpc-client")
        self.timeout = timeout
        self._ids = iter(range(1, 2**62))

    async def call(self, method: str, params: Any = None, *, timeout: float | None = None) -> Any:
        """Call ``method`` with ``params`` (an object or an array) and return its result."""
        if not isinstance(method, str) or not method:
            raise ValueError("an RPC method name must be a non-empty string")
        call_id = next(self._ids)
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": call_id}
        if params is not None:
            request["params"] = params
        seconds = self.timeout if timeout is None else timeout
        headers: dict[str, str] | None = None
        outer = _current_call.get()
        if outer is not None and outer.running:
            # Made by a running method: no longer than that method's caller still waits.
            headers = {DEPTH_HEADER: str(outer.depth + 1)}
            if outer.deadline is not None:
                left = outer.deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise RequestTimeout(rpc_topic(self.plugin_id), seconds)
                seconds = min(seconds, left)
        metrics = observe.active()
        if metrics is None:
            return await self._call(request, seconds, headers)
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await self._call(request, seconds, headers)
            outcome = "ok"
            return result
        except RequestTimeout:
            outcome = "timeout"
            raise
        finally:
            metrics.observe(
                "rpc_call_duration_seconds",
                (self.plugin_id, method, outcome),
                time.perf_counter() - started,
            )

    async def _call(
        self, request: dict[str, Any], seconds: float, headers: dict[str, str] | None
    ) -> Any:
        reply = await self.bus.request(
            destination=self.plugin_id,
            topic=rpc_call_topic(self.plugin_id, self.bus.plugin_id),
            payload=request,
            timeout=seconds,
            headers=headers,
        )
        if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0":
            raise RPCError(INTERNAL_ERROR, f"malformed JSON-RPC reply from {self.endpoint}", reply)
        if "error" in reply:
            raise _error_from(reply["error"])
        return reply.get("result")

    async def discover(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """The server's methods with the JSON Schemas of their parameters."""
        listing = await self.call("rpc.discover", timeout=timeout)
        methods: list[dict[str, Any]] = listing["methods"]
        return methods


def _error_from(error: Any) -> RPCError:
    if not isinstance(error, dict):
        return RPCError(INTERNAL_ERROR, str(error))
    code = error.get("code", INTERNAL_ERROR)
    message = str(error.get("message", ""))
    data = error.get("data")
    if code == -32601:
        return MethodNotFound(message, data)
    if code == -32602:
        return InvalidParams(message, data)
    return RPCError(code if isinstance(code, int) else INTERNAL_ERROR, message, data)
