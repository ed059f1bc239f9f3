"""Traces, the one facade: OpenTelemetry spans when it is installed and switched on,
nothing otherwise.

`enable` binds the facade to OpenTelemetry's API (the ``otel`` extra brings the API, the
SDK and the OTLP exporter; `configure_from_env` sets the SDK up from the standard
``OTEL_*`` variables). Until then `span` is a shared no-op context manager and `inject`
returns at once, so the core never needs the package.

The bus continues traces, it does not start them: a message that carries a W3C
``traceparent`` header is handled inside a consumer span whose parent is that header, and
a message published inside a span carries the span's ``traceparent``. Traces start at the
edges: a Jira webhook being processed, a CLI request, a dispatch.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Literal

__all__ = [
    "TRACEPARENT",
    "configure_from_env",
    "disable",
    "enable",
    "extract_trace_id",
    "in_trace",
    "inject",
    "is_on",
    "span",
]

log = logging.getLogger("jira_orchestrator.tracing")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
INSTRUMENTATION = "jira_orchestrator"

Kind = Literal["internal", "server", "client", "producer", "consumer"]

_tracer: Any = None  # an opentelemetry.trace.Tracer once enabled
_api: Any = None  # the opentelemetry.trace module
_propagator: Any = None
_kinds: dict[str, Any] = {}
_context_var: Any = None  # OpenTelemetry's context variable, for a fast `in_trace`
_span_key = ""


def is_on() -> bool:
    """Whether spans are recorded in this process."""
    return _tracer is not None


def enable(tracer_provider: Any = None) -> bool:
    """Record spans through OpenTelemetry (``tracer_provider``, or the global one).

    Returns False, and stays off, when the ``opentelemetry-api`` package is missing.
    """
    global _tracer, _api, _propagator, _context_var, _span_key
    try:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        log.warning(
            "tracing asked for, but OpenTelemetry is not installed: "
            "pip install 'jira-orchestrator[otel]'"
        )
        return False
    _api = trace
    _propagator = TraceContextTextMapPropagator()
    _kinds.update(
        internal=trace.SpanKind.INTERNAL,
        server=trace.SpanKind.SERVER,
        client=trace.SpanKind.CLIENT,
        producer=trace.SpanKind.PRODUCER,
        consumer=trace.SpanKind.CONSUMER,
    )
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    _tracer = provider.get_tracer(INSTRUMENTATION)
    found = _find_context_var()
    _context_var, _span_key = found if found is not None else (None, "")
    return True


def disable() -> None:
    """Stop recording spans (for tests and benchmarks)."""
    global _tracer
    _tracer = None


def configure_from_env(
    environ: Mapping[str, str] | None = None, *, service_name: str | None = None
) -> bool:
    """Set up the OpenTelemetry SDK from the standard ``OTEL_*`` variables and `enable`.

    Does nothing (returns False) unless ``OTEL_TRACES_EXPORTER`` is set to something other
    than ``none``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set. Exporters: ``otlp`` (OTLP over HTTP,
    the default) and ``console``. ``OTEL_SERVICE_NAME`` names the process
    (``service_name`` when unset). Raises RuntimeError naming the extra when the SDK is
    missing.
    """
    env = os.environ if environ is None else environ
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if exporter_name == "none" or not (exporter_name or endpoint):
        return False
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
    except ImportError:
        raise RuntimeError(
            "OTEL_* tracing is configured, but the OpenTelemetry SDK is not installed: "
            "pip install 'jira-orchestrator[otel]'"
        ) from None
    exporter: SpanExporter
    if exporter_name in ("", "otlp"):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise RuntimeError(
                "OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: "
                "pip install 'jira-orchestrator[otel]'"
            ) from None
        exporter = OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself
    elif exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        raise RuntimeError(
            f"OTEL_TRACES_EXPORTER={exporter_name!r}: this product knows otlp, console, none"
        )
    attributes = {}
    if service_name and not env.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = service_name
    provider = TracerProvider(resource=Resource.create(attributes))  # OTEL_SERVICE_NAME too
    provider.add_span_processor(BatchSpanProcessor(exporter))
    from opentelemetry import trace

    trace.set_tracer_provider(provider)
    return enable(provider)


_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


def span(
    name: str,
    *,
    headers: Mapping[str, str] | None = None,
    kind: Kind = "internal",
    attributes: Mapping[str, str | int | float | bool] | None = None,
    root: bool = False,
) -> contextlib.AbstractContextManager[Any]:
    """A span around a block: the child of ``headers``' ``traceparent`` when given, else
    of the current span. Without a parent it records nothing unless ``root`` (the edges
    that start traces). A no-op when tracing is off."""
    if _tracer is None:
        return _NO_SPAN
    parent = None if headers is None else headers.get(TRACEPARENT)
    if parent is not None:
        if parent[-1:] in _UNSAMPLED:
            # The trace is not recorded (its root was sampled out): no span here either;
            # what the handler publishes carries the same traceparent on (see the bus).
            return _NO_SPAN
    elif not root and not in_trace():
        return _NO_SPAN  # not in a trace: nothing to record, nothing to build
    return _span(name, headers, kind, attributes, root)


_UNSAMPLED = frozenset("02468ace")  # the last hex digit of the flags: bit 0, sampled, unset


@contextlib.contextmanager
def _span(
    name: str,
    headers: Mapping[str, str] | None,
    kind: Kind,
    attributes: Mapping[str, str | int | float | bool] | None,
    root: bool,
) -> Iterator[Any]:
    context = None
    if headers is not None and TRACEPARENT in headers:
        context = _propagator.extract(carrier=headers)
        parented = _api.get_current_span(context).get_span_context().is_valid
    else:
        parented = _api.get_current_span().get_span_context().is_valid
    if not parented and not root:
        yield None
        return
    with _tracer.start_as_current_span(
        name, context=context, kind=_kinds[kind], attributes=attributes
    ) as current:
        yield current


def in_trace() -> bool:
    """Whether tracing is on and a span is current (what `inject` would write)."""
    if _tracer is None:
        return False
    if _context_var is not None:  # the common answer, "no span", without a Python call
        span = _context_var.get().get(_span_key)
        if span is None:
            return False
    return bool(_api.get_current_span().get_span_context().is_valid)


def _find_context_var() -> tuple[Any, str] | None:
    """OpenTelemetry's own context variable and span key, when this version keeps them
    where we look (checked, else None and the public API is used)."""
    try:
        from opentelemetry import context
        from opentelemetry.trace import propagation
    except ImportError:
        return None
    runtime = getattr(context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    key = getattr(propagation, "_SPAN_KEY", None)
    if not isinstance(variable, contextvars.ContextVar) or not isinstance(key, str):
        return None
    probe = _api.NonRecordingSpan(_api.INVALID_SPAN_CONTEXT)
    token = context.attach(_api.set_span_in_context(probe))
    try:
        found = variable.get().get(key) is probe
    finally:
        context.detach(token)
    return (variable, key) if found else None


def inject(headers: MutableMapping[str, str]) -> None:
    """Write the current span's ``traceparent`` (and ``tracestate``) into ``headers``, and
    set ``traceId`` to its trace id, so that the envelope's id and the tracing backend's
    agree. Nothing when tracing is off or no span is current."""
    if _tracer is None:
        return
    context = _api.get_current_span().get_span_context()
    if not context.is_valid:
        return
    _propagator.inject(headers)
    headers["traceId"] = format(context.trace_id, "032x")


def extract_trace_id(headers: Mapping[str, str]) -> str | None:
    """The trace id (32 hex digits) of a W3C ``traceparent`` header, or None."""
    value = headers.get(TRACEPARENT)
    if value is None or len(value) < 55 or value[2] != "-":
        return None
    return value[3:35]
