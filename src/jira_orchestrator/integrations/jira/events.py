"""Jira Cloud webhook bodies, parsed leniently into a typed `WebhookEvent`.

Webhook bodies use the REST **v2** representation even on sites whose REST API is v3:
descriptions and comment bodies are wiki-markup strings (or null), dates carry ``+0000``
offsets without a colon, ``timestamp`` is epoch milliseconds, 2019-era users still have
``name``/``key`` while newer ones carry only ``accountId``, and new top-level keys appear
over time. The parser reads only what it needs and ignores the rest; it refuses a body
only when it is not a Jira event at all (`InvalidWebhookEvent`, with a reason code and a
sentence naming the field).

Changelog items are matched on ``fieldId`` (stable), never on ``field`` (a display name
such as "Status" or "Fix Version" that changes with the site's language).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from jira_orchestrator._core.errors import JiraOrchestratorError

__all__ = [
    "Comment",
    "EventKind",
    "FieldChange",
    "InvalidWebhookEvent",
    "WebhookEvent",
    "parse_event",
    "parse_jira_time",
]

EventKind = Literal["issue_created", "issue_updated", "issue_deleted", "comment_created", "other"]

_KINDS: dict[str, EventKind] = {
    "jira:issue_created": "issue_created",
    "jira:issue_updated": "issue_updated",
    "jira:issue_deleted": "issue_deleted",
    "comment_created": "comment_created",
}


class InvalidWebhookEvent(JiraOrchestratorError, ValueError):
    """A body that is not a Jira event; ``code`` is a short reason (``not-json``, ...)."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class FieldChange:
    """One changelog item. ``from_value``/``to_value`` are Jira's ids, the strings its text."""

    field_id: str
    field: str | None
    from_value: str | None
    from_string: str | None
    to_value: str | None
    to_string: str | None


@dataclass(frozen=True)
class Comment:
    """The comment of a comment event; ``body`` is wiki markup, as webhooks send it."""

    id: str | None
    body: str
    author: str | None
    updated: float | None


@dataclass(frozen=True)
class WebhookEvent:
    """One Jira webhook event.

    ``updated`` (seconds since the epoch) is the issue's ``fields.updated`` when the body
    has it, else the comment's, else the event's ``timestamp``: the time that orders
    events of one issue. ``actor`` is the accountId of who did it (the comment's author
    for comment events, which carry no ``user``).
    """

    kind: EventKind
    webhook_event: str
    issue_id: str
    issue_key: str
    project_key: str | None
    updated: float | None
    timestamp: float | None
    actor: str | None
    event_type: str | None
    changes: tuple[FieldChange, ...] = ()
    comment: Comment | None = None
    summary: str | None = None
    description: str | None = None
    labels: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    assignee: str | None = None
    status: str | None = None

    def change(self, field_id: str) -> FieldChange | None:
        """The changelog item for ``field_id`` (``labels``, ``assignee``, ...), if any."""
        for item in self.changes:
            if item.field_id == field_id:
                return item
        return None

    def changed(self, *field_ids: str) -> bool:
        """Whether the changelog touches any of ``field_ids``."""
        return any(item.field_id in field_ids for item in self.changes)


def parse_jira_time(text: str) -> float:
    """Seconds since the epoch from Jira's ``2019-02-15T19:18:01.707-0800``; ValueError if not.

    Also accepts ``+05:30`` and ``Z`` offsets; a time without an offset is taken as UTC.
    """
    if not isinstance(text, str):
        raise ValueError(f"not a time string: {text!r}")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except OverflowError:
        raise ValueError(f"time out of range: {text!r}") from None


