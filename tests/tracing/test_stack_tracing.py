"""Tracing end to end: real uWSGI workers behind real nginx, spans on the wire.

nginx here has no opentracing module, so the tests send the ``ot-tracer-*``
headers themselves, as the module would add them; nginx passes them on to uWSGI
as ``HTTP_OT_TRACER_*``, just as the production ``uwsgi_param`` lines do.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import ADMIN_TOKEN
from tests.doubles.elasticsearch import ElasticsearchDouble, Scenario
from tests.tracing.conftest import ACCESS_TOKEN
from tests.tracing.spans import all_strings, by_operation

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FEATURES = {"instances": [[0.5, 1.0], [-1.0, 2.0]]}
# Long enough that only the exit flush can deliver the last spans in time.
NO_PERIODIC_FLUSH = 600


def context(trace_id: str, span_id: str = "000000000000beef") -> dict:
    return {
        "ot-tracer-traceid": trace_id,
        "ot-tracer-spanid": span_id,
        "ot-tracer-sampled": "true",
    }


@pytest.fixture
def traced_stack(stack_factory, collector, publish_model):
    def start(processes=2, flush_seconds=0.2, **extra_env):
        env = {
            **collector.env(ACCESS_TOKEN, flush_seconds),
            "TRACING": "on",
            **extra_env,
        }
        stack = stack_factory(env=env, processes=processes)
        publish_model(stack.model_dir)
        return stack

    return start


def predict(stack, trace_id: str) -> requests.Response:
    reply = requests.post(
        stack.url + "/api/v1/predict",
        json=FEATURES,
        headers={**context(trace_id), **AUTH},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    return reply


def trace_ids(count: int, prefix: str) -> list[str]:
    """``count`` trace ids of 16 hex digits, as the collector shows them."""
    return [f"{prefix:0>8}{index:08x}" for index in range(1, count + 1)]


def server_traces(spans) -> set[str]:
    return {span["trace_id"] for span in spans if span["tags"].get("span.kind")}


def test_request_through_nginx_joins_the_incoming_trace(traced_stack, collector):
    stack = traced_stack()

    reply = predict(stack, "00c0ffee5ca1ab1e")

    assert reply.headers["X-Trace-Id"] == "00c0ffee5ca1ab1e"
    spans = collector.wait_for(
        lambda spans: len(collector.trace("00c0ffee5ca1ab1e")) >= 3 and spans
    )
    found = by_operation(collector.trace("00c0ffee5ca1ab1e"))
    [server] = found["POST /api/v1/predict"]
    assert server["parent_id"] == "000000000000beef"
    assert server["tags"]["span.kind"] == "server"
    assert server["tags"]["http.status_code"] == "200"
    assert server["tags"]["http.url"] == "/api/v1/predict"
    assert server["tags"]["model.version"] == reply.json()["model_version"]
    assert found["predict.decode"][0]["parent_id"] == server["span_id"]
    assert found["predict.score"][0]["tags"] == {"batch_size": "2"}
    assert found["predict.score"][0]["parent_id"] == server["span_id"]
    worker_pids = {str(pid) for pid in stack.worker_pids()}
    assert server["reporter_tags"]["process.pid"] in worker_pids
    assert len(spans) >= 3


def test_spans_come_from_every_worker(traced_stack, collector):
    stack = traced_stack(processes=2)
    workers = {str(pid) for pid in stack.worker_pids()}

    def ask(trace_id):
        return predict(stack, trace_id).headers["X-Served-By"]

    # Concurrent requests reach both workers; bounded, with a stop when done.
    served_by = set()
    for batch in range(10):
        with ThreadPoolExecutor(max_workers=8) as pool:
            served_by |= set(pool.map(ask, trace_ids(16, f"{batch + 1:08x}")))
        if len(served_by) >= 2:
            break
    assert len(served_by) == 2

    def reporters(spans):
        pids = {span["reporter_tags"]["process.pid"] for span in spans}
        return pids if pids >= workers else None

    assert collector.wait_for(reporters, what="spans from both workers") == workers


def _stopped_after_requests(traced_stack, collector, stop, prefix):
    stack = traced_stack(flush_seconds=NO_PERIODIC_FLUSH)
    # The first report goes at the first span; what follows waits in buffers.
    wanted = trace_ids(12, prefix)
    for trace_id in wanted:
        predict(stack, trace_id)

    stop(stack)

    def all_arrived(spans):
        return server_traces(spans) >= set(wanted)

    collector.wait_for(all_arrived, timeout=20, what="the last server spans")
    return stack


def test_last_spans_arrive_after_uwsgi_stop(traced_stack, collector):
    def uwsgi_stop(stack):
        uwsgi = Path(stack.python).parent / "uwsgi"
        subprocess.run([str(uwsgi), "--stop", str(stack.pidfile)], check=True)
        stack.uwsgi.wait(30)

    _stopped_after_requests(traced_stack, collector, uwsgi_stop, "5709")


def test_last_spans_arrive_after_sigterm(traced_stack, collector):
    _stopped_after_requests(traced_stack, collector, lambda stack: stack.stop(), "7e57")


def test_last_spans_arrive_after_a_graceful_reload(traced_stack, collector):
    stack = _stopped_after_requests(
        traced_stack, collector, lambda stack: stack.reload(), "0e10"
    )

    # The reloaded workers made tracers of their own, and flush them in turn.
    predict(stack, "00000000000a17e1")
    stack.stop()
    collector.wait_for(
        lambda spans: "00000000000a17e1" in server_traces(spans),
        what="a span from a reloaded worker",
    )


def test_training_job_span_is_a_child_of_the_request_with_progress(
    traced_stack, collector
):
    stack = traced_stack()
    rng = np.random.default_rng(3)
    features = rng.normal(size=(60, 3)).tolist()
    labels = [int(row[0] > 0) for row in features]

    reply = requests.post(
        stack.url + "/api/v1/train",
        json={
            "features": features,
            "labels": labels,
            "params": {"solver": "gd", "iterations": 200},
        },
        headers={**context("000000000007a1e5"), **AUTH},
        timeout=30,
    )

    assert reply.status_code == 202, reply.text
    trace = collector.wait_for(
        lambda spans: (
            len(by_operation(collector.trace("000000000007a1e5")).get("train.job", []))
            and collector.trace("000000000007a1e5")
        ),
        timeout=60,
        what="the training job's span",
    )
    found = by_operation(trace)
    [request_span] = found["POST /api/v1/train"]
    [job] = found["train.job"]
    assert job["parent_id"] == request_span["span_id"]
    assert job["tags"]["job.id"] == reply.json()["job_id"]
    assert job["tags"]["job.status"] == "succeeded"
    assert job["tags"]["train.solver"] == "gd"
    assert job["reporter_tags"]["logreg.role"] == "training-job"
    progress = [log for log in job["logs"] if log["event"] == "progress"]
    assert [log["fraction"] for log in progress][-1] == "1.0"
    assert len(progress) == 11


def test_no_secret_in_any_span(traced_stack, collector):
    scenario = Scenario(basic_auth=("elastic", "es-password-4d1c"))
    with ElasticsearchDouble(scenario) as es:
        stack = traced_stack(
            ELASTICSEARCH_URL=es.url_with_auth(),
            WATCHER_CACHE_SECONDS="0",
        )

        for path in ("/api/v1/health/watcher", f"/api/v1/model?token={ADMIN_TOKEN}"):
            requests.get(stack.url + path, headers=AUTH, timeout=30)
        requests.post(
            stack.url + "/api/v1/health/watcher/remediate",
            json={"dry_run": True},
            headers=AUTH,
            timeout=30,
        )

        # Each worker reports on its own clock: wait for every request's span
        # by name, not for a count that the watcher's client spans also fill.
        wanted = {
            "GET /api/v1/health/watcher",
            "GET /api/v1/model",
            "POST /api/v1/health/watcher/remediate",
        }
        spans = collector.wait_for(
            lambda spans: (
                len(by_operation(spans).get("elasticsearch.request", [])) >= 2
                and wanted <= set(by_operation(spans))
                and spans
            ),
            timeout=20,
            what="the watcher's spans",
        )

    strings = [text for span in spans for text in all_strings(span)]
    for secret in (ADMIN_TOKEN, "es-password-4d1c", ACCESS_TOKEN):
        assert [text for text in strings if secret in text] == []
    assert {span["access_token"] for span in spans} == {ACCESS_TOKEN}
    model_span = next(s for s in spans if s["operation"] == "GET /api/v1/model")
    assert model_span["tags"]["http.url"] == "/api/v1/model?token=[redacted]"


def test_tracing_off_answers_without_trace_header(stack_factory, collector):
    stack = stack_factory(
        env={**collector.env(ACCESS_TOKEN), "TRACING": "off"}, processes=2
    )

    reply = requests.get(stack.url + "/api/v1/health", headers=context("ab"))

    assert reply.status_code == 200
    assert "X-Trace-Id" not in reply.headers
    time.sleep(0.5)
    assert collector.spans() == []
    log = (stack.log_dir / "uwsgi.log").read_text()
    assert log.count("tracing off: TRACING=off") == 1
    assert json.loads(reply.text)["status"] == "ok"
