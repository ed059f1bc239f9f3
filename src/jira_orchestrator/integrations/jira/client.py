"""An async client for Jira Cloud's REST API v3 (httpx, one keep-alive connection pool).

Only what the orchestrator needs: read an issue (with its changelog), comment (ADF), edit
labels and components, assign, list and apply transitions, search with JQL (``POST
/rest/api/3/search/jql``, paged by ``nextPageToken``), and ``GET /rest/api/3/myself``.

Resilience: 429 and 5xx answers, timeouts and broken connections are retried through the
project's `RetryPolicy`, never sooner than Jira's ``Retry-After`` and never longer than
``max_wait`` seconds (a longer ``Retry-After`` gives up with `JiraRateLimited`). A
`CircuitBreaker` opens after repeated failures of Jira itself, so a Jira outage costs
one fast `CircuitOpenError` per call instead of a timeout. A request that changes
something is retried only when it certainly did not land (a 429, a refused connection);
after an ambiguous failure (a timeout, a 5xx) ``add_comment`` with a ``marker`` first
looks for its comment and returns it if it is there, so a comment is never written twice.

Errors are `JiraError` subclasses (`errors`) built from the status and Jira's own
messages; the credentials never appear in an error, a ``repr`` or a log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from jira_orchestrator._core import observe, tracing
from jira_orchestrator._core.clock import MonotonicClock, monotonic
from jira_orchestrator.integrations.jira.config import JiraConfig
from jira_orchestrator.integrations.jira.errors import (
    JiraAuthError,
    JiraConflict,
    JiraError,
    JiraNotFound,
    JiraRateLimited,
    JiraRequestError,
    JiraUnavailable,
)
from jira_orchestrator.resilience import CircuitBreaker, RetryPolicy

__all__ = ["API", "JiraClient"]

log = logging.getLogger(__name__)

API = "/rest/api/3"
_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None


def _messages(response: httpx.Response) -> list[str]:
    """Jira's ``errorMessages`` and ``errors`` (field: message), or a short body excerpt."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return [text[:200]] if text else []
    found: list[str] = []
    if isinstance(body, dict):
        messages = body.get("errorMessages")
        if isinstance(messages, list):
            found.extend(str(m) for m in messages)
        errors = body.get("errors")
        if isinstance(errors, dict):
            found.extend(f"{field}: {message}" for field, message in errors.items())
    return found


def _error_for(method: str, path: str, response: httpx.Response) -> JiraError:
    status = response.status_code
    messages = _messages(response)
    kind: type[JiraError]
    if status in (401, 403):
        kind = JiraAuthError
    elif status == 404:
        kind = JiraNotFound
    elif status == 409:
        kind = JiraConflict
    elif status == 429:
        kind = JiraRateLimited
    elif status >= 500:
        kind = JiraUnavailable
    else:
        kind = JiraRequestError
    return kind(status, method, path, messages, retry_after=_retry_after(response))


class _NotSent(JiraUnavailable):
    """The connection was refused: the request never reached Jira (safe to send again)."""


class _MayHaveLanded(JiraUnavailable):
    """A change whose request may have reached Jira, with no way to check: not sent again."""


def _contains_text(node: Any, needle: str) -> bool:
    """Whether an ADF node (or any node below it) has a text node containing ``needle``."""
    if isinstance(node, dict):
        text = node.get("text")
        if isinstance(text, str) and needle in text:
            return True
        return any(_contains_text(child, needle) for child in node.get("content") or ())
    if isinstance(node, list):
        return any(_contains_text(child, needle) for child in node)
    return isinstance(node, str) and needle in node


