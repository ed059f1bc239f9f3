"""How every command reports an error, and the exit codes they share.

Every ``jira-orchestrator`` command exits with one of these codes:

- ``0`` (``EXIT_OK``): the command did what it was asked.
- ``1`` (``EXIT_FAILURE``): the command ran and something failed: work failed, a store is
  locked or damaged, a server could not be reached, the disk is full.
- ``2`` (``EXIT_USAGE``): bad usage or bad input: a wrong option or value, a file that cannot
  be read or parsed, an id that does not exist. Nothing was changed.

Errors are one line on standard error, ``error: <what> (<where>)``, never a traceback.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "fail", "need_web_extra"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``error: message`` on standard error and return the ``typer.Exit`` to raise."""
    Console(stderr=True, soft_wrap=True).print(
        f"[red]error:[/red] {escape(message)}", highlight=False
    )
    return typer.Exit(code)


def need_web_extra(command: str) -> None:
    """Exit 1 with the install command when the ``web`` extra is missing (the commands
    that serve HTTP or talk to Jira import it only when they run)."""
    import importlib

    missing = []
    for name in ("starlette", "uvicorn", "httpx", "jinja2", "prometheus_client"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise fail(
            f"{command} needs the 'web' extra ({', '.join(missing)} missing):"
            " pip install 'jira-orchestrator[web]'",
            EXIT_FAILURE,
        )
