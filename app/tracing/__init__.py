"""Tracing: a tracer per worker, a server span per request, child spans below.

The rest of the app only calls :func:`child_span` (and the training runner
:func:`job_span`); both work whether tracing is on or off, because with tracing
off the global tracer is OpenTracing's no-op.

- ``setup``: the LightStep tracer, one per process, made after uWSGI's fork
  and flushed at exit.
- ``middleware``: the server span of each request and the ``X-Trace-Id``
  answer header.
- ``propagation``: the parent context from LightStep, B3 or W3C headers.
- ``redact``: no credential in any span.
- ``jobs``: the training runner's span, a child of the request that queued it.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import opentracing

log = logging.getLogger(__name__)


@contextmanager
def child_span(operation: str, tags: dict | None = None):
    """Open a span under the active one (the request's server span, if any)."""
    scope = activate(opentracing.global_tracer(), operation, tags=tags or {})
    try:
        yield scope.span
    except BaseException as error:
        _note_failure(scope.span, error)
        raise
    finally:
        scope.close()


def activate(tracer, operation: str, **options):
    """Start a span and make it the active one; closing the scope finishes it.

    The same as ``tracer.start_active_span``, minus the LightStep tracer's
    version of it, which builds a new class on every call only to cut trace
    ids to 64 bits; ids made or accepted here are 64 bits already.
    """
    span = tracer.start_span(operation, **options)
    return tracer.scope_manager.activate(span, finish_on_close=True)


def _note_failure(span, error: BaseException) -> None:
    """Like the server span: a client's mistake is logged, a failure is an error.

    OpenTracing's own scope would tag every exception ``error`` and log its
    stack; a 4xx raised while decoding a body is not the service failing.
    """
    from app.tracing.middleware import describe_error

    kind, message = describe_error(error)
    status = getattr(error, "status", None) or getattr(error, "code", None)
    if isinstance(status, int) and 400 <= status < 500:
        span.log_kv({"event": "client_error", "error.kind": kind, "message": message})
        return
    span.set_tag("error", True)
    span.log_kv({"event": "error", "error.kind": kind, "message": message})


def current_context() -> dict | None:
    """The active span's context as ``ot-tracer-*`` fields, to hand to a process.

    None when no span is active or tracing is off.
    """
    tracer = opentracing.global_tracer()
    span = tracer.active_span
    if span is None:
        return None
    carrier: dict = {}
    try:
        tracer.inject(span.context, opentracing.Format.TEXT_MAP, carrier)
    except opentracing.UnsupportedFormatException:
        return None
    # Baggage came from the client; the runner does not need it on disk.
    return {
        key: value for key, value in carrier.items() if key.startswith("ot-tracer-")
    }


def init_tracing(app, settings) -> None:
    """Trace every request of ``app``, or log in one line why tracing is off."""
    from app.tracing import middleware, setup

    reason = setup.why_off(settings)
    if reason is not None:
        log.info("tracing off: %s", reason)
        return

    holder = setup.ProcessTracer(settings)
    app.extensions["tracer"] = holder
    middleware.install(app, holder)
    setup.start_per_process(holder)
    log.info(
        "tracing on: %s spans of component %r to %s every %g s",
        "OTLP" if settings.tracer == "otlp" else "LightStep",
        settings.lightstep_component_name,
        setup.collector_url(settings),
        settings.lightstep_flush_seconds,
    )
