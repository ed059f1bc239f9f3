"""The sandbox's HTTP face: Jira Cloud's REST v3 routes, and ``/_sandbox/...`` controls.

Every ``/rest/`` request first meets the fault switches, then basic auth; handlers call
`JiraSandbox`'s operations and turn a `JiraSandboxError` into Jira's error body.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jira_orchestrator.integrations.jira._sandbox_faults import Fault
from jira_orchestrator.integrations.jira.sandbox import (
    DEFAULT_SECRET,
    JiraSandboxError,
    _request_base,
    field_selection,
)

if TYPE_CHECKING:
    from jira_orchestrator.integrations.jira.sandbox import JiraSandbox

__all__ = ["build_app"]

Handler = Callable[[Request, str], Awaitable[Response]]
_JSON = "application/json;charset=UTF-8"
_UNAUTHORIZED = "You are not authenticated. Authentication required to perform this operation."
_FAULT_MESSAGES = {
    401: _UNAUTHORIZED,
    403: "You do not have permission to perform this operation.",
    409: "The issue is being changed by another request. Try again.",
    429: "Rate limit exceeded.",
    500: "Internal server error.",
    502: "Bad gateway.",
    503: "Service unavailable. Try again later.",
    504: "Gateway timeout.",
}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response as Jira writes them (``application/json;charset=UTF-8``)."""
    return Response(json.dumps(data), status, headers=headers, media_type=_JSON)


def error_response(error: JiraSandboxError, headers: dict[str, str] | None = None) -> Response:
    """Jira's error body, ``{"errorMessages": [...], "errors": {...}}``."""
    return json_response(error.to_json(), error.status, headers)


