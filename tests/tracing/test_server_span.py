"""The server span of each request, checked at the collector double."""

from __future__ import annotations

import dataclasses
import logging

import opentracing
import pytest

from app.tracing.middleware import TRACE_ID_HEADER
from tests.conftest import ADMIN_TOKEN
from tests.tracing.conftest import ACCESS_TOKEN
from tests.tracing.spans import all_strings, by_operation

NGINX_CONTEXT = {
    "ot-tracer-traceid": "5a1e0f00ba5eba11",
    "ot-tracer-spanid": "00000000000c0ffe",
    "ot-tracer-sampled": "true",
    "X-Request-Id": "req-5a1e0f00",
}


@pytest.fixture(autouse=True)
def _reset_global_tracer():
    yield
    opentracing.set_global_tracer(opentracing.Tracer())


@pytest.fixture
def traced_client(traced_settings, make_app, publish_model):
    publish_model(traced_settings.model_dir)
    return make_app(traced_settings).test_client()


def test_predict_span_is_child_of_the_incoming_span_with_its_tags(
    traced_client, collector
):
    reply = traced_client.post(
        "/api/v1/predict",
        json={"instances": [[0.5, 1.0], [-1.0, 2.0], [3.0, 0.0]]},
        headers=NGINX_CONTEXT,
    )

    assert reply.status_code == 200
    assert reply.headers[TRACE_ID_HEADER] == "5a1e0f00ba5eba11"
    spans = collector.wait_for(lambda spans: len(spans) >= 3 and spans)
    found = by_operation(spans)
    [server] = found["POST /api/v1/predict"]
    assert server["trace_id"] == "5a1e0f00ba5eba11"
    assert server["parent_id"] == "00000000000c0ffe"
    assert server["tags"] == {
        "span.kind": "server",
        "component": "flask",
        "http.method": "POST",
        "http.url": "/api/v1/predict",
        "trace.incoming_format": "lightstep",
        "http.status_code": "200",
        "model.version": reply.json["model_version"],
        "http.request_id": "req-5a1e0f00",
    }
    assert server["logs"] == []

    [decode] = found["predict.decode"]
    [score] = found["predict.score"]
    assert decode["parent_id"] == server["span_id"]
    assert decode["tags"] == {"content_type": "application/json"}
    assert score["parent_id"] == server["span_id"]
    assert score["tags"] == {"batch_size": "3"}
    assert {decode["trace_id"], score["trace_id"]} == {"5a1e0f00ba5eba11"}


def test_report_carries_the_access_token_in_header_and_auth(traced_client, collector):
    traced_client.get("/api/v1/health")

    collector.wait_for(lambda spans: spans)
    assert collector.reports[0]["header_token"] == ACCESS_TOKEN
    assert collector.reports[0]["auth_token"] == ACCESS_TOKEN


def test_parametrised_route_names_the_span_by_its_rule(traced_client, collector):
    reply = traced_client.get("/api/v1/train/" + "0" * 32)

    assert reply.status_code == 404
    [span] = collector.wait_for(lambda spans: spans)
    assert span["operation"] == "GET /api/v1/train/<job_id>"


def test_unmatched_path_names_the_span_by_the_path(traced_client, collector):
    traced_client.get("/api/v1/no-such-thing")

    [span] = collector.wait_for(lambda spans: spans)
    assert span["operation"] == "GET /api/v1/no-such-thing"
    assert span["tags"]["http.status_code"] == "404"


def test_client_error_is_logged_without_the_error_tag(traced_client, collector):
    reply = traced_client.post(
        "/api/v1/predict", data=b"x", headers={"Content-Type": "text/plain"}
    )

    assert reply.status_code == 415
    spans = collector.wait_for(lambda spans: len(spans) >= 2 and spans)
    [server] = by_operation(spans)["POST /api/v1/predict"]
    [decode] = by_operation(spans)["predict.decode"]
    assert "error" not in server["tags"]
    assert "error" not in decode["tags"]
    assert decode["logs"] == server["logs"]
    assert server["tags"]["error.code"] == "unsupported_media_type"
    assert server["logs"] == [
        {
            "event": "client_error",
            "error.kind": "unsupported_media_type",
            "message": reply.json["error"]["message"],
        }
    ]


