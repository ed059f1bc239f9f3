"""The project's one HTTP server: Starlette on uvicorn, inside the caller's asyncio program.

Components contribute Starlette routes (the Jira webhook receiver, later the dashboard and
``/metrics``) and readiness checks; the server adds ``/healthz`` (the process answers) and
``/readyz`` (every check passes: the inbox is open, the bus is connected, ...).

    async with HTTPServer(receiver.routes(), ready_checks={"inbox": receiver.ready}) as web:
        print(web.url)          # the bound port is known, so port=0 works
        await stop.wait()
    # leaving the block stops accepting, lets requests in flight finish (up to
    # ``shutdown_timeout``), then closes

It binds 127.0.0.1 unless told otherwise, leaves the program's signal handlers and logging
configuration alone, and keeps no access log (URLs and headers may carry secrets). Errors
are JSON: ``{"error": "not-found", "detail": "..."}``; an unexpected exception answers 500
``{"error": "internal"}`` without its text (uvicorn logs the traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from jira_orchestrator._core.errors import JiraOrchestratorError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "HTTPServer",
    "HTTPServerError",
    "ReadyCheck",
    "error_response",
    "parse_address",
]

log = logging.getLogger("jira_orchestrator.web.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8642
ReadyCheck = Callable[[], bool | Awaitable[bool]]
"""A readiness check: True when its component can serve; may be a coroutine function."""
_CHECK_TIMEOUT = 2.0


class HTTPServerError(JiraOrchestratorError, OSError):
    """The server cannot start (address in use, bad address) or was misused."""


def parse_address(text: str, *, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``(host, port)`` from ``HOST:PORT``, ``[::1]:PORT``, ``HOST`` or ``:PORT``.

    Raises `HTTPServerError` (a ValueError would do; the CLI reports both the same way).
    """
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise HTTPServerError(f"bad address {text!r}: missing ']'")
        host, port_text = text[1:end], text[end + 1 :].removeprefix(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        host = DEFAULT_HOST
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise HTTPServerError(f"bad address {text!r}: the port must be 0 to 65535")
    return host, int(port_text)


def error_response(status: int, code: str | None = None, detail: str | None = None) -> Response:
    """The server's JSON error: ``{"error": code, "detail": detail}`` (detail optional)."""
    if code is None:
        code = HTTPStatus(status).phrase.lower().replace(" ", "-")
    body: dict[str, Any] = {"error": code}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = None if exc.detail == phrase else exc.detail
    response = error_response(exc.status_code, detail=detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _internal_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "internal")


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, told when it is listening and kept off the program's signals."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the embedding program owns SIGINT/SIGTERM and calls stop()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


class HTTPServer:
    """Starlette + uvicorn in the running event loop; an async context manager.

    ``routes`` and `add_routes` contribute Starlette routes or mounts, ``ready_checks`` and
    `add_ready_check` the checks of ``/readyz``; both before `start`. ``port=0`` takes a
    free port: read `port` or `url` after `start`.
    """

    def __init__(
        self,
        routes: Iterable[BaseRoute] = (),
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        ready_checks: Mapping[str, ReadyCheck] | None = None,
        shutdown_timeout: float = 5.0,
        backlog: int = 2048,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise HTTPServerError(f"port must be an int from 0 to 65535, got {port!r}")
        self.host = host
        self._requested_port = port
        self.shutdown_timeout = shutdown_timeout
        self.backlog = backlog
        self._routes: list[BaseRoute] = list(routes)
        self._checks: dict[str, ReadyCheck] = dict(ready_checks or {})
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None
        self._address: tuple[str, int] | None = None
        self._stopping = False
        self.app: Starlette | None = None

    def add_routes(self, routes: Iterable[BaseRoute]) -> None:
        """Contribute routes or mounts (before `start`)."""
        self._not_started("add routes")
        self._routes.extend(routes)

    def add_ready_check(self, name: str, check: ReadyCheck) -> None:
        """Contribute a readiness check named ``name`` (before `start`)."""
        self._not_started("add a ready check")
        if name in self._checks:
            raise HTTPServerError(f"a ready check named {name!r} is already registered")
        self._checks[name] = check

    def _not_started(self, doing: str) -> None:
        if self._server is not None:
            raise HTTPServerError(f"cannot {doing} once the server has started")

    @property
    def port(self) -> int:
        """The bound port (after `start`)."""
        if self._port is None:
            raise HTTPServerError("the server is not started: no port is bound yet")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the listening socket is bound to (after `start`)."""
        if self._address is None:
            raise HTTPServerError("the server is not started: no address is bound yet")
        return self._address

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """Whether the server only listens on a loopback address."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def _build(self) -> Starlette:
        routes: list[BaseRoute] = [
            Route("/healthz", self._healthz, methods=["GET"], name="healthz"),
            Route("/readyz", self._readyz, methods=["GET"], name="readyz"),
            *self._routes,
        ]
        return Starlette(
            routes=routes,
            exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        )

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        results = {name: await self._check(name, check) for name, check in self._checks.items()}
        ready = not self._stopping and all(results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not-ready", "checks": results},
            status_code=200 if ready else 503,
        )

    async def _check(self, name: str, check: ReadyCheck) -> bool:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, _CHECK_TIMEOUT)
            return bool(result)
        except Exception as exc:
            log.warning("ready check %r failed: %s: %s", name, type(exc).__name__, exc)
            return False

    def _bind(self) -> socket.socket:
        where = f"{self.host}:{self._requested_port}"
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                self.host, self._requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
        except (OSError, UnicodeError) as exc:
            raise HTTPServerError(f"cannot listen on {where}: {exc}") from None
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise HTTPServerError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        return sock

    async def start(self) -> None:
        """Bind and serve; returns once the server accepts connections."""
        self._not_started("start")
        self.app = self._build()
        sock = self._bind()
        bound = sock.getsockname()
        self._address = (str(bound[0]), int(bound[1]))
        self._port = self._address[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,  # never reconfigure the program's logging
            access_log=False,  # URLs and headers may carry secrets
            lifespan="off",  # components start and stop with the program, not the server
            server_header=False,
            timeout_graceful_shutdown=max(1, round(self.shutdown_timeout)),
            backlog=self.backlog,
        )
        server = self._server = _Uvicorn(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name=f"http {self.url}")
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait({self._task, listening}, return_when=asyncio.FIRST_COMPLETED)
        if not listening.done():
            listening.cancel()
            sock.close()
            error = self._task.exception()
            raise HTTPServerError(f"the HTTP server on {self.url} did not start: {error}")
        if not self.is_loopback:
            log.warning("HTTP server listening on %s, beyond this machine", self.url)
        log.info("HTTP server listening on %s", self.url)

    async def stop(self) -> None:
        """Stop accepting, finish requests in flight (up to ``shutdown_timeout``), close."""
        if self._server is None or self._task is None or self._task.done():
            return
        self._stopping = True
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.shutdown_timeout + 5)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        log.info("HTTP server on %s stopped", self.url)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
