"""``TRACER=otlp``: the app's spans as OTLP/HTTP protobuf, checked on the wire.

The receiver double decodes each ``ExportTraceServiceRequest`` the OpenTelemetry
exporter posts, as LightStep's OTLP ingest or a collector would.
"""

from __future__ import annotations

import dataclasses
import logging

import opentracing
import pytest
import requests

from app.tracing import otlp, propagation
from app.tracing.middleware import TRACE_ID_HEADER
from tests.conftest import ADMIN_TOKEN
from tests.doubles.otlp_receiver import OtlpReceiver
from tests.tracing.conftest import ACCESS_TOKEN

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
FEATURES = {"instances": [[0.5, 1.0], [-1.0, 2.0], [3.0, 0.0]]}


def by_name(spans) -> dict:
    found = {}
    for span in spans:
        found.setdefault(span["name"], []).append(span)
    return found


@pytest.fixture(autouse=True)
def _reset_global_tracer():
    yield
    opentracing.set_global_tracer(opentracing.Tracer())


@pytest.fixture
def receiver():
    with OtlpReceiver() as running:
        yield running
        # Export what is left while the receiver still listens, so no batch
        # thread of this test reports to a closed port during the next one.
        tracer = opentracing.global_tracer()
        if isinstance(tracer, otlp.OtlpTracer):
            tracer.recorder.shutdown()


@pytest.fixture
def otlp_settings(settings, receiver):
    return dataclasses.replace(
        settings,
        tracing=True,
        tracer="otlp",
        lightstep_access_token=ACCESS_TOKEN,
        otlp_endpoint=receiver.endpoint,
        lightstep_flush_seconds=0.1,
        lightstep_component_name="logreg-otlp-test",
    )


@pytest.fixture
def otlp_client(otlp_settings, make_app, publish_model):
    publish_model(otlp_settings.model_dir)
    return make_app(otlp_settings).test_client()


def test_predict_with_traceparent_exports_server_and_child_spans(otlp_client, receiver):
    reply = otlp_client.post(
        "/api/v1/predict",
        json=FEATURES,
        headers={"traceparent": TRACEPARENT, "X-Request-Id": "req-otlp-1"},
    )

    assert reply.status_code == 200
    # The header shows the low 64 bits, as it does with the LightStep tracer.
    assert reply.headers[TRACE_ID_HEADER] == TRACE_ID[16:]
    spans = receiver.wait_for(lambda spans: len(spans) >= 3, what="3 spans")
    found = by_name(spans)
    [server] = found["POST /api/v1/predict"]
    assert server["trace_id"] == TRACE_ID
    assert server["parent_id"] == PARENT_ID
    assert server["kind"] == "SPAN_KIND_SERVER"
    assert server["attributes"] == {
        "span.kind": "server",
        "component": "flask",
        "http.method": "POST",
        "http.url": "/api/v1/predict",
        "trace.incoming_format": "w3c",
        "trace.incoming_id": TRACE_ID,
        "http.status_code": 200,
        "model.version": reply.json["model_version"],
        "http.request_id": "req-otlp-1",
    }
    [decode] = found["predict.decode"]
    [score] = found["predict.score"]
    assert decode["parent_id"] == server["span_id"]
    assert score["parent_id"] == server["span_id"]
    assert score["attributes"] == {"batch_size": 3}
    assert {decode["trace_id"], score["trace_id"]} == {TRACE_ID}


def test_export_carries_token_header_and_service_name(otlp_client, receiver):
    otlp_client.get("/api/v1/health")

    [span] = receiver.wait_for(lambda spans: spans, what="the health span")
    assert span["headers"]["lightstep-access-token"] == ACCESS_TOKEN
    assert span["headers"]["content-type"] == "application/x-protobuf"
    assert span["resource"]["service.name"] == "logreg-otlp-test"
    assert span["resource"]["logreg.role"] == "server"
    assert receiver.paths == ["/v1/traces"]


def test_request_without_context_starts_a_new_trace(otlp_client, receiver):
    reply = otlp_client.get("/api/v1/health")

    [span] = receiver.wait_for(lambda spans: spans, what="the health span")
    assert span["parent_id"] is None
    assert span["trace_id"][16:] == reply.headers[TRACE_ID_HEADER]


def test_client_error_is_logged_not_tagged_error(otlp_client, receiver):
    reply = otlp_client.post("/api/v1/predict", json={"instances": "nope"})

    assert reply.status_code == 400
    spans = receiver.wait_for(
        lambda spans: any(s["name"] == "POST /api/v1/predict" for s in spans)
    )
    [server] = by_name(spans)["POST /api/v1/predict"]
    assert "error" not in server["attributes"]
    assert server["attributes"]["http.status_code"] == 400
    assert [event["name"] for event in server["events"]] == ["client_error"]


