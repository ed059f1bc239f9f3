"""The dead-letter store: every letter published on ``system/dead-letter``, in SQLite.

`DeadLetterCollector` subscribes a bus handle to ``system/dead-letter`` and writes each
letter to a `DeadLetterStore` before counting it as stored. A letter whose payload does not
follow the protocol (docs/protocol.md, "Dead letters") is still stored, raw, with the
problem recorded, so nothing that reached the collector is dropped. Letters are keyed by
their message id, so a redelivered letter (JetStream) is stored once.

The file is shared: the orchestrator writes while ``jira-orchestrator dlq`` reads, replays
and purges from another process. WAL journal with ``synchronous=FULL``: a write returns
only once it is on disk.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import sqlite3
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any

from jira_orchestrator._core.clock import WallClock, format_timestamp, wall
from jira_orchestrator._core.errors import (
    InvalidMessage,
    InvalidTopic,
    NoResponders,
    RequestTimeout,
)
from jira_orchestrator._core.identity import DEAD_LETTER_PATTERN
from jira_orchestrator._core.ids import new_id
from jira_orchestrator._core.message import Message, MessageMetadata, MessageType
from jira_orchestrator._core.protocol import (
    DEAD_LETTER_TOPIC,
    INVALID_LETTER,
    ORCHESTRATOR_ID,
    DeadLetterReason,
    parse_dead_letter,
)
from jira_orchestrator._core.sqlite import SQLiteStore
from jira_orchestrator._core.text import escape_control
from jira_orchestrator.messagebus import (
    MessageBus,
    Subscription,
    get_message_bus,
)
from jira_orchestrator.orchestrator.errors import (
    DeadLetterError,
    DeadLetterNotFound,
    DeadLetterStoreCorrupt,
    ReplayError,
    ReplayNotDelivered,
)
from jira_orchestrator.orchestrator.files import OrchestratorFiles
from jira_orchestrator.orchestrator.rights import Plugins, manifests_of, publish_refusal

__all__ = [
    "DEFAULT_DLQ_PATH",
    "DEFAULT_MAX_BACKLOG",
    "DEFAULT_MAX_BACKLOG_BYTES",
    "DLQ_ENV",
    "INVALID_LETTER",
    "REASONS",
    "CollectorStats",
    "DeadLetter",
    "DeadLetterCollector",
    "DeadLetterStore",
    "parse_letter",
    "replay_identity",
    "replay_letter",
    "replay_message",
]

log = logging.getLogger("jira_orchestrator.orchestrator.deadletters")

DLQ_ENV = "JIRA_ORCHESTRATOR_DLQ"
DEFAULT_DLQ_PATH = OrchestratorFiles().dead_letters
"""Where ``demo`` and ``up`` (with their default ``--output``) store dead letters."""
REASONS = tuple(DeadLetterReason)
"""The reasons the bus and the plugin runtime write; others are stored as given."""

REPLAY_HEADER = "replayOf"
"""Header a replayed message carries: the ``messageId`` of the original."""

_FORMAT = "jira-orchestrator-dead-letters/1"
_MAX_ID = 2**63 - 1
_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        letter_id TEXT NOT NULL UNIQUE,
        received_at REAL NOT NULL,
        reason TEXT NOT NULL,
        topic TEXT,
        message_id TEXT,
        subscriber TEXT,
        subscription TEXT,
        error_type TEXT,
        error_message TEXT,
        problem TEXT,
        payload TEXT NOT NULL,
        replay_count INTEGER NOT NULL DEFAULT 0,
        replayed_at REAL,
        replayed_as TEXT,
        sender TEXT
    )""",
    "CREATE INDEX letters_reason ON letters (reason)",
    "CREATE INDEX letters_received ON letters (received_at)",
)
_INDEXES = (  # for the dashboard's filters; added to older files when they are opened
    "CREATE INDEX IF NOT EXISTS letters_topic ON letters (topic)",
    "CREATE INDEX IF NOT EXISTS letters_reason_topic ON letters (reason, topic)",
)
_COLUMNS = (
    "id, letter_id, received_at, reason, topic, message_id, subscriber, subscription, "
    "error_type, error_message, problem, payload, replay_count, replayed_at, replayed_as, "
    "sender"
)