class JiraClient:
    """Jira Cloud REST v3 over httpx; use as ``async with JiraClient(...) as jira:``.

    ``headers`` carries the ``Authorization`` header (`AuthConfig.headers`); ``transport``
    lets a test run the client in process against the sandbox's ASGI app.
    """

    def __init__(
        self,
        site: str,
        headers: Mapping[str, str],
        *,
        timeout: float = 30.0,
        max_retries: int = 4,
        max_wait: float = 60.0,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: MonotonicClock = monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.site = site.rstrip("/")
        self.max_wait = max_wait
        self._http = httpx.AsyncClient(
            base_url=self.site,
            headers={**headers, "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )
        self._retry = retry or RetryPolicy(
            max_retries=max_retries,
            backoff="exponential",
            initial_delay=0.5,
            max_delay=min(8.0, max_wait),
            retry_on=self._retryable,
            give_up_on=(),
            retry_after=self._wait_hint,
            clock=clock,
            sleep=sleep,
        )
        self._breaker = breaker or CircuitBreaker(
            "jira",
            threshold=5,
            timeout=30.0,
            record_exceptions=JiraUnavailable,
            ignore_exceptions=(),
            clock=clock,
        )
        self.calls: dict[int | str, int] = {}
        """Answers by status (and ``"error"`` for no answer), for metrics and tests."""

    @classmethod
    def from_config(
        cls,
        config: JiraConfig,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> JiraClient:
        """A client for the configured site, its token read from the environment."""
        settings = config.jira
        return cls(
            settings.site,
            settings.auth.headers(environ),
            timeout=settings.timeout_seconds,
            **options,
        )

    def __repr__(self) -> str:
        return f"JiraClient({self.site!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    def _wait_hint(self, exc: BaseException) -> float | None:
        hint = getattr(exc, "retry_after", None)
        return None if hint is None else float(hint)

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, _MayHaveLanded) or not isinstance(
            exc, JiraRateLimited | JiraUnavailable
        ):
            return False
        return exc.retry_after is None or exc.retry_after <= self.max_wait

    # -- the HTTP exchange -------------------------------------------------------------

    def _count(self, status: int | str, method: str) -> None:
        self.calls[status] = self.calls.get(status, 0) + 1
        observe.inc("jira_api_calls", (method, str(status)))

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One exchange; raises the `JiraError` for anything but a 2xx."""
        try:
            with tracing.span(
                f"jira {method}",
                kind="client",
                attributes={"http.request.method": method, "url.path": API + path},
            ):
                response = await self._http.request(method, API + path, params=params, json=json)
        except httpx.ConnectError:
            self._count("error", method)
            raise _NotSent(None, method, path, ["connection refused"]) from None
        except httpx.TimeoutException:
            self._count("error", method)
            raise JiraUnavailable(None, method, path, ["timed out"]) from None
        except httpx.TransportError as exc:
            self._count("error", method)
            raise JiraUnavailable(None, method, path, [type(exc).__name__]) from None
        self._count(response.status_code, method)
        if response.is_success:
            return response
        error = _error_for(method, path, response)
        log.debug("%s", error)  # raised to the caller, who knows which issue it was for
        raise error

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        landed: Any = None,
    ) -> httpx.Response:
        """An exchange under the breaker and the retry policy.

        A request that changes something (POST) is sent again only when it certainly did
        not land (429, refused connection); after an ambiguous failure ``landed`` (an async
        check) is asked first, and the call gives up when there is no such check.
        """

        async def attempt() -> httpx.Response:
            return await self._breaker.execute(
                lambda: self._send(method, path, params=params, json=json)
            )

        if method in _IDEMPOTENT:
            return await self._retry.execute(attempt)
        first = True

        async def once() -> httpx.Response:
            nonlocal first
            if not first and landed is not None:
                found = await landed()
                if found is not None:
                    return found  # type: ignore[no-any-return]
            first = False
            try:
                return await attempt()
            except JiraUnavailable as exc:
                if landed is None and not isinstance(exc, _NotSent):
                    raise _MayHaveLanded(
                        exc.status,
                        method,
                        path,
                        [*exc.messages, "not sent again: it may have landed"],
                    ) from None
                raise

        return await self._retry.execute(once)

    # -- operations ----------------------------------------------------------------------

    async def myself(self) -> dict[str, Any]:
        """The signed-in user (``GET /myself``): checks the credentials."""
        return dict((await self._call("GET", "/myself")).json())

    async def get_issue(
        self, key: str, *, changelog: bool = False, fields: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """An issue by key or id; ``changelog=True`` adds ``expand=changelog``."""
        params: dict[str, str] = {}
        if changelog:
            params["expand"] = "changelog"
        if fields is not None:
            params["fields"] = ",".join(fields)
        return dict((await self._call("GET", f"/issue/{_segment(key)}", params=params)).json())

    async def comments(self, key: str) -> AsyncIterator[dict[str, Any]]:
        """Every comment of an issue, oldest first (all pages)."""
        start = 0
        while True:
            page = (
                await self._call(
                    "GET",
                    f"/issue/{_segment(key)}/comment",
                    params={"startAt": start, "maxResults": 100},
                )
            ).json()
            found = page.get("comments") or []
            for comment in found:
                yield comment
            start += len(found)
            if not found or start >= int(page.get("total", start)):
                return

    async def find_comment(self, key: str, marker: str) -> dict[str, Any] | None:
        """The first comment whose text contains ``marker``, if any."""
        async for comment in self.comments(key):
            if _contains_text(comment.get("body"), marker):
                return comment
        return None

    async def add_comment(
        self,
        key: str,
        body: Mapping[str, Any],
        *,
        marker: str | None = None,
        new: bool = False,
    ) -> dict[str, Any]:
        """Add a comment (``body`` an ADF document) and return it as Jira stored it.

        With ``marker`` (a text that the body contains and no other comment does), a
        comment already carrying it is returned instead of writing a second one: before
        the first attempt (unless ``new`` says no earlier attempt can have written it) and
        after any failure that may have landed.
        """
        path = f"/issue/{_segment(key)}/comment"
        if marker is not None and not _contains_text(body, marker):
            raise ValueError(f"the comment body does not contain its marker {marker!r}")
        if marker is not None and not new:
            existing = await self.find_comment(key, marker)
            if existing is not None:
                return existing

        async def landed() -> httpx.Response | None:
            assert marker is not None
            found = await self.find_comment(key, marker)
            return None if found is None else httpx.Response(201, json=found)

        response = await self._call(
            "POST", path, json={"body": dict(body)}, landed=landed if marker else None
        )
        return dict(response.json())

    async def edit_issue(
        self,
        key: str,
        *,
        fields: Mapping[str, Any] | None = None,
        update: Mapping[str, Any] | None = None,
    ) -> None:
        """``PUT /issue/{key}`` with ``fields`` (set) and ``update`` (operations)."""
        body: dict[str, Any] = {}
        if fields:
            body["fields"] = dict(fields)
        if update:
            body["update"] = dict(update)
        await self._call("PUT", f"/issue/{_segment(key)}", json=body)

    async def update_labels(
        self, key: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        """Add and remove labels without touching the others."""
        operations = [{"remove": label} for label in remove] + [{"add": label} for label in add]
        if operations:
            await self.edit_issue(key, update={"labels": operations})

    async def update_components(
        self, key: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        """Add and remove components (by name) without touching the others."""
        operations = [{"remove": {"name": name}} for name in remove] + [
            {"add": {"name": name}} for name in add
        ]
        if operations:
            await self.edit_issue(key, update={"components": operations})

    async def assign(self, key: str, account_id: str | None) -> None:
        """Assign to an accountId (``None`` unassigns)."""
        await self._call("PUT", f"/issue/{_segment(key)}/assignee", json={"accountId": account_id})

    async def transitions(self, key: str) -> list[dict[str, Any]]:
        """The transitions available on the issue now."""
        body = (await self._call("GET", f"/issue/{_segment(key)}/transitions")).json()
        return list(body.get("transitions") or [])

    async def transition(self, key: str, name_or_id: str) -> str:
        """Apply the transition named (case-insensitive) or numbered ``name_or_id``.

        Returns the transition's id; `JiraRequestError` when the issue has no such
        transition now, naming the ones it has.
        """
        available = await self.transitions(key)
        wanted = name_or_id.casefold()
        for item in available:
            if str(item.get("id")) == name_or_id or str(item.get("name", "")).casefold() == wanted:
                transition_id = str(item["id"])
                await self._call(
                    "POST",
                    f"/issue/{_segment(key)}/transitions",
                    json={"transition": {"id": transition_id}},
                    # Applying the same transition again is refused by Jira, not doubled.
                    landed=None,
                )
                return transition_id
        names = ", ".join(f"{t.get('name')} ({t.get('id')})" for t in available) or "none"
        raise JiraRequestError(
            None,
            "POST",
            f"/issue/{key}/transitions",
            [f"no transition {name_or_id!r} from the issue's status; available: {names}"],
        )

    async def search(
        self,
        jql: str,
        *,
        fields: Sequence[str] = ("*navigable",),
        page_size: int = 100,
        expand: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every issue matching ``jql`` (at most ``limit``), all pages (``POST /search/jql``,
        ``nextPageToken``)."""
        token: str | None = None
        left = limit
        while True:
            size = page_size if left is None else min(page_size, left)
            body: dict[str, Any] = {"jql": jql, "fields": list(fields), "maxResults": size}
            if expand:
                body["expand"] = expand
            if token is not None:
                body["nextPageToken"] = token  # absent on the first page, never null
            # A search changes nothing: safe to send again.
            page = (await self._call_idempotent_post("/search/jql", body)).json()
            for issue in page.get("issues") or []:
                yield issue
                if left is not None:
                    left -= 1
                    if left <= 0:
                        return
            token = page.get("nextPageToken")
            if not token or page.get("isLast") is True:
                return

    async def _call_idempotent_post(self, path: str, body: Any) -> httpx.Response:
        async def attempt() -> httpx.Response:
            return await self._breaker.execute(lambda: self._send("POST", path, json=body))

        return await self._retry.execute(attempt)


def _segment(key: str) -> str:
    """An issue key or id as one URL path segment (a key from outside cannot add segments)."""
    if not key or len(key) > 255:
        raise ValueError(f"not an issue key or id: {key!r}")
    return quote(key, safe="")
