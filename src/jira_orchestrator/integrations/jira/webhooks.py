"""The Jira webhook receiver: ``POST /webhooks/jira``, a Starlette route.

What happens to a delivery, in order (each refusal is counted in `WebhookReceiver.stats`
and logged, never with the secret):

1. Body size: a ``Content-Length`` over ``max_body_bytes`` is refused at once, and the body
   is read in chunks and refused as soon as it passes the limit, so a 10 MB body never sits
   in memory: 413.
2. Signature, when a secret is configured: ``X-Hub-Signature: sha256=<hex>``, the
   HMAC-SHA256 of the raw body, compared in constant time. Missing, malformed, another
   method or wrong: 401 with no detail.
3. The body must be a Jira issue event (`parse_event`): otherwise 400 naming the reason.
4. An event for a project not configured: 202 ``ignored``, not stored, counted. Not a 4xx:
   Jira's webhook filter (JQL) may cover more projects than this orchestrator serves, and
   a 4xx would show those deliveries as failures on the site's webhook page for nothing.
5. Stored in the `WebhookInbox` (fsynced) *before* the answer: 202 ``accepted`` for a new
   delivery, 200 ``duplicate`` for an ``X-Atlassian-Webhook-Identifier`` already stored
   (Jira keeps the identifier across retries). If the store fails: 503, so Jira retries.

Errors are JSON ``{"error": code, "detail": sentence}``, the shape the HTTP server uses.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator._core.observe import Tally
from jira_orchestrator.integrations.jira.events import InvalidWebhookEvent, parse_event
from jira_orchestrator.integrations.jira.inbox import InboxError, InboxWriter, Stored, WebhookInbox

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "IDENTIFIER_HEADER",
    "RETRY_HEADER",
    "SIGNATURE_HEADER",
    "WEBHOOK_PATH",
    "Secret",
    "WebhookConfigError",
    "WebhookReceiver",
    "secret_from_env",
    "sign",
    "verify_signature",
]

log = logging.getLogger("jira_orchestrator.integrations.jira.webhooks")

WEBHOOK_PATH = "/webhooks/jira"
SIGNATURE_HEADER = "X-Hub-Signature"
IDENTIFIER_HEADER = "X-Atlassian-Webhook-Identifier"
RETRY_HEADER = "X-Atlassian-Webhook-Retry"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""Real bodies are 4-10 KB; a long description or many custom fields stay far below."""
_MAX_IDENTIFIER = 200


class WebhookConfigError(JiraOrchestratorError, ValueError):
    """The receiver's configuration is unusable (a secret variable unset, a bad limit)."""


class Secret:
    """A secret string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise WebhookConfigError("a webhook secret must be a non-empty string")
        self._value = value.encode()

    def reveal(self) -> bytes:
        """The secret's bytes, for the HMAC."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


def secret_from_env(name: str, environ: Mapping[str, str] | None = None) -> Secret:
    """The secret in environment variable ``name``; `WebhookConfigError` if unset or empty."""
    value = (os.environ if environ is None else environ).get(name, "")
    if not value:
        raise WebhookConfigError(
            f"environment variable {name} (the webhook secret named in the configuration) "
            "is not set or is empty"
        )
    return Secret(value)


def _key(secret: Secret | str) -> bytes:
    return secret.reveal() if isinstance(secret, Secret) else secret.encode()


