"""The wire vocabulary in one place: docs/protocol.md as code.

Every layer takes its names from here: the reserved topics, the orchestrator's id, the
dead-letter reasons and the letter's shape (one builder, one parser), the command request
and reply of ``plugin/<id>/request`` (one model), and the environment variables a plugin
process is given. ``tests/core/test_protocol.py`` checks that docs/protocol.md and this
module say the same.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jira_orchestrator._core.errors import InvalidMessage, InvalidTopic
from jira_orchestrator._core.message import Message, MessageType
from jira_orchestrator._core.topics import normalize_topic

__all__ = [
    "ANYONE",
    "BUS_URL_ENV",
    "DEAD_LETTER_TOPIC",
    "ENVELOPE_SCHEMA",
    "ENVIRONMENT",
    "ERROR_STATUS",
    "INVALID_LETTER",
    "NATS_INBOX_PREFIX_ENV",
    "NATS_PASSWORD_ENV",
    "NATS_SERVERS_ENV",
    "NATS_TOKEN_ENV",
    "NATS_USER_ENV",
    "ORCHESTRATOR_ID",
    "OUTPUT_ENV",
    "PASS_ENV",
    "RESERVED_TOPICS",
    "RETRYABLE_REASONS",
    "ROUTING_DECISION",
    "ROUTING_FALLBACK",
    "ROUTING_QUERY",
    "STATE_DIR_ENV",
    "SYSTEM_BROADCAST",
    "SYSTEM_HEALTH",
    "SYSTEM_TELEMETRY",
    "TASK_AGENT_SPAWN",
    "TASK_CHECKPOINT",
    "TASK_COMPLETE",
    "TASK_START",
    "BreakerEvent",
    "CommandReply",
    "CommandRequest",
    "DeadLetterFields",
    "DeadLetterPayload",
    "DeadLetterReason",
    "ErrorResponse",
    "ReservedTopic",
    "RpcErrorObject",
    "RpcRequest",
    "RpcResponse",
    "StatusEvent",
    "dead_letter",
    "parse_dead_letter",
    "plugin_circuit_breaker",
    "plugin_events",
    "plugin_named",
    "plugin_request",
    "plugin_response",
    "plugin_rpc",
    "plugin_status",
    "plugin_telemetry",
    "state_change",
    "state_export",
    "state_sync",
]

ORCHESTRATOR_ID = "jira-orchestrator"
"""The orchestrator's plugin id on the bus (its ``source``, its NATS user, its RPC server)."""

ANYONE = "*"
"""The ``destination`` of a message for whoever subscribes."""

ERROR_STATUS = "error"
"""``headers.status`` of an error response (see "Request and response")."""


# Reserved topics ---------------------------------------------------------------------------
# A builder takes a plugin id, or "*" for the subscription pattern of every plugin.


def plugin_request(plugin_id: str) -> str:
    """``plugin/<id>/request``: work for plugin ``<id>`` (`CommandRequest`); durable on NATS."""
    return f"plugin/{plugin_id}/request"


def plugin_response(plugin_id: str) -> str:
    """``plugin/<id>/response``: plugin ``<id>``'s responses published instead of replied."""
    return f"plugin/{plugin_id}/response"


def plugin_rpc(plugin_id: str) -> str:
    """``plugin/<id>/rpc``: JSON-RPC 2.0 calls to plugin ``<id>`` (core NATS, not durable)."""
    return f"plugin/{plugin_id}/rpc"


def plugin_events(plugin_id: str) -> str:
    """``plugin/<id>/events``: plugin ``<id>``'s own events."""
    return f"plugin/{plugin_id}/events"


def plugin_status(plugin_id: str) -> str:
    """``plugin/<id>/status``: plugin ``<id>``'s lifecycle (`StatusEvent`)."""
    return f"plugin/{plugin_id}/status"


def plugin_circuit_breaker(plugin_id: str) -> str:
    """``plugin/<id>/circuit-breaker``: plugin ``<id>``'s breaker (`BreakerEvent`)."""
    return f"plugin/{plugin_id}/circuit-breaker"


