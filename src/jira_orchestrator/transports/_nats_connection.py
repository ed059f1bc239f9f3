"""The NATS transport's connection: options, counters, connect and reconnect, replies.

The first part of `jira_orchestrator.transports.nats` (which tells the whole story): the
state every part shares, the connection made lazily on first use and kept through
reconnects, and the inbox where answers to this connection's requests arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.manager import JetStreamManager

from jira_orchestrator._core.errors import (
    ConnectionLost,
    InvalidMessage,
    TransportClosed,
    TransportError,
)
from jira_orchestrator._core.message import Message
from jira_orchestrator._core.redact import redact_url
from jira_orchestrator._core.tasks import BackgroundTasks
from jira_orchestrator._core.text import escape_control
from jira_orchestrator._core.topics import TopicIndex, normalize_pattern, normalize_topic
from jira_orchestrator.transports._base import RefusalHook, Reply, Transport
from jira_orchestrator.transports._nats_errors import map_error
from jira_orchestrator.transports._nats_jetstream import (
    DEAD_LETTER_TOPICS,
    StreamSpec,
    ensure_streams,
    plan_streams,
)
from jira_orchestrator.transports._nats_subjects import DURABLE_PREFIX

if TYPE_CHECKING:
    from jira_orchestrator.transports._nats_subscriptions import _NatsSubscription

__all__ = ["MSG_ID_HEADER", "REPLY_HEADER", "InvalidHook", "NatsOptions", "NatsStats"]

log = logging.getLogger("jira_orchestrator.transports.nats")

REPLY_HEADER = "Jo-Reply-To"
"""Header of a durable request: the subject its response goes to (JetStream keeps no reply)."""

MSG_ID_HEADER = "Nats-Msg-Id"
"""JetStream's duplicate-suppression header; the transport sets it to the ``messageId``."""

InvalidHook = Callable[[str, bytes, InvalidMessage], None]
T = TypeVar("T")

_MANAGE_HINT = (
    "a user with JetStream rights (the orchestrator's, under up) creates the streams and "
    "consumers, and a plugin binds to them with ?jetstream=bind in its URL"
)