@dataclass(frozen=True)
class DeadLetter:
    """One stored letter. Times are seconds since the epoch.

    ``payload`` is the letter as received (normally ``{reason, error, subscriber,
    subscription, message}``); ``problem`` says why it does not follow the protocol, or is
    None. ``replayed_as`` is the message id of the latest replay. ``sender`` is who sent
    the letter, as its topic proved it (``system/dead-letter/<sender>``); None for a letter
    without that proof (on ``system/dead-letter``, or stored by an older version).
    """

    id: int
    letter_id: str
    received_at: float
    reason: str
    topic: str | None
    message_id: str | None
    subscriber: str | None
    subscription: str | None
    error_type: str | None
    error_message: str | None
    problem: str | None
    payload: Any
    replay_count: int = 0
    replayed_at: float | None = None
    replayed_as: str | None = None
    sender: str | None = None

    @property
    def message(self) -> dict[str, Any] | None:
        """The original envelope carried by the letter, if it is a JSON object."""
        original = self.payload.get("message") if isinstance(self.payload, dict) else None
        return original if isinstance(original, dict) else None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with ISO 8601 times (for ``dlq list --json`` and ``dlq show``)."""
        data = asdict(self)
        data["receivedAt"] = format_timestamp(data.pop("received_at"))
        replayed = data.pop("replayed_at")
        data["replayedAt"] = None if replayed is None else format_timestamp(replayed)
        return {_camel(key): value for key, value in data.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def parse_letter(payload: Any) -> tuple[str, str | None]:
    """``(reason, problem)`` of a letter payload; ``problem`` is None for a valid letter."""
    fields = parse_dead_letter(payload)
    return fields.reason, fields.problem


class DeadLetterStore(SQLiteStore):
    """The SQLite file of dead letters. Thread-safe; several processes may open it.

    ``timeout`` (seconds) is how long to wait for another process's write lock. Raises
    `DeadLetterStoreCorrupt` (not SQLite, damaged, or not a dead-letter store) or
    `DeadLetterError` (I/O, locked for longer than ``timeout``).
    """

    KIND = "dead-letter store"
    FORMAT = _FORMAT
    SCHEMA = _SCHEMA
    INDEXES = _INDEXES
    TABLES = frozenset({"letters"})
    ERROR = DeadLetterError
    CORRUPT = DeadLetterStoreCorrupt

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 5.0, clock: WallClock = wall
    ) -> None:
        self.clock = clock
        super().__init__(path, timeout=timeout)

    def _migrate(self, db: sqlite3.Connection) -> None:
        columns = {row[1] for row in db.execute("PRAGMA table_info(letters)")}
        if "sender" not in columns:  # a file from before letters had a proven sender
            db.execute("ALTER TABLE letters ADD COLUMN sender TEXT")

    def add(
        self,
        payload: Any,
        *,
        letter_id: str | None = None,
        received_at: float | None = None,
        sender: str | None = None,
    ) -> tuple[int, bool]:
        """Store one letter; ``(id, stored)``, ``stored`` False if ``letter_id`` was already in.

        ``payload`` may be anything: a malformed letter is kept with its ``problem``.
        ``sender`` is the identity that sent it, as proven by its topic (None: unknown). On
        disk when this returns.
        """
        if letter_id is not None and not isinstance(letter_id, str):
            raise TypeError(f"letter_id must be a str, got {type(letter_id).__name__}")
        fields = parse_dead_letter(payload)
        text = json.dumps(payload, default=repr, ensure_ascii=False)
        key = letter_id or new_id()
        when = self.clock() if received_at is None else float(received_at)
        with self._write("writing") as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO letters (letter_id, received_at, reason, topic, "
                "message_id, subscriber, subscription, error_type, error_message, problem, "
                "payload, sender) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    when,
                    fields.reason,
                    fields.topic,
                    fields.message_id,
                    fields.subscriber,
                    fields.subscription,
                    fields.error_type,
                    fields.error_message,
                    fields.problem,
                    text,
                    sender,
                ),
            )
            if cursor.rowcount == 1 and cursor.lastrowid is not None:
                return cursor.lastrowid, True
            row = db.execute("SELECT id FROM letters WHERE letter_id = ?", (key,)).fetchone()
            return int(row[0]), False

    def _letter(self, row: tuple[Any, ...]) -> DeadLetter:
        ident, letter_id, received, reason, topic, message_id = row[:6]
        subscriber, subscription, error_type, error_message, problem, text = row[6:12]
        replays, replayed_at, replayed_as, sender = row[12:]
        try:
            payload = json.loads(text)
        except (TypeError, ValueError):
            payload = text
            problem = (problem + "; " if problem else "") + "stored JSON does not parse"
        return DeadLetter(
            id=ident,
            letter_id=letter_id,
            received_at=received,
            reason=reason,
            topic=topic,
            message_id=message_id,
            subscriber=subscriber,
            subscription=subscription,
            error_type=error_type,
            error_message=error_message,
            problem=problem,
            payload=payload,
            replay_count=replays,
            replayed_at=replayed_at,
            replayed_as=replayed_as,
            sender=sender,
        )

    def get(self, letter_id: int) -> DeadLetter:
        """The letter with this id; raises `DeadLetterNotFound`."""
        if isinstance(letter_id, bool) or not isinstance(letter_id, int):
            raise TypeError(f"a dead letter id is an int, got {letter_id!r}")
        if not 1 <= letter_id <= _MAX_ID:  # SQLite could not even look it up
            raise DeadLetterNotFound(letter_id)
        rows = self._read(f"SELECT {_COLUMNS} FROM letters WHERE id = ?", (letter_id,))
        if not rows:
            raise DeadLetterNotFound(letter_id)
        return self._letter(rows[0])

    def _where(
        self,
        reason: str | None,
        before: float | None,
        replayed: bool | None,
        topic: str | None = None,
    ) -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = []
        args: list[Any] = []
        if reason is not None:
            clauses.append("reason = ?")
            args.append(reason)
        if topic is not None:
            if topic.endswith("*"):  # a prefix: a range, so the topic index serves it
                clauses.append("topic >= ? AND topic < ?")
                args += [topic[:-1], topic[:-1] + "\U0010ffff"]
            else:
                clauses.append("topic = ?")
                args.append(topic)
        if before is not None:
            clauses.append("received_at < ?")
            args.append(float(before))
        if replayed is not None:
            clauses.append("replay_count > 0" if replayed else "replay_count = 0")
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)

    def list(
        self,
        *,
        reason: str | None = None,
        before: float | None = None,
        replayed: bool | None = None,
        limit: int | None = None,
    ) -> list[DeadLetter]:
        """Letters oldest first, filtered by reason, receipt time and whether replayed."""
        where, args = self._where(reason, before, replayed)
        sql = f"SELECT {_COLUMNS} FROM letters{where} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._letter(row) for row in self._read(sql, args)]

    def count(
        self, *, reason: str | None = None, before: float | None = None, topic: str | None = None
    ) -> int:
        """How many letters match (``topic``: a topic, or a prefix ending in ``*``)."""
        where, args = self._where(reason, before, None, topic)
        return int(self._read(f"SELECT COUNT(*) FROM letters{where}", args)[0][0])

    def page(
        self,
        *,
        reason: str | None = None,
        topic: str | None = None,
        replayed: bool | None = None,
        below: int | None = None,
        limit: int = 50,
    ) -> builtins.list[DeadLetter]:
        """Up to ``limit`` letters, newest first, with an id below ``below`` (the last id of
        the previous page), by reason, topic (a topic, or a prefix ending in ``*``) and
        whether they were replayed.

        Keyset paging on indexed columns: as fast on the last page of 100,000 as on the first.
        """
        where, args = self._where(reason, None, replayed, topic)
        if below is not None:
            where += (" AND " if where else " WHERE ") + "id < ?"
            args += (max(0, min(int(below), _MAX_ID)),)
        limit = max(0, min(int(limit), 10_000))
        sql = f"SELECT {_COLUMNS} FROM letters{where} ORDER BY id DESC LIMIT {limit}"
        return [self._letter(row) for row in self._read(sql, args)]

    def delete(self, ids: Iterable[int]) -> int:
        """Delete the letters with these ids; returns how many there were."""
        keys = sorted({int(i) for i in ids if not isinstance(i, bool) and 1 <= int(i) <= _MAX_ID})
        deleted = 0
        with self._write("deleting") as db:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                deleted += db.execute(f"DELETE FROM letters WHERE id IN ({marks})", chunk).rowcount
        return deleted

    def counts(self) -> dict[str, int]:
        """Number of letters by reason."""
        rows = self._read("SELECT reason, COUNT(*) FROM letters GROUP BY reason ORDER BY reason")
        return {reason: int(n) for reason, n in rows}

    def mark_replayed(self, letter_id: int, replayed_as: str, at: float | None = None) -> None:
        """Record that the letter was published again as message ``replayed_as``."""
        when = self.clock() if at is None else at
        with self._write("writing") as db:
            cursor = db.execute(
                "UPDATE letters SET replay_count = replay_count + 1, replayed_at = ?, "
                "replayed_as = ? WHERE id = ?",
                (when, replayed_as, letter_id),
            )
            if cursor.rowcount != 1:
                raise DeadLetterNotFound(letter_id)

    def purge(
        self, *, before: float | None = None, reason: str | None = None, topic: str | None = None
    ) -> int:
        """Delete the matching letters (all without filters); returns how many."""
        where, args = self._where(reason, before, None, topic)
        with self._write("purging") as db:
            return int(db.execute(f"DELETE FROM letters{where}", args).rowcount)


def replay_message(letter: DeadLetter) -> Message:
    """The message to publish for a replay: the original with ``retryCount + 1``.

    It gets a new ``messageId`` (a durable transport would drop the old one as a duplicate),
    the header ``replayOf`` naming the original, and no ``expiresAt`` (an expired message
    replayed with its deadline would expire again at once). Raises `ReplayError` when the
    letter has no usable original.
    """
    original = letter.message
    if original is None:
        raise ReplayError(letter.id, "the letter carries no original message object")
    if isinstance(letter.payload, dict) and letter.payload.get("payloadOmitted"):
        raise ReplayError(
            letter.id,
            f"the original payload was not kept ({letter.payload['payloadOmitted']})",
        )
    try:
        message = Message.from_dict(original)
    except (InvalidMessage, InvalidTopic) as exc:
        why = str(exc).removeprefix("invalid message: ")
        raise ReplayError(letter.id, f"the original message is malformed: {why}") from None
    headers = dict(message.headers)
    headers[REPLAY_HEADER] = message.message_id
    return Message(
        correlation_id=message.correlation_id,
        source=message.source,
        destination=message.destination,
        topic=message.topic,
        message_type=message.message_type,
        priority=message.priority,
        headers=headers,
        payload=message.payload,
        metadata=MessageMetadata(
            retry_count=message.metadata.retry_count + 1,
            timeout_ms=message.metadata.timeout_ms,
        ),
    )


_REPLAYER = ORCHESTRATOR_ID
_REPLAY_TIMEOUT = 30.0


def _addressed_to(topic: str, identity: str) -> bool:
    """Whether ``topic`` is one of ``identity``'s own ``plugin/<id>/...`` topics."""
    first, _, rest = topic.partition("/")
    return first == "plugin" and rest.partition("/")[0] == identity


