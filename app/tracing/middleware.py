"""The server span: opened before any other hook, closed when the request ends.

Its name is ``<METHOD> <route>``, the route being Flask's rule
(``/api/v1/train/<job_id>``) so that LightStep groups requests by endpoint;
a request that matches no rule is named by its path.

Errors: a 5xx answer, or an exception that reached an error handler and became
one, sets ``error=true`` and logs an ``error`` event with its kind and message,
as OpenTracing's conventions ask for server-side failures. A 4xx is the
client's mistake, not the service's: it logs a ``client_error`` event and the
``error.code`` tag, but no ``error`` tag, so LightStep's error rate counts only
what the service got wrong.
"""

from __future__ import annotations

import functools

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException

from app.errors import ApiError
from app.tracing import activate, propagation
from app.tracing.redact import safe_url

TRACE_ID_HEADER = "X-Trace-Id"


def trace_id_hex(trace_id: int) -> str:
    """The id as LightStep shows it: 16 lower-case hex digits."""
    return format(trace_id & ((1 << 64) - 1), "016x")


def describe_error(error: BaseException) -> tuple[str, str]:
    """(kind, message) for the span's error log."""
    if isinstance(error, ApiError):
        return error.code, error.message
    if isinstance(error, HTTPException):
        return type(error).__name__, error.description or error.name
    return type(error).__name__, str(error) or type(error).__name__


def install(app: Flask, holder, component: str = "flask") -> None:
    def open_span():
        tracer = holder.get()
        if tracer is None:
            return

        incoming = propagation.extract(request.headers)
        rule = request.url_rule.rule if request.url_rule is not None else request.path
        tags = {
            "span.kind": "server",
            "component": component,
            "http.method": request.method,
            "http.url": safe_url(request.path, request.query_string.decode("latin-1")),
            **incoming.tags,
        }
        g._trace_scope = activate(
            tracer,
            f"{request.method} {rule}",
            child_of=incoming.context,
            tags=tags,
            ignore_active_span=True,
        )

    def tag_response(response):
        scope = g.get("_trace_scope")
        if scope is None:
            return response

        span = scope.span
        status = response.status_code
        span.set_tag("http.status_code", status)
        version = g.get("model_version")
        if version:
            span.set_tag("model.version", version)
        if status >= 400:
            _record_failure(span, status, g.get("_trace_error"))
        response.headers[TRACE_ID_HEADER] = trace_id_hex(span.context.trace_id)
        return response

    def close_span(error):
        scope = g.pop("_trace_scope", None)
        if scope is None:
            return
        if error is not None:
            # Only an exception no handler took ends up here, without a response.
            _record_failure(scope.span, 500, error)
        scope.close()

    # First, so the span also times the other before-request hooks.
    app.before_request_funcs.setdefault(None, []).insert(0, open_span)
    app.after_request(tag_response)
    app.teardown_request(close_span)
    _wrap_error_handlers(app)


def _record_failure(span, status: int, error) -> None:
    if error is not None:
        kind, message = describe_error(error)
    else:
        kind, message = f"http_{status}", f"answered {status}"
    span.set_tag("error.code", kind)
    if status >= 500:
        span.set_tag("error", True)
        span.log_kv({"event": "error", "error.kind": kind, "message": message})
    else:
        span.log_kv({"event": "client_error", "error.kind": kind, "message": message})


def _wrap_error_handlers(app: Flask) -> None:
    """Let every registered error handler note its exception for the span.

    The handlers turn exceptions into JSON answers, so by the time the answer
    reaches ``after_request`` the exception's kind would be gone.
    """
    # Blueprints' handlers live here too, copied in when a blueprint registers.
    # Limitation: only handlers registered before init_tracing are wrapped;
    # create_app calls it last for this reason.
    for by_code in app.error_handler_spec.values():
        for handlers in by_code.values():
            for exception_class, handler in list(handlers.items()):
                handlers[exception_class] = _noting(handler)


def _noting(handler):
    @functools.wraps(handler)
    def noted(error):
        g._trace_error = error
        return handler(error)

    return noted
