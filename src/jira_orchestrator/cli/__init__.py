"""The ``jira-orchestrator`` command."""

from jira_orchestrator.cli._app import app, main

__all__ = ["app", "main"]
