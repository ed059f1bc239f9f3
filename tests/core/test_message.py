"""The envelope: exact JSON round trip, validation, and decoding of arbitrary bytes."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jira_orchestrator import InvalidMessage, InvalidTopic, MessageTooLarge
from jira_orchestrator._core.message import Message, MessageMetadata, MessageType

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
SEGMENT = st.text(alphabet="abcxyz-_:0", min_size=1, max_size=6)
TOPIC = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)

MESSAGES = st.builds(
    Message,
    topic=TOPIC,
    message_type=st.sampled_from(list(MessageType)),
    payload=JSON,
    source=SEGMENT,
    destination=st.one_of(st.just("*"), SEGMENT),
    correlation_id=st.one_of(st.none(), st.text(max_size=10)),
    priority=st.integers(min_value=1, max_value=10),
    headers=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    metadata=st.builds(
        MessageMetadata,
        retry_count=st.integers(min_value=0, max_value=10),
        timeout_ms=st.one_of(st.none(), st.integers(min_value=0, max_value=10**9)),
    ),
)


@given(MESSAGES)
def test_json_round_trip_is_exact(message: Message) -> None:
    data = message.encode()
    decoded = Message.decode(data)
    assert decoded == message
    assert decoded.encode() == data
    assert Message.from_dict(json.loads(data)) == message


@given(st.binary(max_size=512))
def test_decoding_arbitrary_bytes_raises_only_invalid_message(data: bytes) -> None:
    with contextlib.suppress(InvalidMessage):  # anything else escapes and fails the test
        Message.decode(data)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "topic",
                "priority",
                "messageType",
                "headers",
                "payload",
                "metadata",
                "source",
                "correlationId",
            ]
        ),
        JSON,
        max_size=8,
    )
)
def test_decoding_arbitrary_json_objects_raises_only_invalid_message(
    fields: dict[str, Any],
) -> None:
    with contextlib.suppress(InvalidMessage):
        Message.decode(json.dumps(fields).encode())


def test_wire_form_uses_the_seeds_camel_case_names() -> None:
    message = Message(
        topic="plugin.x.request",
        correlation_id="c1",
        metadata=MessageMetadata(retry_count=2, timeout_ms=30000),
    )
    wire = json.loads(message.encode())
    assert list(wire) == [
        "messageId",
        "correlationId",
        "timestamp",
        "source",
        "destination",
        "topic",
        "messageType",
        "priority",
        "headers",
        "payload",
        "metadata",
    ]
    assert wire["topic"] == "plugin/x/request"
    assert wire["metadata"] == {"retryCount": 2, "timeout": 30000, "expiresAt": None}
    assert wire["timestamp"].endswith("Z")


def test_a_message_from_another_language_decodes() -> None:
    raw = (
        b'{"messageId":"m1","timestamp":"2025-12-26T10:00:00.000Z","source":"ts-plugin",'
        b'"destination":"fastapi-backend","topic":"plugin.fastapi-backend.request",'
        b'"messageType":"request","priority":5,"payload":{"command":"create_model"},'
        b'"correlationId":"c1","extraField":"ignored"}'
    )
    message = Message.decode(raw)
    assert message.topic == "plugin/fastapi-backend/request"
    assert message.message_type is MessageType.REQUEST
    assert message.headers == {}
    assert message.metadata == MessageMetadata()


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"topic": "a//b"}', "empty segment"),
        (b'{"topic": "a", "priority": 0}', "priority"),
        (b'{"topic": "a", "messageType": "shout"}', "messageType"),
        (b'{"topic": "a", "headers": {"n": 1}}', "headers"),
        (b'{"topic": "a", "metadata": {"retryCount": -1}}', "retryCount"),
        (b'{"topic": "a", "metadata": {"expiresAt": "tomorrow"}}', "expiresAt"),
        (b'{"priority": 5}', "topic"),
        (b"\xff\xfe", "malformed"),
    ],
)
def test_bad_envelopes_say_what_is_wrong(raw: bytes, fragment: str) -> None:
    with pytest.raises(InvalidMessage, match=fragment):
        Message.decode(raw)


def test_decode_refuses_oversized_input_before_parsing() -> None:
    with pytest.raises(MessageTooLarge):
        Message.decode(b"x" * 2048, max_size=1024)


def test_constructing_with_a_bad_topic_raises_invalid_topic() -> None:
    with pytest.raises(InvalidTopic):
        Message(topic="a b")


def test_message_type_accepts_its_wire_string() -> None:
    assert Message(topic="a", message_type="command").message_type is MessageType.COMMAND  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage, match="messageType"):
        Message(topic="a", message_type="shout")  # type: ignore[arg-type]


def test_messages_are_immutable() -> None:
    message = Message(topic="a")
    with pytest.raises(AttributeError):
        message.source = "someone-else"  # type: ignore[misc]