def plugin_telemetry(plugin_id: str) -> str:
    """``plugin/<id>/telemetry``: plugin ``<id>``'s process's metric snapshots."""
    return f"plugin/{plugin_id}/telemetry"


def state_change(plugin_id: str) -> str:
    """``state/<id>/change``: deltas between replicas of plugin ``<id>``'s state."""
    return f"state/{plugin_id}/change"


def state_export(plugin_id: str) -> str:
    """``state/<id>/export``: what plugin ``<id>`` shares with the plugins importing it."""
    return f"state/{plugin_id}/export"


def state_sync(plugin_id: str) -> str:
    """``state/<id>/sync``: requests for a full snapshot of plugin ``<id>``'s state."""
    return f"state/{plugin_id}/sync"


def plugin_named(topic: str) -> str | None:
    """The plugin id a canonical ``plugin/<id>/<kind>`` or ``state/<id>/<kind>`` topic
    names (the called plugin of ``plugin/<id>/rpc/<caller>``), or None for any other
    topic."""
    parts = topic.split("/")
    if parts[0] not in ("plugin", "state") or len(parts) < 3 or parts[1] == ANYONE:
        return None
    if len(parts) == 3 or (len(parts) == 4 and parts[0] == "plugin" and parts[2] == "rpc"):
        return parts[1]
    return None


SYSTEM_BROADCAST = "system/broadcast"
SYSTEM_HEALTH = "system/health"
SYSTEM_TELEMETRY = "system/telemetry"
DEAD_LETTER_TOPIC = "system/dead-letter"
ROUTING_QUERY = "routing/query"
ROUTING_DECISION = "routing/decision"
ROUTING_FALLBACK = "routing/fallback"
TASK_START = "orchestration/task-start"
TASK_COMPLETE = "orchestration/task-complete"
TASK_AGENT_SPAWN = "orchestration/agent-spawn"
TASK_CHECKPOINT = "orchestration/checkpoint"


@dataclass(frozen=True)
class ReservedTopic:
    """One row of docs/protocol.md's "Reserved topics" table."""

    topic: str
    """The topic, with ``{id}`` for a plugin id."""
    publisher: str
    """Who publishes on it."""
    payload: str
    """What its payload is."""
    durable: bool = False
    """Whether NATS stores it in JetStream (see "On NATS")."""

    def for_plugin(self, plugin_id: str) -> str:
        """The topic of one plugin (``*`` for the subscription pattern of all)."""
        return self.topic.replace("{id}", plugin_id)


