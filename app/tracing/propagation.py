"""The incoming span context, from LightStep, B3 or W3C trace-context headers.

nginx's LightStep tracer sends ``ot-tracer-traceid``, ``ot-tracer-spanid`` and
``ot-tracer-sampled`` (see deploy/nginx/logreg/tracing-location.conf); other
callers may send B3 (``x-b3-*`` or the single ``b3`` header) or W3C
``traceparent``. The first of these that parses wins, in that order, because
nginx's own headers describe the span this request is really a child of.

LightStep ids are 64 bits. A 128-bit B3 or W3C trace id keeps its low 64 bits,
the same bits LightStep's own tracers keep, and the full id is recorded in the
``trace.incoming_id`` tag so the request can still be matched upstream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from basictracer.context import SpanContext

_HEX = re.compile(r"^[0-9a-f]{1,32}$")
_W3C = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_LOW_64 = (1 << 64) - 1
_BAGGAGE_PREFIX = "ot-baggage-"
_BAGGAGE_ENVIRON = "HTTP_OT_BAGGAGE_"


class ContextError(ValueError):
    """Trace headers were sent but cannot be used; the request starts a new trace."""


@dataclass
class Incoming:
    """What the headers said: a parent context (or none) and tags to record."""

    context: SpanContext | None = None
    tags: dict = field(default_factory=dict)


def _parse_id(value: str, name: str, *, bits: int) -> tuple[int, str]:
    """A hex id as (low 64 bits, the full lower-case text); zero is invalid."""
    text = value.strip().lower()
    if not _HEX.match(text) or len(text) > bits // 4:
        raise ContextError(f"{name} must be 1 to {bits // 4} hex digits")
    number = int(text, 16)
    if number == 0:
        raise ContextError(f"{name} must not be zero")
    return number & _LOW_64, text


def _lightstep(headers) -> Incoming | None:
    trace = headers.get("ot-tracer-traceid")
    span = headers.get("ot-tracer-spanid")
    if trace is None and span is None:
        return None
    if trace is None or span is None:
        raise ContextError("ot-tracer-traceid and ot-tracer-spanid come together")

    trace_id, trace_text = _parse_id(trace, "ot-tracer-traceid", bits=128)
    span_id, _ = _parse_id(span, "ot-tracer-spanid", bits=64)
    sampled = headers.get("ot-tracer-sampled", "true").strip().lower()
    if sampled not in ("true", "false", "1", "0"):
        raise ContextError("ot-tracer-sampled must be true or false")

    context = SpanContext(
        trace_id=trace_id,
        span_id=span_id,
        baggage=_baggage(headers),
        sampled=sampled in ("true", "1"),
    )
    return _with_tags(context, "lightstep", trace_text)


def _baggage(headers) -> dict:
    """The ``ot-baggage-*`` headers, by item name."""
    environ = getattr(headers, "environ", None)
    if environ is not None:
        # A request's headers: reading the WSGI keys directly spares building
        # a name and value for every header of every request.
        return {
            key[len(_BAGGAGE_ENVIRON) :].lower().replace("_", "-"): value
            for key, value in environ.items()
            if key.startswith(_BAGGAGE_ENVIRON) and len(key) > len(_BAGGAGE_ENVIRON)
        }
    baggage = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith(_BAGGAGE_PREFIX) and len(lowered) > len(_BAGGAGE_PREFIX):
            baggage[lowered[len(_BAGGAGE_PREFIX) :]] = value
    return baggage


def _b3(headers) -> Incoming | None:
    single = headers.get("b3")
    if single is not None:
        parts = single.strip().lower().split("-")
        if len(parts) == 1:
            # A sampling decision alone ("0", "1", "d") carries no parent.
            return None
        if len(parts) not in (2, 3, 4):
            raise ContextError("b3 must be traceid-spanid[-sampled[-parentspanid]]")
        trace, span = parts[0], parts[1]
        flag = parts[2] if len(parts) > 2 else "1"
    else:
        trace = headers.get("x-b3-traceid")
        span = headers.get("x-b3-spanid")
        if trace is None and span is None:
            return None
        if trace is None or span is None:
            raise ContextError("x-b3-traceid and x-b3-spanid come together")
        flag = headers.get("x-b3-sampled", "1").strip().lower()
        if headers.get("x-b3-flags", "").strip() == "1":
            flag = "d"

    trace_id, trace_text = _parse_id(trace, "the B3 trace id", bits=128)
    span_id, _ = _parse_id(span, "the B3 span id", bits=64)
    if flag not in ("0", "1", "d", "true", "false"):
        raise ContextError("the B3 sampling flag must be 0, 1 or d")
    context = SpanContext(
        trace_id=trace_id, span_id=span_id, sampled=flag in ("1", "d", "true")
    )
    return _with_tags(context, "b3", trace_text)


def _w3c(headers) -> Incoming | None:
    value = headers.get("traceparent")
    if value is None:
        return None
    match = _W3C.match(value.strip().lower())
    if match is None:
        raise ContextError("traceparent must be version-traceid-parentid-flags")
    version, trace, span, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        raise ContextError(f"traceparent version {version} is not accepted")

    trace_id, trace_text = _parse_id(trace, "the traceparent trace id", bits=128)
    span_id, _ = _parse_id(span, "the traceparent parent id", bits=64)
    context = SpanContext(
        trace_id=trace_id, span_id=span_id, sampled=bool(int(flags, 16) & 1)
    )
    return _with_tags(context, "w3c", trace_text)


def _with_tags(context: SpanContext, source: str, trace_text: str) -> Incoming:
    tags = {"trace.incoming_format": source}
    if len(trace_text.lstrip("0")) > 16:
        tags["trace.incoming_id"] = trace_text
    return Incoming(context, tags)


def extract(headers) -> Incoming:
    """The parent context in ``headers`` (any case-insensitive mapping).

    Unusable headers never fail the request: it starts a new trace, and the
    reason is kept in the ``trace.context_error`` tag.
    """
    problems = []
    for parse in (_lightstep, _b3, _w3c):
        try:
            found = parse(headers)
        except ContextError as error:
            problems.append(str(error))
            continue
        if found is not None:
            break
    else:
        found = Incoming()

    if problems:
        found.tags["trace.context_error"] = "; ".join(problems)
    return found
