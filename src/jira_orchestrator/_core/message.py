"""The message envelope: the wire protocol's one data type (see docs/protocol.md).

A `Message` is immutable. Its JSON form uses the seed's camelCase names and always holds
every field, so ``Message.decode(m.encode()) == m`` and, for bytes the encoder wrote,
``Message.decode(b).encode() == b``.
"""

from __future__ import annotations

import math
from enum import Enum, StrEnum
from typing import Any

import msgspec
from msgspec.structs import force_setattr

from jira_orchestrator._core.clock import format_timestamp, parse_timestamp, wall
from jira_orchestrator._core.errors import InvalidMessage, InvalidTopic, MessageTooLarge
from jira_orchestrator._core.ids import new_id
from jira_orchestrator._core.topics import normalize_topic

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_PRIORITY",
    "Message",
    "MessageMetadata",
    "MessageType",
    "all_strings",
    "is_plain_json",
    "payload_size",
    "private_copy",
    "restamp",
    "validate_payload",
]

DEFAULT_PRIORITY = 5
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
MAX_PAYLOAD_DEPTH = 64


class MessageType(StrEnum):
    """What a message is for; the value is its wire form."""

    REQUEST = "request"
    RESPONSE = "response"
    EVENT = "event"
    COMMAND = "command"


class MessageMetadata(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Delivery metadata. ``timeout`` is in milliseconds on the wire, as the seed writes it."""

    retry_count: int = 0
    timeout_ms: int | None = msgspec.field(default=None, name="timeout")
    expires_at: str | None = None

    def __post_init__(self) -> None:
        if type(self.retry_count) is not int or self.retry_count < 0:
            raise InvalidMessage(
                f"metadata.retryCount: must be a non-negative integer, not {self.retry_count!r}"
            )
        if self.timeout_ms is not None and (
            type(self.timeout_ms) is not int or self.timeout_ms < 0
        ):
            raise InvalidMessage(
                f"metadata.timeout: must be a non-negative integer of milliseconds, "
                f"not {self.timeout_ms!r}"
            )
        if self.expires_at is not None:
            try:
                parse_timestamp(self.expires_at)
            except (TypeError, ValueError):
                raise InvalidMessage(
                    f"metadata.expiresAt: not an ISO 8601 timestamp: {self.expires_at!r}"
                ) from None

    def expires_at_seconds(self) -> float | None:
        """``expiresAt`` as seconds since the epoch, or None."""
        expires_at = self.expires_at
        return None if expires_at is None else parse_timestamp(expires_at)


_NO_METADATA = MessageMetadata()


def _now() -> str:
    return format_timestamp(wall())


# gc=False: the garbage collector does not track messages. A message holds strings and
# plain JSON data, so it is never part of a reference cycle (one that put a message inside
# its own payload would never be freed), and a bus at full load keeps thousands queued:
# tracking them made garbage collection a sixth of the cost of a publish.
class Message(msgspec.Struct, frozen=True, kw_only=True, rename="camel", gc=False):
    """One message on the bus.

    ``topic`` is stored in its canonical ``/`` form. ``priority`` is 1 (lowest) to 10.
    ``headers`` carries ``traceId``, ``spanId``, ``userId``, ``sessionId`` and free keys,
    all strings. ``payload`` is any JSON value. Raises `InvalidMessage` (or `InvalidTopic`)
    when a field is out of its range.
    """

    message_id: str = msgspec.field(default_factory=new_id)
    correlation_id: str | None = None
    timestamp: str = msgspec.field(default_factory=_now)
    source: str = ""
    destination: str = "*"
    topic: str
    message_type: MessageType = MessageType.EVENT
    priority: int = DEFAULT_PRIORITY
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    payload: Any = None
    metadata: MessageMetadata = _NO_METADATA

    def __post_init__(self) -> None:
        topic = self.topic
        canonical = normalize_topic(topic)  # cached: cheap for a topic seen before
        if canonical is not topic:
            force_setattr(self, "topic", canonical)
        priority = self.priority
        headers = self.headers
        correlation_id = self.correlation_id
        # The common case in one expression (every publish and decode builds a Message);
        # anything unusual goes through `_check_fields`, which names the bad field.
        if not (
            type(self.message_type) is MessageType
            and type(priority) is int
            and 1 <= priority <= 10
            and type(self.message_id) is str
            and type(self.timestamp) is str
            and type(self.source) is str
            and type(self.destination) is str
            and (correlation_id is None or type(correlation_id) is str)
            and type(self.metadata) is MessageMetadata
            and type(headers) is dict
            and all_strings(headers)
        ):
            self._check_fields()

    def _check_fields(self) -> None:
        if type(self.message_type) is not MessageType:
            try:
                force_setattr(self, "message_type", MessageType(self.message_type))
            except ValueError:
                allowed = ", ".join(t.value for t in MessageType)
                raise InvalidMessage(
                    f"messageType: {self.message_type!r} is not one of {allowed}"
                ) from None
        priority = self.priority
        if type(priority) is not int or not 1 <= priority <= 10:
            raise InvalidMessage(f"priority: must be an integer from 1 to 10, not {priority!r}")
        if not (
            type(self.message_id) is str
            and type(self.timestamp) is str
            and type(self.source) is str
            and type(self.destination) is str
            and (self.correlation_id is None or type(self.correlation_id) is str)
            and type(self.metadata) is MessageMetadata
        ):
            raise InvalidMessage(_first_bad_field(self))
        headers = self.headers
        if type(headers) is not dict:
            raise InvalidMessage("headers: must be an object of strings")
        for key, value in headers.items():
            if type(value) is not str or type(key) is not str:
                raise InvalidMessage(f"headers.{key}: header names and values must be strings")

    def deadline(self) -> float | None:
        """When its sender stops waiting for this message (``metadata.expiresAt``), in
        seconds since the epoch; None without one (or when it cannot be read).

        The bus sets it on every request (the time of sending plus the timeout) and does
        not start a handler for a message past it: that message is dead-lettered as
        ``expired``. ``metadata.timeout`` alone sets no deadline: it is how long the sender
        said it would wait, measured from a timestamp that may come from another clock.
        """
        metadata = self.metadata
        if metadata is _NO_METADATA or metadata.expires_at is None:
            return None  # the common case: nothing to parse
        try:
            return parse_timestamp(metadata.expires_at)
        except (TypeError, ValueError):
            return None

    def encode(self) -> bytes:
        """The JSON bytes of this message.

        Raises `InvalidMessage` naming the field (and the path in the payload) that JSON
        cannot carry: a string with a lone surrogate, an integer of over 4,300 digits.
        """
        try:
            return _encoder.encode(self)
        except (TypeError, ValueError) as error:
            raise _unencodable_message(self, error) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this message, camelCase keys."""
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result

    @classmethod
    def decode(
        cls, data: bytes | bytearray | memoryview | str, *, max_size: int | None = None
    ) -> Message:
        """Parse JSON bytes into a message; anything malformed raises `InvalidMessage` only."""
        try:
            size = len(data)
            if max_size is not None and size > max_size:
                raise MessageTooLarge(size, max_size, "<undecoded>")
            return _decoder.decode(data)
        except InvalidMessage:
            raise
        except msgspec.ValidationError as error:
            raise InvalidMessage(f"invalid message: {error}") from None
        except msgspec.DecodeError as error:
            raise InvalidMessage(f"malformed JSON: {error}") from None
        except Exception as error:  # the contract: arbitrary bytes raise InvalidMessage only
            raise InvalidMessage(f"undecodable message: {type(error).__name__}: {error}") from None

    @classmethod
    def from_dict(cls, data: Any) -> Message:
        """Build a message from its JSON object (camelCase keys); raise `InvalidMessage`."""
        try:
            return msgspec.convert(data, cls)
        except InvalidMessage:
            raise
        except msgspec.ValidationError as error:
            raise InvalidMessage(f"invalid message: {error}") from None
        except Exception as error:
            raise InvalidMessage(f"invalid message: {type(error).__name__}: {error}") from None


def restamp(
    template: Message,
    message_id: str,
    timestamp: str,
    topic: str,
    headers: dict[str, str],
    payload: Any,
) -> Message:
    """A copy of ``template`` with its per-message fields replaced, not validated again.

    The bus's publish fast path. ``template`` passed the constructor's checks; the caller
    vouches for the rest: a new id, a timestamp from `format_timestamp`, a canonical topic,
    string headers and a payload `validate_payload` accepted. Checking them all again in
    ``__post_init__`` cost more than the rest of a publish.
    """
    message: Message = template.__copy__()  # type: ignore[attr-defined]  # not in the stubs
    force_setattr(message, "message_id", message_id)
    force_setattr(message, "timestamp", timestamp)
    force_setattr(message, "topic", topic)
    force_setattr(message, "headers", headers)
    force_setattr(message, "payload", payload)
    return message


def private_copy(message: Message) -> Message:
    """A copy of ``message`` whose payload (JSON bytes, `msgspec.Raw`) is decoded and whose
    headers are a dict of its own: what a receiver may change without anyone else seeing.
    """
    private: Message = message.__copy__()  # type: ignore[attr-defined]  # not in the stubs
    force_setattr(private, "headers", dict(message.headers))
    force_setattr(private, "payload", _payload_decoder.decode(message.payload))
    return private


def payload_size(payload: Any, *, topic: str = "") -> int:
    """Bytes of ``payload`` in a message's JSON (it must be plain JSON data).

    Raises `InvalidMessage` naming the path of a value JSON cannot carry (see `encode`).
    """
    try:
        return len(_encoder.encode(payload))
    except (TypeError, ValueError) as error:
        raise _unencodable(payload, "payload", topic, error) from None


def _unencodable(value: Any, where: str, topic: str, error: Exception) -> InvalidMessage:
    """The `InvalidMessage` for a value the encoder refused, naming the path of the culprit."""
    path, reason = _find_unencodable(value, where)
    if not reason:
        reason = f"cannot be encoded as JSON: {type(error).__name__}: {error}"
    on = f" on {topic!r}" if topic else ""
    return InvalidMessage(f"{path}{on}: {reason}")


def _unencodable_message(message: Message, error: Exception) -> InvalidMessage:
    for where, value in (
        ("payload", message.payload),
        ("headers", message.headers),
        ("messageId", message.message_id),
        ("correlationId", message.correlation_id),
        ("timestamp", message.timestamp),
        ("source", message.source),
        ("destination", message.destination),
        ("metadata", message.metadata),
    ):
        try:
            _encoder.encode(value)
        except (TypeError, ValueError) as culprit:
            return _unencodable(value, where, message.topic, culprit)
    return _unencodable(message, "message", message.topic, error)


def _find_unencodable(value: Any, where: str) -> tuple[str, str]:
    """The path in ``value`` of the first leaf the encoder refuses, and why ("" if none).

    Only called once the encoder failed, so it may be slow: it walks ``value`` and
    encodes each key and leaf on its own.
    """
    if type(value) is dict:
        for key, item in value.items():
            reason = _leaf_problem(key)
            if reason:
                return where, f"key {key!r} is {reason}"
            path, reason = _find_unencodable(item, f"{where}.{key}")
            if reason:
                return path, reason
        return where, ""
    if type(value) is list:
        for index, item in enumerate(value):
            path, reason = _find_unencodable(item, f"{where}[{index}]")
            if reason:
                return path, reason
        return where, ""
    return where, _leaf_problem(value)


def _leaf_problem(value: Any) -> str:
    """Why the encoder refuses a scalar, or "" when it takes it."""
    try:
        _encoder.encode(value)
    except UnicodeEncodeError as error:
        if not isinstance(value, str):
            return f"{type(value).__name__} holds text that UTF-8 cannot encode"
        return (
            f"a string holding the lone surrogate {value[error.start]!r} at index "
            f"{error.start}, which UTF-8 cannot encode"
        )
    except ValueError:
        if isinstance(value, int):
            digits = int(abs(value).bit_length() * 0.30103)  # log10(2): bits to digits
            return f"an integer of about {digits:,} digits, over the 4,300 allowed (send a string)"
        return f"{type(value).__name__} cannot be encoded as JSON"
    except TypeError:
        return _not_json(value)
    return ""


def _not_json(value: Any) -> str:
    name = type(value).__name__
    if isinstance(value, str):
        return f"{name} is a str subclass, not a JSON value (pass str(...))"
    if isinstance(value, int):
        return f"{name} is an int subclass, not a JSON value (pass int(...))"
    return f"{name} is not a JSON value"


def all_strings(headers: dict[Any, Any]) -> bool:
    """Whether every key and value of ``headers`` is a ``str`` (not a subclass)."""
    for key, value in headers.items():
        if type(value) is not str or type(key) is not str:
            return False
    return True


def _first_bad_field(message: Message) -> str:
    for name, wire in (
        ("message_id", "messageId"),
        ("timestamp", "timestamp"),
        ("source", "source"),
        ("destination", "destination"),
    ):
        if type(getattr(message, name)) is not str:
            return f"{wire}: must be a string"
    if type(message.metadata) is not MessageMetadata:
        return "metadata: must be a MessageMetadata"
    return "correlationId: must be a string or null"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Message)
