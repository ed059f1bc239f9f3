"""The envelope: exact JSON round trip, validation, and decoding of arbitrary bytes."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jira_orchestrator import InvalidMessage, InvalidTopic, MessageTooLarge
from jira_orchestrator._core.message import (
    Message,
    MessageMetadata,
    MessageType,
    payload_size,
    validate_payload,
)

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


class Text(str):
    pass


class Count(int):
    pass


# Values JSON cannot carry although they look like its types: str and int subclasses that
# are not enums, integers over the 4,300 digits Python turns into text, lone surrogates.
SURROGATES = st.tuples(st.text(max_size=2), st.sampled_from(["\ud800", "\udfff"])).map("".join)
AWKWARD = st.one_of(
    st.builds(Text, st.text(max_size=3)),
    st.builds(Count, st.integers()),
    st.integers(min_value=4, max_value=6).map(lambda exponent: 10**4301 * exponent),
    st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=2),
    SURROGATES,
)
AWKWARD_PAYLOADS = st.recursive(
    AWKWARD,
    lambda children: (
        st.lists(children, min_size=1, max_size=3)
        | st.dictionaries(st.text(max_size=4), children, min_size=1, max_size=3)
        | st.dictionaries(SURROGATES, JSON, min_size=1, max_size=2)
    ),
    max_leaves=6,
)


@given(AWKWARD_PAYLOADS)
def test_values_json_cannot_carry_raise_invalid_message_naming_the_path(payload: Any) -> None:
    topic = "plugin/x/events"
    try:
        validate_payload(payload, topic=topic)  # types: finds the subclasses
    except InvalidMessage as error:
        refusal = error
    else:  # what is inside a str or an int only the encoder finds
        with pytest.raises(InvalidMessage) as caught:
            payload_size(payload, topic=topic)
        refusal = caught.value
    assert re.match(r"^payload.* on 'plugin/x/events': ", str(refusal), re.DOTALL)
    assert "Error" not in str(refusal)  # our words, not a raw exception's
    with pytest.raises(InvalidMessage, match=r"^payload"):
        Message(topic="plugin/x/events", payload=payload).encode()


UNENCODABLE = [
    ({"a": [1, Text("t")]}, "payload.a[1]", "Text is a str subclass, not a JSON value"),
    ({"n": Count(3)}, "payload.n", "Count is an int subclass, not a JSON value"),
    ({"n": [10**5000]}, "payload.n[0]", "about 5,000 digits"),
    ({"s": "ok\udc80"}, "payload.s", r"lone surrogate '\udc80' at index 2"),
    ({"k\ud800": 1}, "payload", r"key 'k\ud800' is a string holding the lone surrogate"),
]


@pytest.mark.parametrize(("payload", "where", "fragment"), UNENCODABLE)
def test_each_kind_of_unencodable_value_is_named(payload: Any, where: str, fragment: str) -> None:
    for check in (
        lambda: payload_size(payload, topic="t/x"),
        lambda: Message(topic="t/x", payload=payload).encode(),
    ):
        with pytest.raises(InvalidMessage) as caught:
            check()
        assert str(caught.value).startswith(f"{where} on 't/x': ")
        assert fragment in str(caught.value)


@pytest.mark.parametrize(("payload", "where", "fragment"), UNENCODABLE[:2])
def test_subclasses_of_str_and_int_are_refused_by_the_type_check(
    payload: Any, where: str, fragment: str
) -> None:
    with pytest.raises(InvalidMessage) as caught:
        validate_payload(payload, topic="t/x")
    assert str(caught.value).startswith(f"{where} on 't/x': ")


def test_a_header_json_cannot_carry_is_named() -> None:
    with pytest.raises(InvalidMessage, match=r"^headers.userId on 't/x': .*lone surrogate"):
        Message(topic="t/x", headers={"userId": "a\ud800"}).encode()
