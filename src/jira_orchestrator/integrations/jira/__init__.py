"""Jira Cloud: webhook events in, durably; needs the ``web`` extra.

`WebhookReceiver` serves ``POST /webhooks/jira`` on the project's HTTP server and stores
each accepted event in a `WebhookInbox` before answering; the processor takes them out
with `WebhookInbox.claim`, `complete` and `fail`. Webhook bodies are parsed by
`parse_event` into a `WebhookEvent`.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
except ImportError as error:  # depends on the installed extras
    raise ImportError(
        "the Jira integration needs the 'web' extra: pip install 'jira-orchestrator[web]'"
    ) from error

from jira_orchestrator.integrations.jira.events import (
    Comment,
    EventKind,
    FieldChange,
    InvalidWebhookEvent,
    WebhookEvent,
    parse_event,
    parse_jira_time,
)
from jira_orchestrator.integrations.jira.inbox import (
    InboxCorrupt,
    InboxError,
    InboxEvent,
    InboxState,
    InboxWriter,
    Stored,
    WebhookInbox,
)
from jira_orchestrator.integrations.jira.webhooks import (
    DEFAULT_MAX_BODY_BYTES,
    IDENTIFIER_HEADER,
    RETRY_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_PATH,
    Secret,
    WebhookConfigError,
    WebhookReceiver,
    secret_from_env,
    sign,
    verify_signature,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "IDENTIFIER_HEADER",
    "RETRY_HEADER",
    "SIGNATURE_HEADER",
    "WEBHOOK_PATH",
    "Comment",
    "EventKind",
    "FieldChange",
    "InboxCorrupt",
    "InboxError",
    "InboxEvent",
    "InboxState",
    "InboxWriter",
    "InvalidWebhookEvent",
    "Secret",
    "Stored",
    "WebhookConfigError",
    "WebhookEvent",
    "WebhookInbox",
    "WebhookReceiver",
    "parse_event",
    "parse_jira_time",
    "secret_from_env",
    "sign",
    "verify_signature",
]
