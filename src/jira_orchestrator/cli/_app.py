"""The root typer application; each area adds its commands as a sub-application."""

from __future__ import annotations

import typer

from jira_orchestrator import __version__
from jira_orchestrator.cli.asyncapi import asyncapi
from jira_orchestrator.cli.dashboard import dashboard
from jira_orchestrator.cli.decisions import decisions_app
from jira_orchestrator.cli.demo import demo
from jira_orchestrator.cli.dlq import dlq_app
from jira_orchestrator.cli.jira import jira_app
from jira_orchestrator.cli.plugins import plugins_app
from jira_orchestrator.cli.route import route
from jira_orchestrator.cli.sandbox import sandbox
from jira_orchestrator.cli.serve import serve
from jira_orchestrator.cli.tasks import tasks_app
from jira_orchestrator.cli.up import nats_config, up

__all__ = ["app", "main"]

app = typer.Typer(
    name="jira-orchestrator",
    help="Route requests and Jira issues to agent plugins, and run the plugin ecosystem.",
    no_args_is_help=True,
    add_completion=False,
)

app.add_typer(plugins_app, name="plugins")
app.add_typer(dlq_app, name="dlq")
app.add_typer(jira_app, name="jira")
app.add_typer(decisions_app, name="decisions")
app.add_typer(tasks_app, name="tasks")
app.command()(route)
app.command()(demo)
app.command()(serve)
app.command()(up)
app.command("nats-config")(nats_config)
app.command()(sandbox)
app.command()(dashboard)
app.command()(asyncapi)


@app.callback()
def _root() -> None:
    """Route requests and Jira issues to agent plugins, and run the plugin ecosystem."""


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    app()
