"""``jira-orchestrator jira``: write, validate and check the Jira configuration."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from jira_orchestrator.cli._errors import EXIT_FAILURE, EXIT_USAGE, fail, need_web_extra
from jira_orchestrator.cli._files import write_text

__all__ = ["jira_app"]

jira_app = typer.Typer(
    help="Connect to a Jira Cloud site: write, validate and check the configuration.",
    no_args_is_help=True,
)

CONFIG_FILE = "jira-orchestrator.toml"
ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help=f"The configuration file ({CONFIG_FILE}).")
]


@jira_app.command("init")
def init(
    sandbox: Annotated[
        str | None,
        typer.Option(
            help="The URL of a sandbox (`jira-orchestrator sandbox`): print a configuration"
            " that works with it unchanged."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Print a commented configuration to start from."""
    need_web_extra("jira init")
    from jira_orchestrator.integrations.jira.check import init_text

    if sandbox is not None and not sandbox.startswith(("http://", "https://")):
        raise fail(f"--sandbox: not an http(s) URL: {sandbox!r}", EXIT_USAGE)
    text = init_text(sandbox)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text(output, text)


@jira_app.command("check")
def check(config: ConfigOption = Path(CONFIG_FILE)) -> None:
    """Sign in, find the projects and the transitions; say exactly what is wrong."""
    need_web_extra("jira check")
    from jira_orchestrator.integrations.jira.check import check as check_config
    from jira_orchestrator.integrations.jira.config import load_config
    from jira_orchestrator.integrations.jira.errors import JiraConfigError

    try:
        loaded = load_config(config)
    except JiraConfigError as exc:
        raise fail("\n".join(exc.problems), EXIT_USAGE) from None
    findings = asyncio.run(check_config(loaded))
    for finding in findings:
        typer.echo(str(finding), err=finding.level != "ok")
    if any(finding.level == "error" for finding in findings):
        raise typer.Exit(EXIT_FAILURE)


@jira_app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of the configuration (schemas/jira-config.schema.json)."""
    need_web_extra("jira schema")
    from jira_orchestrator.integrations.jira.config import config_json_schema_text

    text = config_json_schema_text()
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text(output, text)
