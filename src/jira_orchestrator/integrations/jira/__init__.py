"""Jira Cloud: webhooks in, decisions and outcomes written back; needs the ``web`` extra.

`WebhookReceiver` serves ``POST /webhooks/jira`` on the project's HTTP server and stores
each accepted event in a `WebhookInbox` before answering; the processor takes them out
with `WebhookInbox.claim`, `complete` and `fail`. Webhook bodies are parsed by
`parse_event` into a `WebhookEvent`. `JiraConfig` (`load_config`) is the configuration
file, `JiraClient` the REST v3 client, `JiraWriteBack` what a decision and its outcome look
like on the issue. `jira_orchestrator.integrations.jira.adf` builds and reads Atlassian
Document Format; `jira_orchestrator.integrations.jira.sandbox` is a stateful Jira Cloud
stand-in (``JiraSandbox``).
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
except ImportError as error:  # depends on the installed extras
    raise ImportError(
        "the Jira integration needs the 'web' extra: pip install 'jira-orchestrator[web]'"
    ) from error

from jira_orchestrator.integrations.jira.client import JiraClient
from jira_orchestrator.integrations.jira.config import JiraConfig, load_config, parse_config
from jira_orchestrator.integrations.jira.errors import (
    JiraAuthError,
    JiraConfigError,
    JiraConflict,
    JiraError,
    JiraNotFound,
    JiraRateLimited,
    JiraRequestError,
    JiraUnavailable,
)
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
from jira_orchestrator.integrations.jira.writeback import JiraWriteBack, Written

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
    "JiraAuthError",
    "JiraClient",
    "JiraConfig",
    "JiraConfigError",
    "JiraConflict",
    "JiraError",
    "JiraNotFound",
    "JiraRateLimited",
    "JiraRequestError",
    "JiraUnavailable",
    "JiraWriteBack",
    "Secret",
    "Stored",
    "WebhookConfigError",
    "WebhookEvent",
    "WebhookInbox",
    "WebhookReceiver",
    "Written",
    "load_config",
    "parse_config",
    "parse_event",
    "parse_jira_time",
    "secret_from_env",
    "sign",
    "verify_signature",
]