RESERVED_TOPICS: tuple[ReservedTopic, ...] = (
    ReservedTopic(
        plugin_request("{id}"),
        "anyone asking plugin `{id}` to do work",
        "`CommandRequest`",
        durable=True,
    ),
    ReservedTopic(
        plugin_response("{id}"),
        "plugin `{id}`, answering a request it does not reply to",
        "response",
    ),
    ReservedTopic(
        plugin_rpc("{id}") + "/{caller}",
        'plugin `{caller}` calling plugin `{id}`\'s methods (see "Identity")',
        "JSON-RPC 2.0 request",
    ),
    ReservedTopic(
        plugin_rpc("{id}"),
        "an anonymous caller of plugin `{id}`'s methods",
        "JSON-RPC 2.0 request",
    ),
    ReservedTopic(plugin_events("{id}"), "plugin `{id}`", "its own events"),
    ReservedTopic(plugin_status("{id}"), "plugin `{id}`", "`StatusEvent`"),
    ReservedTopic(plugin_circuit_breaker("{id}"), "plugin `{id}`", "`BreakerEvent`"),
    ReservedTopic(
        plugin_telemetry("{id}"),
        "plugin `{id}`'s process, every `$JIRA_ORCHESTRATOR_METRICS` seconds",
        "`{metrics: {counters, gauges, histograms}, interval, timestamp}` (docs/observability.md)",
    ),
    ReservedTopic(SYSTEM_BROADCAST, "the orchestrator", "any"),
    ReservedTopic(SYSTEM_HEALTH, "the orchestrator", "any"),
    ReservedTopic(SYSTEM_TELEMETRY, "the orchestrator", "any"),
    ReservedTopic(
        DEAD_LETTER_TOPIC + "/{sender}",
        "the bus of `{sender}`",
        "`DeadLetterPayload`",
        durable=True,
    ),
    ReservedTopic(
        DEAD_LETTER_TOPIC,
        "older peers (no proven sender)",
        "`DeadLetterPayload`",
        durable=True,
    ),
    ReservedTopic(ROUTING_QUERY, "the router", "any"),
    ReservedTopic(ROUTING_DECISION, "the router", "a routing decision"),
    ReservedTopic(ROUTING_FALLBACK, "the router", "any"),
    ReservedTopic(TASK_START, "the orchestrator", "a task sent to a plugin"),
    ReservedTopic(TASK_COMPLETE, "the orchestrator", "a task's outcome"),
    ReservedTopic(TASK_AGENT_SPAWN, "the orchestrator", "any"),
    ReservedTopic(TASK_CHECKPOINT, "the orchestrator", "any"),
    ReservedTopic(state_change("{id}"), "plugin `{id}`'s state replicas", "state delta"),
    ReservedTopic(
        state_sync("{id}"), "a replica of plugin `{id}`'s state or an importer", "sync request"
    ),
    ReservedTopic(state_export("{id}"), "plugin `{id}`'s state replicas", "shared state delta"),
)
"""Every reserved topic, in the order of docs/protocol.md."""


# Environment ---------------------------------------------------------------------------------

BUS_URL_ENV = "JIRA_ORCHESTRATOR_BUS_URL"
OUTPUT_ENV = "JIRA_ORCHESTRATOR_OUTPUT"
STATE_DIR_ENV = "JIRA_ORCHESTRATOR_STATE_DIR"
PASS_ENV = "JIRA_ORCHESTRATOR_PASS_ENV"
NATS_SERVERS_ENV = "JIRA_ORCHESTRATOR_NATS_SERVERS"
NATS_USER_ENV = "JIRA_ORCHESTRATOR_NATS_USER"
NATS_PASSWORD_ENV = "JIRA_ORCHESTRATOR_NATS_PASSWORD"
NATS_TOKEN_ENV = "JIRA_ORCHESTRATOR_NATS_TOKEN"
NATS_INBOX_PREFIX_ENV = "JIRA_ORCHESTRATOR_NATS_INBOX_PREFIX"

ENVIRONMENT: dict[str, str] = {
    BUS_URL_ENV: "the bus URL; under `up`, `nats://<id>:<password>@host:port?jetstream=bind`: "
    "the plugin's own NATS user, with the permissions its manifest grants (the query is "
    "for the SDK: bind to the consumers the orchestrator made)",
    OUTPUT_ENV: "the folder where plugins write what they produce",
    STATE_DIR_ENV: "the folder of the plugins' state databases (`<id>.db`)",
    PASS_ENV: "names of further variables of the operator's environment `up` passes "
    "to plugin processes (comma separated)",
    NATS_SERVERS_ENV: "the servers of that URL, `host:port`, comma separated, without "
    "credentials or query: for NATS clients that take no credentials from a URL (nats.js)",
    NATS_USER_ENV: "the user of that URL",
    NATS_PASSWORD_ENV: "its password",
    NATS_TOKEN_ENV: "the token of a URL that carries one (`nats://<token>@host`) instead of a user",
    NATS_INBOX_PREFIX_ENV: "the inbox prefix the SDK's transport uses for that URL: "
    "`_INBOX.<user>` (the only inboxes the plugin's user may read), `_INBOX` without a user, "
    "or the URL's `inbox_prefix`",
}
"""The environment variables of a plugin process, as docs/protocol.md lists them."""


# Dead letters --------------------------------------------------------------------------------


