"""LightStep reports without the protobuf runtime: a lean recorder and encoder.

The ``lightstep`` library converts every finished span into protobuf messages
on the request thread, copies them all into a ``ReportRequest`` under the lock
the request threads also take, and serializes it. protobuf 3.20 has no compiled
module for Python 3.11, so this runs in pure Python: about 0.7 ms of CPU per
span, against 10 µs to create the span, which made tracing cost a worker
about 40% of its throughput.

The report format is fixed (``lightstep.collector_pb2.ReportRequest``) and a
span uses few of its fields, so :class:`SpanReporter` keeps finished spans as
they are, and its flush thread writes the protobuf wire format itself: the
same bytes ``SerializeToString`` gives (checked in tests/tracing/test_report.py),
posted to the same endpoint with the same headers. Every string is scrubbed of
secrets as it is encoded; encodings of repeated tags are reused.

The tracer stays ``lightstep.Tracer``; only its recorder is replaced, and the
reporter's identity (id, tags) is the one the library made.
"""

from __future__ import annotations

import atexit
import logging
import threading

import requests
from lightstep import util
from lightstep.collector_pb2 import ReportResponse
from opentracing.logs import ERROR_KIND, STACK

log = logging.getLogger(__name__)

_UINT64 = (1 << 64) - 1
# Encoded tag and log fields kept for reuse; most values repeat from request
# to request ("span.kind"="server"). Cleared when full, so varying values
# (URLs with queries) cannot grow it without bound.
_CACHE_LIMIT = 4096


def _varint(value: int) -> bytes:
    value &= _UINT64
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# One-byte varints, and the first byte of each field used (numbers 1 to 7).
_SMALL = [bytes((value,)) for value in range(0x80)]
_LENGTH_KEY = [bytes((number << 3 | 2,)) for number in range(8)]
_VARINT_KEY = [bytes((number << 3,)) for number in range(8)]


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): a string or a message."""
    size = len(payload)
    return (
        _LENGTH_KEY[number] + (_SMALL[size] if size < 0x80 else _varint(size)) + payload
    )


def _uint_field(number: int, value: int) -> bytes:
    """A varint field (wire type 0); zero is proto3's default and is left out."""
    return _VARINT_KEY[number] + _varint(value) if value else b""


def _timestamp(seconds_since_epoch: float) -> bytes:
    # The library's own rounding, so that both encoders give the same bytes.
    seconds, nanos = util._time_to_seconds_nanos(seconds_since_epoch)
    return _uint_field(1, seconds) + _uint_field(2, nanos)


class Encoder:
    """Spans as ``collector_pb2`` wire bytes, every string scrubbed on the way."""

    def __init__(self, scrub):
        self._scrub = scrub
        self._cache: dict = {}

    def _text(self, value) -> bytes:
        # The library sends every tag and log value as a string.
        return util._coerce_str(self._scrub(value)).encode("utf-8", "replace")

    def key_value(self, key, value) -> bytes:
        """A ``KeyValue`` with ``string_value``, as a tag or a log field."""
        cache_key = (key, type(value), value)
        try:
            return self._cache[cache_key]
        except (KeyError, TypeError):
            pass
        name = self._text(key)
        # string_value belongs to a oneof, so even "" is written.
        encoded = _field(1, name) if name else b""
        encoded += _field(2, self._text(value))
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        try:
            self._cache[cache_key] = encoded
        except TypeError:
            pass
        return encoded

    def span(self, span) -> bytes:
        """One ``Span`` message (without its field tag) for a basictracer span."""
        context = span.context
        parts = [
            _field(
                1,
                _uint_field(1, context.trace_id) + _uint_field(2, context.span_id),
            )
        ]
        name = self._text(span.operation_name)
        if name:
            parts.append(_field(2, name))
        if span.parent_id is not None:
            # CHILD_OF is relationship 0, the default, so only the parent's id.
            parts.append(_field(3, _field(2, _uint_field(2, span.parent_id))))
        parts.append(_field(4, _timestamp(span.start_time)))
        parts.append(_uint_field(5, int(util._time_to_micros(span.duration))))
        for key, value in (span.tags or {}).items():
            parts.append(_field(6, self.key_value(key, value)))
        for record in span.logs:
            fields = record.key_values
            if not fields:
                continue
            if ERROR_KIND in fields or STACK in fields:
                fields = _readable_error(fields)
            encoded = _field(1, _timestamp(record.timestamp))
            for key, value in fields.items():
                encoded += _field(2, self.key_value(key, value))
            parts.append(_field(7, encoded))
        return b"".join(parts)


def _readable_error(fields: dict) -> dict:
    """An exception class and traceback as text, as the library logs them."""
    fields = dict(fields)
    if ERROR_KIND in fields:
        fields[ERROR_KIND] = util._format_exc_type(fields[ERROR_KIND])
    if STACK in fields:
        fields[STACK] = util._format_exc_tb(
            fields.get(ERROR_KIND), fields.get("error.object"), fields[STACK]
        )
    return fields


