"""App log lines: JSON with the request, trace and span ids; never a secret."""

from __future__ import annotations

import io
import json
import logging

import opentracing
import pytest
from opentracing.mocktracer import MockTracer

from app.observability.logs import ACCESS_LOGGER, JsonFormatter, formatter_for
from app.settings import Settings, SettingsError
from tests.conftest import ADMIN_TOKEN
from tests.observability.helpers import publish_tiny_model


@pytest.fixture
def captured():
    """Lines the app logs, through the formatter production uses."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter([ADMIN_TOKEN]))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture
def mock_tracer():
    previous = opentracing.global_tracer()
    tracer = MockTracer()
    opentracing.set_global_tracer(tracer)
    yield tracer
    opentracing.set_global_tracer(previous)


def test_access_line_has_route_status_duration_and_request_id(client, captured):
    client.get("/api/v1/train/0123", headers={"X-Request-Id": "req-access-1"})

    [line] = [entry for entry in captured() if entry["logger"] == ACCESS_LOGGER]
    assert line["level"] == "INFO"
    assert line["message"] == "GET /api/v1/train/<job_id> 404"
    assert line["route"] == "/api/v1/train/<job_id>"
    assert line["path"] == "/api/v1/train/0123"
    assert line["method"] == "GET"
    assert line["status"] == 404
    assert line["request_id"] == "req-access-1"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["time"].endswith("Z") and len(line["time"]) == 24


def test_line_logged_inside_a_span_carries_its_trace_and_span_ids(
    app, captured, mock_tracer
):
    with app.test_request_context("/api/v1/health", headers={"X-Request-Id": "r-9"}):
        with mock_tracer.start_active_span("GET /api/v1/health") as scope:
            logging.getLogger("app.test").warning("inside the span")
            context = scope.span.context

    [line] = captured()
    assert line["message"] == "inside the span"
    assert line["logger"] == "app.test"
    assert line["level"] == "WARNING"
    assert line["request_id"] == "r-9"
    assert line["trace_id"] == format(context.trace_id, "016x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_line_outside_a_request_has_only_the_basic_fields(captured):
    logging.getLogger("app.test").info("at start-up %s", "done")

    [line] = captured()
    assert set(line) == {"time", "level", "logger", "message"}
    assert line["message"] == "at start-up done"


def test_secrets_are_redacted_from_messages_and_tracebacks(captured):
    log = logging.getLogger("app.test")
    try:
        raise ValueError(f"bad token {ADMIN_TOKEN}")
    except ValueError:
        log.exception("refused %s", ADMIN_TOKEN)

    [line] = captured()
    assert line["message"] == "refused [redacted]"
    assert "ValueError: bad token [redacted]" in line["exception"]
    assert ADMIN_TOKEN not in json.dumps(line)


def test_log_format_text_selects_the_plain_formatter():
    settings = Settings.from_env({"LOG_FORMAT": "text"})
    record = logging.LogRecord("app.x", logging.INFO, __file__, 1, "hello", (), None)

    line = formatter_for(settings).format(record)

    assert line.endswith(" INFO app.x: hello")
    assert isinstance(formatter_for(Settings()), JsonFormatter)


def test_text_lines_are_scrubbed_of_secrets_and_url_credentials():
    settings = Settings.from_env({"LOG_FORMAT": "text", "ADMIN_TOKEN": ADMIN_TOKEN})
    record = logging.LogRecord(
        "app.x",
        logging.WARNING,
        __file__,
        1,
        "token %s for http://elastic:pw@127.0.0.1:9200",
        (ADMIN_TOKEN,),
        None,
    )

    line = formatter_for(settings).format(record)

    assert line.endswith(
        " WARNING app.x: token [redacted] for http://[redacted]@127.0.0.1:9200"
    )


def test_unknown_log_format_is_refused_with_the_accepted_values():
    with pytest.raises(SettingsError, match="LOG_FORMAT must be one of json, text"):
        Settings.from_env({"LOG_FORMAT": "xml"})


def test_app_logs_no_request_payload(client, settings, captured):
    version = publish_tiny_model(settings.model_dir)

    reply = client.post("/api/v1/predict", json={"features": [0.987654321, 1.5]})

    assert reply.status_code == 200
    lines = captured()
    assert [line["message"] for line in lines] == [
        f"serving model version {version}",
        "POST /api/v1/predict 200",
    ]
    assert "987654321" not in json.dumps(lines)