class DeadLetterReason(enum.StrEnum):
    """Why a message was dead-lettered (the letter's ``reason``)."""

    HANDLER_ERROR = "handler-error"
    FILTER_ERROR = "filter-error"
    EXPIRED = "expired"
    MAX_DELIVERIES = "max-deliveries"
    INVALID_MESSAGE = "invalid-message"
    REJECTED_SOURCE = "rejected-source"
    QUEUE_FULL = "queue-full"
    SPOOFED = "spoofed"
    DISPATCH_FAILED = "dispatch-failed"


RETRYABLE_REASONS = frozenset({DeadLetterReason.HANDLER_ERROR, DeadLetterReason.FILTER_ERROR})
"""Reasons a durable transport may retry (redeliver) before the letter is final."""

INVALID_LETTER = "invalid-letter"
"""The reason a reader records for a letter whose own ``reason`` is missing or not a string."""

_PAYLOAD_OMITTED = "the original payload is too large to carry here"


def _letter_topic(sender: str) -> str:
    """Where ``sender`` publishes its letters: ``system/dead-letter/<sender>`` (see
    "Identity"), or ``system/dead-letter`` for a sender that is no topic segment."""
    try:
        topic = normalize_topic(f"{DEAD_LETTER_TOPIC}/{sender}")
    except InvalidTopic:
        return DEAD_LETTER_TOPIC
    return topic if topic.count("/") == 2 else DEAD_LETTER_TOPIC


def dead_letter(
    reason: DeadLetterReason | str,
    *,
    source: str,
    timestamp: str,
    subscriber: str | None,
    subscription: str | None,
    original: Message | None = None,
    error: BaseException | None = None,
    raw: bytes | None = None,
    max_size: int | None = None,
    **extra: Any,
) -> Message:
    """The letter for a message that could not be handled, as docs/protocol.md describes.

    ``original`` is the message (its envelope travels in ``message``, its headers on the
    letter, so the trace continues); ``raw`` instead, bytes that are not a message
    (``message`` null, ``raw`` their text, cut to half of ``max_size``). When the letter
    would exceed ``max_size``, the original's payload is replaced by null and
    ``payloadOmitted`` says why. ``extra`` adds fields (``deliveries``). The letter goes
    on its sender's own topic, ``system/dead-letter/<source>``.
    """
    fields: dict[str, Any] = {
        "reason": str(reason),
        "error": None if error is None else {"type": type(error).__name__, "message": str(error)},
        "subscriber": subscriber,
        "subscription": subscription,
        "message": None if original is None else original.to_dict(),
    }
    if raw is not None:
        limit = len(raw) if max_size is None else max_size // 2
        fields["raw"] = raw[:limit].decode("utf-8", errors="replace")
        fields["rawTruncated"] = len(raw) > limit
    fields.update(extra)
    topic = _letter_topic(source)
    letter = Message(
        topic=topic,
        message_type=MessageType.EVENT,
        source=source,
        timestamp=timestamp,
        headers={} if original is None else dict(original.headers),
        payload=fields,
    )
    too_large = max_size is not None and len(letter.encode()) > max_size
    if too_large and fields["message"] is not None:
        fields["message"] = {**fields["message"], "payload": None}
        fields["payloadOmitted"] = _PAYLOAD_OMITTED
        letter = Message(
            topic=topic,
            message_type=MessageType.EVENT,
            source=source,
            timestamp=timestamp,
            headers=letter.headers,
            payload=fields,
        )
    return letter


