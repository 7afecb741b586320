"""App logs as JSON lines, each tied to its request and trace when it has one.

Every line holds ``time``, ``level``, ``logger`` and ``message``. A line logged
while a request is being served also holds ``request_id``, ``method``,
``route`` and, when tracing is on, ``trace_id`` and ``span_id`` (of the span
active when the line was logged). The access line that ends each request adds
``status``, ``duration_ms``, ``path`` and ``model_version``.

No request body or header other than the request id is ever read here, and
every configured secret is replaced in every string before the line is written.
"""

from __future__ import annotations

import logging
import time

import opentracing
import orjson
from flask import has_request_context, request

from app.observability import request_id
from app.tracing.redact import Scrubber

ACCESS_LOGGER = "app.access"

# Fields an access line may carry as ``extra``; anything else passed that way
# is ignored, so a careless ``extra`` cannot put a payload in the log.
_EXTRA_FIELDS = ("status", "duration_ms", "path", "model_version", "worker")


def _utc(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def _hex(number) -> str | None:
    if not isinstance(number, int):
        return None
    # Trace ids as LightStep and X-Trace-Id show them: the low 64 bits.
    return format(number & ((1 << 64) - 1), "016x")


def request_fields() -> dict:
    """The request and trace a line logged now belongs to; empty outside one."""
    if not has_request_context():
        return {}

    rule = request.url_rule
    fields = {
        "request_id": request_id.current(),
        "method": request.method,
        "route": rule.rule if rule is not None else None,
    }
    span = opentracing.global_tracer().active_span
    context = getattr(span, "context", None)
    trace_id = _hex(getattr(context, "trace_id", None))
    if trace_id is not None:
        fields["trace_id"] = trace_id
        fields["span_id"] = _hex(getattr(context, "span_id", None))
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record, secrets replaced by ``[redacted]``."""

    def __init__(self, secrets=()):
        super().__init__()
        self._scrub = Scrubber(secrets, max_length=None)

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        try:
            line.update(request_fields())
        except Exception:  # noqa: BLE001 - a log line must never fail a request
            pass
        for name in _EXTRA_FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text

        line = {name: self._scrub(value) for name, value in line.items()}
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """The plain format (``LOG_FORMAT=text``), for reading; scrubbed the same way."""

    def __init__(self, secrets=()):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._scrub = Scrubber(secrets, max_length=None)

    def format(self, record: logging.LogRecord) -> str:
        return self._scrub(super().format(record))


def formatter_for(settings) -> logging.Formatter:
    if settings.log_format == "text":
        return TextFormatter(settings.secrets())
    return JsonFormatter(settings.secrets())
