"""``jira-orchestrator demo``: the example plugins at work on the in-process bus."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import time
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from jira_orchestrator.messagebus import get_message_bus
from jira_orchestrator.plugins import Plugin

__all__ = ["demo"]

REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("fastapi-backend", "create_endpoint", {"path": "/api/users", "method": "POST"}),
    ("fastapi-backend", "create_endpoint", {"path": "/api/users/{id}", "method": "GET"}),
    ("fastapi-backend", "create_model", {"name": "User"}),
    ("fastapi-backend", "setup_authentication", {"method": "keycloak"}),
    ("fastapi-backend", "create_endpoint", {"path": "/api/teapot", "method": "BREW"}),
]


def _load(entry: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"demo_{entry.parent.name}", entry)
    if spec is None or spec.loader is None:
        raise typer.BadParameter(f"cannot load {entry}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _run(entries: list[Path], output: Path, console: Console) -> int:
    os.environ["JIRA_ORCHESTRATOR_OUTPUT"] = str(output)
    os.environ["JIRA_ORCHESTRATOR_STATE_DIR"] = str(output / ".state")
    plugins: list[Plugin] = []
    for entry in entries:
        plugin = _load(entry).plugin
        await plugin.start()
        plugins.append(plugin)
    caller = get_message_bus("jira-orchestrator")
    table = Table(title="jira-orchestrator demo")
    for column in ("plugin", "command", "outcome", "ms", "detail"):
        table.add_column(column)
    failures = 0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("dispatching", total=len(REQUESTS))
        for plugin_id, command, parameters in REQUESTS:
            started = time.perf_counter()
            reply = await caller.request(
                topic=f"plugin/{plugin_id}/request",
                payload={"command": command, "parameters": parameters},
                timeout=10,
            )
            elapsed = (time.perf_counter() - started) * 1000
            ok = reply.get("status") == "success"
            failures += not ok
            result = reply.get("result")
            detail = (
                str(result.get("filePath") or result)
                if ok and isinstance(result, dict)
                else str(reply.get("error"))
            )
            table.add_row(plugin_id, command, "ok" if ok else "error", f"{elapsed:.1f}", detail)
            progress.advance(task)
    console.print(table)
    for plugin in plugins:
        await plugin.stop()
    console.print(f"outputs in {output}; {failures} request(s) answered with an error, as expected")
    return 0


def demo(
    plugins: Annotated[
        Path, typer.Option(help="folder of example plugins with plugin.py entry points")
    ] = Path("examples/plugins"),
    output: Annotated[Path, typer.Option(help="where the plugins write their outputs")] = Path(
        "output"
    ),
) -> None:
    """Run the example plugins in this process and send them work."""
    if not plugins.is_dir():
        typer.echo(f"error: {plugins}: no such folder of plugins", err=True)
        raise typer.Exit(1)
    entries = sorted(plugins.glob("*/plugin.py"))
    raise typer.Exit(asyncio.run(_run(entries, output.resolve(), Console())))