@dataclass(frozen=True)
class NatsOptions:
    """Options of a NATS transport; each can be set in the URL query. Durations in seconds.

    ``durable`` is a comma-separated list of topic patterns in the query (empty: none, for
    a server without JetStream).

    ``jetstream``: ``manage`` (the default) creates the streams and the consumers of its
    queue subscriptions itself, which needs JetStream's API; ``bind`` only uses streams and
    consumers that a user with those rights created (the orchestrator, under ``up``), which
    needs no more than its consumers' info and acks. ``inbox_prefix``: where this
    connection's replies arrive; empty means ``_INBOX.<user>`` when the URL names a user
    and a password, ``_INBOX`` otherwise.
    """

    durable: tuple[str, ...] = ("plugin/*/request", *DEAD_LETTER_TOPICS)
    ack_wait: float = 30.0
    max_deliver: int = 5
    retry_delay: float = 0.1
    max_ack_pending: int = 1000
    stream_prefix: str = "JO"
    storage: str = "file"
    dead_letter_max_age: float = 7 * 24 * 3600.0
    publish_ack_timeout: float = 10.0
    presence_ttl: float = 1.0
    connect_timeout: float = 5.0
    reconnect_wait: float = 0.5
    name: str = "jira-orchestrator"
    jetstream: str = "manage"
    inbox_prefix: str = ""
    replicas: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "durable", tuple(normalize_pattern(p) for p in self.durable))
        if self.jetstream not in ("manage", "bind"):
            raise ValueError(f"jetstream must be 'manage' or 'bind', not {self.jetstream!r}")
        if self.inbox_prefix and not _is_subject(self.inbox_prefix):
            raise ValueError(
                f"inbox_prefix must be a NATS subject without wildcards, not {self.inbox_prefix!r}"
            )
        if self.max_deliver < 1:
            raise ValueError(f"max_deliver must be at least 1, not {self.max_deliver}")
        if not 1 <= self.replicas <= 5:
            raise ValueError(f"replicas must be 1 to 5, not {self.replicas}")
        if self.storage not in ("file", "memory"):
            raise ValueError(f"storage must be 'file' or 'memory', not {self.storage!r}")
        for name in ("ack_wait", "publish_ack_timeout", "connect_timeout", "reconnect_wait"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")

    @classmethod
    def from_query(cls, query: str) -> NatsOptions:
        """Options from a URL query string; raise ``ValueError`` naming an unknown key."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key not in known:
                raise ValueError(f"unknown NATS bus URL option {key!r}; known: {sorted(known)}")
            default = getattr(cls, key)
            if key == "durable":
                values[key] = tuple(p.strip() for p in value.split(",") if p.strip())
            elif isinstance(default, str):
                values[key] = value
            elif isinstance(default, int):
                values[key] = int(value)
            else:
                values[key] = float(value)
        return cls(**values)


@dataclass
class NatsStats:
    """Counters of one NATS transport."""

    invalid: int = 0
    retried: int = 0
    suppressed_dead_letters: int = 0
    presence_probes: int = 0
    reconnects: int = 0
    disconnects: int = 0
    setup_retries: int = 0
    """Subscriptions set up again after JetStream refused for a moment."""
    permission_violations: int = 0
    """Publishes and subscriptions the server refused this user (each logged once)."""
    mislabelled: int = 0
    """Messages whose envelope named another topic than their subject (also ``invalid``)."""


class _NatsConnection(Transport):
    """The connection and the state shared by the transport's parts (see `NatsTransport`)."""

    def __init__(self, url: str, *, options: NatsOptions | None = None, **overrides: Any) -> None:
        self.url = redact_url(url)
        """The URL as shown in logs and errors: its password as ``***``."""
        address, _, query = url.partition("?")
        self._servers = [server.strip() for server in address.split(",") if server.strip()]
        base = options if options is not None else NatsOptions.from_query(query)
        self.options = replace(base, **overrides) if overrides else base
        self.stats = NatsStats()
        self.on_invalid: InvalidHook | None = None
        self.on_refused: RefusalHook | None = None
        self._streams: list[StreamSpec] = plan_streams(
            self.options.durable, self.options.stream_prefix, self.options.dead_letter_max_age
        )
        self._nc: Client | None = None
        self._jsm: JetStreamManager | None = None
        self._connecting: asyncio.Task[Client] | None = None
        self._connected = asyncio.Event()
        self._subscriptions: dict[_NatsSubscription, None] = {}
        self._local: TopicIndex[_NatsSubscription] = TopicIndex()
        self._unstarted: list[_NatsSubscription] = []
        self._setups: set[asyncio.Task[None]] = set()
        self._setup_errors: list[BaseException] = []
        self._background = BackgroundTasks(log, f"NATS {self.url}: background work")
        self._routes: dict[str, tuple[str, str | None]] = {}
        self._inbox = ""
        self.inbox_prefix = self.options.inbox_prefix or inbox_prefix_for(self._servers)
        """Where the answers to this connection's requests arrive (``<prefix>.<id>.<token>``)."""
        # (subject prefix, future) of JetStream API calls waiting: a refusal ends them at once
        self._refusal_waiters: list[tuple[str, asyncio.Future[str]]] = []
        self._inbox_refused: TransportError | None = None
        # reply futures of requests and probes in flight -> the subject they were sent to
        self._sent_to: dict[asyncio.Future[Msg], str] = {}
        self._replies: dict[str, tuple[asyncio.Future[Msg], bool]] = {}
        self._presence: dict[str, float] = {}
        # messageId -> (delivery number, last delivery?, ack subject) of durable requests
        # being handled here, so the bus's per-attempt dead letters can be held back
        self._attempts: dict[str, tuple[int, bool, str]] = {}
        self._closed = False

    # -- connection ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now (False before first use and while
        reconnecting)."""
        return self._nc is not None and self._nc.is_connected

    async def _connection(self) -> Client:
        if self._closed:
            raise TransportClosed(f"transport {self.url} is closed")
        if self._nc is not None:
            return self._nc
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
        task = self._connecting
        try:
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and self._connecting is task:
                self._connecting = None  # a later call tries again
            raise

    async def _connect(self) -> Client:
        options = self.options
        nc = Client()
        last_error: list[BaseException] = []

        async def error_cb(error: Exception) -> None:
            refused = _refused(error)
            if refused is not None:
                self._on_refusal(*refused, str(error))
                return
            last_error.append(error)
            log.warning("NATS %s: %s: %s", self.url, type(error).__name__, redact_url(str(error)))

        async def disconnected_cb() -> None:
            self._connected.clear()
            if not self._closed:
                self.stats.disconnects += 1
                log.warning("NATS %s: disconnected; reconnecting", self.url)
                self._fail_core_requests()

        async def reconnected_cb() -> None:
            self._connected.set()
            self.stats.reconnects += 1
            log.warning("NATS %s: reconnected", self.url)

        try:
            await asyncio.wait_for(
                nc.connect(
                    servers=self._servers,
                    # in the order given: a client of a cluster starts on its own node
                    dont_randomize=True,
                    name=options.name,
                    error_cb=error_cb,
                    disconnected_cb=disconnected_cb,
                    reconnected_cb=reconnected_cb,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,  # subscriptions must come back, however long
                    reconnect_time_wait=options.reconnect_wait,  # type: ignore[arg-type]
                    connect_timeout=max(1, int(options.connect_timeout)),
                    inbox_prefix=self.inbox_prefix,
                ),
                options.connect_timeout,
            )
        except (TimeoutError, nats.errors.Error, OSError) as error:
            cause = last_error[-1] if last_error else error
            await _quietly(nc.close())
            raise TransportError(
                f"cannot connect to NATS at {self.url} within {options.connect_timeout:g}s: "
                f"{type(cause).__name__}: {cause}"
            ) from None
        try:
            self._inbox = nc.new_inbox() + "."
            await nc.subscribe(self._inbox + "*", cb=self._on_reply)
            if self._streams:
                self._jsm = nc.jsm()
                if options.jetstream == "manage":
                    await self._guarded(
                        "$JS.API.STREAM.",
                        ensure_streams(
                            # short answers: a request sent before a cluster has its
                            # JetStream leader goes unanswered, and is retried
                            nc.jsm(timeout=min(2.0, options.connect_timeout)),
                            self._streams,
                            memory=options.storage == "memory",
                            url=self.url,
                            replicas=options.replicas,
                            within=options.connect_timeout,
                        ),
                        "create the JetStream streams",
                    )
        except BaseException:
            await _quietly(nc.close())
            raise
        self._connected.set()
        self._nc = nc
        return nc

    def _on_refusal(self, kind: str, subject: str, text: str) -> None:
        """The server refused this user a publish or a subscription: count and log it, and
        end what waits on it: the JetStream API call on that subject, or, when it is this
        connection's own inbox, every request (their answers could never arrive)."""
        self.stats.permission_violations += 1
        log.warning("NATS %s: the server refused this user: %s", self.url, _printable(text))
        if kind == "subscription" and subject.startswith(self.inbox_prefix.lower() + "."):
            self._inbox_refused = TransportError(
                f"{self.url}: the server does not let this user read its reply inbox "
                f"{self.inbox_prefix}.>; set inbox_prefix in the URL to the prefix its "
                "permissions allow (up's and nats-config's: _INBOX.<user>)"
            )
            for answer, _ in self._replies.values():
                if not answer.done():
                    answer.set_exception(self._inbox_refused)
        for prefix, future in self._refusal_waiters:
            if subject.startswith(prefix) and not future.done():
                future.set_result(subject)
        if kind == "publish":
            for answer, sent_to in self._sent_to.items():
                if sent_to == subject and not answer.done():
                    answer.set_exception(self._not_allowed(subject))

    def _not_allowed(self, subject: str) -> TransportError:
        return TransportError(
            f"{self.url}: the server refuses this user sending to {subject!r}; a plugin's "
            f"user may send requests only to the orchestrator and the plugins its manifest's "
            "routing.canRouteTo names"
        )

    @contextlib.contextmanager
    def _sending(self, subject: str, answer: asyncio.Future[Msg]) -> Iterator[None]:
        """While waiting for ``answer`` to something sent to ``subject``: a refusal by the
        server of that publish ends the wait at once (`TransportError`)."""
        self._sent_to[answer] = subject.lower()
        try:
            yield
        finally:
            self._sent_to.pop(answer, None)

    async def _guarded(
        self, prefix: str, call: Awaitable[T], what: str, hint: str = _MANAGE_HINT
    ) -> T:
        """Await ``call``, a request on a subject under ``prefix`` (a JetStream API call, a
        durable publish); if the server refuses this user such a publish, raise
        `TransportError` at once rather than wait for the call's timeout."""
        task = asyncio.current_task()
        assert task is not None
        refusal: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiter = (prefix.lower(), refusal)
        waiting = True

        def interrupt(_: asyncio.Future[str]) -> None:
            if waiting:  # still in the call below: end it
                task.cancel()

        refusal.add_done_callback(interrupt)
        self._refusal_waiters.append(waiter)
        try:
            return await call
        except asyncio.CancelledError:
            if refusal.done() and not refusal.cancelled() and task.uncancel() == 0:
                raise TransportError(
                    f"{self.url}: this user may not {what} (the server refused "
                    f"{refusal.result()!r}); {hint}"
                ) from None
            raise
        finally:
            waiting = False
            self._refusal_waiters.remove(waiter)

    @staticmethod
    def _token() -> str:
        """The last token of a reply subject: random, so that a responder, which may
        publish to this inbox, cannot guess where the answers to other requests go."""
        return secrets.token_hex(8)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._background.spawn(coroutine)

    async def _on_reply(self, msg: Msg) -> None:
        entry = self._replies.get(msg.subject[len(self._inbox) :])
        if entry is not None and not entry[0].done():
            entry[0].set_result(msg)

    def _fail_core_requests(self) -> None:
        # A core request's reply cannot survive the disconnect; a durable one's can, since
        # the inbox subscription comes back and JetStream redelivers, so that one waits.
        for future, durable in self._replies.values():
            if not durable and not future.done():
                future.set_exception(
                    ConnectionLost(f"the NATS connection to {self.url} dropped under a request")
                )

    # -- receiving -----------------------------------------------------------------------

    def _decode(self, msg: Msg, reply_to: str | None) -> Message | None:
        """The message ``msg`` carries; None for bytes that are not one, or for an envelope
        whose topic is not its subject's (the subject wins: it is what the server checked
        the sender's permissions against), told to `on_invalid`, then to `on_refused` with
        a way to answer ``reply_to``."""
        subject = msg.subject
        if subject.startswith(DURABLE_PREFIX):
            subject = subject[len(DURABLE_PREFIX) :]
        try:
            message = Message.decode(msg.data)
            if message.topic != subject and message.topic != normalize_topic(subject):
                self.stats.mislabelled += 1
                raise InvalidMessage(
                    f"the envelope's topic {message.topic!r} is not the topic of the subject "
                    f"{subject!r} it arrived on"
                )
            return message
        except InvalidMessage as error:
            self.stats.invalid += 1
            hook = self.on_invalid
            if hook is None:
                log.warning(
                    "NATS %s: dropped undecodable bytes on %s: %s",
                    self.url,
                    escape_control(msg.subject),
                    escape_control(error),
                )
            else:
                refused = self.on_refused
                try:
                    hook(subject, bytes(msg.data), error)
                    if reply_to and refused is not None:
                        refused(subject, bytes(msg.data), error, self._replier(reply_to))
                except Exception:
                    log.exception("on_invalid hook failed for %s", escape_control(msg.subject))
            return None

    def _replier(self, subject: str) -> Reply:
        async def reply(response: Message) -> None:
            nc = self._nc
            if nc is None or self._closed:
                raise TransportClosed(f"transport {self.url} is closed")
            try:
                await nc.publish(subject, response.encode())
            except Exception as error:
                raise map_error(error, topic=response.topic, url=self.url) from None

        return reply

    async def _reconnected(self, deadline: float) -> None:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining > 0 and not self._connected.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), remaining)