def replay_identity(
    letter: DeadLetter,
    message: Message,
    *,
    plugins: Plugins | None = None,
    as_identity: str | None = None,
) -> str:
    """Who replays ``letter`` (whose original is ``message``), or raise `ReplayError`.

    By default the identity that sent the letter (``sender``, proven by its topic), and
    only when the original message is that identity's own or was addressed to it (a
    plugin's letter about a request it failed on: replayed, the request goes back to that
    plugin alone, sent with its own rights): a letter is never replayed as someone it
    merely names. ``as_identity`` replays it as someone else, on the operator's word.
    The identity needs the right to publish the message's topic, as its manifest
    (among ``plugins``) grants it on NATS (`plugin_permissions`); the orchestrator may
    publish anything, and an identity without a manifest nothing.
    """
    identity = as_identity or letter.sender
    if identity is None:
        raise ReplayError(
            letter.id,
            "nobody is known to have sent it (it came on system/dead-letter without a "
            "sender, or was stored before senders were recorded); check it "
            f"(dlq show {letter.id}) and replay it as someone (--as) on your word",
        )
    if (
        as_identity is None
        and message.source != identity
        and not _addressed_to(message.topic, identity)
    ):
        raise ReplayError(
            letter.id,
            f"it was sent by {escape_control(repr(identity))} but carries a message from "
            f"{escape_control(repr(message.source))}: replaying it would act as the latter "
            f"on the former's word; check it (dlq show {letter.id}), then replay it with "
            f"--as {escape_control(identity)} (its own rights) or as another identity on "
            "your word",
        )
    if identity == _REPLAYER:
        return identity
    if plugins is None:
        raise ReplayError(
            letter.id,
            f"cannot check what {escape_control(repr(identity))} may publish: give the "
            "plugins (--plugins DIR)",
        )
    manifest = manifests_of(plugins).get(identity)
    if manifest is None:
        raise ReplayError(letter.id, f"{escape_control(repr(identity))} is not one of the plugins")
    refusal = publish_refusal(manifest, message.topic)
    if refusal is not None:
        raise ReplayError(letter.id, escape_control(refusal))
    return identity