def build_app(sandbox: JiraSandbox) -> Starlette:
    """The Starlette application serving ``sandbox``."""

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def serve(request: Request) -> Response:
            token = _request_base.set(str(request.base_url).rstrip("/"))
            try:
                fault = sandbox.faults.take(request.method, request.url.path)
                if fault is not None:
                    return _fault_response(fault, sandbox)
                actor = sandbox.authenticate(request.headers.get("authorization"))
                if actor is None:
                    return error_response(JiraSandboxError(401, [_UNAUTHORIZED]))
                return await handler(request, actor)
            except JiraSandboxError as error:
                return error_response(error)
            finally:
                _request_base.reset(token)

        return serve

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            raise JiraSandboxError(400, ["No content to map due to end-of-input"])
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise JiraSandboxError(400, [f"Unexpected character in the JSON body: {exc}"]) from None

    @endpoint
    async def myself(request: Request, actor: str) -> Response:
        return json_response(sandbox.myself_json(actor))

    @endpoint
    async def create_issue(request: Request, actor: str) -> Response:
        return json_response(sandbox.create(await body_of(request), actor=actor), 201)

    @endpoint
    async def issue(request: Request, actor: str) -> Response:
        key = request.path_params["key"]
        if request.method == "GET":
            found = sandbox.find(key)
            fields = request.query_params.getlist("fields")
            selected = field_selection(fields) if fields else None
            return json_response(
                sandbox.issue_json(found, fields=selected, expand=_expand(request))
            )
        if request.method == "DELETE":
            sandbox.delete(key, actor=actor)
            return Response(status_code=204)
        sandbox.edit(key, await body_of(request), actor=actor)
        if request.query_params.get("returnIssue") == "true":
            return json_response(sandbox.issue_json(sandbox.find(key), expand=_expand(request)))
        return Response(status_code=204)

    @endpoint
    async def comments(request: Request, actor: str) -> Response:
        key = request.path_params["key"]
        if request.method == "POST":
            return json_response(sandbox.comment(key, await body_of(request), actor=actor), 201)
        start_at = _int(request, "startAt", 0)
        max_results = _int(request, "maxResults", 5000)
        newest_first = request.query_params.get("orderBy", "created").startswith("-")
        return json_response(sandbox.comments_page(key, start_at, max_results, newest_first))

    @endpoint
    async def assignee(request: Request, actor: str) -> Response:
        sandbox.assign_issue(request.path_params["key"], await body_of(request), actor=actor)
        return Response(status_code=204)

    @endpoint
    async def transitions(request: Request, actor: str) -> Response:
        key = request.path_params["key"]
        if request.method == "POST":
            sandbox.do_transition(key, await body_of(request), actor=actor)
            return Response(status_code=204)
        available = sandbox.transitions(key)
        wanted = request.query_params.get("transitionId")
        if wanted is not None:
            available = [t for t in available if t.id == wanted]
        return json_response(
            {
                "expand": "transitions",
                "transitions": [sandbox.transition_json(t) for t in available],
            }
        )

    @endpoint
    async def changelog(request: Request, actor: str) -> Response:
        return json_response(
            sandbox.changelog_page(
                request.path_params["key"],
                _int(request, "startAt", 0),
                _int(request, "maxResults", 100),
            )
        )

    @endpoint
    async def search(request: Request, actor: str) -> Response:
        if request.method == "POST":
            body = await body_of(request)
            if not isinstance(body, dict):
                raise JiraSandboxError(400, ["The request body must be a JSON object."])
            jql, token = body.get("jql", ""), body.get("nextPageToken")
            max_results, fields = body.get("maxResults", 50), body.get("fields")
            expand = body.get("expand") or ""
            if not isinstance(jql, str) or not isinstance(max_results, int):
                raise JiraSandboxError(400, ["'jql' must be a string, 'maxResults' an integer."])
            if token is not None and not isinstance(token, str):
                raise JiraSandboxError(400, ["'nextPageToken' must be a string."])
            if fields is not None and not (
                isinstance(fields, list) and all(isinstance(f, str) for f in fields)
            ):
                raise JiraSandboxError(400, ["'fields' must be a list of strings."])
        else:
            jql = request.query_params.get("jql", "")
            token = request.query_params.get("nextPageToken")
            max_results = _int(request, "maxResults", 50)
            fields = request.query_params.getlist("fields") or None
            expand = request.query_params.get("expand", "")
        return json_response(
            sandbox.search(
                jql,
                actor=actor,
                max_results=max_results,
                next_page_token=token,
                fields=fields,
                expand={part.strip() for part in str(expand).split(",") if part.strip()},
            )
        )

    @endpoint
    async def removed_search(request: Request, actor: str) -> Response:
        raise JiraSandboxError(
            410,
            [
                "The requested API has been removed. Please migrate to the "
                "/rest/api/3/search/jql API."
            ],
        )

    @endpoint
    async def unknown(request: Request, actor: str) -> Response:
        raise JiraSandboxError(404, [f"null for uri: {request.url}"])

    async def faults(request: Request) -> Response:
        if sandbox.authenticate(request.headers.get("authorization")) is None:
            return error_response(JiraSandboxError(401, [_UNAUTHORIZED]))
        if request.method == "POST":
            try:
                fault = sandbox.faults.arm(Fault.from_json(json.loads(await request.body())))
            except (ValueError, TypeError) as exc:
                return error_response(JiraSandboxError(400, [f"bad fault: {exc}"]))
            return json_response(fault.to_json(), 201)
        if request.method == "DELETE":
            sandbox.faults.clear()
            return Response(status_code=204)
        return json_response({"faults": [fault.to_json() for fault in sandbox.faults.armed]})

    async def webhooks(request: Request) -> Response:
        if sandbox.authenticate(request.headers.get("authorization")) is None:
            return error_response(JiraSandboxError(401, [_UNAUTHORIZED]))
        if request.method == "POST":
            try:
                data = json.loads(await request.body())
                if not isinstance(data, dict) or not isinstance(data.get("url"), str):
                    raise ValueError('expected {"url": ..., "secret": ...}')
                secret = data.get("secret", DEFAULT_SECRET)
                if secret is not None and not isinstance(secret, str):
                    raise ValueError("'secret' must be a string or null")
                target = sandbox.register_webhook(data["url"], secret)
            except ValueError as exc:
                return error_response(JiraSandboxError(400, [f"bad webhook: {exc}"]))
            return json_response({"url": target.url, "signed": target.secret is not None}, 201)
        return json_response(
            {
                "webhooks": [
                    {"url": target.url, "signed": target.secret is not None}
                    for target in sandbox.webhooks
                ],
                "deliveries": [
                    {
                        "identifier": delivery.identifier,
                        "event": delivery.event,
                        "issueKey": delivery.issue_key,
                        "url": delivery.url,
                        "state": delivery.state,
                        "attempts": [
                            {"retry": a.retry, "status": a.status, "error": a.error}
                            for a in delivery.attempts
                        ],
                    }
                    for delivery in sandbox.deliveries
                ],
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sandbox.start()
        try:
            yield
        finally:
            await sandbox.aclose()

    api = "/rest/api/3"
    routes = [
        Route(f"{api}/myself", myself, methods=["GET"]),
        Route(f"{api}/issue", create_issue, methods=["POST"]),
        Route(f"{api}/issue/{{key}}", issue, methods=["GET", "PUT", "DELETE"]),
        Route(f"{api}/issue/{{key}}/comment", comments, methods=["GET", "POST"]),
        Route(f"{api}/issue/{{key}}/assignee", assignee, methods=["PUT"]),
        Route(f"{api}/issue/{{key}}/transitions", transitions, methods=["GET", "POST"]),
        Route(f"{api}/issue/{{key}}/changelog", changelog, methods=["GET"]),
        Route(f"{api}/search/jql", search, methods=["GET", "POST"]),
        Route(f"{api}/search", removed_search, methods=["GET", "POST"]),
        Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/webhooks", webhooks, methods=["GET", "POST"]),
        Route("/rest/{rest:path}", unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _fault_response(fault: Fault, sandbox: JiraSandbox) -> Response:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.status == 429:
        reset = datetime.fromtimestamp(sandbox.clock() + (fault.retry_after or 0), UTC)
        headers.update(
            {
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
                "X-RateLimit-NearLimit": "true",
                "RateLimit-Reason": fault.reason,
            }
        )
    return error_response(JiraSandboxError(fault.status, [_FAULT_MESSAGES[fault.status]]), headers)


def _expand(request: Request) -> set[str]:
    return {
        part.strip()
        for value in request.query_params.getlist("expand")
        for part in value.split(",")
        if part.strip()
    }


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise JiraSandboxError(400, [f"'{name}' must be an integer, not {raw!r}."]) from None
    if value < 0:
        raise JiraSandboxError(400, [f"'{name}' must be zero or positive."])
    return value
