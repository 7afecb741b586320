"""``TRACER=otlp``: the same OpenTracing spans, exported as OTLP/HTTP.

The app keeps its OpenTracing instrumentation; OpenTelemetry's OpenTracing
shim turns each span into an OpenTelemetry span, and the SDK's batch processor
sends them as protobuf ``ExportTraceServiceRequest`` bodies to
``OTLP_ENDPOINT`` (LightStep's OTLP/HTTP ingest by default), with the access
token in the ``lightstep-access-token`` header.

Three things the plain shim does not do, and this tracer adds, so that the
rest of ``app.tracing`` works unchanged:

- a parent context parsed by :mod:`app.tracing.propagation` (a basictracer
  ``SpanContext`` with a 64-bit trace id) becomes an OpenTelemetry parent; a
  128-bit incoming id, kept whole in the ``trace.incoming_id`` tag, is used
  whole, so the span joins the caller's W3C trace rather than a truncated one;
- span contexts expose ``trace_id`` and ``span_id`` as integers, which the
  middleware's ``X-Trace-Id`` header reads;
- ``inject`` also writes ``ot-tracer-*`` fields, the format the training job
  record carries (:func:`app.tracing.current_context`).

Limitation: the ``X-Trace-Id`` answer header shows the low 64 bits of the
trace id, as with the LightStep tracer; the full W3C id is in the span.
Limitation: a ``traceparent`` whose sampled flag is 0 gives a span that is not
recorded (W3C's meaning of the flag); the LightStep tracer records it anyway.
"""

from __future__ import annotations

import os

from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.shim.opentracing_shim import (
    ScopeManagerShim,
    ScopeShim,
    SpanContextShim,
    SpanShim,
    TracerShim,
)

from app.tracing.redact import Scrubber

LIGHTSTEP_OTLP_ENDPOINT = "https://ingest.lightstep.com:443/traces/otlp/v0.9"
TOKEN_HEADER = "lightstep-access-token"

_KINDS = {
    "server": otel_trace.SpanKind.SERVER,
    "client": otel_trace.SpanKind.CLIENT,
    "producer": otel_trace.SpanKind.PRODUCER,
    "consumer": otel_trace.SpanKind.CONSUMER,
}


def why_off(settings) -> str | None:
    """Why OTLP export is off with these settings, or None when it is on.

    LightStep refuses spans without a token; a collector of one's own
    (OTLP_ENDPOINT set elsewhere) may need none, and is then not sent one.
    """
    if settings.lightstep_access_token:
        return None
    if settings.otlp_endpoint != LIGHTSTEP_OTLP_ENDPOINT:
        return None
    return "LIGHTSTEP_ACCESS_TOKEN is not set (LightStep's OTLP ingest needs it)"


class _Context(SpanContextShim):
    """A shim context that also answers ``trace_id`` and ``span_id``."""

    @property
    def trace_id(self) -> int:
        return self.unwrap().trace_id

    @property
    def span_id(self) -> int:
        return self.unwrap().span_id


class _ScopeManager(ScopeManagerShim):
    """Activates the span it is given, not a copy with a plain shim context."""

    def activate(self, span: SpanShim, finish_on_close: bool) -> ScopeShim:
        span_cm = otel_trace.use_span(span.unwrap(), end_on_exit=finish_on_close)
        span_cm.__enter__()
        return ScopeShim(self, span, span_cm)


class _Provider:
    """What :class:`app.tracing.setup.ProcessTracer` calls at exit: a shutdown."""

    def __init__(self, provider: TracerProvider):
        self._provider = provider
        self._done = False

    def shutdown(self, flush: bool = True) -> bool:
        # TracerProvider.shutdown() exports whatever the batch still holds;
        # a second call would only log that the exporter is shut already.
        if not self._done:
            self._done = True
            self._provider.shutdown()
        return True


