"""A receiver process SIGKILLed right after its 2xx loses nothing: the event is on disk."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from jira_orchestrator.integrations.jira import WebhookInbox

SECRET = "crash-test-secret"
CHILD = """
import asyncio, sys
from jira_orchestrator.integrations.jira import WebhookInbox, WebhookReceiver, secret_from_env
from jira_orchestrator.web import HTTPServer

async def main():
    with WebhookInbox(sys.argv[1]) as inbox:
        receiver = WebhookReceiver(inbox, secret=secret_from_env("JIRA_WEBHOOK_SECRET"))
        async with HTTPServer(receiver.routes(), port=0) as server:
            print(server.port, flush=True)
            await asyncio.Event().wait()

asyncio.run(main())
"""


@asynccontextmanager
async def receiver_process(inbox: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(inbox),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "JIRA_WEBHOOK_SECRET": SECRET},
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.strip().isdigit(), f"the receiver did not start: {line!r}"
        yield process, f"http://127.0.0.1:{int(line)}"
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def delivery(key: str, identifier: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "timestamp": 1767261600000,
            "webhookEvent": "jira:issue_created",
            "issue": {"id": "10077", "key": key, "fields": {"summary": "Checkout is down"}},
        }
    ).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature": signature, "X-Atlassian-Webhook-Identifier": identifier}


async def test_sigkill_right_after_the_2xx_loses_nothing_and_the_id_stays_known(
    tmp_path: Path,
) -> None:
    path = tmp_path / "inbox.db"
    body, sent = delivery("OPS-77", "delivery-77")
    async with receiver_process(path) as (process, url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            answer = await client.post("/webhooks/jira", content=body, headers=sent)
        process.kill()  # SIGKILL: no shutdown, no flush, nothing after the answer
        assert answer.status_code == 202
        assert await process.wait() == -9
    with WebhookInbox(path) as inbox:
        [stored] = inbox.list()
        assert (stored.state, stored.body, stored.event.issue_key) == ("pending", body, "OPS-77")
    async with receiver_process(path) as (_, url), httpx.AsyncClient(base_url=url) as client:
        retried = await client.post(
            "/webhooks/jira", content=body, headers={**sent, "X-Atlassian-Webhook-Retry": "1"}
        )
        assert (retried.status_code, retried.json()["status"]) == (200, "duplicate")
        body2, sent2 = delivery("OPS-78", "delivery-78")
        fresh = await client.post("/webhooks/jira", content=body2, headers=sent2)
        assert fresh.status_code == 202
    with WebhookInbox(path) as inbox:
        assert [e.event.issue_key for e in inbox.list(state="pending")] == ["OPS-77", "OPS-78"]
