"""The operator dashboard: pages and a JSON API over the bus and the stores, mounted on the
project's one HTTP server.

    dashboard = Dashboard(bus, dead_letters=letters, tasks=tasks, decisions=decisions,
                          router=router)
    async with dashboard, HTTPServer(dashboard.routes()) as web:
        ...

Every store is optional: a page whose store is missing says so. Store calls run in a
worker thread, so a slow disk never stalls the event loop. See docs/dashboard.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Route

from jira_orchestrator._core.clock import WallClock, wall
from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator.messagebus import MessageBus, get_message_bus
from jira_orchestrator.orchestrator import (
    REASONS,
    DeadLetterError,
    DeadLetterNotFound,
    DeadLetterStore,
    Orchestrator,
    SagaStore,
    SagaStoreError,
    TaskStore,
    TaskStoreError,
    replay_letter,
)
from jira_orchestrator.plugins import PluginManifest
from jira_orchestrator.routing import (
    InvalidRequest,
    Router,
    RoutingDecision,
    RoutingRequest,
    RoutingStoreError,
)
from jira_orchestrator.routing.store import DecisionStore
from jira_orchestrator.web.dashboard import data
from jira_orchestrator.web.dashboard.data import BadParam
from jira_orchestrator.web.dashboard.live import DEFAULT_WINDOW, LiveView
from jira_orchestrator.web.dashboard.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    Guard,
    Session,
)
from jira_orchestrator.web.server import error_response

__all__ = ["DASHBOARD_ID", "Dashboard", "IssueFetcher"]

DASHBOARD_ID = "jira-orchestrator-dashboard"
"""The plugin id of the dashboard's bus handle."""

log = logging.getLogger("jira_orchestrator.web.dashboard")

IssueFetcher = Callable[[str], Awaitable[Mapping[str, Any]]]
"""Reads a Jira issue by key (``JiraClient.get_issue``), for the Route page."""

_T = TypeVar("_T")
_HERE = Path(__file__).parent
_STATIC = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_MAX_BODY = 1024 * 1024
_MAX_BULK = 500
_FLASHES = 1000
_KEEPALIVE = 15.0
_STORE_ERRORS = (DeadLetterError, TaskStoreError, SagaStoreError, RoutingStoreError)
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes Origin "null" on POSTs
    "Cache-Control": "no-store",
}


