"""Metrics, logs and request ids through real nginx and two real uWSGI workers.

nginx here has no tracing module, so the tests send the ``ot-tracer-*``
headers the module would add, and nginx passes them on to the app.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import ADMIN_TOKEN
from tests.doubles.lightstep_collector import LightStepCollector
from tests.observability.helpers import publish_tiny_model, samples, value

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PREDICT = {"route": "/api/v1/predict", "method": "POST", "status": "200"}
LIGHTSTEP_TOKEN = "test-lightstep-token-obs-41c7"


def scrape(stack) -> dict:
    reply = requests.get(stack.url + "/metrics", timeout=10)
    assert reply.status_code == 200, reply.text
    return samples(reply.text)


def predict(stack, headers=None, body=None) -> requests.Response:
    reply = requests.post(
        stack.url + "/api/v1/predict",
        json=body or {"instances": [[3.0, 0.0], [-3.0, 0.0]]},
        headers=headers or {},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    return reply


def predict_on_every_worker(stack, rounds: int = 10) -> tuple[int, set]:
    """Concurrent predicts until both workers answered; (requests sent, workers)."""
    sent, workers = 0, set()
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(rounds):
            replies = list(pool.map(lambda _: predict(stack), range(8)))
            sent += len(replies)
            workers |= {reply.headers["X-Served-By"] for reply in replies}
            if workers == {"1", "2"}:
                break
    return sent, workers


def json_lines(path) -> list[dict]:
    """Every line that is a JSON object (uWSGI's own lines in its log are not)."""
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def wait_for_line(path, predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in json_lines(path) if predicate(line)]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching line in {path} after {timeout} s")
        time.sleep(0.05)


def test_counters_add_up_every_worker_exactly(stack_factory):
    stack = stack_factory(processes=2)
    publish_tiny_model(stack.model_dir)

    sent, workers = predict_on_every_worker(stack)

    found = scrape(stack)
    assert workers == {"1", "2"}
    assert value(found, "logreg_http_requests_total", **PREDICT) == sent
    assert value(found, "logreg_http_request_duration_seconds_count", **PREDICT) == sent
    assert value(found, "logreg_predictions_total", **{"class": "yes"}) == sent
    assert value(found, "logreg_predictions_total", **{"class": "no"}) == sent
    assert value(found, "logreg_predict_batch_size_sum", input="json") == 2 * sent
    version = predict(stack).json()["model_version"]
    assert value(scrape(stack), "logreg_model_info", model_version=version) == 1


def test_metrics_are_refused_to_addresses_not_allowed(stack_factory):
    stack = stack_factory(processes=2)
    # Loopback is all of 127/8; nginx allows 127.0.0.1 and ::1 only.
    connection = http.client.HTTPConnection(
        "127.0.0.1", stack.port, timeout=10, source_address=("127.0.0.2", 0)
    )
    try:
        connection.request("GET", "/metrics")
        reply = connection.getresponse()
        body = json.loads(reply.read())
    finally:
        connection.close()

    assert reply.status == 403
    assert body["error"]["code"] == "forbidden"
    assert requests.get(stack.url + "/metrics", timeout=10).status_code == 200


def test_dead_workers_still_count_and_a_reload_starts_afresh(stack_factory):
    stack = stack_factory(processes=2)
    publish_tiny_model(stack.model_dir)
    sent, _ = predict_on_every_worker(stack)
    metrics_dir = stack.run_dir / "metrics"
    victim = stack.worker_pids()[0]
    assert (metrics_dir / f"gauge_livemax_{victim}.db").exists()

    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while victim in stack.worker_pids() or len(stack.worker_pids()) < 2:
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.1)
    after_kill = scrape(stack)

    assert value(after_kill, "logreg_http_requests_total", **PREDICT) == sent
    assert not (metrics_dir / f"gauge_livemax_{victim}.db").exists()

    stack.reload()
    predict(stack)
    after_reload = scrape(stack)

    assert value(after_reload, "logreg_http_requests_total", **PREDICT) == 1
    assert not (metrics_dir / f"counter_{victim}.db").exists()