async def replay_letter(
    store: DeadLetterStore,
    letter_id: int,
    *,
    url: str | None = None,
    timeout: float | None = None,
    plugins: Plugins | None = None,
    as_identity: str | None = None,
) -> Message:
    """Publish the letter's original message again on its topic and mark it replayed.

    It is published on ``url`` (``$JIRA_ORCHESTRATOR_BUS_URL`` or ``memory://`` by default)
    through the bus handle of `replay_identity`: the letter's proven sender when the
    original is its own and its manifest (among ``plugins``) lets it publish there, else
    ``as_identity`` when given; never the orchestrator unless it sent the letter or
    ``as_identity`` says so. The letter is marked replayed only once the delivery is
    confirmed:

    - on ``memory://``, a subscriber of this process matches the topic (else nothing is
      published);
    - on a durable NATS topic (``plugin/*/request`` by default), JetStream acknowledged it;
    - on another NATS topic, an original request is sent as a request and its answer,
      within ``timeout`` seconds (default: the original's timeout, else 30), is the
      confirmation; an event there cannot be confirmed and is not sent.

    Raises `DeadLetterNotFound`, `ReplayError` (no usable original, or nobody with the
    right to send it) or `ReplayNotDelivered` (nobody confirmed it), each leaving the
    letter as it was.
    """
    letter = store.get(letter_id)
    message = replay_message(letter)
    identity = replay_identity(letter, message, plugins=plugins, as_identity=as_identity)
    try:
        bus = get_message_bus(identity, url)
    except InvalidTopic as exc:
        raise ReplayError(letter.id, f"cannot replay as {identity!r}: {exc}") from None
    confirmed = bus.transport.confirms(message.topic)
    nobody = f"nobody subscribes to {message.topic!r} on {bus.url}"
    if confirmed is False:
        raise ReplayNotDelivered(letter.id, nobody)
    try:
        if confirmed:
            sent = await bus.publish(message)
        elif message.message_type == MessageType.REQUEST:
            sent = await _ask(bus, message, timeout)
        else:
            raise ReplayNotDelivered(
                letter.id,
                f"{bus.url} cannot confirm that anyone receives an event on "
                f"{message.topic!r} (make the topic durable to replay it)",
            )
    except (InvalidMessage, InvalidTopic) as exc:
        raise ReplayError(letter.id, f"the bus refused the message: {exc}") from None
    except NoResponders:
        raise ReplayNotDelivered(letter.id, nobody) from None
    except RequestTimeout as exc:
        raise ReplayNotDelivered(
            letter.id,
            f"no answer on {message.topic!r} within {exc.timeout:g}s (it may still "
            "be handled: check before replaying it again)",
        ) from None
    store.mark_replayed(letter.id, sent.message_id)
    return sent


