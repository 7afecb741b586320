"""The hand-written report encoder and the reporter that posts its reports."""

from __future__ import annotations

import socket

import lightstep
import pytest
from basictracer.context import SpanContext
from basictracer.recorder import SpanRecorder
from lightstep import collector_pb2

from app.tracing import activate
from app.tracing.redact import Scrubber
from app.tracing.report import Encoder, SpanReporter, report_body
from tests.doubles.lightstep_collector import LightStepCollector
from tests.tracing.conftest import ACCESS_TOKEN

PARENT = SpanContext(trace_id=0x5A1E0F00BA5EBA11, span_id=0xC0FFE)


class _Kept(SpanRecorder):
    def __init__(self):
        self.spans = []

    def record_span(self, span):
        self.spans.append(span)


def _library_tracer(host="127.0.0.1", port=9):
    return lightstep.Tracer(
        component_name="logreg-test",
        access_token=ACCESS_TOKEN,
        collector_host=host,
        collector_port=port,
        collector_encryption="none",
        use_http=True,
        disable_binary_format=True,
        periodic_flush_seconds=0,
        tags={"process.pid": "4242", "logreg.role": "server"},
    )


def _request_spans(tracer) -> list:
    """The spans of one predict, plus a failing one with an exception log."""
    kept = _Kept()
    tracer.recorder = kept
    server = activate(
        tracer,
        "POST /api/v1/predict",
        child_of=PARENT,
        tags={"span.kind": "server", "http.url": "/api/v1/predict?limit=5"},
        ignore_active_span=True,
    )
    with activate(tracer, "predict.score", tags={"batch_size": 2, "empty": ""}):
        pass
    server.span.set_tag("http.status_code", 200)
    server.span.set_tag("error", True)
    server.span.log_kv({"event": "error", "error.kind": "ApiError", "message": "é"})
    server.span.log_kv({})
    try:
        raise ValueError("no")
    except ValueError as error:
        server.span.log_kv(
            {"error.kind": ValueError, "error.object": error, "stack": None}
        )
    server.close()
    with activate(tracer, "", ignore_active_span=True, tags={"": "no key"}):
        pass
    return kept.spans


def _library_bytes(recorder, spans) -> bytes:
    for span in spans:
        recorder.record_span(span)
    report = recorder._construct_report_request()
    report.auth.access_token = ACCESS_TOKEN
    return report.SerializeToString()


@pytest.fixture
def library_tracer(monkeypatch):
    tracer = _library_tracer()
    # Converting spans is all that is asked of the library here: no thread.
    monkeypatch.setattr(tracer.recorder, "_maybe_init_flush_thread", lambda: None)
    return tracer


def test_report_bytes_are_the_librarys_serialization(library_tracer):
    library = library_tracer.recorder
    spans = _request_spans(library_tracer)
    encoder = Encoder(lambda value: value)

    ours = report_body(
        library._runtime.SerializeToString(),
        ACCESS_TOKEN,
        [encoder.span(span) for span in spans],
    )

    assert ours == _library_bytes(library, spans)
    decoded = collector_pb2.ReportRequest.FromString(ours)
    assert [span.operation_name for span in decoded.spans] == [
        "predict.score",
        "POST /api/v1/predict",
        "",
    ]
    assert decoded.spans[1].references[0].span_context.span_id == 0xC0FFE
    assert decoded.spans[1].span_context.trace_id == 0x5A1E0F00BA5EBA11
    assert decoded.auth.access_token == ACCESS_TOKEN


def test_reused_tag_encodings_keep_values_of_different_types_apart():
    encoder = Encoder(lambda value: value)

    assert encoder.key_value("x", 1) != encoder.key_value("x", True)
    assert encoder.key_value("x", True) == encoder.key_value("x", True)
    assert encoder.key_value("x", [1]) == encoder.key_value("x", [1])


def test_every_encoded_string_is_scrubbed(library_tracer):
    secret = "s3cret-admin-token-0d9a"
    kept = _Kept()
    library_tracer.recorder = kept
    scope = activate(
        library_tracer,
        f"GET /{secret}",
        tags={"http.url": f"/x?t={secret}", "db": "https://u:pw@es:9200/"},
        ignore_active_span=True,
    )
    scope.span.log_kv({"message": f"Bearer {secret}"})
    scope.close()
    encoder = Encoder(Scrubber([secret]))

    encoded = encoder.span(kept.spans[0])

    assert secret.encode() not in encoded
    assert b"pw@" not in encoded
    span = collector_pb2.Span.FromString(encoded)
    assert span.operation_name == "GET /[redacted]"
    assert {tag.key: tag.string_value for tag in span.tags} == {
        "http.url": "/x?t=[redacted]",
        "db": "https://[redacted]@es:9200/",
    }
    assert span.logs[0].fields[0].string_value == "Bearer [redacted]"


def _reporter_for(port: int) -> tuple:
    tracer = _library_tracer(port=port)
    reporter = SpanReporter.replacing(tracer.recorder, Scrubber([]))
    tracer.recorder = reporter
    return tracer, reporter


def _finish_one(tracer, operation: str) -> None:
    activate(tracer, operation, ignore_active_span=True).close()


def test_reporter_posts_spans_with_the_token_and_the_librarys_identity(collector):
    tracer, reporter = _reporter_for(collector.port)
    _finish_one(tracer, "first")

    assert reporter.flush() is True

    [report] = collector.reports
    assert report["header_token"] == ACCESS_TOKEN
    assert report["auth_token"] == ACCESS_TOKEN
    assert report["reporter_id"] == reporter.reporter_id
    [span] = collector.spans()
    assert span["operation"] == "first"
    assert span["reporter_tags"]["process.pid"] == "4242"
    assert span["reporter_tags"]["lightstep.component_name"] == "logreg-test"
    assert reporter.flush() is False


def test_spans_a_collector_did_not_get_go_with_the_next_report():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tracer, reporter = _reporter_for(port)
    _finish_one(tracer, "while-down")

    assert reporter.flush() is False

    with LightStepCollector(port=port) as collector:
        _finish_one(tracer, "after")
        assert reporter.shutdown(flush=True) is True
        names = [span["operation"] for span in collector.spans()]
    assert names == ["while-down", "after"]
    _finish_one(tracer, "after-shutdown")
    assert reporter.flush() is False


def test_span_count_of_the_sink_matches_the_protobuf_decoding():
    from lightstep import collector_pb2

    from tests.doubles.lightstep_collector import count_spans

    report = collector_pb2.ReportRequest()
    report.reporter.reporter_id = 7
    report.auth.access_token = "t"
    for index in range(5):
        span = report.spans.add()
        span.operation_name = f"op{index}"
        span.span_context.trace_id = 2**63 + index
        span.duration_micros = 300 + index
    report.timestamp_offset_micros = 12

    assert count_spans(report.SerializeToString()) == 5
    assert count_spans(collector_pb2.ReportRequest().SerializeToString()) == 0
