"""The webhook inbox: durable, de-duplicated, ordered by the issue's ``updated`` time."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from jira_orchestrator.integrations.jira.events import WebhookEvent, parse_event
from jira_orchestrator.integrations.jira.inbox import (
    InboxCorrupt,
    InboxError,
    InboxWriter,
    WebhookInbox,
)


def jira_body(
    kind: str = "jira:issue_updated",
    *,
    issue: str = "10001",
    key: str = "OPS-1",
    updated: str = "2026-01-01T10:00:00.000+0000",
    comment: str | None = None,
) -> bytes:
    data: dict[str, object] = {
        "timestamp": 1767261600000,
        "webhookEvent": kind,
        "issue": {
            "id": issue,
            "key": key,
            "fields": {"updated": updated, "project": {"key": key.split("-")[0]}},
        },
    }
    if comment is not None:
        data["comment"] = {"id": "1", "body": comment, "updated": updated}
    return json.dumps(data).encode()


def event(raw: bytes) -> tuple[WebhookEvent, bytes]:
    return parse_event(raw), raw


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[WebhookInbox]:
    store = WebhookInbox(tmp_path / "inbox.db")
    yield store
    store.close()


def add(inbox: WebhookInbox, delivery: str, raw: bytes) -> int:
    parsed, body = event(raw)
    stored = inbox.add(delivery, parsed, body)
    assert stored.new
    return stored.seq


def test_an_added_event_survives_a_reopen_with_its_raw_body(tmp_path: Path) -> None:
    raw = jira_body()
    first = WebhookInbox(tmp_path / "inbox.db")
    seq = add(first, "d-1", raw)
    first.close()
    again = WebhookInbox(tmp_path / "inbox.db")
    try:
        stored = again.get(seq)
        assert (stored.state, stored.delivery_id, stored.body) == ("pending", "d-1", raw)
        assert stored.event.issue_key == "OPS-1"
        assert again.find("d-1") == stored
    finally:
        again.close()


def test_the_file_is_wal_with_full_sync_and_its_format_tag(inbox: WebhookInbox) -> None:
    db = sqlite3.connect(inbox.path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tag = db.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()[0]
        assert tag == "jira-orchestrator-webhook-inbox/1"
    finally:
        db.close()


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE letters (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(InboxCorrupt, match="not a webhook inbox"):
        WebhookInbox(other)


def test_a_delivery_id_is_stored_once_across_restarts(tmp_path: Path) -> None:
    raw = jira_body()
    first = WebhookInbox(tmp_path / "inbox.db")
    seq = add(first, "d-1", raw)
    first.close()
    again = WebhookInbox(tmp_path / "inbox.db")
    try:
        parsed, body = event(raw)
        stored = again.add("d-1", parsed, body)
        assert (stored.seq, stored.new) == (seq, False)
        in_one_batch = again.add_many([("d-2", parsed, body), ("d-2", parsed, body)])
        assert [s.new for s in in_one_batch] == [True, False]
        assert in_one_batch[0].seq == in_one_batch[1].seq
        assert again.counts() == {"pending": 2}
    finally:
        again.close()


def test_claim_complete_and_fail_move_events_through_their_states(inbox: WebhookInbox) -> None:
    a = add(inbox, "a", jira_body(issue="1", key="OPS-1"))
    b = add(inbox, "b", jira_body(issue="2", key="OPS-2"))
    claimed = inbox.claim(limit=5)
    assert [e.seq for e in claimed] == [a, b]
    assert all(e.state == "processing" and e.attempts == 1 for e in claimed)
    assert inbox.claim() == []
    inbox.complete(a)
    assert inbox.fail(b, "Jira answered 503") == "pending"
    assert inbox.get(b).error == "Jira answered 503"
    [again] = inbox.claim()
    assert (again.seq, again.attempts) == (b, 2)
    assert inbox.fail(b, "issue deleted", retry=False) == "failed"
    assert inbox.counts() == {"done": 1, "failed": 1}
    with pytest.raises(InboxError, match=f"cannot complete webhook event {a}: it is done"):
        inbox.complete(a)
    with pytest.raises(InboxError, match="no webhook event 999"):
        inbox.get(999)


def test_fail_gives_up_after_max_attempts_and_logs_the_issue_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = WebhookInbox(tmp_path / "inbox.db", max_attempts=2)
    try:
        seq = add(inbox, "a", jira_body(key="OPS-9"))
        inbox.claim()
        assert inbox.fail(seq, "boom") == "pending"
        inbox.claim()
        assert inbox.fail(seq, "boom") == "failed"
        assert "OPS-9" in caplog.text
        assert "attempt 2 of 2" in caplog.text
    finally:
        inbox.close()


def test_events_left_processing_by_a_dead_process_are_pending_after_reopen(
    tmp_path: Path,
) -> None:
    first = WebhookInbox(tmp_path / "inbox.db")
    seq = add(first, "a", jira_body())
    assert [e.seq for e in first.claim()] == [seq]
    first.close()  # as if the process died here: never completed
    again = WebhookInbox(tmp_path / "inbox.db")
    try:
        assert again.resumed == 1
        [resumed] = again.claim()
        assert (resumed.seq, resumed.attempts) == (seq, 2)
    finally:
        again.close()


def test_an_older_update_than_the_last_processed_is_superseded(inbox: WebhookInbox) -> None:
    newer = add(inbox, "new", jira_body(updated="2026-01-01T10:00:05.000+0000"))
    inbox.claim()
    inbox.complete(newer)
    older = inbox.add(*_args("old", jira_body(updated="2026-01-01T10:00:01.000+0000")))
    assert older.state == "superseded"
    assert inbox.claim() == []
    same_time = add(inbox, "same", jira_body(updated="2026-01-01T10:00:05.000+0000"))
    assert [e.seq for e in inbox.claim()] == [same_time]


def test_out_of_order_pending_events_of_one_issue_are_handed_out_one_at_a_time(
    inbox: WebhookInbox,
) -> None:
    # Delivered newest first: the newest is processed, then the older one is superseded.
    newer = add(inbox, "new", jira_body(updated="2026-01-01T10:00:05.000+0000"))
    older = add(inbox, "old", jira_body(updated="2026-01-01T10:00:01.000+0000"))
    other = add(inbox, "other", jira_body(issue="2", key="OPS-2"))
    assert [e.seq for e in inbox.claim(limit=10)] == [newer, other]
    assert inbox.claim(limit=10) == []  # OPS-1 is busy
    inbox.complete(newer)
    assert inbox.claim(limit=10) == []
    assert inbox.get(older).state == "superseded"


def test_comments_are_never_superseded(inbox: WebhookInbox) -> None:
    newer = add(inbox, "new", jira_body(updated="2026-01-01T10:00:05.000+0000"))
    inbox.claim()
    inbox.complete(newer)
    comment = add(
        inbox,
        "c",
        jira_body("comment_created", updated="2026-01-01T09:00:00.000+0000", comment="/route x"),
    )
    assert [e.seq for e in inbox.claim()] == [comment]


def _args(delivery: str, raw: bytes) -> tuple[str, WebhookEvent, bytes]:
    return delivery, parse_event(raw), raw


async def test_group_commit_writes_concurrent_adds_in_few_transactions(
    inbox: WebhookInbox,
) -> None:
    writer = InboxWriter(inbox)
    results = await asyncio.gather(
        *(writer.add(*_args(f"d-{n}", jira_body(issue=str(n)))) for n in range(50))
    )
    await writer.aclose()
    assert all(r.new for r in results)
    assert len({r.seq for r in results}) == 50
    assert writer.events == 50
    assert writer.batches < 50  # the 49 that queued behind the first went together
    assert inbox.counts() == {"pending": 50}


async def test_group_commit_reports_a_store_failure_to_every_waiter(tmp_path: Path) -> None:
    inbox = WebhookInbox(tmp_path / "inbox.db")
    writer = InboxWriter(inbox)
    inbox.close()
    results = await asyncio.gather(
        *(writer.add(*_args(f"d-{n}", jira_body())) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, InboxError) and "is closed" in str(r) for r in results)
