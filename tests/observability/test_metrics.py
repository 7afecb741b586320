"""GET /metrics in one process (the test client): what each metric counts.

Counters live for the whole test process, so each test reads them before and
after what it does and checks the difference.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from app.observability import metrics
from app.watcher.client import ClusterClient, Unreachable
from tests.conftest import REPO, localstack
from tests.doubles.elasticsearch import ElasticsearchDouble
from tests.observability.helpers import publish_tiny_model, samples, value


def scrape(client) -> dict:
    reply = client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=")
    return samples(reply.get_data(as_text=True))


def count(scrape_before, scrape_after, name, **labels) -> float:
    return (value(scrape_after, name, **labels) or 0) - (
        value(scrape_before, name, **labels) or 0
    )


def test_requests_are_counted_and_timed_by_route_method_and_status(client):
    before = scrape(client)

    for _ in range(3):
        client.get("/api/v1/health")
    client.get("/api/v1/train/abc")

    after = scrape(client)
    health = {"route": "/api/v1/health", "method": "GET", "status": "200"}
    assert count(before, after, "logreg_http_requests_total", **health) == 3
    assert (
        count(before, after, "logreg_http_request_duration_seconds_count", **health)
        == 3
    )
    missing = {"route": "/api/v1/train/<job_id>", "method": "GET", "status": "404"}
    assert count(before, after, "logreg_http_requests_total", **missing) == 1


def test_unknown_paths_and_methods_share_one_label_value(client):
    before = scrape(client)

    client.get("/no/such/path/1")
    client.get("/no/such/path/2")
    client.open("/api/v1/health", method="BREW")

    after = scrape(client)
    unmatched = {"route": "(unmatched)", "method": "GET", "status": "404"}
    assert count(before, after, "logreg_http_requests_total", **unmatched) == 2
    other = {"route": "(unmatched)", "method": "other", "status": "405"}
    assert count(before, after, "logreg_http_requests_total", **other) == 1


def test_predictions_are_counted_by_class_with_the_batch_size(client, settings):
    publish_tiny_model(settings.model_dir)
    before = scrape(client)

    reply = client.post(
        "/api/v1/predict", json={"instances": [[3.0, 0.0], [2.0, 0.0], [-3.0, 0.0]]}
    )

    after = scrape(client)
    assert [p["class"] for p in reply.get_json()["predictions"]] == ["yes", "yes", "no"]
    assert count(before, after, "logreg_predictions_total", **{"class": "yes"}) == 2
    assert count(before, after, "logreg_predictions_total", **{"class": "no"}) == 1
    assert count(before, after, "logreg_predict_batch_size_count", input="json") == 1
    assert count(before, after, "logreg_predict_batch_size_sum", input="json") == 3
    assert (
        count(before, after, "logreg_predict_batch_size_bucket", input="json", le="2.0")
        == 0
    )
    assert (
        count(before, after, "logreg_predict_batch_size_bucket", input="json", le="5.0")
        == 1
    )


def test_model_info_names_the_version_served_and_clears_the_old_one(client, settings):
    first = publish_tiny_model(settings.model_dir, seed=1)
    client.post("/api/v1/predict", json={"features": [1.0, 0.0]})
    second = publish_tiny_model(settings.model_dir, seed=2)

    after = scrape(client)

    assert value(after, "logreg_model_info", model_version=second) == 1
    assert value(after, "logreg_model_info", model_version=first) == 0


def test_watcher_checks_are_counted_by_status_and_finding_code(client):
    before = scrape(client)

    reply = client.get("/api/v1/health/watcher")

    after = scrape(client)
    assert reply.status_code == 503
    assert count(before, after, "logreg_watcher_checks_total", status="unknown") == 1
    code = "elasticsearch_not_configured"
    assert count(before, after, "logreg_watcher_findings_total", code=code) == 1


def test_elasticsearch_calls_are_timed_by_method_and_status(client, settings):
    closed = f"http://127.0.0.1:{localstack.free_port()}"
    with ElasticsearchDouble() as double:
        es = ClusterClient(replace(settings, elasticsearch_url=double.url))
        nobody = ClusterClient(replace(settings, elasticsearch_url=closed))
        before = scrape(client)

        es.request("GET", "/")
        es.request("GET", "/_no_such_api")
        with pytest.raises(Unreachable):
            nobody.request("GET", "/")

        es.close()
        nobody.close()
    after = scrape(client)
    name = "logreg_elasticsearch_request_duration_seconds_count"
    assert count(before, after, name, method="GET", status="200") == 1
    assert count(before, after, name, method="GET", status="400") == 1
    assert count(before, after, name, method="GET", status="none") == 1


def test_training_jobs_are_counted_by_outcome_with_their_duration(client):
    before = scrape(client)

    metrics.observe_job_record(
        {
            "status": "succeeded",
            "started": "2026-01-01T00:00:00.000+00:00",
            "finished": "2026-01-01T00:00:04.500+00:00",
        }
    )
    metrics.observe_job_record({"status": "failed", "finished": "2026-01-01T00:00"})
    metrics.observe_job_record({"status": "running"})

    after = scrape(client)
    name = "logreg_training_jobs_total"
    assert count(before, after, name, outcome="succeeded") == 1
    assert count(before, after, name, outcome="failed") == 1
    seconds = "logreg_training_job_duration_seconds"
    assert count(before, after, seconds + "_sum", outcome="succeeded") == 4.5
    assert count(before, after, seconds + "_count", outcome="failed") == 0


def test_scrape_adds_up_processes_and_drops_exited_ones_live_gauges(tmp_path):
    # Two short-lived processes in multiprocess mode, as two workers would be.
    script = (
        "from app.observability import metrics\n"
        "metrics.observe_request('/predict', 'POST', 200, 0.01)\n"
        "metrics.note_model_version('v1')\n"
    )
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True)
    assert len(list(tmp_path.glob("gauge_livemax_*.db"))) == 2

    collector = metrics._LiveCollector(str(tmp_path))
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in collector.collect()
        for sample in family.samples
    }

    labels = (("method", "POST"), ("route", "/predict"), ("status", "200"))
    assert found[("logreg_http_requests_total", labels)] == 2
    assert not any(name == "logreg_model_info" for name, _ in found)
    assert list(tmp_path.glob("gauge_livemax_*.db")) == []
