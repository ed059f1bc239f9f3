"""``jira-orchestrator plugins ...``: validate, list and scaffold plugins."""

from __future__ import annotations

import typer

__all__ = ["plugins_app"]

plugins_app = typer.Typer(help="Validate, list and scaffold plugins.", no_args_is_help=True)