def test_secrets_are_scrubbed_before_export(otlp_settings, make_app, receiver):
    client = make_app(otlp_settings).test_client()

    client.get(
        "/api/v1/health",
        headers={"traceparent": "00-zz-zz-01"},
        query_string={"token": ACCESS_TOKEN, "note": f"see {ADMIN_TOKEN}"},
    )

    [span] = receiver.wait_for(lambda spans: spans, what="the health span")
    text = repr(span["attributes"]) + repr(span["events"]) + span["name"]
    assert ACCESS_TOKEN not in text
    assert ADMIN_TOKEN not in text
    assert span["attributes"]["http.url"] == (
        "/api/v1/health?token=[redacted]&note=see%20[redacted]"
    )


def test_job_context_round_trips_the_full_trace_id(otlp_settings, make_app):
    make_app(otlp_settings)
    tracer = opentracing.global_tracer()
    incoming = propagation.extract({"traceparent": TRACEPARENT})
    request_span = tracer.start_span(
        "POST /api/v1/train", child_of=incoming.context, tags=incoming.tags
    )
    carrier: dict = {}

    tracer.inject(request_span.context, opentracing.Format.TEXT_MAP, carrier)
    request_span.finish()
    queued = propagation.extract(carrier)
    job_span = tracer.start_span("train.job", child_of=queued.context, tags=queued.tags)
    job_span.finish()

    span_id = format(request_span.context.span_id, "016x")
    assert carrier == {
        "traceparent": f"00-{TRACE_ID}-{span_id}-01",
        "ot-tracer-traceid": TRACE_ID,
        "ot-tracer-spanid": span_id,
        "ot-tracer-sampled": "true",
    }
    assert format(job_span.context.trace_id, "032x") == TRACE_ID
    assert job_span.unwrap().parent.span_id == request_span.context.span_id


def test_without_token_lightstep_endpoint_is_off_with_the_reason(
    settings, make_app, caplog
):
    caplog.set_level(logging.INFO, logger="app.tracing")

    make_app(settings, tracing=True, tracer="otlp")

    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        (
            "INFO",
            "tracing off: LIGHTSTEP_ACCESS_TOKEN is not set "
            "(LightStep's OTLP ingest needs it)",
        )
    ]


def test_own_collector_needs_no_token_and_gets_none(
    otlp_settings, make_app, receiver, caplog
):
    caplog.set_level(logging.INFO, logger="app.tracing")
    client = make_app(
        dataclasses.replace(otlp_settings, lightstep_access_token="")
    ).test_client()

    client.get("/api/v1/health")

    [span] = receiver.wait_for(lambda spans: spans, what="the health span")
    assert "lightstep-access-token" not in span["headers"]
    tracing_lines = [r.getMessage() for r in caplog.records if r.name == "app.tracing"]
    assert tracing_lines[-1] == (
        "tracing on: OTLP spans of component 'logreg-otlp-test' to "
        f"{receiver.endpoint} every 0.1 s"
    )


@pytest.mark.e2e
def test_stack_workers_export_otlp_with_the_incoming_trace(
    stack_factory, receiver, publish_model
):
    env = {
        "TRACING": "on",
        "TRACER": "otlp",
        "LIGHTSTEP_ACCESS_TOKEN": ACCESS_TOKEN,
        "OTLP_ENDPOINT": receiver.endpoint,
        "LIGHTSTEP_FLUSH_SECONDS": "0.1",
    }
    stack = stack_factory(env=env, processes=2)
    publish_model(stack.model_dir)

    reply = requests.post(
        stack.url + "/api/v1/predict",
        json=FEATURES,
        headers={"traceparent": TRACEPARENT},
        timeout=10,
    )

    assert reply.status_code == 200, reply.text
    spans = receiver.wait_for(
        lambda spans: (
            {"POST /api/v1/predict", "predict.score"}
            <= {span["name"] for span in spans}
        ),
        what="the predict spans from a worker",
    )
    found = by_name(spans)
    [server] = found["POST /api/v1/predict"]
    assert server["trace_id"] == TRACE_ID
    assert server["parent_id"] == PARENT_ID
    assert server["resource"]["uwsgi.worker_id"] in {"1", "2"}
    assert found["predict.score"][0]["parent_id"] == server["span_id"]