def test_unhandled_exception_sets_error_and_logs_kind_and_message(
    traced_settings, make_app, collector
):
    app = make_app(traced_settings)

    @app.get("/api/v1/explode")
    def explode():
        raise RuntimeError("disk on fire")

    reply = app.test_client().get("/api/v1/explode")

    assert reply.status_code == 500
    [server] = collector.wait_for(lambda spans: spans)
    assert server["tags"]["error"] == "True"
    assert server["tags"]["error.code"] == "RuntimeError"
    assert server["tags"]["http.status_code"] == "500"
    assert server["logs"] == [
        {"event": "error", "error.kind": "RuntimeError", "message": "disk on fire"}
    ]


def test_service_unavailable_is_an_error(traced_settings, make_app, collector):
    reply = (
        make_app(traced_settings)
        .test_client()
        .post("/api/v1/predict", json={"features": [1, 2]})
    )

    assert reply.status_code == 503
    [server] = collector.wait_for(lambda spans: spans)
    assert server["tags"]["error"] == "True"
    assert server["logs"][0]["error.kind"] == "no_model"


def test_new_trace_when_no_context_arrives_and_header_names_it(
    traced_client, collector
):
    reply = traced_client.get("/api/v1/health")

    [server] = collector.wait_for(lambda spans: spans)
    assert server["parent_id"] is None
    assert reply.headers[TRACE_ID_HEADER] == server["trace_id"]
    assert len(server["trace_id"]) == 16


def test_unsampled_incoming_context_records_nothing(traced_client, collector):
    reply = traced_client.get(
        "/api/v1/health", headers={**NGINX_CONTEXT, "ot-tracer-sampled": "false"}
    )
    traced_client.get("/api/v1/model")

    assert reply.headers[TRACE_ID_HEADER] == "5a1e0f00ba5eba11"
    spans = collector.wait_for(lambda spans: spans)
    assert [span["operation"] for span in spans] == ["GET /api/v1/model"]


def test_no_secret_reaches_any_span(traced_settings, make_app, collector):
    settings = dataclasses.replace(
        traced_settings,
        elasticsearch_url="http://elastic:es-secret-77@127.0.0.1:9/",
        elasticsearch_api_key="es-api-key-88",
    )
    client = make_app(settings).test_client()

    client.get(
        f"/api/v1/train/{'1' * 32}?token={ADMIN_TOKEN}&access_token=x",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", **NGINX_CONTEXT},
    )
    client.post(
        "/api/v1/health/watcher/remediate",
        json={"dry_run": True},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    client.get("/api/v1/health/watcher")

    spans = collector.wait_for(lambda spans: len(spans) >= 3 and spans)
    strings = [text for span in spans for text in all_strings(span)]
    for secret in settings.secrets():
        assert [text for text in strings if secret in text] == []
    assert spans[0]["tags"]["http.url"] == (
        f"/api/v1/train/{'1' * 32}?token=[redacted]&access_token=[redacted]"
    )


def test_no_token_turns_tracing_off_in_one_log_line(
    settings, make_app, caplog, collector
):
    caplog.set_level(logging.INFO, logger="app.tracing")
    client = make_app(settings, tracing=True, lightstep_access_token="").test_client()

    reply = client.get("/api/v1/health", headers=NGINX_CONTEXT)

    assert TRACE_ID_HEADER not in reply.headers
    tracing_lines = [r.getMessage() for r in caplog.records if r.name == "app.tracing"]
    assert tracing_lines == ["tracing off: LIGHTSTEP_ACCESS_TOKEN is not set"]


def test_tracing_off_setting_wins_over_a_token(settings, make_app, caplog):
    caplog.set_level(logging.INFO, logger="app.tracing")

    make_app(settings, tracing=False, lightstep_access_token="t")

    assert [record.getMessage() for record in caplog.records] == [
        "tracing off: TRACING=off"
    ]


def test_start_up_says_where_spans_go(traced_settings, make_app, caplog, collector):
    caplog.set_level(logging.INFO, logger="app.tracing")

    make_app(traced_settings)

    assert [record.getMessage() for record in caplog.records] == [
        "tracing on: LightStep spans of component 'logreg-service' to "
        f"http://127.0.0.1:{collector.port}/api/v2/reports every 0.1 s"
    ]
