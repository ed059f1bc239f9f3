"""Layer 5: the project's HTTP server (Starlette on uvicorn). Needs the ``web`` extra.

`HTTPServer` runs inside the caller's asyncio program, serves ``/healthz`` and ``/readyz``
and the routes other components contribute (``/webhooks/jira``, the dashboard, ...).
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as error:  # depends on the installed extras
    raise ImportError(
        "the HTTP server needs the 'web' extra: pip install 'jira-orchestrator[web]'"
    ) from error

from jira_orchestrator.web.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    HTTPServer,
    HTTPServerError,
    ReadyCheck,
    error_response,
    parse_address,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "HTTPServer",
    "HTTPServerError",
    "ReadyCheck",
    "error_response",
    "parse_address",
]
