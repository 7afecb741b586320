"""A LightStep collector on loopback that records every span it is sent.

It speaks the protocol the ``lightstep`` Python tracer uses with
``use_http=True``: ``POST /api/v2/reports`` with a binary protobuf
``lightstep.collector_pb2.ReportRequest`` (``Content-Type:
application/octet-stream``, the project's token in ``Lightstep-Access-Token``
and in the report's ``auth``), answered by a binary ``ReportResponse``. A
report without a token is answered 401 with the reason in ``errors``, as the
real collector refuses it (the tracer drops such a report).

Spans come back as plain dicts: hex ids, the parent's span id, tags and log
fields as strings, the reporter's id and tags, the report's token.

With ``decode=False`` it is a sink for load tests: it checks the token header
and counts each report's spans from the top-level wire fields, without the
pure-Python protobuf decoding, whose CPU would otherwise be charged to the
service sharing the machine.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lightstep import collector_pb2

REPORT_PATH = "/api/v2/reports"


def _value(key_value) -> str:
    kind = key_value.WhichOneof("value")
    return "" if kind is None else str(getattr(key_value, kind))


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def count_spans(body: bytes) -> int:
    """How many ``spans`` (field 3) a ReportRequest holds, from its top level."""
    count = position = 0
    while position < len(body):
        key, position = _varint(body, position)
        wire_type = key & 7
        if wire_type == 0:
            _, position = _varint(body, position)
        elif wire_type == 2:
            size, position = _varint(body, position)
            position += size
            count += key >> 3 == 3
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        else:
            raise ValueError(f"wire type {wire_type} in a ReportRequest")
    return count


def _hex(number: int) -> str:
    return format(number, "016x")


def span_record(span, report, token: str) -> dict:
    """One protobuf span as a dict, with what its report said about it."""
    parents = [
        _hex(ref.span_context.span_id)
        for ref in span.references
        if ref.relationship == collector_pb2.Reference.CHILD_OF
    ]
    return {
        "trace_id": _hex(span.span_context.trace_id),
        "span_id": _hex(span.span_context.span_id),
        "parent_id": parents[0] if parents else None,
        "operation": span.operation_name,
        "start": span.start_timestamp.seconds + span.start_timestamp.nanos / 1e9,
        "duration_micros": span.duration_micros,
        "tags": {tag.key: _value(tag) for tag in span.tags},
        "logs": [
            {field.key: _value(field) for field in log.fields} for log in span.logs
        ],
        "reporter_id": report.reporter.reporter_id,
        "reporter_tags": {tag.key: _value(tag) for tag in report.reporter.tags},
        "access_token": token,
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "lightstep-collector-double"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        # Tests read the recorded spans, not an access log on stderr.
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path != REPORT_PATH:
            self._answer(404, errors=[f"no such path {self.path}; use {REPORT_PATH}"])
            return

        collector = self.server.collector
        if not collector.decode:
            header_token = self.headers.get("Lightstep-Access-Token", "")
            if not header_token:
                self._answer(401, errors=["no access token"])
                return
            try:
                spans = count_spans(body)
            except (ValueError, IndexError):
                self._answer(400, errors=["the body is not a ReportRequest"])
                return
            collector._count(spans, header_token)
            self._answer(200)
            return

        report = collector_pb2.ReportRequest()
        try:
            report.ParseFromString(body)
        except Exception:  # noqa: BLE001 - any undecodable body is the client's fault
            self._answer(400, errors=["the body is not a ReportRequest"])
            return

        header_token = self.headers.get("Lightstep-Access-Token", "")
        token = header_token or report.auth.access_token
        if not token:
            self._answer(401, errors=["no access token"])
            return

        self.server.collector._add(report, token, header_token)
        self._answer(200)

    def _answer(self, status: int, errors=()):
        now = time.time()
        response = collector_pb2.ReportResponse(errors=list(errors))
        response.receive_timestamp.FromNanoseconds(int(now * 1e9))
        response.transmit_timestamp.FromNanoseconds(int(time.time() * 1e9))
        payload = response.SerializeToString()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class LightStepCollector:
    """Start with ``start()`` (or ``with``); point the tracer at ``host``/``port``."""

    host = "127.0.0.1"

    def __init__(self, port: int = 0, decode: bool = True):
        self.decode = decode
        self._server = ThreadingHTTPServer((self.host, port), _Handler)
        self._server.daemon_threads = True
        self._server.collector = self
        self._thread = None
        self._changed = threading.Condition()
        self._spans: list[dict] = []
        self.reports: list[dict] = []
        self.on_span = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def env(self, token: str, flush_seconds: float = 0.2) -> dict:
        """The app's environment for reporting here."""
        return {
            "LIGHTSTEP_ACCESS_TOKEN": token,
            "LIGHTSTEP_COLLECTOR_HOST": self.host,
            "LIGHTSTEP_COLLECTOR_PORT": str(self.port),
            "LIGHTSTEP_COLLECTOR_ENCRYPTION": "none",
            "LIGHTSTEP_FLUSH_SECONDS": str(flush_seconds),
        }

    def start(self) -> LightStepCollector:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="lightstep-collector",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LightStepCollector:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _add(self, report, token: str, header_token: str) -> None:
        spans = [span_record(span, report, token) for span in report.spans]
        with self._changed:
            self.reports.append(
                {
                    "reporter_id": report.reporter.reporter_id,
                    "header_token": header_token,
                    "auth_token": report.auth.access_token,
                    "span_count": len(spans),
                }
            )
            self._spans.extend(spans)
            self._changed.notify_all()
        if self.on_span is not None:
            for span in spans:
                self.on_span(span)

    def _count(self, span_count: int, header_token: str) -> None:
        with self._changed:
            self.reports.append(
                {"header_token": header_token, "span_count": span_count}
            )
            self._changed.notify_all()

    def span_count(self) -> int:
        """Spans received, decoded or only counted."""
        with self._changed:
            return sum(report["span_count"] for report in self.reports)

    def spans(self) -> list[dict]:
        with self._changed:
            return list(self._spans)

    def clear(self) -> None:
        with self._changed:
            self._spans.clear()
            self.reports.clear()

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "spans"):
        """Block until ``predicate(spans)`` is truthy; return its value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = predicate(list(self._spans))
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    names = sorted({span["operation"] for span in self._spans})
                    raise TimeoutError(
                        f"no {what} after {timeout:g} s; the collector holds "
                        f"{len(self._spans)} spans: {names}"
                    )
                self._changed.wait(left)

    def trace(self, trace_id: str) -> list[dict]:
        return [span for span in self.spans() if span["trace_id"] == trace_id]
