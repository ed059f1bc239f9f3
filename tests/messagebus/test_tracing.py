"""W3C trace context on the bus: carried in the headers, continued by handlers, passed on
by a process that does not trace, and nothing made for messages outside any trace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from jira_orchestrator._core import tracing
from jira_orchestrator.messagebus import Message, close_message_bus, get_message_bus
from jira_orchestrator.messagebus._bus import MessageBus

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    assert tracing.enable(provider)
    try:
        yield memory
    finally:
        tracing.disable()
        provider.shutdown()


@pytest.fixture
async def bus() -> AsyncIterator[MessageBus]:
    yield get_message_bus("jira-orchestrator")
    await close_message_bus()


async def test_a_message_sent_in_a_span_carries_its_traceparent_and_trace_id(
    spans: InMemorySpanExporter, bus: MessageBus
) -> None:
    seen: list[Message] = []
    bus.subscribe("orders/created", seen.append)
    with tracing.span("edge", root=True) as span:
        sent = await bus.publish(topic="orders/created", payload=1)
        also = await bus.publish(Message(topic="orders/created", payload=2))
    await bus.flush()
    trace_id = format(span.get_span_context().trace_id, "032x")
    span_id = format(span.get_span_context().span_id, "016x")
    for message in (sent, also):
        assert message.headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-")
        assert message.headers["traceId"] == trace_id  # one id for the envelope and backend
    handled = [s for s in spans.get_finished_spans() if s.name == "orders/created process"]
    assert len(handled) == 2
    assert {s.parent.span_id for s in handled if s.parent} == {span.get_span_context().span_id}
    assert {s.kind for s in handled} == {SpanKind.CONSUMER}


async def test_a_handler_continues_the_trace_of_its_message(
    spans: InMemorySpanExporter, bus: MessageBus
) -> None:
    done = asyncio.Event()

    async def relay(message: Message) -> None:
        await bus.publish(topic="b/next", payload=message.payload)

    bus.subscribe("a/first", relay)
    bus.subscribe("b/next", lambda message: done.set())
    await bus.publish(
        topic="a/first", payload=1, headers={"traceparent": f"00-{TRACE}-{PARENT}-01"}
    )
    await done.wait()
    await bus.flush()
    finished = {s.name: s for s in spans.get_finished_spans()}
    first, second = finished["a/first process"], finished["b/next process"]
    assert format(first.context.trace_id, "032x") == TRACE
    assert first.parent is not None
    assert format(first.parent.span_id, "016x") == PARENT
    assert second.context.trace_id == first.context.trace_id
    assert second.parent is not None
    assert second.parent.span_id == first.context.span_id


async def test_a_process_that_does_not_trace_passes_the_traceparent_on(bus: MessageBus) -> None:
    assert not tracing.is_on()
    forwarded: list[Message] = []

    async def relay(message: Message) -> None:
        forwarded.append(await bus.publish(topic="b/next", payload=message.payload))

    bus.subscribe("a/first", relay)
    traceparent = f"00-{TRACE}-{PARENT}-01"
    await bus.publish(topic="a/first", payload=1, headers={"traceparent": traceparent})
    await bus.flush()
    assert forwarded[0].headers["traceparent"] == traceparent


async def test_messages_outside_any_trace_make_no_span(
    spans: InMemorySpanExporter, bus: MessageBus
) -> None:
    bus.subscribe("system/health", lambda message: None)
    sent = await bus.publish(topic="system/health", payload={})
    await bus.flush()
    assert "traceparent" not in sent.headers
    assert spans.get_finished_spans() == ()


def test_otel_variables_decide_whether_to_trace() -> None:
    assert tracing.configure_from_env({}) is False
    assert tracing.configure_from_env({"OTEL_TRACES_EXPORTER": "none"}) is False
    with pytest.raises(RuntimeError, match="otlp, console, none"):
        tracing.configure_from_env({"OTEL_TRACES_EXPORTER": "zipkin-over-carrier-pigeon"})
    assert not tracing.is_on()
    assert tracing.extract_trace_id({"traceparent": f"00-{TRACE}-{PARENT}-01"}) == TRACE
    assert tracing.extract_trace_id({"traceparent": "garbage"}) is None


async def test_a_trace_sampled_out_makes_no_span_but_is_passed_on(
    spans: InMemorySpanExporter, bus: MessageBus
) -> None:
    forwarded: list[Message] = []

    async def relay(message: Message) -> None:
        forwarded.append(await bus.publish(topic="b/next", payload=message.payload))

    bus.subscribe("a/first", relay)
    unsampled = f"00-{TRACE}-{PARENT}-00"
    await bus.publish(topic="a/first", payload=1, headers={"traceparent": unsampled})
    await bus.flush()
    assert spans.get_finished_spans() == ()
    assert forwarded[0].headers["traceparent"] == unsampled