async def _ask(bus: MessageBus, message: Message, timeout: float | None) -> Message:
    """Send a replayed request as a request (as ``bus``'s plugin); return it once answered."""
    if timeout is None:
        timeout_ms = message.metadata.timeout_ms
        timeout = _REPLAY_TIMEOUT if timeout_ms is None else timeout_ms / 1000
    request = Message(
        correlation_id=new_id(),
        source=bus.plugin_id,
        destination=message.destination,
        topic=message.topic,
        message_type=message.message_type,
        priority=message.priority,
        headers=message.headers,
        payload=message.payload,
        metadata=MessageMetadata(
            retry_count=message.metadata.retry_count, timeout_ms=max(1, round(timeout * 1000))
        ),
    )
    await bus.transport.request(request, timeout=timeout)  # an error answer is delivered too
    return request


@dataclass
class CollectorStats:
    """Counters of a `DeadLetterCollector`.

    ``dropped`` counts letters refused while the backlog was full; ``spoofed`` letters
    whose ``source`` was not the sender their topic names (stored without a sender);
    ``backlog`` and ``backlog_bytes`` are what waits in memory for the store now.
    """

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    failed_writes: int = 0
    dropped: int = 0
    spoofed: int = 0
    backlog: int = 0
    backlog_bytes: int = 0


