"""Topic to subject mapping and the transport's reserved namespace (no server needed)."""

from __future__ import annotations

import pytest

from jira_orchestrator import InvalidTopic
from jira_orchestrator.transports._nats_jetstream import nak, num_delivered, plan_streams
from jira_orchestrator.transports._nats_subjects import (
    check_not_reserved,
    intersect,
    is_internal_subject,
    to_subject,
)
from jira_orchestrator.transports.nats import NatsOptions


@pytest.mark.parametrize(
    ("canonical", "subject"),
    [
        ("plugin/x/request", "plugin.x.request"),
        ("plugin/*/request", "plugin.*.request"),
        ("plugin/**", "plugin.>"),
        ("**", ">"),
        ("routing/decision", "routing.decision"),
        ("a/b:c@d", "a.b:c@d"),
    ],
)
def test_topics_map_to_subjects(canonical: str, subject: str) -> None:
    assert to_subject(canonical) == subject


@pytest.mark.parametrize(
    ("first", "second", "common"),
    [
        ("plugin/x/request", "plugin/*/request", "plugin/x/request"),
        ("plugin/**", "plugin/*/request", "plugin/*/request"),
        ("**", "system/dead-letter", "system/dead-letter"),
        ("plugin/*/events", "plugin/*/request", None),
        ("plugin", "plugin/**", None),
        ("plugin/*", "*/x", "plugin/x"),
        ("a/**", "*/b/**", "a/b/**"),
    ],
)
def test_pattern_intersection(first: str, second: str, common: str | None) -> None:
    assert intersect(first, second) == common
    assert intersect(second, first) == common


@pytest.mark.parametrize("topic", ["_jo/durable/x", "_INBOX/abc", "_jo"])
def test_reserved_topics_are_refused(topic: str) -> None:
    with pytest.raises(InvalidTopic, match="reserved"):
        check_not_reserved(topic)


def test_internal_subjects_are_recognised() -> None:
    assert is_internal_subject("_INBOX.abc.1")
    assert is_internal_subject("$JS.ACK.JO_REQUESTS.c.1.2.3.4.5")
    assert is_internal_subject("_jo.durable.plugin.x.request")
    assert not is_internal_subject("plugin.x.request")


def test_ack_subject_parsing() -> None:
    assert num_delivered("$JS.ACK.JO_REQUESTS.worker_1.3.10.9.1700000000.0") == 3
    assert num_delivered("$JS.ACK.hub.ACC.JO_REQUESTS.worker_1.4.10.9.1700000000.0.tok") == 4
    assert nak(0) == b"-NAK"
    assert nak(0.5) == b'-NAK {"delay": 500000000}'


def test_options_come_from_the_url_query() -> None:
    options = NatsOptions.from_query("ack_wait=2.5&max_deliver=3&durable=plugin/*/request")
    assert options.ack_wait == 2.5
    assert options.max_deliver == 3
    assert options.durable == ("plugin/*/request",)
    assert NatsOptions.from_query("durable=").durable == ()
    with pytest.raises(ValueError, match="unknown NATS bus URL option 'ackwait'"):
        NatsOptions.from_query("ackwait=1")
    with pytest.raises(ValueError, match="max_deliver"):
        NatsOptions.from_query("max_deliver=0")


def test_dead_letters_get_a_stream_of_their_own() -> None:
    specs = plan_streams(("plugin/*/request", "system/dead-letter"), "JO", 60.0)
    assert [(s.name, s.keep_unread) for s in specs] == [
        ("JO_REQUESTS", False),
        ("JO_DEAD_LETTER", True),
    ]
    assert specs[0].filters("plugin/**") == ["_jo.durable.plugin.*.request"]
    assert specs[1].filters("system/*") == ["_jo.durable.system.dead-letter"]
    assert specs[0].filters("plugin/x/events") == []
