"""One trace across two processes over a real nats-server: the Jira event being processed,
the routing decision, the dispatch and the write-back in this process (spans kept by the
SDK's InMemorySpanExporter), the plugin's handler in a subprocess of its own (spans
written by the SDK's console exporter, configured by the standard ``OTEL_*`` variables as
an operator would, and read back from its output)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.routing import Mount

from jira_orchestrator._core import tracing
from jira_orchestrator.cli._demo_jira import _settle
from jira_orchestrator.cli._jira_loop import jira_loop
from jira_orchestrator.integrations.jira.check import SANDBOX_SECRET, init_text
from jira_orchestrator.integrations.jira.config import parse_config
from jira_orchestrator.integrations.jira.sandbox import JiraSandbox
from jira_orchestrator.web import HTTPServer
from tests.nats._server import NatsServer

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "k8s-helm-deployer"
WAIT = 90.0


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    assert tracing.enable(provider)
    try:
        yield memory
    finally:
        tracing.disable()
        provider.shutdown()


def console_spans(text: str) -> list[dict[str, Any]]:
    """The JSON objects the console exporter printed, among the plugin's other lines."""
    decoder = json.JSONDecoder()
    spans, at = [], 0
    while (start := text.find("{\n", at)) >= 0:
        try:
            found, at = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            at = start + 1
            continue
        if isinstance(found, dict) and "context" in found:
            spans.append(found)
    return spans


async def test_one_trace_from_the_jira_event_to_the_plugin_process_and_back(
    private_server: NatsServer, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    plugins = tmp_path / "plugins"
    shutil.copytree(ROOT / "examples" / "plugins" / PLUGIN, plugins / PLUGIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JIRA_ORCHESTRATOR_", "OTEL_"))}
    env.update(
        JIRA_ORCHESTRATOR_BUS_URL=private_server.url,
        JIRA_ORCHESTRATOR_OUTPUT=str(tmp_path / "out"),
        JIRA_ORCHESTRATOR_STATE_DIR=str(tmp_path / "state"),
        PYTHONUNBUFFERED="1",
        OTEL_TRACES_EXPORTER="console",
        OTEL_SERVICE_NAME=PLUGIN,
    )
    plugin = await asyncio.create_subprocess_exec(
        sys.executable,
        str(plugins / PLUGIN / "plugin.py"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    sandbox = JiraSandbox()
    try:
        async with HTTPServer([Mount("/", app=sandbox.app)], port=0) as site, sandbox:
            config = parse_config(tomllib.loads(init_text(site.url)))
            async with jira_loop(
                config,
                plugins,
                tmp_path / "out",
                host="127.0.0.1",
                port=0,
                bus_url=private_server.url,
                jira_transport=httpx.AsyncHTTPTransport(),
            ) as loop:
                orchestrator = loop.orchestrator
                async with asyncio.timeout(WAIT):  # until the plugin process answers
                    while orchestrator.health[PLUGIN].status in ("unknown", "stopped"):
                        await orchestrator.refresh_health()
                        await asyncio.sleep(0.1)  # between two asks of another process
                sandbox.register_webhook(f"{loop.server.url}/webhooks/jira", SANDBOX_SECRET)
                key = sandbox.create_issue("OPS", "Deploy billing-api to the EKS cluster")
                await _settle(sandbox, loop.service, loop.inbox)
                assert "routed:" + PLUGIN in sandbox.issue(key)["fields"]["labels"]
    finally:
        plugin.terminate()  # it stops, and its exporter writes what is left
        async with asyncio.timeout(WAIT):
            raw, _ = await plugin.communicate()
    output = raw.decode()
    assert plugin.returncode == 0, output

    here = exporter.get_finished_spans()
    root = next(s for s in here if s.name == "jira jira:issue_created")
    trace_id = root.context.trace_id
    mine = [s for s in here if s.context.trace_id == trace_id]
    names = {s.name for s in mine}
    assert {"route", "dispatch", f"plugin/{PLUGIN}/request request"} <= names, names
    assert any(s.name.startswith("jira POST") for s in mine), names  # the write-back
    request = next(s for s in mine if s.name == f"plugin/{PLUGIN}/request request")
    assert request.kind == SpanKind.CLIENT

    there = [s for s in console_spans(output) if s["context"]["trace_id"] == f"0x{trace_id:032x}"]
    handler = next(s for s in there if s["name"] == f"plugin/{PLUGIN}/request process")
    assert handler["kind"] == "SpanKind.CONSUMER"
    assert handler["parent_id"] == f"0x{request.context.span_id:016x}"  # over NATS
    assert handler["resource"]["attributes"]["service.name"] == PLUGIN