def report_body(reporter: bytes, access_token: str, spans: list[bytes]) -> bytes:
    """A ``ReportRequest``: the encoded ``Reporter``, the token, the spans."""
    token = access_token.encode("utf-8")
    auth = _field(1, token) if token else b""
    return b"".join(
        [_field(1, reporter), _field(2, auth), *[_field(3, span) for span in spans]]
    )


class SpanReporter:
    """A recorder for ``lightstep.Tracer``: buffer spans, report them from a thread.

    ``record_span`` only appends the finished span to a list. The flush thread,
    started at the first span of each process (threads do not survive a fork),
    wakes every ``flush_seconds``, encodes what is buffered and posts it.
    """

    def __init__(
        self,
        *,
        url: str,
        access_token: str,
        reporter: bytes,
        reporter_id: int,
        scrub,
        flush_seconds: float,
        timeout: float,
        max_spans: int,
    ):
        self._url = url
        self._access_token = access_token
        self._reporter = reporter
        self.reporter_id = reporter_id
        self._encoder = Encoder(scrub)
        self._flush_seconds = flush_seconds
        self._timeout = timeout
        self._max_spans = max_spans
        self._headers = {
            "Content-Type": "application/octet-stream",
            "Accept": "application/octet-stream",
            "Lightstep-Access-Token": access_token,
        }

        self._lock = threading.Lock()
        self._spans: list = []
        # Encoded spans of a report that failed, sent again with the next one.
        self._unsent: list[bytes] = []
        self._send_lock = threading.Lock()
        self._session = None
        self._thread = None
        self._wake = threading.Event()
        self._disabled = False
        self._failing = False

    @classmethod
    def replacing(cls, recorder, scrub) -> SpanReporter:
        """A reporter with the settings and identity of a ``lightstep`` recorder."""
        # The library's recorder would send an empty report at exit.
        atexit.unregister(recorder.shutdown)
        recorder._disabled_runtime = True
        return cls(
            url=recorder._collector_url,
            access_token=recorder._auth.access_token,
            reporter=recorder._runtime.SerializeToString(),
            reporter_id=recorder.guid,
            scrub=scrub,
            flush_seconds=recorder._periodic_flush_seconds,
            timeout=recorder._timeout_seconds,
            max_spans=recorder._max_span_records,
        )

    def record_span(self, span) -> None:
        if self._disabled or not span.context.sampled:
            return
        with self._lock:
            if len(self._spans) < self._max_spans:
                self._spans.append(span)
            if self._thread is None and self._flush_seconds > 0:
                self._thread = threading.Thread(
                    target=self._flush_periodically,
                    name="lightstep-report",
                    daemon=True,
                )
                self._thread.start()

    def _flush_periodically(self) -> None:
        # An Event, not a sleep, so that shutdown need not wait out a period.
        while not self._wake.wait(self._flush_seconds):
            self.flush()

    def flush(self) -> bool:
        """Report the buffered spans now; whether a report with spans got through."""
        if self._disabled:
            return False
        with self._send_lock:
            with self._lock:
                spans, self._spans = self._spans, []
            encoded = self._unsent + [self._encoder.span(span) for span in spans]
            self._unsent = []
            if not encoded:
                return False
            return self._send(encoded)

    def _send(self, encoded: list[bytes]) -> bool:
        body = report_body(self._reporter, self._access_token, encoded)
        try:
            if self._session is None:
                self._session = requests.Session()
            reply = self._session.post(
                self._url, data=body, headers=self._headers, timeout=self._timeout
            )
        except requests.RequestException as error:
            self._keep_for_later(encoded)
            self._note_failure(f"could not reach the collector: {error}")
            return False

        if reply.status_code >= 500:
            self._keep_for_later(encoded)
            self._note_failure(f"the collector answered {reply.status_code}")
            return False
        if reply.status_code >= 400:
            # The same report would be refused again: drop it, as the library does.
            self._note_failure(
                f"the collector refused {len(encoded)} spans ({reply.status_code})"
            )
            return False

        self._failing = False
        try:
            commands = ReportResponse.FromString(reply.content).commands
        except Exception:  # noqa: BLE001 - a garbled answer is not worth a crash
            commands = []
        if any(command.disable for command in commands):
            log.warning("the LightStep collector asked this tracer to stop reporting")
            self._disabled = True
        return True

    def _keep_for_later(self, encoded: list[bytes]) -> None:
        self._unsent = encoded[-self._max_spans :]

    def _note_failure(self, message: str) -> None:
        # One line when reporting starts to fail, not one per report.
        if not self._failing:
            log.warning("LightStep spans not reported: %s", message)
        self._failing = True

    def shutdown(self, flush: bool = True) -> bool:
        """Stop the flush thread, report what is left (if ``flush``), stop recording."""
        self._wake.set()
        flushed = self.flush() if flush else False
        self._disabled = True
        if self._session is not None:
            self._session.close()
        return flushed
