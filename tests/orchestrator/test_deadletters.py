"""The dead-letter store, the collector on ``system/dead-letter`` and replays."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator.messagebus import (
    DEAD_LETTER_TOPIC,
    Message,
    MessageMetadata,
    MessageType,
    get_message_bus,
)
from jira_orchestrator.orchestrator import (
    INVALID_LETTER,
    DeadLetterCollector,
    DeadLetterError,
    DeadLetterNotFound,
    DeadLetterStore,
    DeadLetterStoreCorrupt,
    ReplayError,
    ReplayNotDelivered,
    parse_letter,
    replay_letter,
    replay_message,
)
from jira_orchestrator.plugins import parse_manifest

PLUGINS = [
    parse_manifest(
        {
            "name": "sender",
            "version": "1.0.0",
            "description": "sends work to worker and asks on svc topics",
            "routing": {"canRouteTo": ["worker"]},
            "communication": {"messagebus": {"topics": ["svc/echo", "svc/mute"]}},
        }
    ),
    parse_manifest({"name": "worker", "version": "1.0.0", "description": "does the work"}),
    parse_manifest({"name": "bystander", "version": "1.0.0", "description": "does other work"}),
]
"""The plugins whose rights replays are checked against: ``sender`` may call ``worker``."""


def letter(reason: str = "handler-error", **message: Any) -> dict[str, Any]:
    original = Message(topic="plugin/worker/request", payload={"job": 1}, source="sender")
    return {
        "reason": reason,
        "error": {"type": "RuntimeError", "message": "disk full"},
        "subscriber": "worker",
        "subscription": "plugin/worker/request",
        "message": {**original.to_dict(), **message},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with DeadLetterStore(tmp_path / "dlq.db", clock=Clock()) as opened:
        yield opened


def test_store_add_get_list_count(store: DeadLetterStore) -> None:
    first, stored = store.add(letter(), letter_id="L1")
    assert stored
    again, stored_again = store.add(letter(), letter_id="L1")
    assert (again, stored_again) == (first, False)  # a redelivered letter is kept once
    second, _ = store.add(letter("expired"), letter_id="L2", received_at=5.0)
    got = store.get(first)
    assert got.reason == "handler-error"
    assert got.topic == "plugin/worker/request"
    assert got.subscriber == "worker"
    assert (got.error_type, got.error_message) == ("RuntimeError", "disk full")
    assert got.problem is None
    assert got.message is not None
    assert got.message["payload"] == {"job": 1}
    assert got.received_at == 1_700_000_000.0
    assert [x.id for x in store.list()] == [first, second]
    assert [x.id for x in store.list(reason="expired")] == [second]
    assert [x.id for x in store.list(before=10.0)] == [second]
    assert store.count() == 2
    assert store.count(reason="expired") == 1
    assert store.counts() == {"expired": 1, "handler-error": 1}
    as_json = got.to_dict()
    assert as_json["receivedAt"] == "2023-11-14T22:13:20.000Z"
    assert as_json["errorType"] == "RuntimeError"
    assert as_json["replayedAt"] is None


@pytest.mark.parametrize(
    ("payload", "reason", "problem"),
    [
        ("just a string", INVALID_LETTER, "the letter is a str, not an object"),
        ({"reason": 7, "subscriber": "w", "message": {"topic": "a"}}, INVALID_LETTER, "reason"),
        ({"reason": "expired", "subscriber": "w", "message": None}, "expired", "message: must"),
        ({"reason": "expired", "subscriber": "w", "message": {}}, "expired", "message.topic"),
        (
            {"reason": "x", "subscriber": 3, "error": "oops", "message": {"topic": "a"}},
            "x",
            "subscriber",
        ),
    ],
)
def test_malformed_letters_are_stored_raw_with_the_problem(
    store: DeadLetterStore, payload: Any, reason: str, problem: str
) -> None:
    ident, stored = store.add(payload)
    assert stored
    got = store.get(ident)
    assert got.reason == reason
    assert got.problem is not None
    assert problem in got.problem
    assert got.payload == payload
    assert parse_letter(payload)[0] == reason


def test_mark_replayed_and_purge(store: DeadLetterStore) -> None:
    a, _ = store.add(letter(), received_at=10.0)
    b, _ = store.add(letter("expired"), received_at=20.0)
    c, _ = store.add(letter("expired"), received_at=30.0)
    store.mark_replayed(a, "m-1")
    store.mark_replayed(a, "m-2", at=99.0)
    got = store.get(a)
    assert (got.replay_count, got.replayed_as, got.replayed_at) == (2, "m-2", 99.0)
    assert [x.id for x in store.list(replayed=False)] == [b, c]
    assert [x.id for x in store.list(replayed=True)] == [a]
    assert store.purge(reason="expired", before=25.0) == 1
    assert [x.id for x in store.list()] == [a, c]
    assert store.purge() == 2
    assert store.list() == []
    with pytest.raises(DeadLetterNotFound, match="no dead letter with id 1"):
        store.get(a)
    with pytest.raises(DeadLetterNotFound):
        store.mark_replayed(a, "m")


def test_bad_arguments(store: DeadLetterStore) -> None:
    with pytest.raises(TypeError, match="an int"):
        store.get("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="letter_id must be a str"):
        store.add({}, letter_id=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path must be"):
        DeadLetterStore(None)  # type: ignore[arg-type]


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00not a database\xff" * 200)
    with pytest.raises(DeadLetterStoreCorrupt, match="damaged or not SQLite"):
        DeadLetterStore(garbage)
    foreign = tmp_path / "state.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE state (key TEXT)")
    db.commit()
    db.close()
    with pytest.raises(DeadLetterStoreCorrupt, match=r"not a dead-letter store \(tables: state\)"):
        DeadLetterStore(foreign)
    wrong_format = tmp_path / "future.db"
    DeadLetterStore(wrong_format).close()
    db = sqlite3.connect(wrong_format)
    db.execute("UPDATE meta SET value = 'jira-orchestrator-dead-letters/99'")
    db.commit()
    db.close()
    with pytest.raises(DeadLetterStoreCorrupt, match="unknown dead-letter store format"):
        DeadLetterStore(wrong_format)


def test_a_row_damaged_on_disk_still_lists(tmp_path: Path) -> None:
    path = tmp_path / "dlq.db"
    with DeadLetterStore(path) as store:
        ident, _ = store.add(letter())
    db = sqlite3.connect(path)
    db.execute("UPDATE letters SET payload = '{not json'")
    db.commit()
    db.close()
    with DeadLetterStore(path) as store:
        got = store.get(ident)
        assert got.payload == "{not json"
        assert got.problem == "stored JSON does not parse"
        with pytest.raises(ReplayError, match="no original message object"):
            replay_message(got)


def test_closed_store(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "d.db")
    store.close()
    store.close()
    with pytest.raises(DeadLetterError, match="is closed"):
        store.list()


async def test_collector_stores_every_reason_from_the_bus(store: DeadLetterStore) -> None:
    orchestrator = get_message_bus("jira-orchestrator")
    collector = DeadLetterCollector(orchestrator, store)
    collector.start()
    collector.start()  # idempotent
    worker = get_message_bus("worker")

    def broken(message: Message) -> None:
        raise RuntimeError("disk full")

    worker.subscribe("plugin/worker/request", broken)
    worker.subscribe("plugin/worker/filtered", print, filter=lambda m: 1 / 0 > 0)
    sender = get_message_bus("sender")
    await sender.publish(topic="plugin/worker/request", payload={"job": 1})
    await sender.publish(topic="plugin/worker/filtered", payload={"job": 2})
    await sender.publish(topic="plugin/worker/request", payload={"job": 3})
    for reason in ("max-deliveries", "rejected-source", "invalid-message"):
        bad = Message(topic="plugin/worker/request", payload={"r": reason})
        await worker.dead_letter(bad, reason=reason)
    await orchestrator.flush()
    await collector.flush()
    reasons = [x.reason for x in store.list()]
    assert sorted(reasons) == sorted(
        [
            "handler-error",
            "filter-error",
            "handler-error",
            "max-deliveries",
            "rejected-source",
            "invalid-message",
        ]
    )
    first = store.list(reason="handler-error")[0]
    assert first.message is not None
    assert first.message["payload"] == {"job": 1}
    assert first.subscriber == "worker"
    stats = collector.stats()
    assert stats["received"] == stats["stored"] == 6
    assert stats["malformed"] == stats["failed_writes"] == stats["backlog"] == 0
    collector.stop()


async def test_collector_stores_expired_messages(store: DeadLetterStore) -> None:
    async with DeadLetterCollector(get_message_bus("jira-orchestrator"), store):
        get_message_bus("worker").subscribe("plugin/worker/request", print)
        await get_message_bus("sender").publish(
            topic="plugin/worker/request",
            payload={},
            metadata=MessageMetadata(expires_at="2000-01-01T00:00:00.000Z"),
        )
        await get_message_bus("sender").flush()
    assert [x.reason for x in store.list()] == ["expired"]


async def test_collector_keeps_malformed_letters(store: DeadLetterStore) -> None:
    async with DeadLetterCollector(get_message_bus("jira-orchestrator"), store) as collector:
        rogue = get_message_bus("rogue")
        await rogue.publish(topic=DEAD_LETTER_TOPIC, payload=["not", "a", "letter"])
        await rogue.publish(topic=DEAD_LETTER_TOPIC, payload={"reason": "expired"})
        await rogue.flush()
    letters = store.list()
    assert [x.reason for x in letters] == [INVALID_LETTER, "expired"]
    assert letters[0].payload == ["not", "a", "letter"]
    assert all(x.problem for x in letters)
    assert collector.stats()["malformed"] == 2
    assert collector.stats()["stored"] == 2


async def test_collector_keeps_letters_it_cannot_write_and_retries(
    store: DeadLetterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_add = store.add
    failures = iter([True, True])

    def flaky_add(*args: Any, **kwargs: Any) -> tuple[int, bool]:
        if next(failures, False):
            raise DeadLetterError("disk I/O error")
        return real_add(*args, **kwargs)

    monkeypatch.setattr(store, "add", flaky_add)
    collector = DeadLetterCollector(get_message_bus("jira-orchestrator"), store)
    collector.start()
    sender = get_message_bus("sender")
    await sender.dead_letter(Message(topic="a/b", payload=1), reason="expired")
    await sender.flush()
    assert collector.stats()["backlog"] == 1
    assert store.count() == 0
    await sender.dead_letter(Message(topic="a/c", payload=2), reason="expired")
    await sender.flush()
    assert collector.stats()["backlog"] == 2  # the second failure: both kept, in order
    assert await collector.flush()
    assert [x.topic for x in store.list()] == ["a/b", "a/c"]
    assert collector.stats() == {
        "received": 2,
        "stored": 2,
        "duplicates": 0,
        "malformed": 0,
        "failed_writes": 2,
        "dropped": 0,
        "spoofed": 0,
        "backlog": 0,
        "backlog_bytes": 0,
    }
    collector.stop()


def test_collector_checks_its_arguments(store: DeadLetterStore) -> None:
    with pytest.raises(TypeError, match="bus must be a MessageBus"):
        DeadLetterCollector("bus", store)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="store must be a DeadLetterStore"):
        DeadLetterCollector(get_message_bus("o"), "store")  # type: ignore[arg-type]


async def test_replay_republishes_with_retry_count_plus_one(store: DeadLetterStore) -> None:
    original = Message(
        topic="plugin/worker/request",
        source="sender",
        destination="worker",
        priority=8,
        headers={"traceId": "t-1"},
        payload={"job": 1},
        metadata=MessageMetadata(
            retry_count=2, timeout_ms=5000, expires_at="2000-01-01T00:00:00.000Z"
        ),
    )
    ident, _ = store.add(letter("expired", **original.to_dict()), sender="sender")
    got: list[Message] = []
    get_message_bus("worker").subscribe("plugin/worker/request", got.append)
    sent = await replay_letter(store, ident, plugins=PLUGINS)
    await get_message_bus("worker").flush()
    assert got == [sent]
    assert sent.topic == "plugin/worker/request"
    assert sent.source == "sender"  # the receiver sees the original sender
    assert sent.message_id != original.message_id
    assert sent.metadata.retry_count == 3
    assert sent.metadata.timeout_ms == 5000
    assert sent.metadata.expires_at is None
    assert sent.headers["replayOf"] == original.message_id
    assert sent.headers["traceId"] == "t-1"
    assert (sent.payload, sent.priority, sent.destination) == ({"job": 1}, 8, "worker")
    marked = store.get(ident)
    assert marked.replay_count == 1
    assert marked.replayed_as == sent.message_id


@pytest.mark.parametrize(
    ("original", "why"),
    [
        (
            {"topic": "plugin//bad", "payload": 1},
            "malformed: invalid topic .plugin//bad. at position 7",
        ),
        ({"topic": "a", "priority": 99}, "malformed: priority"),
        ({"payload": 1}, "malformed"),
        ("not an object", "no original message object"),
        ({"topic": "a", "payload": 1, "metadata": {"retryCount": -1}}, "metadata.retryCount"),
    ],
)
async def test_replay_of_a_malformed_original_is_refused_and_kept(
    store: DeadLetterStore, original: Any, why: str
) -> None:
    payload = {"reason": "invalid-message", "subscriber": "w", "error": None, "message": original}
    ident, _ = store.add(payload)
    with pytest.raises(ReplayError, match=why) as caught:
        await replay_letter(store, ident)
    assert f"dead letter {ident} cannot be replayed" in str(caught.value)
    kept = store.get(ident)
    assert kept.replay_count == 0
    assert kept.payload == payload


async def test_replay_of_an_omitted_payload_is_refused(store: DeadLetterStore) -> None:
    payload = {**letter(), "payloadOmitted": "the original payload is too large to carry here"}
    ident, _ = store.add(payload)
    with pytest.raises(ReplayError, match="was not kept"):
        await replay_letter(store, ident)


async def test_replay_unknown_id(store: DeadLetterStore) -> None:
    with pytest.raises(DeadLetterNotFound):
        await replay_letter(store, 404)


async def test_a_letter_without_a_proven_sender_is_not_replayed_as_the_orchestrator(
    store: DeadLetterStore,
) -> None:
    ident, _ = store.add(letter(source=""))
    got: list[Message] = []
    get_message_bus("worker").subscribe("plugin/worker/request", got.append)
    with pytest.raises(ReplayError, match="nobody is known to have sent it"):
        await replay_letter(store, ident)
    await get_message_bus("worker").flush()
    assert got == []
    assert store.get(ident).replay_count == 0
    # on the operator's word, and only then, as the orchestrator
    await replay_letter(store, ident, as_identity="jira-orchestrator")
    await get_message_bus("worker").flush()
    assert [m.source for m in got] == ["jira-orchestrator"]


async def test_a_plugins_letter_about_a_request_to_it_goes_back_to_it_alone(
    store: DeadLetterStore,
) -> None:
    """The most common letter: a plugin failed on a request someone sent it. Replayed by
    default, with the plugin's own rights, to the plugin itself; a letter about a request
    addressed to another plugin is not replayed on the reporter's word."""
    got: list[Message] = []
    get_message_bus("worker").subscribe("plugin/worker/request", got.append)
    own, _ = store.add(letter(), sender="worker")
    sent = await replay_letter(store, own, plugins=PLUGINS)
    await get_message_bus("worker").flush()
    assert got == [sent]
    assert sent.source == "worker"  # sent with the reporter's rights, not as 'sender'
    assert store.get(own).replay_count == 1
    other, _ = store.add(letter(), sender="bystander")
    with pytest.raises(ReplayError, match="sent by 'bystander' but carries a message from"):
        await replay_letter(store, other, plugins=PLUGINS)
    await get_message_bus("worker").flush()
    assert got == [sent]
    assert store.get(other).replay_count == 0