@dataclass(frozen=True)
class DeadLetterFields:
    """What a reader takes from a letter's payload (`parse_dead_letter`)."""

    reason: str
    topic: str | None
    message_id: str | None
    subscriber: str | None
    subscription: str | None
    error_type: str | None
    error_message: str | None
    problem: str | None
    """Why the payload does not follow the protocol, or None."""


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_dead_letter(payload: Any) -> DeadLetterFields:
    """Read a letter's payload, never raising: what does not follow the protocol is named in
    ``problem`` (and a missing ``reason`` is `INVALID_LETTER`)."""
    problems: list[str] = []
    if not isinstance(payload, dict):
        return DeadLetterFields(
            INVALID_LETTER, None, None, None, None, None, None,
            f"the letter is a {type(payload).__name__}, not an object",
        )  # fmt: skip
    reason = payload.get("reason")
    if not isinstance(reason, str) or not reason:
        problems.append(f"reason: must be a non-empty string, not {reason!r}")
        reason = INVALID_LETTER
    error = payload.get("error")
    error_type = error_message = None
    if isinstance(error, dict):
        error_type = _optional_str(error.get("type"))
        error_message = _optional_str(error.get("message"))
        if error_type is None or error_message is None:
            problems.append("error: must be null or {type: str, message: str}")
    elif error is not None:
        problems.append(f"error: must be null or an object, not {type(error).__name__}")
        error_message = str(error)
    subscriber = payload.get("subscriber")
    if not isinstance(subscriber, str | None):
        problems.append(f"subscriber: must be a string or null, not {subscriber!r}")
    subscription = payload.get("subscription")
    if subscription is not None and not isinstance(subscription, str):
        problems.append(f"subscription: must be a string or null, not {subscription!r}")
    original = payload.get("message")
    topic = message_id = None
    if isinstance(original, dict):
        topic = _optional_str(original.get("topic"))
        message_id = _optional_str(original.get("messageId"))
        if topic is None:
            problems.append("message.topic: missing or not a string")
    elif original is None and isinstance(payload.get("raw"), str):
        pass  # bytes that were not a message: their text travels in ``raw``
    else:
        problems.append(
            f"message: must be the original envelope (or null with raw), not "
            f"{type(original).__name__}"
        )
    return DeadLetterFields(
        reason,
        topic,
        message_id,
        _optional_str(subscriber),
        _optional_str(subscription),
        error_type,
        error_message,
        "; ".join(problems) or None,
    )


# Payload models ------------------------------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True, strict=True)


class CommandRequest(_Wire):
    """The payload of a request on ``plugin/<id>/request``."""

    command: str = Field(description="the command's name (for example `handle_issue`)")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="the command's parameters, an object"
    )


class CommandReply(_Wire):
    """The payload of the answer to a `CommandRequest`.

    ``{status: "success", result}`` or ``{status: "error", error, errorType?,
    callerError?, fallback?}``: built with `success` and `failure`, read with `parse`.
    """

    status: Literal["success", "error"]
    result: Any = Field(default=None, description="the command's result (on success)")
    error: str | None = Field(default=None, description="what went wrong (on error)")
    error_type: str | None = Field(
        default=None, alias="errorType", description="the exception's type name"
    )
    caller_error: bool = Field(
        default=False,
        alias="callerError",
        description="the request is at fault (unknown command, bad parameters): "
        "do not retry it and do not blame the plugin",
    )
    fallback: bool = Field(
        default=False,
        description="the plugin's own breaker is open: try another plugin",
    )

    @classmethod
    def success(cls, result: Any) -> CommandReply:
        return cls(status="success", result=result)

    @classmethod
    def failure(
        cls,
        error: str,
        *,
        error_type: str | None = None,
        caller_error: bool = False,
        fallback: bool = False,
    ) -> CommandReply:
        return cls.model_validate(
            {
                "status": "error",
                "error": error,
                "errorType": error_type,
                "callerError": caller_error,
                "fallback": fallback,
            }
        )

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def to_payload(self) -> dict[str, Any]:
        """The wire form: only the fields that say something."""
        if self.ok:
            return {"status": "success", "result": self.result}
        payload: dict[str, Any] = {"status": "error", "error": self.error}
        if self.error_type is not None:
            payload["errorType"] = self.error_type
        if self.caller_error:
            payload["callerError"] = True
        if self.fallback:
            payload["fallback"] = True
        return payload

    @classmethod
    def parse(cls, payload: Any) -> CommandReply:
        """The reply in a response's payload; `InvalidMessage` when it is not one."""
        if not isinstance(payload, dict) or payload.get("status") not in ("success", "error"):
            raise InvalidMessage(f"not a {{status, result}} reply: {payload!r:.200}")
        try:
            reply = cls.model_validate(payload)
        except ValidationError as error:
            problem = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
            )
            raise InvalidMessage(f"not a {{status, result}} reply: {problem}") from None
        if not reply.ok and reply.error is None:
            return reply.model_copy(update={"error": "failed"})
        return reply


