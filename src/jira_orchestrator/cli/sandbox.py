"""``jira-orchestrator sandbox``: run the local Jira Cloud stand-in over HTTP.

    jira-orchestrator sandbox [--host 127.0.0.1] [--port 2990] [--issues FILE]
        [--webhook URL] [--secret S] [--email E] [--token T]

It binds 127.0.0.1 unless told otherwise, prints where it listens and the credentials it
accepts, and runs until Ctrl-C or SIGTERM, then shuts down cleanly (exit 0). A port in use
exits 1; an unreadable or malformed issues file, or a bad option, exits 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from jira_orchestrator.cli._errors import EXIT_FAILURE, fail, need_web_extra

__all__ = ["DEFAULT_PORT", "sandbox"]

# Atlassian's plugin SDK runs its development Jira on 2990; the sandbox follows it.
DEFAULT_PORT = 2990


def sandbox(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on (0: any free port).", min=0, max=65535)
    ] = DEFAULT_PORT,
    issues: Annotated[
        Path | None,
        typer.Option(
            "--issues",
            help="Load these issues first (the format of examples/issues.json).",
            show_default=False,
        ),
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook",
            help="POST a signed webhook for every change to this URL.",
            show_default=False,
        ),
    ] = None,
    secret: Annotated[
        str, typer.Option("--secret", help="Secret that signs webhooks (X-Hub-Signature).")
    ] = "sandbox-secret",
    email: Annotated[
        str, typer.Option("--email", help="Basic-auth user (an Atlassian account's email).")
    ] = "sandbox@example.com",
    token: Annotated[str, typer.Option("--token", help="Basic-auth API token.")] = "sandbox-token",
) -> None:
    """Run a local Jira Cloud stand-in: REST v3 at /rest/api/3, signed webhooks, fault switches."""
    need_web_extra("sandbox")
    from jira_orchestrator.integrations.jira.sandbox import JiraSandbox, SandboxDataError

    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise fail(f"--webhook must be an http:// or https:// URL, not {webhook!r}")
    if not email or not token:
        raise fail("--email and --token cannot be empty")
    stand_in = JiraSandbox(email=email, token=token)
    if issues is not None:
        try:
            stand_in.load_issues_file(issues)
        except SandboxDataError as exc:
            raise fail(str(exc)) from None
    listener = _bind(host, port)
    address = listener.getsockname()
    bound_host = f"[{address[0]}]" if ":" in address[0] else address[0]
    base_url = f"http://{bound_host}:{address[1]}"
    stand_in.base_url = base_url
    if webhook is not None:
        stand_in.register_webhook(webhook, secret or None)
    typer.echo(f"Jira sandbox listening on {base_url} (REST v3 at {base_url}/rest/api/3)")
    typer.echo(f"credentials: {email} / {token} (basic auth: email and API token)")
    typer.echo(f"issues: {len(stand_in.keys())}" + (f" from {issues}" if issues else ""))
    if webhook is not None:
        signed = f"signed with secret {secret!r}" if secret else "unsigned"
        typer.echo(f"webhooks: {webhook} ({signed})")
    typer.echo("faults: POST /_sandbox/faults; press Ctrl-C to stop", nl=True)
    try:
        _serve(stand_in.app, listener)
    finally:
        listener.close()
    typer.echo("Jira sandbox stopped")


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise fail(f"cannot resolve --host {host!r} ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise fail(
            f"cannot listen on {host}:{port} ({exc.strerror or exc})", EXIT_FAILURE
        ) from None
    listener.set_inheritable(True)
    return listener


def _serve(app: Any, listener: socket.socket) -> None:
    """Serve ``app`` on ``listener`` until SIGINT or SIGTERM, then return."""
    import uvicorn

    class Server(uvicorn.Server):
        # uvicorn re-raises a captured signal once it has shut down; the sandbox returns
        # instead, so Ctrl-C and SIGTERM end it with exit status 0 and no traceback.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
    )
    asyncio.run(Server(config).serve(sockets=[listener]))
