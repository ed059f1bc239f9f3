"""``jira-orchestrator asyncapi``: the wire protocol as an AsyncAPI 3.0 document."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml

from jira_orchestrator import __version__
from jira_orchestrator._core.asyncapi import PluginChannels, asyncapi_document
from jira_orchestrator.cli._errors import EXIT_USAGE, fail
from jira_orchestrator.cli._files import write_text
from jira_orchestrator.plugins import PluginInfo, discover_plugins
from jira_orchestrator.plugins.runtime import BUILTIN_RPC

__all__ = ["asyncapi"]


class Format(StrEnum):
    json = "json"
    yaml = "yaml"


def _channels(plugin: PluginInfo) -> PluginChannels:
    manifest = plugin.manifest
    rpc = manifest.communication.rpc
    commands = ("handle_issue", *(m for m in rpc.methods if m not in BUILTIN_RPC))
    return PluginChannels(
        id=manifest.name,
        description=manifest.description,
        commands=tuple(dict.fromkeys(commands)),
        methods=tuple(rpc.methods) if rpc.enabled else None,
    )


def asyncapi(
    plugins: Annotated[
        Path | None,
        typer.Option(help="a folder of plugins: add each one's request, RPC and status channels"),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
    ] = None,
    format: Annotated[Format, typer.Option(help="json or yaml")] = Format.json,
) -> None:
    """Print the wire protocol as an AsyncAPI 3.0 document (channels, messages, schemas)."""
    channels: list[PluginChannels] = []
    if plugins is not None:
        if not plugins.is_dir():
            raise fail(f"{plugins}: no such folder of plugins", EXIT_USAGE)
        catalog = discover_plugins(plugins)
        if catalog.problems:
            for problem in catalog.problems[:-1]:
                typer.echo(f"error: {problem}", err=True)
            raise fail(catalog.problems[-1], EXIT_USAGE)
        if not catalog.plugins:
            raise fail(f"{plugins}: no plugin in this folder", EXIT_USAGE)
        channels = [_channels(plugin) for plugin in catalog.plugins]
    document = asyncapi_document(channels, version=__version__)
    if format is Format.yaml:
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text(output, text)
        typer.echo(f"wrote {output}", err=True)