def parse_event(body: bytes | str) -> WebhookEvent:
    """The event in a raw webhook body; raises `InvalidWebhookEvent` naming what is wrong."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise InvalidWebhookEvent("not-json", "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidWebhookEvent(
            "not-json",
            f"the body is not JSON or is truncated: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}",
        ) from None
    except (ValueError, RecursionError):
        raise InvalidWebhookEvent("not-json", "the body is not JSON (or nested too deep)") from None
    if not isinstance(data, dict):
        raise InvalidWebhookEvent(
            "not-an-event", f"the body is a JSON {_kind(data)}, not an object"
        )
    name = data.get("webhookEvent")
    if not isinstance(name, str) or not name:
        raise InvalidWebhookEvent(
            "no-webhook-event", "the body has no 'webhookEvent' string: not a Jira webhook event"
        )
    issue = data.get("issue")
    if not isinstance(issue, dict):
        raise InvalidWebhookEvent(
            "no-issue", f"the {name!r} event has no 'issue' object; only issue events are handled"
        )
    issue_id = _id(issue.get("id"))
    issue_key = issue.get("key")
    if issue_id is None:
        raise InvalidWebhookEvent("no-issue", f"issue.id is missing or not an id in {name!r}")
    if not isinstance(issue_key, str) or not issue_key:
        raise InvalidWebhookEvent("no-issue", f"issue.key is missing or not a string in {name!r}")
    fields = issue.get("fields")
    fields = fields if isinstance(fields, dict) else {}
    project_key = _str(_dict(fields.get("project")).get("key"))
    if project_key is None and "-" in issue_key:
        project_key = issue_key.rsplit("-", 1)[0]
    timestamp = _epoch_ms(data.get("timestamp"))
    comment = _comment(data.get("comment"))
    updated = _time(fields.get("updated"))
    if updated is None and comment is not None:
        updated = comment.updated
    if updated is None:
        updated = timestamp
    actor = _str(_dict(data.get("user")).get("accountId"))
    if actor is None and comment is not None:
        actor = comment.author
    return WebhookEvent(
        kind=_KINDS.get(name, "other"),
        webhook_event=name,
        issue_id=issue_id,
        issue_key=issue_key,
        project_key=project_key,
        updated=updated,
        timestamp=timestamp,
        actor=actor,
        event_type=_str(data.get("issue_event_type_name")),
        changes=_changes(data.get("changelog")),
        comment=comment,
        summary=_str(fields.get("summary")),
        description=_str(fields.get("description")),
        labels=tuple(label for label in _list(fields.get("labels")) if isinstance(label, str)),
        components=tuple(
            name
            for name in (_str(_dict(c).get("name")) for c in _list(fields.get("components")))
            if name is not None
        ),
        assignee=_str(_dict(fields.get("assignee")).get("accountId")),
        status=_str(_dict(fields.get("status")).get("name")),
    )


def _kind(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null"
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _id(value: Any) -> str | None:
    # Jira sends ids as strings; accept a number too (some proxies rewrite them).
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _time(value: Any) -> float | None:
    try:
        return parse_jira_time(value) if isinstance(value, str) else None
    except (ValueError, OverflowError):
        return None


def _epoch_ms(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value) / 1000
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def _comment(value: Any) -> Comment | None:
    if not isinstance(value, dict):
        return None
    body = value.get("body")
    return Comment(
        id=_id(value.get("id")),
        body=body if isinstance(body, str) else "",
        author=_str(_dict(value.get("author")).get("accountId")),
        updated=_time(value.get("updated")) or _time(value.get("created")),
    )


def _changes(value: Any) -> tuple[FieldChange, ...]:
    changes = []
    for item in _list(_dict(value).get("items")):
        if not isinstance(item, dict):
            continue
        field_id = _str(item.get("fieldId")) or _str(item.get("field"))
        if field_id is None:
            continue
        changes.append(
            FieldChange(
                field_id=field_id,
                field=_str(item.get("field")),
                from_value=_scalar(item.get("from")),
                from_string=_scalar(item.get("fromString")),
                to_value=_scalar(item.get("to")),
                to_string=_scalar(item.get("toString")),
            )
        )
    return tuple(changes)


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return value if isinstance(value, str) else str(value)