_payload_decoder = msgspec.json.Decoder()


class _PayloadError(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.path: list[str] = []


_SCALARS = frozenset({str, int, bool, type(None)})


def _check(value: Any, depth: int) -> None:
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is float:
        if not math.isfinite(value):
            raise _PayloadError(f"{value!r} is not a JSON number")
        return
    if depth >= MAX_PAYLOAD_DEPTH:
        raise _PayloadError(f"nested deeper than {MAX_PAYLOAD_DEPTH} levels")
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise _PayloadError(f"key {key!r} is a {type(key).__name__}; JSON keys are strings")
            if type(item) not in _SCALARS:  # most values are scalars: skip the call
                try:
                    _check(item, depth + 1)
                except _PayloadError as error:
                    error.path.append(f".{key}")
                    raise
        return
    if kind is list:
        for index, item in enumerate(value):
            if type(item) not in _SCALARS:
                try:
                    _check(item, depth + 1)
                except _PayloadError as error:
                    error.path.append(f"[{index}]")
                    raise
        return
    if isinstance(value, dict):
        _check(dict(value), depth)
        return
    if isinstance(value, list):
        _check(list(value), depth)
        return
    if isinstance(value, str | int) and not isinstance(value, float):
        if isinstance(value, Enum):
            return  # str and int enums (StrEnum, IntEnum) encode as their value
        raise _PayloadError(_not_json(value))
    if isinstance(value, float):
        _check(float(value), depth)
        return
    hint = " (use a list)" if isinstance(value, tuple | set | frozenset) else ""
    if hasattr(value, "isoformat"):
        hint = " (use .isoformat())"
    raise _PayloadError(f"{kind.__name__} is not a JSON value{hint}")


def is_plain_json(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is certainly plain JSON data: the fast path of `validate_payload`.

    True only where `_check` accepts; False means "not sure", and `_check` decides (and
    names the path). Only exact built-in types pass, so subclasses, tuples, sets, datetimes,
    non-finite floats and anything nested too deep always get `_check`'s verdict. It is
    a plain loop without exceptions or path bookkeeping: the common payload, a few small
    dicts, is checked in a fraction of `_check`'s time.
    """
    if type(value) is dict:
        for key, item in value.items():
            kind = type(item)
            if type(key) is not str:
                return False
            if kind in _SCALARS:
                continue
            if kind is float:
                if item - item == 0.0:  # finite: for inf and nan the difference is nan
                    continue
                return False
            # a container item sits at depth + 1, where `_check` wants depth < maximum
            if depth + 1 >= MAX_PAYLOAD_DEPTH or not is_plain_json(item, depth + 1):
                return False
        return True
    if type(value) is list:
        for item in value:
            kind = type(item)
            if kind in _SCALARS:
                continue
            if kind is float:
                if item - item == 0.0:
                    continue
                return False
            if depth + 1 >= MAX_PAYLOAD_DEPTH or not is_plain_json(item, depth + 1):
                return False
        return True
    kind = type(value)
    return kind in _SCALARS or (kind is float and value - value == 0.0)


def validate_payload(payload: Any, *, topic: str = "") -> None:
    """Raise `InvalidMessage` naming the path if ``payload`` is not plain JSON data.

    Plain JSON data is dict (string keys), list, str, int, finite float, bool and None, so a
    payload reads the same on every transport.
    """
    if is_plain_json(payload):
        return
    try:
        _check(payload, 0)
    except _PayloadError as error:
        where = "payload" + "".join(reversed(error.path))
        on = f" on {topic!r}" if topic else ""
        raise InvalidMessage(f"{where}{on}: {error.reason}") from None


def ensure_topic(topic: Any) -> str:
    """Canonical form of a concrete topic, or `InvalidTopic`."""
    if not isinstance(topic, str):
        raise InvalidTopic(repr(topic), 0, "a topic must be a string")
    return normalize_topic(topic)