def sign(body: bytes, secret: Secret | str) -> str:
    """The ``X-Hub-Signature`` value Jira sends for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: Secret | str) -> bool:
    """Whether ``header`` is a valid ``sha256=<hex>`` signature of ``body`` (constant time)."""
    if header is None:
        return False
    method, _, given = header.strip().partition("=")
    if method.lower() != "sha256":
        return False  # Atlassian may add methods; an unknown one cannot be checked
    expected = hmac.new(_key(secret), body, hashlib.sha256).hexdigest().encode()
    # bytes, not str: compare_digest refuses non-ASCII strings, and headers may carry any
    return hmac.compare_digest(expected, given.strip().lower().encode("latin-1", "replace"))


def _error(status: int, code: str, detail: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


class _TooLarge(Exception):
    pass


class WebhookReceiver:
    """Receives Jira webhooks into a `WebhookInbox`; mount `routes` on the HTTP server.

    ``secret`` (from `secret_from_env`) turns signature checks on; without one every body
    is accepted unsigned (a warning is logged once). ``projects`` are the project keys to
    accept (None: all). ``stats`` counts received, accepted, duplicates, superseded,
    ignored and rejected by reason.
    """

    def __init__(
        self,
        inbox: WebhookInbox,
        *,
        secret: Secret | None,
        projects: Iterable[str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        path: str = WEBHOOK_PATH,
        on_stored: Callable[[Stored], object] | None = None,
    ) -> None:
        """``on_stored`` is called with each newly stored event (after it is on disk), so a
        processor can wake up instead of polling."""
        if secret is not None and not isinstance(secret, Secret):
            raise TypeError("secret must be a Secret (see secret_from_env), not a plain string")
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int):
            raise WebhookConfigError(f"max_body_bytes must be an int, got {max_body_bytes!r}")
        if max_body_bytes < 1:
            raise WebhookConfigError(f"max_body_bytes must be positive, got {max_body_bytes}")
        self.inbox = inbox
        self.writer = InboxWriter(inbox)
        self.secret = secret
        self.projects = None if projects is None else frozenset(projects)
        self.max_body_bytes = max_body_bytes
        self.path = path
        self.on_stored = on_stored
        self._counts: Counter[str] = Tally("webhook_events")  # mirrored in /metrics
        self._rejected: Counter[str] = Tally("webhook_rejected")
        if secret is None:
            log.warning(
                "Jira webhooks at %s are accepted WITHOUT a signature check: configure a "
                "secret in Jira and name its environment variable in the configuration",
                path,
            )

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: received, accepted, duplicates, superseded, ignored, rejected by reason."""
        stats: dict[str, Any] = {
            name: self._counts[name]
            for name in ("received", "accepted", "duplicates", "superseded", "ignored")
        }
        stats["rejected"] = dict(sorted(self._rejected.items()))
        return stats

    def routes(self) -> list[Route]:
        """The Starlette route: ``POST`` at ``path``."""
        return [Route(self.path, self.handle, methods=["POST"], name="jira-webhook")]

    def ready(self) -> bool:
        """Whether the inbox is open (for the server's ``/readyz``)."""
        return self.inbox.is_open

    async def aclose(self) -> None:
        """Wait for queued writes; the inbox itself is closed by its owner."""
        await self.writer.aclose()

    def _reject(
        self, status: int, reason: str, detail: str | None, delivery: str | None, key: str = "-"
    ) -> JSONResponse:
        self._rejected[reason] += 1
        log.warning(
            "Jira webhook rejected (%d %s): issue %s, delivery %s%s",
            status,
            reason,
            key,
            delivery or "-",
            f": {detail}" if detail else "",
        )
        return _error(status, reason, detail)

    async def _body(self, request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_body_bytes:
            raise _TooLarge
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body_bytes:
                raise _TooLarge
        return bytes(body)

    async def handle(self, request: Request) -> Response:
        """One delivery (see the module's docstring for the answers)."""
        self._counts["received"] += 1
        delivery = request.headers.get(IDENTIFIER_HEADER)
        if delivery is not None and not 0 < len(delivery) <= _MAX_IDENTIFIER:
            return self._reject(
                400,
                "bad-identifier",
                f"{IDENTIFIER_HEADER} must be 1 to {_MAX_IDENTIFIER} characters",
                None,
            )
        try:
            body = await self._body(request)
        except _TooLarge:
            return self._reject(
                413,
                "too-large",
                f"the body is over the limit of {self.max_body_bytes} bytes",
                delivery,
            )
        except ClientDisconnect:
            self._rejected["disconnected"] += 1
            log.info("Jira webhook delivery %s: the client hung up mid-body", delivery or "-")
            return Response(status_code=400)
        if self.secret is not None and not verify_signature(
            body, request.headers.get(SIGNATURE_HEADER), self.secret
        ):
            return self._reject(401, "unauthorized", None, delivery)
        try:
            event = parse_event(body)
        except InvalidWebhookEvent as exc:
            return self._reject(400, exc.code, exc.reason, delivery)
        if self.projects is not None and event.project_key not in self.projects:
            self._counts["ignored"] += 1
            log.info(
                "Jira webhook %s for %s ignored: project %s is not configured",
                event.webhook_event,
                event.issue_key,
                event.project_key,
            )
            return JSONResponse(
                {
                    "status": "ignored",
                    "reason": f"project {event.project_key!r} is not configured",
                },
                status_code=202,
            )
        # Without the header (a proxy stripped it, a hand-made call) the content is the key:
        # a retry of the same body is still recognised.
        key = delivery or "sha256:" + hashlib.sha256(body).hexdigest()
        try:
            stored = await self.writer.add(key, event, body)
        except InboxError as exc:
            self._rejected["store-unavailable"] += 1
            log.error(
                "Jira webhook %s for %s NOT stored (Jira will retry): %s",
                event.webhook_event,
                event.issue_key,
                exc,
            )
            return JSONResponse(
                {"error": "store-unavailable", "detail": "the event could not be stored"},
                status_code=503,
                headers={"Retry-After": "30"},
            )
        if not stored.new:
            self._counts["duplicates"] += 1
            log.debug("Jira webhook delivery %s for %s: duplicate", key, event.issue_key)
            return JSONResponse({"status": "duplicate", "seq": stored.seq}, status_code=200)
        self._counts["accepted"] += 1
        if stored.state == "superseded":
            self._counts["superseded"] += 1
        elif self.on_stored is not None:
            self.on_stored(stored)
        return JSONResponse(
            {"status": "accepted", "seq": stored.seq, "state": stored.state}, status_code=202
        )
