"""An OTLP/HTTP trace receiver on loopback that records every span it is sent.

It answers what an OpenTelemetry collector's ``otlphttp`` receiver (and
LightStep's OTLP/HTTP ingest) answers: ``POST`` of a binary protobuf
``ExportTraceServiceRequest`` (``Content-Type: application/x-protobuf``,
gzip-encoded or not) gets a binary ``ExportTraceServiceResponse``; another
content type gets 415, a body that does not parse gets 400.

Spans come back as plain dicts: hex ids (32 digits for the trace, 16 for
spans), the parent's span id, the kind's name, attributes and event
attributes as Python values, the resource's attributes, and the headers of
the request that carried them.
"""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

TRACES_PATH = "/v1/traces"


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    return getattr(any_value, kind)


def _attributes(key_values) -> dict:
    return {item.key: _value(item.value) for item in key_values}


def span_record(span, resource: dict, headers: dict) -> dict:
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_id": span.parent_span_id.hex() or None,
        "name": span.name,
        "kind": trace_pb2.Span.SpanKind.Name(span.kind),
        "attributes": _attributes(span.attributes),
        "events": [
            {"name": event.name, **_attributes(event.attributes)}
            for event in span.events
        ],
        "resource": resource,
        "headers": headers,
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "otlp-receiver-double"

    def log_message(self, format, *args):
        # Quiet: the tests look at spans, not at access logs.
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Type") != "application/x-protobuf":
            self._answer(415, b"only application/x-protobuf is accepted")
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)

        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError:
            self._answer(400, b"the body is not an ExportTraceServiceRequest")
            return

        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.receiver._add(request, self.path, headers)
        response = trace_service_pb2.ExportTraceServiceResponse()
        self._answer(200, response.SerializeToString())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class OtlpReceiver:
    """``with OtlpReceiver() as receiver:`` listens on 127.0.0.1:<free port>."""

    host = "127.0.0.1"

    def __init__(self, port: int = 0):
        self._server = ThreadingHTTPServer((self.host, port), _Handler)
        self._server.receiver = self
        self._lock = threading.Lock()
        self._spans: list[dict] = []
        self.paths: list[str] = []
        self._thread = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self._server.server_address[1]}{TRACES_PATH}"

    def start(self) -> OtlpReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _add(self, request, path: str, headers: dict) -> None:
        records = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    records.append(span_record(span, resource, headers))
        with self._lock:
            self.paths.append(path)
            self._spans.extend(records)

    def spans(self) -> list[dict]:
        with self._lock:
            return list(self._spans)

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "spans"):
        """The spans once ``predicate(spans)`` holds; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:g}s waiting for {what}; got {spans!r}"
                )
            time.sleep(0.05)
