"""The nginx variant for ngx_otel_module: W3C context, OTLP export to LightStep."""

from __future__ import annotations

import crossplane

from tests.conftest import REPO

OTEL = REPO / "deploy" / "nginx" / "otel"


def directives(path, **options) -> list[dict]:
    parsed = crossplane.parse(str(path), single=True, check_ctx=False, **options)
    assert parsed["errors"] == []
    return parsed["config"][0]["parsed"]


def flat(parsed) -> list[tuple[str, list[str]]]:
    found = []
    for directive in parsed:
        found.append((directive["directive"], directive["args"]))
        found += flat(directive.get("block", []))
    return found


def test_main_file_loads_the_otel_module_not_opentracing():
    found = flat(directives(OTEL / "nginx.conf"))

    assert ("load_module", ["modules/ngx_otel_module.so"]) in found
    assert [name for name, _ in found if name.startswith("opentracing")] == []
    assert ("include", ["logreg/tracing-http.conf"]) in found
    assert ("include", ["logreg/server.conf"]) in found


def test_http_template_exports_to_lightstep_with_the_token_header():
    found = flat(directives(OTEL / "tracing-http.conf.template"))

    assert ("endpoint", ["${OTEL_EXPORTER_ENDPOINT}"]) in found
    assert ("header", ["lightstep-access-token", "${LIGHTSTEP_ACCESS_TOKEN}"]) in found
    assert ("otel_trace", ["on"]) in found
    assert ("otel_trace_context", ["propagate"]) in found
    assert ("otel_span_name", ["$request_method $logreg_operation"]) in found
    assert ("otel_service_name", ["${OTEL_SERVICE_NAME}"]) in found


def test_location_file_hands_nginx_span_to_the_app_as_traceparent():
    found = flat(directives(OTEL / "tracing-location.conf"))

    assert (
        "uwsgi_param",
        ["HTTP_TRACEPARENT", "00-$otel_trace_id-$otel_span_id-01"],
    ) in found
    assert ("otel_span_attr", ["logreg.route", "$logreg_route"]) in found


def test_span_names_match_the_opentracing_variant():
    def operation_map(path):
        [found] = [d for d in directives(path) if d["directive"] == "map"]
        return [(entry["directive"], entry["args"]) for entry in found["block"]]

    assert operation_map(OTEL / "tracing-http.conf.template") == operation_map(
        REPO / "deploy" / "nginx" / "logreg" / "tracing-http.conf"
    )