class OtlpTracer(TracerShim):
    """An OpenTracing tracer whose spans are OpenTelemetry spans, sent as OTLP."""

    def __init__(self, provider: TracerProvider):
        super().__init__(provider.get_tracer("app.tracing"))
        self._scope_manager = _ScopeManager(self)
        self.provider = provider
        self.recorder = _Provider(provider)

    def start_span(
        self,
        operation_name=None,
        child_of=None,
        references=None,
        tags=None,
        start_time=None,
        ignore_active_span=False,
    ):
        tags = dict(tags or {})
        parent = _otel_parent(child_of, tags)
        if parent is None and references:
            parent = _otel_parent(references[0].referenced_context, tags)
        if parent is None and not ignore_active_span and self.active_span is not None:
            parent = self.active_span.unwrap()

        started = self.unwrap().start_span(
            operation_name,
            context=otel_trace.set_span_in_context(parent) if parent else None,
            kind=_KINDS.get(
                str(tags.get("span.kind", "")), otel_trace.SpanKind.INTERNAL
            ),
            attributes={key: _attribute(value) for key, value in tags.items()},
            start_time=int(start_time * 1e9) if start_time is not None else None,
        )
        return SpanShim(self, _Context(started.get_span_context()), started)

    def inject(self, span_context, format, carrier):
        super().inject(span_context, format, carrier)
        context = span_context.unwrap()
        carrier["ot-tracer-traceid"] = format_id(context.trace_id, 32)
        carrier["ot-tracer-spanid"] = format_id(context.span_id, 16)
        carrier["ot-tracer-sampled"] = (
            "true" if context.trace_flags.sampled else "false"
        )

    def flush(self) -> bool:
        return self.provider.force_flush()


def format_id(number: int, digits: int) -> str:
    return format(number, f"0{digits}x")


def _otel_parent(context, tags: dict):
    """An OpenTelemetry span to parent on, from whatever context was given."""
    if context is None:
        return None
    if isinstance(context, SpanShim):
        return context.unwrap()
    if isinstance(context, SpanContextShim):
        return otel_trace.NonRecordingSpan(context.unwrap())

    # A basictracer SpanContext from app.tracing.propagation.
    trace_id = context.trace_id
    incoming = tags.get("trace.incoming_id")
    if incoming:
        trace_id = int(incoming, 16)
    flags = otel_trace.TraceFlags(
        otel_trace.TraceFlags.SAMPLED
        if context.sampled
        else otel_trace.TraceFlags.DEFAULT
    )
    remote = otel_trace.SpanContext(
        trace_id=trace_id, span_id=context.span_id, is_remote=True, trace_flags=flags
    )
    return otel_trace.NonRecordingSpan(remote)


def _attribute(value):
    """OTLP attributes hold str, bool, int, float; anything else becomes text."""
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)


class ScrubbingExporter(SpanExporter):
    """The last step before the wire: every string a span holds is scrubbed."""

    def __init__(self, inner: SpanExporter, scrub: Scrubber):
        self.inner = inner
        self._scrub = scrub

    def export(self, spans) -> SpanExportResult:
        return self.inner.export([self._clean(span) for span in spans])

    def _clean(self, span: ReadableSpan) -> ReadableSpan:
        return ReadableSpan(
            name=self._scrub(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self._attributes(span.attributes),
            events=[
                Event(
                    self._scrub(event.name),
                    self._attributes(event.attributes),
                    event.timestamp,
                )
                for event in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _attributes(self, attributes):
        if not attributes:
            return attributes
        return {key: self._scrub(value) for key, value in attributes.items()}

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def make_tracer(settings, tags: dict, *, timeout: float, max_spans: int):
    """An :class:`OtlpTracer` for this process, exporting every flush period."""
    resource = Resource.create(
        {
            "service.name": settings.lightstep_component_name,
            "process.pid": os.getpid(),
            **tags,
        }
    )
    headers = {}
    if settings.lightstep_access_token:
        headers[TOKEN_HEADER] = settings.lightstep_access_token
    exporter = OTLPSpanExporter(
        endpoint=settings.otlp_endpoint, headers=headers, timeout=timeout
    )
    processor = BatchSpanProcessor(
        ScrubbingExporter(exporter, Scrubber(settings.secrets())),
        max_queue_size=max_spans,
        schedule_delay_millis=settings.lightstep_flush_seconds * 1000,
        export_timeout_millis=timeout * 1000,
    )
    # The exit hook of ProcessTracer shuts the provider down, in the process
    # that made it; the SDK's own hook would run again in every forked child.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return OtlpTracer(provider)