def inbox_prefix_for(servers: list[str]) -> str:
    """``_INBOX.<user>`` for URLs naming a user and a password (the first one that does),
    ``_INBOX`` otherwise (no credentials, or a token, which must never travel in subjects)."""
    for server in servers:
        parts = urlsplit(server if "://" in server else "nats://" + server)
        if parts.username and parts.password is not None:
            user = unquote(parts.username)
            if _is_subject(user) and "." not in user:
                return f"_INBOX.{user}"
            return "_INBOX"
    return "_INBOX"


def _is_subject(text: str) -> bool:
    tokens = text.split(".")
    return all(
        token and token not in ("*", ">") and not any(c.isspace() or ord(c) < 32 for c in token)
        for token in tokens
    )


_REFUSED = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"', re.I)


def _refused(error: Exception) -> tuple[str, str] | None:
    """(``publish`` or ``subscription``, subject) of a server's permission refusal, lower
    case (as nats-py gives it)."""
    found = _REFUSED.search(str(error))
    return None if found is None else (found.group(1).lower(), found.group(2).lower())


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


async def _quietly(awaitable: Awaitable[Any]) -> None:
    """Await something whose failure only matters as a log line (acks, unsubscribes, close)."""
    try:
        await awaitable
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        # nats-py lets a cancelled socket waiter escape from close(); nobody cancelled us
        log.debug("ignored a stray CancelledError from nats-py")
    except Exception as error:
        log.debug("ignored: %s: %s", type(error).__name__, error)