class _Refused(Exception):
    """An answer decided before the handler ran (bad input, missing store, not found)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        super().__init__(detail)


def _bad(exc: BadParam) -> _Refused:
    return _Refused(400, "bad-request", str(exc))


class Dashboard:
    """Pages and ``/api/...`` over a bus handle and the stores an operator process has.

    ``bus`` feeds the live view (plugins, decisions, events) and carries replays;
    ``dead_letters``, ``tasks``, ``sagas`` and ``decisions`` are the stores (each optional;
    ``decisions`` defaults to the router's); ``router`` serves the Route page and makes
    corrections learnt at once. ``token`` (at least 16 characters) makes every page and
    call need it. ``jira_url`` turns issue keys into links; ``issue_fetcher`` lets the
    Route page read an issue by its key. ``plugins`` names the plugins to expect (default:
    the router's), ``heartbeat`` how often to ask their health (None: events only).

    `start` / `stop` (or ``async with``) run the live view; `routes` are for `HTTPServer`.
    """

    def __init__(
        self,
        bus: MessageBus | None = None,
        *,
        dead_letters: DeadLetterStore | None = None,
        tasks: TaskStore | None = None,
        sagas: SagaStore | None = None,
        decisions: DecisionStore | None = None,
        router: Router | None = None,
        token: str | None = None,
        jira_url: str | None = None,
        issue_fetcher: IssueFetcher | None = None,
        plugins: Iterable[str] | None = None,
        heartbeat: float | None = None,
        window: float = DEFAULT_WINDOW,
        replay_timeout: float | None = None,
        manifests: Iterable[PluginManifest] | None = None,
        clock: WallClock = wall,
    ) -> None:
        if jira_url is not None and urlsplit(jira_url).scheme not in ("http", "https"):
            raise ValueError(f"jira_url must be an http(s) URL, got {jira_url!r}")
        self.bus = bus
        self.dead_letters = dead_letters
        self.tasks = tasks
        self.sagas = sagas
        self.router = router
        if decisions is None and router is not None:
            decisions = router.store
        self.decisions = decisions
        self.guard = Guard(token)
        self.jira_url = jira_url
        self.issue_fetcher = issue_fetcher
        self.replay_timeout = replay_timeout
        self.manifests = None if manifests is None else list(manifests)
        """The plugins whose rights replays are checked against (`replay_identity`)."""
        self.clock = clock
        names = list(plugins) if plugins is not None else list(router.plugins if router else ())
        self.live = (
            None
            if bus is None
            else LiveView(bus, plugins=names, window=window, heartbeat=heartbeat, clock=clock)
        )
        self._known_plugins = names
        self.bad_requests = 0
        """Requests refused for bad input (400, 413, 415); ``guard.refused`` counts the
        ones refused for authentication, CSRF or host."""
        self._flashes: OrderedDict[str, tuple[str, str, str]] = OrderedDict()
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,  # every value from data is escaped: dead letters hold hostile text
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._templates.filters["pretty"] = data.pretty
        self._templates.filters["percent"] = lambda v: "–" if v is None else f"{v:.0%}"
        self._templates.filters["when"] = _when
        self._static = {name: (_HERE / "static" / name).read_bytes() for name in _STATIC}

    @classmethod
    def of(cls, orchestrator: Orchestrator, **options: Any) -> Dashboard:
        """The dashboard of an orchestrator running in this process: its bus (through a
        handle of its own), its task, decision and dead-letter stores, and its router, so
        corrections teach the router at once. ``options`` as for the constructor
        (``sagas``, ``token``, ``jira_url``, ...)."""
        bus = get_message_bus(DASHBOARD_ID, orchestrator.bus.url)
        collector = orchestrator.dead_letters
        options.setdefault("dead_letters", None if collector is None else collector.store)
        options.setdefault("tasks", orchestrator.tasks)
        options.setdefault("router", orchestrator.router)
        options.setdefault("manifests", orchestrator.manifests.values())
        return cls(bus, **options)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start watching the bus (and asking plugins' health, with a heartbeat)."""
        if self.live is not None:
            self.live.start()

    async def stop(self) -> None:
        """Stop watching and end every page's event stream (call before the server stops)."""
        if self.live is not None:
            await self.live.stop()

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

    def ready(self) -> bool:
        """A readiness check for `HTTPServer`: the stores given are open."""
        stores = (self.dead_letters, self.tasks, self.sagas, self.decisions)
        return not any(store.closed for store in stores if store is not None)

    # -- routes -----------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The pages, ``/api/...`` and the static files, for `HTTPServer`."""
        page, api = self._page, self._api
        return [
            Route("/", page(self._overview), methods=["GET"], name="dashboard"),
            Route("/decisions", page(self._decisions_page), methods=["GET"]),
            Route("/decisions/{id}", page(self._decision_page), methods=["GET"]),
            Route(
                "/decisions/{id}/correct", page(self._correct_form, change=True), methods=["POST"]
            ),
            Route("/tasks", page(self._tasks_page), methods=["GET"]),
            Route("/tasks/{id}", page(self._task_page), methods=["GET"]),
            Route("/dead-letters", page(self._letters_page), methods=["GET"]),
            Route("/dead-letters/{id}", page(self._letter_page), methods=["GET"]),
            Route("/dead-letters/actions", page(self._letters_form, change=True), methods=["POST"]),
            Route("/sagas", page(self._sagas_page), methods=["GET"]),
            Route("/sagas/{id}", page(self._saga_page), methods=["GET"]),
            Route("/route", page(self._route_page), methods=["GET"]),
            Route("/route", page(self._route_form, change=True), methods=["POST"]),
            Route("/login", page(self._login_page, public=True), methods=["GET"]),
            Route("/login", page(self._login_form, public=True), methods=["POST"]),
            Route("/logout", page(self._logout, change=True), methods=["POST"]),
            Route("/static/{name}", page(self._static_file, public=True), methods=["GET"]),
            Route("/api/session", api(self._api_session), methods=["GET"]),
            Route("/api/overview", api(self._api_overview), methods=["GET"]),
            Route("/api/plugins", api(self._api_plugins), methods=["GET"]),
            Route("/api/events", api(self._api_events), methods=["GET"]),
            Route("/api/decisions", api(self._api_decisions), methods=["GET"]),
            Route("/api/decisions/{id}", api(self._api_decision), methods=["GET"]),
            Route(
                "/api/decisions/{id}/correct", api(self._api_correct, change=True), methods=["POST"]
            ),
            Route("/api/tasks", api(self._api_tasks), methods=["GET"]),
            Route("/api/tasks/{id}", api(self._api_task), methods=["GET"]),
            Route("/api/dead-letters", api(self._api_letters), methods=["GET"]),
            Route("/api/dead-letters/replay", api(self._api_replay, change=True), methods=["POST"]),
            Route("/api/dead-letters/delete", api(self._api_delete, change=True), methods=["POST"]),
            Route("/api/dead-letters/{id}", api(self._api_letter), methods=["GET"]),
            Route("/api/sagas", api(self._api_sagas), methods=["GET"]),
            Route("/api/sagas/{id}", api(self._api_saga), methods=["GET"]),
            Route("/api/route", api(self._api_route, change=True), methods=["POST"]),
        ]  # fmt: skip

    # -- the guard around every endpoint ----------------------------------------------------

    def _page(
        self, handler: Callable[[Request], Awaitable[Response]], **options: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        return self._guarded(handler, api=False, **options)

    def _api(
        self, handler: Callable[[Request], Awaitable[Response]], **options: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        return self._guarded(handler, api=True, **options)

    def _guarded(
        self,
        handler: Callable[[Request], Awaitable[Response]],
        *,
        api: bool,
        change: bool = False,
        public: bool = False,
    ) -> Callable[[Request], Awaitable[Response]]:
        guard = self.guard

        async def endpoint(request: Request) -> Response:
            if not guard.host_allowed(request):
                guard.refused += 1
                return self._secured(
                    error_response(
                        403,
                        "forbidden-host",
                        "without a token, this dashboard answers only requests addressed to "
                        "127.0.0.1, localhost or [::1]",
                    )
                )
            session = guard.session(request)
            request.state.session = session
            if not public and not guard.authorized(session):
                guard.refused += 1
                if api:
                    response = error_response(401, "unauthorized", "a bearer token is needed")
                    response.headers["WWW-Authenticate"] = 'Bearer realm="dashboard"'
                else:
                    target = request.url.path + (
                        f"?{request.url.query}" if request.url.query else ""
                    )
                    response = RedirectResponse("/login?" + urlencode({"next": target}), 303)
                return self._secured(response)
            try:
                request.state.form = {}
                if request.method == "POST":
                    request.state.form = await self._read_form(request)
                if change:
                    self._check_csrf(request, session)
                response = await handler(request)
            except _Refused as refused:
                if refused.status == 403:
                    guard.refused += 1
                elif refused.status in (400, 413, 415):
                    self.bad_requests += 1
                response = (
                    error_response(refused.status, refused.code, refused.detail)
                    if api
                    else self._render(
                        request,
                        "error.html",
                        status=refused.status,
                        code=refused.code,
                        detail=refused.detail,
                    )
                )
            except _STORE_ERRORS as exc:
                log.error("dashboard: %s", exc)
                response = (
                    error_response(503, "store-unavailable", str(exc))
                    if api
                    else self._render(
                        request, "error.html", status=503, code="store-unavailable", detail=str(exc)
                    )
                )
            if session.new and not any(k == b"set-cookie" for k, _ in response.raw_headers):
                guard.set_cookie(response, session, signed_in=False)
            return self._secured(response)

        endpoint.__name__ = handler.__name__
        return endpoint

    @staticmethod
    def _secured(response: Response) -> Response:
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def _read_form(self, request: Request) -> dict[str, Any]:
        """The body of a POST: a JSON object or an urlencoded form (lists for repeats)."""
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > _MAX_BODY):
            raise _Refused(413, "too-large", f"the body must be at most {_MAX_BODY} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_BODY:
                raise _Refused(413, "too-large", f"the body must be at most {_MAX_BODY} bytes")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not body:
            return {}
        if kind == "application/json":
            try:
                found = json.loads(body)
            except ValueError as exc:
                raise _Refused(400, "bad-request", f"the body is not JSON: {exc}") from None
            if not isinstance(found, dict):
                raise _Refused(400, "bad-request", "the body must be a JSON object")
            return found
        if kind == "application/x-www-form-urlencoded":
            try:
                fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=2000)
            except (UnicodeDecodeError, ValueError) as exc:
                raise _Refused(400, "bad-request", f"unreadable form: {exc}") from None
            return {k: v[0] if len(v) == 1 else v for k, v in fields.items()}
        raise _Refused(415, "unsupported-media-type", "send application/json or an urlencoded form")

    def _check_csrf(self, request: Request, session: Session) -> None:
        if not self.guard.same_origin(request):
            raise _Refused(403, "cross-origin", "the request comes from another site")
        presented = request.headers.get(CSRF_HEADER) or request.state.form.get(CSRF_FIELD)
        if not self.guard.csrf_ok(session, presented if isinstance(presented, str) else None):
            raise _Refused(
                403,
                "csrf",
                f"missing or wrong CSRF token: send the page's token in the {CSRF_FIELD!r} "
                f"field or the X-CSRF-Token header (GET /api/session gives it)",
            )

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    async def _run(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return await asyncio.to_thread(function, *args, **kwargs)

    def _need(self, store: _T | None, what: str) -> _T:
        if store is None:
            raise _Refused(404, "not-configured", f"this dashboard has no {what}")
        return store

    def _render(
        self, request: Request, template: str, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        session: Session = request.state.session
        flash = None
        flash_id = request.query_params.get("flash")
        if flash_id is not None:
            found = self._flashes.get(flash_id)
            if found is not None and found[0] == session.id:
                flash = {"kind": found[1], "text": found[2]}
        context.setdefault("nav", None)
        context.setdefault("status", status)
        html = self._templates.get_template(template).render(
            csrf=self.guard.csrf_token(session),
            csrf_field=CSRF_FIELD,
            path=request.url.path,
            token_mode=self.guard.token is not None,
            flash=flash,
            live=self.live is not None,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def _flash(self, request: Request, kind: str, text: str) -> str:
        key = secrets.token_urlsafe(9)
        self._flashes[key] = (request.state.session.id, kind, text)
        while len(self._flashes) > _FLASHES:
            self._flashes.popitem(last=False)
        return key

    def _back(self, request: Request, to: str, kind: str, text: str) -> RedirectResponse:
        flash = self._flash(request, kind, text)
        joiner = "&" if "?" in to else "?"
        return RedirectResponse(f"{to}{joiner}flash={flash}", 303)

    @staticmethod
    def _params(request: Request) -> Mapping[str, str]:
        return request.query_params

    def _plugins_known(self) -> list[str]:
        names = set(self._known_plugins)
        if self.live is not None:
            names |= set(self.live.plugins)
        return sorted(names)

    # -- overview ---------------------------------------------------------------------------

    def _overview_data(self) -> dict[str, Any]:
        bus = None if self.bus is None else data.redact_url(self.bus.url)
        counts: dict[str, Any] = {}
        if self.dead_letters is not None:
            counts["deadLetters"] = self.dead_letters.count()
        if self.tasks is not None:
            counts["tasks"] = self.tasks.counts()
        if self.decisions is not None:
            counts["decisions"] = self.decisions.count_decisions()
        return {
            "bus": bus,
            "refused": {
                "badInput": self.bad_requests,
                "unauthorized": self.guard.refused,
                "malformedEvents": 0 if self.live is None else self.live.malformed,
            },
            "window": None if self.live is None else self.live.window,
            "plugins": [] if self.live is None else self.live.snapshot(),
            "counts": counts,
        }

    async def _overview(self, request: Request) -> Response:
        return self._render(
            request, "overview.html", nav="overview", **await self._run(self._overview_data)
        )

    async def _api_overview(self, request: Request) -> Response:
        return JSONResponse(await self._run(self._overview_data))

    async def _api_plugins(self, request: Request) -> Response:
        return JSONResponse({"items": [] if self.live is None else self.live.snapshot()})

    async def _api_session(self, request: Request) -> Response:
        session: Session = request.state.session
        return JSONResponse(
            {"csrf": self.guard.csrf_token(session), "signedIn": self.guard.authorized(session)}
        )

    async def _api_events(self, request: Request) -> Response:
        live = self.live
        if live is None:
            raise _Refused(404, "not-configured", "this dashboard has no bus to watch")
        queue = live.listen()

        async def stream() -> Any:
            try:
                yield "retry: 2000\n\n"
                while True:
                    try:
                        item = await asyncio.wait_for(queue.get(), _KEEPALIVE)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if item is None:
                        return
                    event, payload = item
                    yield f"event: {event}\ndata: {json.dumps(payload, default=repr)}\n\n"
            finally:
                live.unlisten(queue)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
        )

    # -- decisions --------------------------------------------------------------------------

    def _decisions_data(self, params: Mapping[str, str]) -> dict[str, Any]:
        store = self._need(self.decisions, "decision store")
        try:
            plugin = data.text_param(params, "plugin", limit=256)
            limit = data.limit_param(params)
            below = data.cursor_param(params)
        except BadParam as exc:
            raise _bad(exc) from None
        found, cursor = store.page_decisions(plugin=plugin, below=below, limit=limit)
        return {
            "items": [data.decision_summary(s, store.correction_of(s.request_id)) for s in found],
            "total": store.count_decisions(plugin=plugin),
            "next": cursor,
            "limit": limit,
            "filters": {"plugin": plugin},
        }

    def _decision_data(self, request_id: str) -> dict[str, Any]:
        store = self._need(self.decisions, "decision store")
        if len(request_id) > 256:
            raise _Refused(404, "not-found", "no decision with that id")
        stored = store.get_decision(request_id)
        if stored is None:
            raise _Refused(404, "not-found", f"no decision for request {request_id!r}")
        return data.decision_detail(
            stored, store.correction_of(request_id), store.outcomes_of(request_id)
        )

    async def _decisions_page(self, request: Request) -> Response:
        found = await self._run(self._decisions_data, self._params(request))
        return self._render(
            request, "decisions.html", nav="decisions", page=found, plugins=self._plugins_known()
        )

    async def _decision_page(self, request: Request) -> Response:
        found = await self._run(self._decision_data, request.path_params["id"])
        return self._render(
            request,
            "decision.html",
            nav="decisions",
            item=found,
            plugins=self._correctable(found),
        )

    def _correctable(self, found: Mapping[str, Any]) -> list[str]:
        if self.router is not None:
            return list(self.router.plugins)
        scored = [s.get("plugin") for s in found["decision"].get("scores") or []]
        return sorted({*self._plugins_known(), *(p for p in scored if isinstance(p, str))})

    async def _api_decisions(self, request: Request) -> Response:
        return JSONResponse(await self._run(self._decisions_data, self._params(request)))

    async def _api_decision(self, request: Request) -> Response:
        return JSONResponse(await self._run(self._decision_data, request.path_params["id"]))

    def _correct(self, request_id: str, form: Mapping[str, Any]) -> tuple[str | None, str]:
        """Record a correction; ``(was, plugin)``."""
        store = self._need(self.decisions, "decision store")
        plugin = form.get("plugin")
        if not isinstance(plugin, str) or not plugin.strip():
            raise _Refused(400, "bad-request", "plugin: name the plugin it should have gone to")
        plugin = plugin.strip()
        stored = store.get_decision(request_id) if len(request_id) <= 256 else None
        if stored is None:
            raise _Refused(404, "not-found", f"no decision for request {request_id[:256]!r}")
        if self.router is not None:
            try:
                self.router.record_correction(request_id, plugin)
            except InvalidRequest as exc:
                raise _Refused(400, "bad-request", f"plugin: {exc}") from None
        else:
            if plugin not in self._correctable(data.decision_detail(stored, None, [])):
                raise _Refused(400, "bad-request", f"plugin: unknown plugin {plugin[:256]!r}")
            store.record_correction(stored.request(), plugin)
        return stored.primary_plugin, plugin

    async def _correct_form(self, request: Request) -> Response:
        request_id = request.path_params["id"]
        was, plugin = await self._run(self._correct, request_id, request.state.form)
        return self._back(
            request,
            f"/decisions/{_quote(request_id)}",
            "ok",
            f"corrected: {was or 'no plugin'} -> {plugin}; later similar requests lean to it",
        )

    async def _api_correct(self, request: Request) -> Response:
        request_id = request.path_params["id"]
        was, plugin = await self._run(self._correct, request_id, request.state.form)
        return JSONResponse({"id": request_id, "was": was, "correctedTo": plugin})

    # -- tasks ------------------------------------------------------------------------------

    def _tasks_data(self, params: Mapping[str, str]) -> dict[str, Any]:
        store = self._need(self.tasks, "task store")
        try:
            status = data.text_param(params, "status", limit=32)
            plugin = data.text_param(params, "plugin", limit=256)
            limit = data.limit_param(params)
            below = data.cursor_param(params)
        except BadParam as exc:
            raise _bad(exc) from None
        found, cursor = store.page(status=status, plugin=plugin, below=below, limit=limit)
        return {
            "items": [data.task_summary(t, self.jira_url) for t in found],
            "total": store.count(status=status, plugin=plugin),
            "next": cursor,
            "limit": limit,
            "filters": {"status": status, "plugin": plugin},
        }

    def _task_data(self, task_id: str) -> dict[str, Any]:
        store = self._need(self.tasks, "task store")
        task = store.get(task_id) if len(task_id) <= 256 else None
        if task is None:
            raise _Refused(404, "not-found", f"no task {task_id[:256]!r}")
        return data.task_detail(task, self.jira_url)

    async def _tasks_page(self, request: Request) -> Response:
        found = await self._run(self._tasks_data, self._params(request))
        return self._render(
            request, "tasks.html", nav="tasks", page=found, plugins=self._plugins_known()
        )

    async def _task_page(self, request: Request) -> Response:
        found = await self._run(self._task_data, request.path_params["id"])
        return self._render(request, "task.html", nav="tasks", item=found)

    async def _api_tasks(self, request: Request) -> Response:
        return JSONResponse(await self._run(self._tasks_data, self._params(request)))

    async def _api_task(self, request: Request) -> Response:
        return JSONResponse(await self._run(self._task_data, request.path_params["id"]))

    # -- dead letters -----------------------------------------------------------------------

    def _letters_data(self, params: Mapping[str, str]) -> dict[str, Any]:
        store = self._need(self.dead_letters, "dead-letter store")
        try:
            reason = data.text_param(params, "reason", limit=128)
            topic = data.text_param(params, "topic")
            limit = data.limit_param(params)
            below = data.cursor_param(params)
        except BadParam as exc:
            raise _bad(exc) from None
        found = store.page(reason=reason, topic=topic, below=below, limit=limit + 1)
        more = len(found) > limit
        found = found[:limit]
        return {
            "items": [data.letter_summary(letter) for letter in found],
            "total": store.count(reason=reason, topic=topic),
            "next": found[-1].id if more else None,
            "limit": limit,
            "filters": {"reason": reason, "topic": topic},
        }

    @staticmethod
    def _letter_id(text: str) -> int:
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 2**63 - 1:
            raise _Refused(404, "not-found", f"no dead letter with id {text[:40]!r}")
        return int(text)

    def _letter_data(self, text: str) -> dict[str, Any]:
        store = self._need(self.dead_letters, "dead-letter store")
        try:
            return data.letter_detail(store.get(self._letter_id(text)))
        except DeadLetterNotFound:
            raise _Refused(404, "not-found", f"no dead letter with id {text[:40]!r}") from None

    async def _letters_page(self, request: Request) -> Response:
        found = await self._run(self._letters_data, self._params(request))
        return self._render(
            request, "letters.html", nav="dead-letters", page=found, reasons=REASONS
        )

    async def _letter_page(self, request: Request) -> Response:
        found = await self._run(self._letter_data, request.path_params["id"])
        return self._render(
            request,
            "letter.html",
            nav="dead-letters",
            item=found,
            payload=data.pretty(found["payload"]),
        )

    async def _api_letters(self, request: Request) -> Response:
        return JSONResponse(await self._run(self._letters_data, self._params(request)))

    async def _api_letter(self, request: Request) -> Response:
        return JSONResponse(await self._run(self._letter_data, request.path_params["id"]))

    def _selection(self, form: Mapping[str, Any]) -> list[int]:
        """The ids of a bulk replay or delete: ``ids`` (a list, or one); with ``all``, the
        letters matching ``reason``/``topic`` not replayed yet (as ``dlq replay --all``;
        at most 500 at once)."""
        store = self._need(self.dead_letters, "dead-letter store")
        raw = form.get("ids")
        if form.get("all") in (True, "true", "1", "on"):
            try:
                reason = data.text_param(form, "reason", limit=128)
                topic = data.text_param(form, "topic")
            except BadParam as exc:
                raise _bad(exc) from None
            found = store.page(reason=reason, topic=topic, replayed=False, limit=_MAX_BULK)
            return [letter.id for letter in found]
        items = raw if isinstance(raw, list) else [] if raw is None else [raw]
        if not items:
            raise _Refused(400, "bad-request", "ids: select at least one letter (or send all)")
        if len(items) > _MAX_BULK:
            raise _Refused(
                400, "bad-request", f"ids: at most {_MAX_BULK} at once, got {len(items)}"
            )
        ids = []
        for item in items:
            text = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
            if not isinstance(text, str) or not text.isascii() or not text.isdigit():
                raise _Refused(400, "bad-request", f"ids: not a letter id: {str(item)[:40]!r}")
            ids.append(int(text))
        return ids

    async def _replay(self, ids: list[int]) -> dict[str, Any]:
        """Replay each letter as `jira-orchestrator dlq replay` does: marked only once its
        delivery is confirmed."""
        store = self._need(self.dead_letters, "dead-letter store")
        if self.bus is None:
            raise _Refused(409, "no-bus", "this dashboard has no bus to replay on")
        replayed, failed = [], []
        for letter_id in ids:
            try:
                sent = await replay_letter(
                    store,
                    letter_id,
                    url=self.bus.url,
                    timeout=self.replay_timeout,
                    plugins=self.manifests,
                )
            except JiraOrchestratorError as exc:
                failed.append({"id": letter_id, "error": str(exc)})
                continue
            replayed.append({"id": letter_id, "messageId": sent.message_id, "topic": sent.topic})
        return {"replayed": replayed, "failed": failed}

    def _delete(self, form: Mapping[str, Any]) -> int:
        store = self._need(self.dead_letters, "dead-letter store")
        if form.get("all") in (True, "true", "1", "on"):
            try:
                reason = data.text_param(form, "reason", limit=128)
                topic = data.text_param(form, "topic")
            except BadParam as exc:
                raise _bad(exc) from None
            return store.purge(reason=reason, topic=topic)
        return store.delete(self._selection(form))

    async def _api_replay(self, request: Request) -> Response:
        ids = await self._run(self._selection, request.state.form)
        return JSONResponse(await self._replay(ids))

    async def _api_delete(self, request: Request) -> Response:
        return JSONResponse({"deleted": await self._run(self._delete, request.state.form)})

    async def _letters_form(self, request: Request) -> Response:
        form = request.state.form
        action = form.get("action")
        back = form.get("back")
        if not isinstance(back, str) or not back.startswith("/dead-letters") or "//" in back:
            back = "/dead-letters"
        if action == "replay":
            result = await self._replay(await self._run(self._selection, form))
            done = ", ".join(str(r["id"]) for r in result["replayed"]) or "none"
            text = f"replayed: {done}"
            for failure in result["failed"]:
                text += f"; {failure['error']}"
            return self._back(request, back, "error" if result["failed"] else "ok", text)
        if action == "delete":
            deleted = await self._run(self._delete, form)
            return self._back(request, "/dead-letters", "ok", f"deleted {deleted} dead letters")
        raise _Refused(400, "bad-request", "action: must be replay or delete")

    # -- sagas ------------------------------------------------------------------------------

    def _sagas_data(self, params: Mapping[str, str]) -> dict[str, Any]:
        store = self._need(self.sagas, "saga store")
        try:
            saga = data.text_param(params, "saga", limit=256)
            status = data.text_param(params, "status", limit=32)
            limit = data.limit_param(params)
            below = data.cursor_param(params)
        except BadParam as exc:
            raise _bad(exc) from None
        found, cursor = store.page(saga=saga, status=status, below=below, limit=limit)
        return {
            "items": [data.saga_summary(run) for run in found],
            "total": store.count(saga=saga, status=status),
            "next": cursor,
            "limit": limit,
            "filters": {"saga": saga, "status": status},
        }

    def _saga_data(self, run_id: str) -> dict[str, Any]:
        store = self._need(self.sagas, "saga store")
        run = store.get(run_id) if len(run_id) <= 256 else None
        if run is None:
            raise _Refused(404, "not-found", f"no saga run {run_id[:256]!r}")
        return data.saga_detail(run)

    async def _sagas_page(self, request: Request) -> Response:
        found = await self._run(self._sagas_data, self._params(request))
        return self._render(request, "sagas.html", nav="sagas", page=found)

    async def _saga_page(self, request: Request) -> Response:
        found = await self._run(self._saga_data, request.path_params["id"])
        return self._render(request, "saga.html", nav="sagas", item=found)

    async def _api_sagas(self, request: Request) -> Response:
        return JSONResponse(await self._run(self._sagas_data, self._params(request)))

    async def _api_saga(self, request: Request) -> Response:
        return JSONResponse(await self._run(self._saga_data, request.path_params["id"]))

    # -- route ------------------------------------------------------------------------------

    async def _decide(self, form: Mapping[str, Any]) -> RoutingDecision:
        """Route a request (text, files) or an issue key without dispatching it."""
        if self.router is None:
            raise _Refused(
                409, "no-router", "this dashboard has no router (give it the plugins folder)"
            )
        text = form.get("text")
        key = form.get("issueKey")
        files_field = form.get("files") or []
        files = files_field.splitlines() if isinstance(files_field, str) else files_field
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise _Refused(400, "bad-request", "files: a list of paths, or one path a line")
        files = [f.strip() for f in files if f.strip()][:100]
        if isinstance(key, str) and key.strip():
            key = key.strip().upper()
            if not data.ISSUE_KEY.match(key):
                raise _Refused(400, "bad-request", f"issueKey: not a Jira issue key: {key[:60]!r}")
            if self.issue_fetcher is None:
                raise _Refused(
                    409, "no-jira", "no Jira site is configured: type the request's text instead"
                )
            try:
                issue = await self.issue_fetcher(key)
                request = RoutingRequest.from_jira(issue, files=files)
            except InvalidRequest as exc:
                raise _Refused(400, "bad-request", str(exc)) from None
            except JiraOrchestratorError as exc:
                raise _Refused(502, "jira", f"{key}: {exc}") from None
        elif isinstance(text, str) and text.strip():
            if len(text) > 100_000:
                raise _Refused(400, "bad-request", "text: at most 100,000 characters")
            request = RoutingRequest.from_text(text, files=files)
        else:
            raise _Refused(400, "bad-request", "text: type a request, or give an issueKey")
        # route(), not dispatch(): the decision is recorded (so it can be corrected) and
        # published like any other, and no plugin is asked to do anything.
        return await self._run(self.router.route, request)

    async def _route_page(self, request: Request) -> Response:
        return self._render(
            request,
            "route.html",
            nav="route",
            decision=None,
            explanation=None,
            form={"text": "", "files": "", "issueKey": ""},
            has_router=self.router is not None,
            has_jira=self.issue_fetcher is not None,
        )

    async def _route_form(self, request: Request) -> Response:
        form = request.state.form
        shown = {
            k: form.get(k) if isinstance(form.get(k), str) else ""
            for k in ("text", "files", "issueKey")
        }
        try:
            decision = await self._decide(form)
        except _Refused as refused:
            return self._render(
                request,
                "route.html",
                status=refused.status,
                nav="route",
                decision=None,
                explanation=None,
                error=refused.detail,
                form=shown,
                has_router=self.router is not None,
                has_jira=self.issue_fetcher is not None,
            )
        return self._render(
            request,
            "route.html",
            nav="route",
            decision=decision.to_dict(),
            explanation=decision.explain(),
            form=shown,
            has_router=True,
            has_jira=self.issue_fetcher is not None,
            stored=self.decisions is not None,
        )

    async def _api_route(self, request: Request) -> Response:
        decision = await self._decide(request.state.form)
        return JSONResponse({"decision": decision.to_dict(), "explanation": decision.explain()})

    # -- login, static ----------------------------------------------------------------------

    @staticmethod
    def _next(value: Any) -> str:
        if (
            isinstance(value, str)
            and value.startswith("/")
            and not value.startswith("//")
            and "\\" not in value
            and not any(ord(c) < 32 for c in value)
        ):
            return value
        return "/"

    async def _login_page(self, request: Request) -> Response:
        if self.guard.token is None:
            return RedirectResponse("/", 303)
        return self._render(
            request,
            "login.html",
            nav="login",
            next=self._next(request.query_params.get("next")),
            error=None,
        )

    async def _login_form(self, request: Request) -> Response:
        form = request.state.form
        target = self._next(form.get("next"))
        if self.guard.token is None:
            return RedirectResponse("/", 303)
        token = form.get("token")
        if not isinstance(token, str) or not self.guard.check_token(token):
            self.guard.refused += 1
            return self._render(
                request, "login.html", status=401, nav="login", next=target, error="wrong token"
            )
        response = RedirectResponse(target, 303)
        self.guard.set_cookie(response, self.guard.new_session(), signed_in=True)
        return response

    async def _logout(self, request: Request) -> Response:
        response = RedirectResponse("/login" if self.guard.token else "/", 303)
        self.guard.clear_cookie(response)
        return response

    async def _static_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self._static:
            raise _Refused(404, "not-found", "no such file")
        response = Response(self._static[name], media_type=_STATIC[name])
        response.headers["Cache-Control"] = "no-cache"
        return response


def _when(value: Any) -> str:
    """An ISO 8601 time as ``2026-01-31 13:05:09`` (the full time stays in ``datetime``)."""
    if not isinstance(value, str):
        return ""
    return value.replace("T", " ")[:19]


def _quote(text: str) -> str:
    return quote(text, safe="")
