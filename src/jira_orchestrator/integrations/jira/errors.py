"""Errors of the Jira integration, mapped from Jira's HTTP answers at the client boundary.

    JiraError                          Jira refused or failed a call; carries ``status``,
    │                                  ``method``, ``path`` and Jira's ``messages``
    ├── JiraAuthError (PermissionError)    401 or 403: wrong credentials or no permission
    ├── JiraNotFound (LookupError)         404: no such issue (or no right to see it)
    ├── JiraConflict                       409: the resource changed under the call
    ├── JiraRateLimited                    429: ``retry_after`` seconds, when Jira said
    ├── JiraUnavailable                    5xx, a timeout or a broken connection
    └── JiraRequestError (ValueError)      any other 4xx: the request itself is wrong
    JiraConfigError (ValueError)       jira-orchestrator.toml: every problem at once

No error ever holds a credential: messages are built from the status, the method, the path
and what Jira wrote in ``errorMessages`` / ``errors``.
"""

from __future__ import annotations

from collections.abc import Sequence

from jira_orchestrator._core.errors import JiraOrchestratorError

__all__ = [
    "JiraAuthError",
    "JiraConfigError",
    "JiraConflict",
    "JiraError",
    "JiraNotFound",
    "JiraRateLimited",
    "JiraRequestError",
    "JiraUnavailable",
]


class JiraError(JiraOrchestratorError):
    """Jira refused or failed a call."""

    def __init__(
        self,
        status: int | None,
        method: str,
        path: str,
        messages: Sequence[str] = (),
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.messages = tuple(messages)
        self.retry_after = retry_after
        what = f"HTTP {status}" if status is not None else "no answer"
        detail = "; ".join(self.messages) if self.messages else type(self).__doc__ or ""
        super().__init__(f"Jira {method} {path}: {what}: {detail.strip()}")


class JiraAuthError(JiraError, PermissionError):
    """Jira did not accept the credentials, or they lack the permission."""


class JiraNotFound(JiraError, LookupError):
    """No such issue or resource, or the user may not see it."""


class JiraConflict(JiraError):
    """The resource changed under the call (HTTP 409)."""


class JiraRateLimited(JiraError):
    """Jira asked to slow down (HTTP 429); ``retry_after`` in seconds when it said."""


class JiraUnavailable(JiraError):
    """Jira failed (5xx), did not answer in time, or the connection broke."""


class JiraRequestError(JiraError, ValueError):
    """Jira refused the request as malformed or not allowed (another 4xx)."""


class JiraConfigError(JiraOrchestratorError, ValueError):
    """A configuration file with problems; ``problems`` lists each as ``file: path: message``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))