def test_request_id_and_trace_id_tie_logs_and_spans_together(stack_factory):
    with LightStepCollector() as collector:
        stack = stack_factory(
            env={**collector.env(LIGHTSTEP_TOKEN, 0.1), "TRACING": "on"}, processes=2
        )
        publish_tiny_model(stack.model_dir)
        trace_id, request_id = "00000000feed0b5e", "client-req.42_x"

        reply = predict(
            stack,
            headers={
                "ot-tracer-traceid": trace_id,
                "ot-tracer-spanid": "000000000000beef",
                "ot-tracer-sampled": "true",
                "X-Request-Id": request_id,
            },
        )
        [server] = collector.wait_for(
            lambda spans: [
                span
                for span in spans
                if span["trace_id"] == trace_id and span["tags"].get("span.kind")
            ]
        )

    assert reply.headers["X-Request-Id"] == request_id
    assert reply.headers["X-Trace-Id"] == trace_id
    assert server["tags"]["http.request_id"] == request_id

    logs = stack.log_dir
    app_line = wait_for_line(
        logs / "uwsgi.log",
        lambda line: (
            line.get("request_id") == request_id and line["logger"] == "app.access"
        ),
    )
    # The first predict loads the model; that line belongs to the request too.
    [loaded] = [
        line
        for line in json_lines(logs / "uwsgi.log")
        if line["logger"] == "app.model.store"
    ]
    assert loaded["request_id"] == request_id
    assert loaded["trace_id"] == trace_id
    assert app_line["trace_id"] == trace_id
    assert app_line["span_id"] == server["span_id"]
    assert app_line["route"] == "/api/v1/predict"
    assert app_line["status"] == 200
    assert app_line["worker"] == reply.headers["X-Served-By"]

    nginx_line = wait_for_line(
        logs / "nginx-access.log", lambda line: line["request_id"] == request_id
    )
    assert nginx_line["trace_id"] == trace_id
    assert nginx_line["uri"] == "/api/v1/predict"
    assert nginx_line["status"] == 200

    uwsgi_line = wait_for_line(
        logs / "requests.log", lambda line: line["request_id"] == request_id
    )
    assert uwsgi_line["status"] == 200
    assert uwsgi_line["method"] == "POST"
    assert str(uwsgi_line["worker"]) == reply.headers["X-Served-By"]


def test_training_is_counted_and_no_log_holds_a_token_or_payload(stack_factory):
    stack = stack_factory(processes=2)
    publish_tiny_model(stack.model_dir)
    wrong_token = "wrong-token-9d1f6e0b"
    distinctive = 0.7312846519

    predict(stack, body={"features": [distinctive, 1.0]})
    refused = requests.post(
        stack.url + "/api/v1/train",
        json={"features": [[0.0, 1.0]], "labels": [0]},
        headers={"Authorization": f"Bearer {wrong_token}"},
        timeout=10,
    )
    queued = requests.post(
        stack.url + "/api/v1/train",
        json={
            "features": [[distinctive, 0.0], [-1.0, 0.5], [1.0, 0.2], [-0.5, 1.0]],
            "labels": [1, 0, 1, 0],
        },
        headers=AUTH,
        timeout=10,
    )
    assert refused.status_code == 403 and queued.status_code == 202, queued.text
    status_url = stack.url + queued.json()["status_url"]
    deadline = time.monotonic() + 60
    while (job := requests.get(status_url, timeout=10).json())["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, "the training job did not finish"
        time.sleep(0.2)
    found = scrape(stack)

    assert job["status"] == "succeeded", job
    assert value(found, "logreg_training_jobs_total", outcome="succeeded") == 1
    name = "logreg_training_job_duration_seconds_count"
    assert value(found, name, outcome="succeeded") == 1

    log_files = [*stack.log_dir.iterdir(), *(stack.model_dir / "jobs").glob("*.log")]
    assert any(path.name == "uwsgi.log" for path in log_files)
    for path in log_files:
        text = path.read_text(errors="replace")
        for secret in (ADMIN_TOKEN, wrong_token, "7312846519"):
            assert secret not in text, f"{secret} in {path}"
