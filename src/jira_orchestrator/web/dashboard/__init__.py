"""The operator dashboard: pages and a JSON API on the project's HTTP server.

    dashboard = Dashboard(bus, dead_letters=..., tasks=..., decisions=..., router=...)
    dashboard = Dashboard.of(orchestrator)     # or: everything an orchestrator has
    async with dashboard, HTTPServer(dashboard.routes(), ready_checks={"dashboard":
                                     dashboard.ready}) as web:
        ...

See docs/dashboard.md for the pages, the API and the security model.
"""

from __future__ import annotations

from jira_orchestrator.web.dashboard.app import DASHBOARD_ID, Dashboard, IssueFetcher
from jira_orchestrator.web.dashboard.data import redact_url
from jira_orchestrator.web.dashboard.live import DEFAULT_WINDOW, LiveView, PluginView
from jira_orchestrator.web.dashboard.security import (
    TOKEN_ENV,
    DashboardSecurityError,
    Guard,
    check_bind,
    is_loopback,
)

__all__ = [
    "DASHBOARD_ID",
    "DEFAULT_WINDOW",
    "TOKEN_ENV",
    "Dashboard",
    "DashboardSecurityError",
    "Guard",
    "IssueFetcher",
    "LiveView",
    "PluginView",
    "check_bind",
    "is_loopback",
    "redact_url",
]
