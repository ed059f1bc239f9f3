"""The dashboard's data in its JSON form: query parameters read strictly, store records
turned into the dicts the API returns and the pages render. Nothing here knows HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from jira_orchestrator._core.clock import format_timestamp
from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator._core.redact import redact_url
from jira_orchestrator.orchestrator import DeadLetter, SagaRun, TaskRecord
from jira_orchestrator.routing.store import Correction, Outcome, StoredDecision

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "BadParam",
    "cursor_param",
    "decision_detail",
    "decision_summary",
    "issue_key_of",
    "letter_detail",
    "letter_summary",
    "limit_param",
    "redact_url",
    "saga_detail",
    "saga_summary",
    "task_detail",
    "task_summary",
    "text_param",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_TEXT = 512
_MAX_CURSOR = 2**63 - 1
_SHORT = 300
ISSUE_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,49}-[1-9][0-9]{0,17}$")


class BadParam(JiraOrchestratorError, ValueError):
    """A query parameter or form field that cannot be used; names it and says why."""

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        self.detail = detail
        super().__init__(f"{name}: {detail}")


def _one(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadParam(name, "must be text")
    return value


def limit_param(params: Mapping[str, Any]) -> int:
    """``limit``: 1 to 500, 50 by default."""
    text = _one(params, "limit")
    if text is None or text == "":
        return DEFAULT_LIMIT
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadParam("limit", f"must be a whole number from 1 to {MAX_LIMIT}, got {text[:40]!r}")
    return int(text)


def cursor_param(params: Mapping[str, Any], name: str = "below") -> int | None:
    """A page cursor: the ``next`` of the previous page (a positive whole number)."""
    text = _one(params, name)
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= _MAX_CURSOR:
        raise BadParam(name, f"must be the 'next' of a previous page, got {text[:40]!r}")
    return int(text)


def text_param(params: Mapping[str, Any], name: str, *, limit: int = MAX_TEXT) -> str | None:
    """A filter: text of at most ``limit`` characters, without control characters (empty:
    no filter)."""
    text = _one(params, name)
    if text is None or text.strip() == "":
        return None
    if len(text) > limit:
        raise BadParam(name, f"at most {limit} characters, got {len(text)}")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise BadParam(name, "must not contain control characters")
    return text.strip()


def _short(text: str | None, limit: int = _SHORT) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(seconds: float | None) -> str | None:
    return None if seconds is None else format_timestamp(seconds)


def pretty(value: Any) -> str:
    """Indented JSON for a page (escaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr, sort_keys=True)


# -- dead letters ---------------------------------------------------------------------------


def letter_summary(letter: DeadLetter) -> dict[str, Any]:
    error = letter.error_message
    if letter.error_type:
        error = f"{letter.error_type}: {letter.error_message or ''}"
    return {
        "id": letter.id,
        "receivedAt": _when(letter.received_at),
        "reason": letter.reason,
        "topic": letter.topic,
        "messageId": letter.message_id,
        "subscriber": letter.subscriber,
        "sender": letter.sender,
        "error": _short(error),
        "problem": _short(letter.problem),
        "replayCount": letter.replay_count,
        "replayedAt": _when(letter.replayed_at),
        "replayedAs": letter.replayed_as,
    }


def letter_detail(letter: DeadLetter) -> dict[str, Any]:
    return letter.to_dict()


# -- tasks ----------------------------------------------------------------------------------


def issue_key_of(task: TaskRecord) -> str | None:
    """The Jira issue key of a task's request, when it has a well-formed one."""
    request = task.request.get("request") if isinstance(task.request, dict) else None
    parameters = task.request.get("parameters") if isinstance(task.request, dict) else None
    for source in (request, parameters):
        if isinstance(source, dict) and isinstance(source.get("key"), str):
            key = source["key"]
            return key if ISSUE_KEY.match(key) else None
    return None


def issue_url(jira_url: str | None, key: str | None) -> str | None:
    if jira_url is None or key is None:
        return None
    return f"{jira_url.rstrip('/')}/browse/{quote(key)}"


def _attempts(task: TaskRecord) -> list[dict[str, Any]]:
    return [a for a in task.attempts if isinstance(a, dict)]


def task_summary(task: TaskRecord, jira_url: str | None = None) -> dict[str, Any]:
    attempts = _attempts(task)
    tried = [a.get("plugin") for a in attempts if a.get("outcome") != "skipped"]
    first = attempts[0].get("plugin") if attempts else None
    key = issue_key_of(task)
    return {
        "id": task.id,
        "status": task.status,
        "command": task.command,
        "plugin": task.plugin,
        "attempts": len(tried),
        "fallbackUsed": task.plugin is not None and first is not None and task.plugin != first,
        "issueKey": key,
        "issueUrl": issue_url(jira_url, key),
        "createdAt": _when(task.created),
        "updatedAt": _when(task.updated),
        "error": _short(task.error),
    }


def task_detail(task: TaskRecord, jira_url: str | None = None) -> dict[str, Any]:
    return {
        **task_summary(task, jira_url),
        "error": task.error,
        "request": task.request,
        "attemptList": _attempts(task),
        "result": task.result,
    }


# -- decisions ------------------------------------------------------------------------------


def decision_summary(stored: StoredDecision, correction: Correction | None) -> dict[str, Any]:
    decision = stored.decision
    confidence = decision.get("confidence")
    return {
        "id": stored.request_id,
        "createdAt": _when(stored.created_at),
        "text": _short(stored.text, 200),
        "primaryPlugin": stored.primary_plugin,
        "confidence": confidence if isinstance(confidence, int | float) else None,
        "fallbackPlugins": [p for p in decision.get("fallbackPlugins") or [] if isinstance(p, str)],
        "correctedTo": correction.plugin if correction else None,
    }


def decision_detail(
    stored: StoredDecision, correction: Correction | None, outcomes: list[Outcome]
) -> dict[str, Any]:
    request = stored.request()
    return {
        **decision_summary(stored, correction),
        "text": stored.text,
        "request": {
            "files": list(request.files),
            "labels": list(request.labels),
            "components": list(request.components),
            "issueType": request.issue_type,
            "issueKey": request.issue_key,
            "requester": request.requester,
        },
        "decision": stored.decision,
        "outcomes": [
            {"plugin": o.plugin, "success": o.success, "at": _when(o.created_at)} for o in outcomes
        ],
    }


# -- sagas ----------------------------------------------------------------------------------


def saga_summary(run: SagaRun) -> dict[str, Any]:
    return {
        "id": run.run_id,
        "saga": run.saga,
        "status": run.status,
        "startedAt": _when(run.started_at),
        "updatedAt": _when(run.updated_at),
        "steps": len(run.steps),
        "compensated": sum(1 for s in run.steps if s.status == "compensated"),
        "failedSteps": sum(
            1 for s in run.steps if s.status in ("failed", "compensation-failed", "interrupted")
        ),
        "error": _short(run.error),
    }


def saga_detail(run: SagaRun) -> dict[str, Any]:
    return {
        **saga_summary(run),
        "error": run.error,
        "input": run.input,
        "stepList": [
            {
                "position": s.position,
                "step": s.step_id,
                "status": s.status,
                "result": s.result,
                "error": s.error,
            }
            for s in run.steps
        ],
    }