class StatusEvent(_Wire):
    """The payload on ``plugin/<id>/status``."""

    status: Literal["ready", "draining", "stopped"]
    timestamp: str | None = Field(default=None, description="ISO 8601 UTC")


class BreakerEvent(_Wire):
    """The payload on ``plugin/<id>/circuit-breaker``."""

    state: Literal["closed", "open", "half_open", "forced_open", "disabled"]
    previous_state: str | None = Field(default=None, alias="previousState")
    name: str | None = Field(default=None, description="the breaker's name")
    failures: int | None = None
    timestamp: str | None = Field(default=None, description="ISO 8601 UTC")


class _DeadLetterError(_Wire):
    type: str
    message: str


class DeadLetterPayload(_Wire):
    """The payload on ``system/dead-letter`` (built by `dead_letter`)."""

    reason: str = Field(description="a `DeadLetterReason`; readers keep unknown ones")
    error: _DeadLetterError | None = None
    subscriber: str | None = Field(description="the plugin that could not handle it")
    subscription: str | None = Field(description="the pattern (or subject) it arrived on")
    message: dict[str, Any] | None = Field(
        description="the original envelope; null for bytes that were not a message"
    )
    raw: str | None = Field(default=None, description="those bytes as text, when not a message")
    rawTruncated: bool | None = None
    payloadOmitted: str | None = None
    deliveries: int | None = None


class RpcRequest(_Wire):
    """The payload of a request on ``plugin/<id>/rpc``: a JSON-RPC 2.0 request object."""

    jsonrpc: Literal["2.0"]
    method: str = Field(description="the method's name (`rpc.discover` lists them)")
    params: dict[str, Any] | list[Any] | None = Field(
        default=None, description="by name (object) or by position (array)"
    )
    id: int | str | None = None


class RpcErrorObject(_Wire):
    """A JSON-RPC 2.0 error: -32600 invalid request, -32601 no such method, -32602
    invalid parameters, -32603 the method failed (``data`` its ``{type, message}``)."""

    code: int
    message: str
    data: Any = None


class RpcResponse(_Wire):
    """The payload of the response to an `RpcRequest`: a JSON-RPC 2.0 response object."""

    jsonrpc: Literal["2.0"]
    result: Any = None
    error: RpcErrorObject | None = None
    id: int | str | None = None


class ErrorResponse(_Wire):
    """The payload of a response whose ``headers.status`` is ``error``: the responder
    could not handle the request (its handler failed, the request was not a message)."""

    error: _DeadLetterError


ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every message: one UTF-8 JSON object (docs/protocol.md, The envelope)",
    "required": ["topic"],
    "properties": {
        "messageId": {"type": "string", "description": "unique; the duplicate-suppression key"},
        "correlationId": {
            "type": ["string", "null"],
            "description": "ties a response to its request",
        },
        "timestamp": {"type": "string", "description": "ISO 8601 UTC, as toISOString()"},
        "source": {"type": "string", "description": "plugin id of the sender"},
        "destination": {"type": "string", "description": "plugin id it is meant for, or *"},
        "topic": {"type": "string", "maxLength": 512, "description": "canonical / form"},
        "messageType": {"type": "string", "enum": ["request", "response", "event", "command"]},
        "priority": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "payload": {"description": "the application data, plain JSON"},
        "metadata": {
            "type": "object",
            "properties": {
                "retryCount": {"type": "integer", "minimum": 0},
                "timeout": {"type": ["integer", "null"], "description": "milliseconds"},
                "expiresAt": {"type": ["string", "null"], "description": "ISO 8601"},
            },
        },
    },
}
"""The envelope as a JSON Schema (for the AsyncAPI document)."""
