"""docs/protocol.md and `jira_orchestrator._core.protocol` say the same, and the module's
builders and parsers agree with each other."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator import InvalidMessage
from jira_orchestrator._core import protocol
from jira_orchestrator._core.message import Message
from jira_orchestrator._core.protocol import (
    ENVIRONMENT,
    RESERVED_TOPICS,
    CommandReply,
    DeadLetterReason,
    dead_letter,
    parse_dead_letter,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def table_after(heading: str) -> list[list[str]]:
    """The rows (cells stripped, header and rule left out) of the first table after the
    markdown heading ``heading``."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip("#").strip() == heading)
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
        elif rows:
            break
    assert len(rows) > 2, f"no table under {heading!r} in {DOC}"
    return rows[2:]


def code(cell: str) -> str:
    assert cell.startswith("`"), cell
    assert cell.endswith("`"), cell
    return cell[1:-1]


def test_the_reserved_topics_table_is_the_modules() -> None:
    documented = [
        (code(topic), who, payload) for topic, who, payload in table_after("Reserved topics")
    ]
    assert documented == [(r.topic, r.publisher, r.payload) for r in RESERVED_TOPICS]


def test_the_dead_letter_reasons_are_the_modules() -> None:
    documented = [code(row[0]) for row in table_after("Dead letters")]
    assert documented == [reason.value for reason in DeadLetterReason]


def test_the_command_reply_fields_are_the_models() -> None:
    documented = [code(row[0]) for row in table_after("Commands: `plugin/{id}/request`")]
    request = [field.alias or name for name, field in protocol.CommandRequest.model_fields.items()]
    assert documented[: len(request)] == request
    rows = DOC.read_text(encoding="utf-8").split("The plugin answers with a `CommandReply`")[1]
    reply_fields = re.findall(r"^\| `(\w+)` \|", rows.split("\n\n")[1], flags=re.M)
    assert reply_fields == [
        field.alias or name for name, field in CommandReply.model_fields.items()
    ]


def test_the_environment_table_is_the_modules() -> None:
    documented = {
        code(name): meaning for name, meaning in table_after("Environment of a plugin process")
    }
    assert documented == ENVIRONMENT


def test_the_orchestrator_id_is_the_documented_one() -> None:
    assert f"the orchestrator's own id is `{protocol.ORCHESTRATOR_ID}`" in DOC.read_text()


def test_topic_builders_name_their_plugin() -> None:
    for row in RESERVED_TOPICS:
        topic = row.for_plugin("p")
        assert protocol.plugin_named(topic) == ("p" if "{id}" in row.topic else None)
    assert protocol.plugin_request("x") == "plugin/x/request"
    assert protocol.state_export("x") == "state/x/export"


def test_a_letter_built_is_a_letter_parsed() -> None:
    original = Message(topic="plugin/w/request", source="caller", payload={"n": 1})
    letter = dead_letter(
        DeadLetterReason.HANDLER_ERROR,
        source="w",
        timestamp="2026-01-01T00:00:00.000Z",
        subscriber="w",
        subscription="plugin/w/request",
        original=original,
        error=RuntimeError("disk full"),
    )
    assert letter.topic == protocol.DEAD_LETTER_TOPIC + "/w"  # its sender's own topic
    assert letter.headers == original.headers
    fields = parse_dead_letter(letter.payload)
    assert fields.problem is None
    assert (fields.reason, fields.topic, fields.message_id) == (
        "handler-error",
        "plugin/w/request",
        original.message_id,
    )
    assert (fields.error_type, fields.error_message) == ("RuntimeError", "disk full")
    protocol.DeadLetterPayload.model_validate(letter.payload)


def test_a_letter_about_bytes_carries_them_as_raw_and_parses_without_a_problem() -> None:
    letter = dead_letter(
        DeadLetterReason.INVALID_MESSAGE,
        source="messagebus",
        timestamp="2026-01-01T00:00:00.000Z",
        subscriber=None,
        subscription="plugin.w.request",
        error=InvalidMessage("not JSON"),
        raw=b"\xff" + b"x" * 3000,
        max_size=2048,
    )
    payload: dict[str, Any] = letter.payload
    assert payload["message"] is None
    assert payload["rawTruncated"] is True
    assert payload["raw"].startswith("\ufffd")
    assert len(payload["raw"]) == 1024
    assert parse_dead_letter(payload).problem is None
    protocol.DeadLetterPayload.model_validate(payload)


def test_a_letter_too_large_drops_the_original_payload_and_says_so() -> None:
    original = Message(topic="plugin/w/request", payload="x" * 5000)
    letter = dead_letter(
        "expired",
        source="w",
        timestamp="2026-01-01T00:00:00.000Z",
        subscriber="w",
        subscription=None,
        original=original,
        max_size=2048,
    )
    assert letter.payload["message"]["payload"] is None
    assert letter.payload["payloadOmitted"]
    assert len(letter.encode()) <= 2048


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("text", "not an object"),
        ({"reason": 3, "subscriber": "w", "message": {"topic": "t"}}, "reason"),
        ({"reason": "x", "subscriber": "w", "message": None}, "message"),
        ({"reason": "x", "subscriber": "w", "error": "boom", "message": {"topic": "t"}}, "error"),
    ],
)
def test_a_letter_off_the_protocol_is_read_with_its_problem_named(
    payload: Any, problem: str
) -> None:
    fields = parse_dead_letter(payload)
    assert fields.problem is not None
    assert problem in fields.problem


def test_a_command_reply_round_trips_through_its_wire_form() -> None:
    for reply in (
        CommandReply.success({"files": 2}),
        CommandReply.failure("bad", error_type="ValueError", caller_error=True),
        CommandReply.failure("Service temporarily unavailable", fallback=True),
    ):
        assert CommandReply.parse(reply.to_payload()) == reply
    assert CommandReply.failure("x").to_payload() == {"status": "error", "error": "x"}
    assert CommandReply.success(None).to_payload() == {"status": "success", "result": None}


@pytest.mark.parametrize(
    "payload",
    [None, "ok", {"result": 1}, {"status": "done"}, {"status": "error", "callerError": "yes"}],
)
def test_what_is_not_a_command_reply_is_refused(payload: Any) -> None:
    with pytest.raises(InvalidMessage, match=r"not a \{status, result\} reply"):
        CommandReply.parse(payload)


def test_the_durable_consumer_name_is_the_documented_formula() -> None:
    # A replica in another language computes this name from docs/protocol.md alone, and
    # must land on the consumer the Python replicas share.
    import hashlib

    from jira_orchestrator.transports._nats_subjects import consumer_name

    assert "JO_REQUESTS\\nplugin/<id>/request\\n<id>" in DOC.read_text()
    for plugin in ("fastapi-backend", "ts:plugin@v2"):
        text = f"JO_REQUESTS\nplugin/{plugin}/request\n{plugin}"
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
        readable = re.sub(r"[^A-Za-z0-9_-]", "_", plugin)[:40]
        expected = f"{readable}_{digest}"
        assert consumer_name("JO_REQUESTS", protocol.plugin_request(plugin), plugin) == expected
