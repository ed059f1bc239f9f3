"""Parsing Jira webhook bodies: the eight real bodies in ../shared/jira-ref/webhooks/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jira_orchestrator.integrations.jira.events import (
    InvalidWebhookEvent,
    parse_event,
    parse_jira_time,
)

BODIES = Path(__file__).resolve().parents[3].parent / "shared" / "jira-ref" / "webhooks"
pytestmark = pytest.mark.skipif(not BODIES.is_dir(), reason=f"{BODIES} is not there")


def body(name: str) -> bytes:
    return (BODIES / name).read_bytes()


def test_every_real_body_parses_with_its_kind_issue_and_project() -> None:
    expected = {
        "comment_created.mattermost-2019.json": ("comment_created", "10040", "TES-41", "TES"),
        "comment_created.zulip-2024.json": ("comment_created", "10002", "SB-1", "SB"),
        "issue_created.zulip-2026.json": ("issue_created", "10033", "KAN-3", "KAN"),
        "issue_deleted.mattermost-2019.json": ("issue_deleted", "10303", "IDT-19", "IDT"),
        "issue_updated.assigned-empty-changelog.mattermost-2024.json": (
            "issue_updated", "10001", "TEST-123", "TEST",
        ),
        "issue_updated.assigned.mattermost-2019.json": ("issue_updated", "10040", "TES-41", "TES"),
        "issue_updated.labels.mattermost-2019.json": ("issue_updated", "10040", "TES-41", "TES"),
        "issue_updated.status-resolved.mattermost-2019.json": (
            "issue_updated", "10040", "TES-41", "TES",
        ),
    }  # fmt: skip
    assert sorted(p.name for p in BODIES.glob("*.json")) == sorted(expected)
    for name, (kind, issue_id, key, project) in expected.items():
        event = parse_event(body(name))
        assert (event.kind, event.issue_id, event.issue_key, event.project_key) == (
            kind,
            issue_id,
            key,
            project,
        ), name
        assert event.updated is not None, name


def test_updated_comes_from_the_issue_with_jira_offsets() -> None:
    event = parse_event(body("issue_updated.assigned.mattermost-2019.json"))
    # "2019-02-15T19:18:01.707-0800"
    assert event.updated == pytest.approx(1550287081.707)
    assert event.timestamp == pytest.approx(1550287081.752)
    created = parse_event(body("issue_created.zulip-2026.json"))
    assert created.updated == parse_jira_time("2026-04-25T13:05:13.605+0000")


def test_without_an_updated_field_the_epoch_ms_timestamp_orders_the_event() -> None:
    event = parse_event(body("issue_updated.assigned-empty-changelog.mattermost-2024.json"))
    assert event.changes == ()
    assert event.updated == pytest.approx(1724179662.935)


def test_changelog_items_are_matched_on_field_id_not_display_name() -> None:
    created = parse_event(body("issue_created.zulip-2026.json"))
    assert created.change("fixVersions") is not None
    assert created.change("fixVersions").field == "Fix Version"  # type: ignore[union-attr]
    assert created.change("Fix Version") is None
    labels = parse_event(body("issue_updated.labels.mattermost-2019.json")).change("labels")
    assert labels is not None
    assert (labels.from_value, labels.from_string) == (None, "bad test-label")
    assert labels.to_string == "sad test-label"
    resolved = parse_event(body("issue_updated.status-resolved.mattermost-2019.json"))
    assert resolved.changed("status")
    assert not resolved.changed("labels", "assignee")


def test_actor_is_the_account_id_and_comment_events_use_the_author() -> None:
    assert parse_event(body("issue_deleted.mattermost-2019.json")).actor == (
        "5c5f880629be9642ba529340"
    )
    comment = parse_event(body("comment_created.zulip-2024.json"))
    assert comment.actor == "619a4432ebce470067f20384"
    assert comment.comment is not None
    assert comment.comment.body.startswith("[~accountid:619a4432ebce470067f20384]")
    assert comment.comment.id == "10003"
    assert comment.updated == parse_jira_time("2024-07-31T14:38:13.985+0700")


def test_wiki_description_labels_and_unknown_top_level_keys() -> None:
    created = parse_event(body("issue_created.zulip-2026.json"))
    assert isinstance(created.description, str) or created.description is None
    assert created.summary == "This is test files"
    assert created.event_type == "issue_created"
    extra = json.loads(body("comment_created.zulip-2024.json"))
    assert "eventType" in extra  # a 2024+ key the parser does not know


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b"", "not-json", "not JSON"),
        (b"not json", "not-json", "not JSON"),
        (b'{"webhookEvent": "jira:issue_created", "issue": {"id": "1"', "not-json", "truncated"),
        (b"\xff\xfe\x00", "not-json", "UTF-8"),
        (b"[1, 2]", "not-an-event", "array"),
        (b'{"issue": {"id": "1", "key": "A-1"}}', "no-webhook-event", "webhookEvent"),
        (b'{"webhookEvent": "jira:issue_created"}', "no-issue", "'issue'"),
        (b'{"webhookEvent": "jira:issue_created", "issue": {"key": "A-1"}}', "no-issue", "id"),
        (b'{"webhookEvent": "jira:issue_created", "issue": {"id": "1"}}', "no-issue", "key"),
        (b"[" * 100_000 + b"]" * 100_000, "not-json", "not JSON"),
    ],
)
def test_bodies_that_are_not_jira_events_say_why(raw: bytes, code: str, words: str) -> None:
    with pytest.raises(InvalidWebhookEvent, match=words) as caught:
        parse_event(raw)
    assert caught.value.code == code


def test_a_truncated_real_body_is_refused_as_truncated() -> None:
    raw = body("issue_created.zulip-2026.json")
    with pytest.raises(InvalidWebhookEvent, match="truncated") as caught:
        parse_event(raw[: len(raw) // 2])
    assert caught.value.code == "not-json"


def test_lenient_on_odd_values() -> None:
    event = parse_event(
        json.dumps(
            {
                "webhookEvent": "jira:worklog_updated",
                "timestamp": 10**400,
                "issue": {
                    "id": 42,
                    "key": "ABC-7",
                    "fields": {"updated": "not a time", "labels": ["a", 3, None], "project": 5},
                },
                "changelog": {"items": [None, {"field": "Custom"}, {"fieldId": "x", "to": 3}]},
            }
        )
    )
    assert (event.kind, event.issue_id, event.project_key) == ("other", "42", "ABC")
    assert event.labels == ("a",)
    assert event.timestamp is None  # an epoch-ms beyond any float
    assert [c.field_id for c in event.changes] == ["Custom", "x"]
    assert event.change("x").to_value == "3"  # type: ignore[union-attr]


def test_jira_times() -> None:
    assert parse_jira_time("1970-01-01T00:00:00.000+0000") == 0
    assert parse_jira_time("1970-01-01T05:30:00.000+0530") == 0
    assert parse_jira_time("1970-01-01T00:00:01Z") == 1
    assert parse_jira_time("1970-01-01T00:00:02") == 2
    with pytest.raises(ValueError, match="Invalid isoformat"):
        parse_jira_time("yesterday")