async def test_replay_where_nobody_subscribes_is_not_sent_nor_marked(
    store: DeadLetterStore,
) -> None:
    ident, _ = store.add(letter(), sender="sender")
    published = get_message_bus("sender").stats()["published"]
    with pytest.raises(ReplayNotDelivered, match="nobody subscribes to 'plugin/worker/request'"):
        await replay_letter(store, ident, plugins=PLUGINS)
    assert get_message_bus("sender").stats()["published"] == published
    assert store.get(ident).replay_count == 0
    assert [x.id for x in store.list(replayed=False)] == [ident]


async def test_a_bus_that_cannot_confirm_asks_requests_and_keeps_events(
    store: DeadLetterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on core NATS: the transport cannot tell who receives a publish.
    monkeypatch.setattr(type(get_message_bus("x").transport), "confirms", lambda self, t: None)
    request = Message(
        topic="svc/echo", source="sender", message_type=MessageType.REQUEST, correlation_id="c1"
    ).to_dict()
    (asked,) = (store.add(letter(**request), sender="sender")[0],)
    event = store.add(letter(topic="svc/echo"), sender="sender")[0]
    with pytest.raises(ReplayNotDelivered, match="nobody subscribes to 'svc/echo'"):
        await replay_letter(store, asked, plugins=PLUGINS)  # the request found no responder
    echo = get_message_bus("echo")
    seen: list[Message] = []

    @echo.subscribe("svc/echo")
    async def answer(message: Message) -> None:
        seen.append(message)
        if message.correlation_id is not None:
            await echo.respond(message.correlation_id, "ok")

    sent = await replay_letter(store, asked, plugins=PLUGINS)
    assert [m.message_id for m in seen] == [sent.message_id]
    assert seen[0].headers["replayOf"] == request["messageId"]
    assert seen[0].metadata.retry_count == 1
    assert store.get(asked).replayed_as == sent.message_id
    with pytest.raises(ReplayNotDelivered, match="cannot confirm that anyone receives an event"):
        await replay_letter(store, event, plugins=PLUGINS)
    assert len(seen) == 1  # the event was not sent
    assert store.get(event).replay_count == 0


async def test_a_request_nobody_answers_in_time_is_not_marked(
    store: DeadLetterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(type(get_message_bus("x").transport), "confirms", lambda self, t: None)
    request = Message(
        topic="svc/mute", source="sender", message_type=MessageType.REQUEST, correlation_id="c1"
    ).to_dict()
    ident = store.add(letter(**request), sender="sender")[0]
    get_message_bus("mute").subscribe("svc/mute", lambda message: None)
    with pytest.raises(ReplayNotDelivered, match=r"no answer on 'svc/mute' within 0.05s"):
        await replay_letter(store, ident, timeout=0.05, plugins=PLUGINS)
    assert store.get(ident).replay_count == 0


async def test_the_backlog_of_a_failing_store_is_bounded_and_counts_what_it_drops(
    store: DeadLetterStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_add = store.add
    full = True

    def add(*args: Any, **kwargs: Any) -> tuple[int, bool]:
        if full:
            raise DeadLetterError("database or disk is full")
        return real_add(*args, **kwargs)

    monkeypatch.setattr(store, "add", add)
    collector = DeadLetterCollector(get_message_bus("jira-orchestrator"), store, max_backlog=3)
    collector.start()
    sender = get_message_bus("sender")
    caplog.set_level(logging.WARNING, "jira_orchestrator.orchestrator.deadletters")
    for n in range(10):
        await sender.dead_letter(Message(topic=f"a/{n}", payload=n), reason="expired")
    await sender.flush()
    stats = collector.stats()
    assert (stats["received"], stats["backlog"], stats["dropped"]) == (10, 3, 7)
    assert 0 < stats["backlog_bytes"] < 3 * 2048
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2, errors  # one for the failing store, one for the burst of drops
    assert "dropping new letters" in errors[1]
    full = False
    await sender.dead_letter(Message(topic="a/10", payload=10), reason="expired")
    await sender.flush()
    assert [x.topic for x in store.list()] == ["a/0", "a/1", "a/2", "a/10"]  # kept, in order
    assert collector.stats()["backlog"] == collector.stats()["backlog_bytes"] == 0
    assert any("7 dead letters were dropped" in r.getMessage() for r in caplog.records)
    collector.stop()


async def test_the_backlog_is_bounded_in_bytes_too(
    store: DeadLetterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def add(*args: Any, **kwargs: Any) -> tuple[int, bool]:
        raise DeadLetterError("database or disk is full")

    monkeypatch.setattr(store, "add", add)
    collector = DeadLetterCollector(
        get_message_bus("jira-orchestrator"), store, max_backlog_bytes=4096
    )
    collector.start()
    sender = get_message_bus("sender")
    for _ in range(4):
        await sender.dead_letter(Message(topic="a/b", payload="x" * 1500), reason="expired")
    await sender.flush()
    stats = collector.stats()
    assert (stats["backlog"], stats["dropped"]) == (1, 3)  # one letter is about 2 kB here
    assert stats["backlog_bytes"] <= 4096
    collector.stop()
    with pytest.raises(ValueError, match="max_backlog must be a positive int"):
        DeadLetterCollector(get_message_bus("o"), store, max_backlog=0)
