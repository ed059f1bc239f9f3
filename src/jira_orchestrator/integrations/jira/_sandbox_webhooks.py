"""Outgoing webhooks: sign each event, deliver it, and retry it as Jira Cloud does.

A delivery is one event sent to one URL. It keeps its ``X-Atlassian-Webhook-Identifier``
across retries; a retry carries ``X-Atlassian-Webhook-Retry: n``. It is retried only when
the receiver answers 408, 409, 425, 429 or 5xx, or the connection fails or times out;
any other answer (a 400, a 404, a redirect) ends it. Retries wait ``WebhookRetry.delay(n)``
through an injected ``sleep``, so tests never wait for real time to pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import httpx

from jira_orchestrator._core.tasks import BackgroundTasks
from jira_orchestrator.integrations.jira.webhooks import sign

__all__ = [
    "RETRY_STATUSES",
    "Delivery",
    "DeliveryAttempt",
    "WebhookRetry",
    "WebhookSender",
]

log = logging.getLogger("jira_orchestrator.integrations.jira.sandbox")

RETRY_STATUSES = frozenset({408, 409, 425, 429})
Sleep = Callable[[float], Awaitable[None]]


def should_retry(status: int) -> bool:
    """Whether Jira retries a delivery that was answered with ``status``."""
    return status in RETRY_STATUSES or 500 <= status <= 599


@dataclass(frozen=True)
class WebhookRetry:
    """How deliveries are retried: at most ``max_retries`` after the first attempt.

    Retry ``n`` waits ``first_delay * multiplier**(n-1)`` seconds, capped at ``max_delay``.
    Jira Cloud retries up to 5 times, minutes apart; the sandbox keeps the count and
    shortens the waits. ``timeout`` bounds each attempt (Jira: 5 s to connect, 20 s in all).
    """

    max_retries: int = 5
    first_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 30.0
    timeout: float = 20.0
    connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {self.max_retries}")
        if self.first_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be >= 0 and the multiplier >= 1")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("timeouts must be positive")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry ``retry`` (1, 2, ...)."""
        return float(min(self.max_delay, self.first_delay * self.multiplier ** (retry - 1)))


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of a delivery (``retry`` 0 is the first) and its ``status`` or ``error``."""

    retry: int
    status: int | None = None
    error: str | None = None


@dataclass
class Delivery:
    """One webhook event on its way to one URL."""

    identifier: str
    event: str
    issue_key: str
    url: str
    body: bytes
    headers: dict[str, str]
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    state: Literal["pending", "delivered", "failed"] = "pending"

    @property
    def delivered(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.state == "delivered"


class WebhookSender:
    """Delivers webhooks one by one in submission order; retries wait in the background.

    `submit` may be called outside a running loop; delivery starts once a loop runs
    `start` (or `idle`). `idle` returns when every submitted delivery has been delivered
    or given up.
    """

    def __init__(
        self,
        *,
        retry: WebhookRetry,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry = retry
        self.deliveries: list[Delivery] = []
        self._sleep = sleep
        self._transport = transport
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._retries = BackgroundTasks(log, "retrying a webhook delivery")
        self._client: httpx.AsyncClient | None = None

    def submit(
        self, *, url: str, secret: str | None, event: str, issue_key: str, body: bytes
    ) -> Delivery:
        """Queue ``body`` for ``url``, signed with ``secret`` (unsigned when empty)."""
        identifier = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "User-Agent": "Atlassian Webhook HTTP Client",
            "X-Atlassian-Webhook-Identifier": identifier,
            "X-Atlassian-Webhook-Flow": "Primary",
        }
        if secret:
            headers["X-Hub-Signature"] = sign(body, secret)  # what the receiver checks
        delivery = Delivery(identifier, event, issue_key, url, body, headers)
        self.deliveries.append(delivery)
        self._outstanding += 1
        self._idle.clear()
        self._queue.put_nowait(delivery)
        with contextlib.suppress(RuntimeError):  # no running loop: `start` will pick it up
            self.start()
        return delivery

    def start(self) -> None:
        """Start delivering in the running loop (idempotent)."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def idle(self, timeout: float | None = None) -> None:
        """Return once nothing is pending; ``TimeoutError`` after ``timeout`` seconds."""
        self.start()
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def aclose(self) -> None:
        """Stop delivering: pending deliveries stay ``pending``; close the HTTP client."""
        tasks = [*self._retries, *([self._worker] if self._worker else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._worker = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            if not await self._attempt(delivery, 0):
                continue
            if self.retry.max_retries == 0:
                self._give_up(delivery)
                continue
            self._retries.spawn(self._retry(delivery))

    async def _retry(self, delivery: Delivery) -> None:
        for retry in range(1, self.retry.max_retries + 1):
            await self._sleep(self.retry.delay(retry))
            if not await self._attempt(delivery, retry):
                return
        self._give_up(delivery)

    def _give_up(self, delivery: Delivery) -> None:
        delivery.state = "failed"
        log.warning(
            "webhook %s for %s to %s given up after %d attempts (%s)",
            delivery.event,
            delivery.issue_key,
            delivery.url,
            len(delivery.attempts),
            delivery.identifier,
        )
        self._finished()

    async def _attempt(self, delivery: Delivery, retry: int) -> bool:
        """POST once; True when the answer calls for a retry (the delivery is still pending)."""
        headers = dict(delivery.headers)
        if retry:
            headers["X-Atlassian-Webhook-Retry"] = str(retry)
        try:
            response = await self._http().post(delivery.url, content=delivery.body, headers=headers)
        except httpx.HTTPError as exc:  # connection refused, reset, timeout: Jira retries
            delivery.attempts.append(DeliveryAttempt(retry, error=f"{type(exc).__name__}: {exc}"))
            return True
        except Exception as exc:  # a bad URL, say: no retry can help
            delivery.attempts.append(DeliveryAttempt(retry, error=f"{type(exc).__name__}: {exc}"))
            self._give_up(delivery)
            return False
        delivery.attempts.append(DeliveryAttempt(retry, status=response.status_code))
        if should_retry(response.status_code):
            return True
        if 200 <= response.status_code <= 299:
            delivery.state = "delivered"
        else:
            delivery.state = "failed"
            log.warning(
                "webhook %s for %s to %s refused with %d, not retried (%s)",
                delivery.event,
                delivery.issue_key,
                delivery.url,
                response.status_code,
                delivery.identifier,
            )
        self._finished()
        return False

    def _finished(self) -> None:
        self._outstanding -= 1
        if self._outstanding == 0:
            self._idle.set()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(self.retry.timeout, connect=self.retry.connect_timeout)
            self._client = httpx.AsyncClient(
                transport=self._transport, timeout=timeout, follow_redirects=False
            )
        return self._client