DEFAULT_MAX_BACKLOG = 1000
"""Letters a `DeadLetterCollector` keeps in memory at most while its store cannot write."""

DEFAULT_MAX_BACKLOG_BYTES = 32 * 1024 * 1024
"""Bytes (of encoded letters) a `DeadLetterCollector` keeps in memory at most."""


class DeadLetterCollector:
    """Stores every letter published on ``system/dead-letter`` in a `DeadLetterStore`.

    A letter the store cannot write (disk full, locked) is kept in memory, counted in
    ``failed_writes``, and written again before the next letter and on `flush`. That
    backlog is bounded by ``max_backlog`` letters and ``max_backlog_bytes``: once it is
    full, new letters are dropped and counted in ``dropped`` (logged once per burst, and
    once more with the count when the store writes again); the letters kept are written, in
    order, as soon as it can. ``queue`` makes several orchestrator replicas share the
    letters instead of storing each twice.
    """

    def __init__(
        self,
        bus: MessageBus,
        store: DeadLetterStore,
        *,
        queue: str | None = "dead-letter-store",
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        max_backlog_bytes: int = DEFAULT_MAX_BACKLOG_BYTES,
    ) -> None:
        if not isinstance(bus, MessageBus):
            raise TypeError(f"bus must be a MessageBus, got {type(bus).__name__}")
        if not isinstance(store, DeadLetterStore):
            raise TypeError(f"store must be a DeadLetterStore, got {type(store).__name__}")
        for name, value in (("max_backlog", max_backlog), ("max_backlog_bytes", max_backlog_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        self.bus = bus
        self.store = store
        self.queue = queue
        self.max_backlog = max_backlog
        self.max_backlog_bytes = max_backlog_bytes
        self._stats = CollectorStats()
        self._backlog: deque[tuple[Any, str, float, int, str | None]] = deque()
        self._backlog_bytes = 0
        self._failing = False  # a write failed and none succeeded since: one log line
        self._dropped_in_burst = 0
        self._subscriptions: list[Subscription] = []
        self._writing = asyncio.Lock()  # one writer drains the backlog, in order

    def stats(self) -> dict[str, int]:
        """The counters, as a dict."""
        self._stats.backlog = len(self._backlog)
        self._stats.backlog_bytes = self._backlog_bytes
        return asdict(self._stats)

    def start(self) -> None:
        """Subscribe to ``system/dead-letter/*`` (each sender's letters) and
        ``system/dead-letter`` (letters without a sender stamp); idempotent."""
        if not self._subscriptions:
            self._subscriptions = [
                self.bus.subscribe(topic, self._on_letter, queue=self.queue)
                for topic in (DEAD_LETTER_PATTERN, DEAD_LETTER_TOPIC)
            ]

    def stop(self) -> None:
        """Unsubscribe; letters still in the backlog stay there until `flush`."""
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.unsubscribe()

    async def __aenter__(self) -> DeadLetterCollector:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        await self.flush()

    async def _on_letter(self, message: Message) -> None:
        self._stats.received += 1
        # Who sent it, as its topic proves it; a letter that lies about that has no sender.
        sender = await self.bus.verified_sender(message)
        if sender is None and message.topic != DEAD_LETTER_TOPIC:
            self._stats.spoofed += 1
        if not isinstance(message.payload, dict) or parse_letter(message.payload)[1] is not None:
            self._stats.malformed += 1
            log.warning("malformed dead letter %s stored raw", escape_control(message.message_id))
        size = len(message.encode())
        if self._full(size):
            await self.flush()  # the store may write again: make room first
        if self._full(size):
            self._drop(message.message_id)
            return
        self._backlog.append(
            (message.payload, message.message_id, self.store.clock(), size, sender)
        )
        self._backlog_bytes += size
        await self.flush()

    def _full(self, size: int) -> bool:
        """Whether one more letter of ``size`` bytes would overfill the backlog."""
        return bool(self._backlog) and (
            len(self._backlog) >= self.max_backlog
            or self._backlog_bytes + size > self.max_backlog_bytes
        )

    def _drop(self, letter_id: str) -> None:
        self._stats.dropped += 1
        self._dropped_in_burst += 1
        if self._dropped_in_burst == 1:
            log.error(
                "dead-letter backlog full (%d letters, %d bytes) while %s cannot be written: "
                "dropping new letters until it can (first dropped: %s)",
                len(self._backlog),
                self._backlog_bytes,
                self.store.path,
                letter_id,
            )

    async def flush(self) -> bool:
        """Write the backlog; True when it is empty."""
        async with self._writing:
            return await self._drain()

    async def _drain(self) -> bool:
        while self._backlog:
            payload, letter_id, received_at, size, sender = self._backlog[0]
            try:
                _, stored = await asyncio.to_thread(
                    self.store.add,
                    payload,
                    letter_id=letter_id,
                    received_at=received_at,
                    sender=sender,
                )
            except DeadLetterError as exc:
                self._stats.failed_writes += 1
                if not self._failing:
                    self._failing = True
                    log.error(
                        "could not store dead letter %s (kept in memory): %s",
                        escape_control(letter_id),
                        exc,
                    )
                return False
            self._backlog.popleft()
            self._backlog_bytes -= size
            if self._failing:
                self._failing = False
                log.warning("dead-letter store %s writes again", self.store.path)
            if self._dropped_in_burst:
                log.warning(
                    "%d dead letters were dropped while the backlog was full",
                    self._dropped_in_burst,
                )
                self._dropped_in_burst = 0
            if stored:
                self._stats.stored += 1
            else:
                self._stats.duplicates += 1
        return True
