"""GET /api/v1/health/watcher: one scenario per finding code, each version."""

from __future__ import annotations

import time

import pytest

from tests.doubles.elasticsearch import VERSIONS, Index, Scenario
from tests.watcher.conftest import ES_PASSWORD, make_app, settings_for

STALE = "sTaLeWaTcHeScOpYuUiD01"
CURRENT = "wAtChEsCuRrEnTuUiD0001"


def stale_copy(node_ids=("n2BBBBBBBBBBBBBBBBBBBB",)):
    return {
        "index_name": ".watches",
        "index_uuid": STALE,
        "creation_date_millis": 1600000000000,
        "node_ids": list(node_ids),
    }


def check(http):
    answer = http.get("/api/v1/health/watcher")
    return answer, answer.get_json()


def codes(body):
    return [f["code"] for f in body["findings"]]


@pytest.mark.parametrize("major", ["6", "7", "8", "9"])
def test_healthy_cluster_is_green_on_each_version(double, http, major):
    double.scenario.version = VERSIONS[major]
    answer, body = check(http)
    assert answer.status_code == 200
    assert body["status"] == "green"
    assert body["elasticsearch"] == {
        "version": VERSIONS[major],
        "cluster_name": "double-cluster",
    }
    assert body["watcher"]["state"] == "started"
    assert body["watcher"]["watch_count"] == 4
    assert [n["watcher_state"] for n in body["watcher"]["nodes"]] == ["started"] * 2
    expected = ["check_not_supported"] if major == "6" else []
    assert codes(body) == expected
    prefix = "/_xpack/watcher" if major == "6" else "/_watcher"
    assert double.calls("GET", prefix + "/stats")
    assert bool(double.calls("GET", "/_dangling")) is (major != "6")


def test_every_request_sends_plain_json_and_the_credentials(double, http):
    check(http)
    assert double.requests
    for recorded in double.requests:
        assert recorded.headers["accept"] == "application/json"
        assert recorded.headers["authorization"].startswith("Basic ")
        assert "admin-token" not in str(recorded.headers)


def test_report_never_contains_the_password(double, http):
    double.scenario.basic_auth = ("watcher", "other")
    answer = http.get("/api/v1/health/watcher")
    assert ES_PASSWORD not in answer.get_data(as_text=True)


def test_not_configured_answers_503_unknown(tmp_path):
    from app.settings import Settings

    http = make_app(Settings(model_dir=tmp_path / "m", tracing=False)).test_client()
    answer, body = check(http)
    assert answer.status_code == 503
    assert body["status"] == "unknown"
    assert codes(body) == ["elasticsearch_not_configured"]
    assert "ELASTICSEARCH_URL" in body["findings"][0]["message"]


def test_elasticsearch_down_is_unreachable(double, tmp_path):
    settings = settings_for(double, model_dir=tmp_path / "m")
    double.stop()
    http = make_app(settings).test_client()
    answer, body = check(http)
    assert answer.status_code == 503
    assert body["status"] == "unknown"
    assert codes(body) == ["elasticsearch_unreachable"]


def test_hanging_elasticsearch_is_cut_off_by_the_timeout(double, tmp_path):
    double.scenario.hang_paths = ["/"]
    settings = settings_for(double, model_dir=tmp_path / "m", elasticsearch_timeout=0.5)
    http = make_app(settings).test_client()
    started = time.monotonic()
    answer, body = check(http)
    assert time.monotonic() - started < 1.5
    assert answer.status_code == 503
    assert codes(body) == ["elasticsearch_unreachable"]
    assert body["findings"][0]["evidence"]["timed_out"] is True


def test_hanging_after_the_first_call_stays_within_the_budget(double, tmp_path):
    double.scenario.hang_paths = ["/_cluster", "/_dangling", "/.watcher-history"]
    settings = settings_for(double, model_dir=tmp_path / "m", elasticsearch_timeout=0.5)
    http = make_app(settings).test_client()
    started = time.monotonic()
    answer, body = check(http)
    assert time.monotonic() - started < 3 * 0.5 + 0.5
    assert "check_incomplete" in codes(body)
    assert body["status"] == "yellow"


@pytest.mark.parametrize("password", [None, "wrong"])
def test_bad_credentials_are_auth_failed(double, tmp_path, password):
    url = (
        double.url
        if password is None
        else double.url.replace("http://", f"http://watcher:{password}@")
    )
    http = make_app(
        settings_for(double, model_dir=tmp_path / "m", elasticsearch_url=url)
    ).test_client()
    answer, body = check(http)
    assert answer.status_code == 503
    assert codes(body) == ["elasticsearch_auth_failed"]
    assert body["findings"][0]["evidence"]["http_status"] == 401


def test_missing_privileges_are_auth_failed(double, http):
    double.scenario.forbidden = True
    answer, body = check(http)
    assert codes(body) == ["elasticsearch_auth_failed"]
    assert body["findings"][0]["evidence"]["http_status"] == 403


def test_api_key_is_sent_as_apikey_authorization(tmp_path):
    from tests.doubles.elasticsearch import ElasticsearchDouble

    with ElasticsearchDouble(Scenario(api_key="a2V5aWQ6a2V5")) as es:
        settings = settings_for(
            es, model_dir=tmp_path / "m", elasticsearch_api_key="a2V5aWQ6a2V5"
        )
        _, body = check(make_app(settings).test_client())
    assert body["status"] == "green"


def test_unlicensed_watcher(double, http):
    double.scenario.license_compliant = False
    answer, body = check(http)
    assert answer.status_code == 503
    assert body["status"] == "red"
    assert codes(body) == ["watcher_not_licensed"]


@pytest.mark.parametrize("manual", [True, False])
def test_watcher_stopped_notes_manually_stopped(double, http, manual):
    for node in double.scenario.nodes:
        node.watcher_state = "stopped"
    double.scenario.manually_stopped = manual
    answer, body = check(http)
    assert answer.status_code == 503
    stopped = next(f for f in body["findings"] if f["code"] == "watcher_stopped")
    assert stopped["evidence"]["manually_stopped"] is manual
    assert stopped["severity"] == "critical"
    assert stopped["nodes"] == ["n1AAAAAAAAAAAAAAAAAAAA", "n2BBBBBBBBBBBBBBBBBBBB"]


def test_watcher_state_mixed(double, http):
    double.scenario.nodes[1].watcher_state = "stopped"
    answer, body = check(http)
    assert answer.status_code == 503
    assert body["watcher"]["state"] == "mixed"
    mixed = next(f for f in body["findings"] if f["code"] == "watcher_state_mixed")
    assert mixed["nodes"] == ["n2BBBBBBBBBBBBBBBBBBBB"]


def test_a_node_still_starting_is_not_also_reported_mixed(double, http):
    double.scenario.nodes[0].watcher_state = "starting"
    answer, body = check(http)
    assert answer.status_code == 200
    assert body["status"] == "yellow"
    assert body["watcher"]["state"] == "mixed"
    assert codes(body) == ["watcher_stuck_starting"]


def test_watcher_stuck_starting_with_red_watches(double, http):
    for node in double.scenario.nodes:
        node.watcher_state = "starting"
    double.scenario.indices[".watches"].health = "red"
    answer, body = check(http)
    assert answer.status_code == 503
    stuck = next(f for f in body["findings"] if f["code"] == "watcher_stuck_starting")
    assert stuck["severity"] == "critical"
    assert ".watches is red" in stuck["message"]
    assert "watcher_stopped" not in codes(body)


def test_watcher_starting_becomes_stuck_after_the_grace(double, http, monkeypatch):
    import app.watcher.checks as checks

    double.scenario.nodes[0].watcher_state = "starting"
    _, body = check(http)
    first = next(f for f in body["findings"] if f["code"] == "watcher_stuck_starting")
    assert first["severity"] == "warning"
    monkeypatch.setattr(checks, "STARTING_GRACE_SECONDS", 0.0)
    _, body = check(http)
    later = next(f for f in body["findings"] if f["code"] == "watcher_stuck_starting")
    assert later["severity"] == "critical"


def test_watches_index_missing(double, http):
    del double.scenario.indices[".watches"]
    answer, body = check(http)
    assert answer.status_code == 503
    assert "watches_index_missing" in codes(body)
    # Health was asked only for what exists, so it never waited for a 408.
    for recorded in double.calls("GET"):
        if recorded.path.startswith("/_cluster/health"):
            assert ".watches," not in recorded.path + ","


def test_watches_index_missing_mentions_an_importable_copy(double, http):
    del double.scenario.indices[".watches"]
    double.scenario.dangling = [stale_copy()]
    _, body = check(http)
    missing = next(f for f in body["findings"] if f["code"] == "watches_index_missing")
    assert missing["evidence"]["dangling_copies"][0]["index_uuid"] == STALE
    assert "dangling_watches_index" not in codes(body)


@pytest.mark.parametrize(
    ("health", "severity", "status"),
    [("red", "critical", 503), ("yellow", "warning", 200)],
)
def test_watches_index_unhealthy(double, http, health, severity, status):
    double.scenario.indices[".watches"].health = health
    answer, body = check(http)
    assert answer.status_code == status
    unhealthy = next(
        f for f in body["findings"] if f["code"] == "watches_index_unhealthy"
    )
    assert unhealthy["severity"] == severity
    assert unhealthy["evidence"][".watches"]["status"] == health


def test_watches_as_alias_of_a_concrete_index(double, http):
    indices = double.scenario.indices
    indices[".watches-6"] = Index(CURRENT, aliases=[".watches"])
    del indices[".watches"]
    _, body = check(http)
    assert body["status"] == "green"


@pytest.mark.parametrize("major", ["7", "8", "9"])
def test_dangling_watches_index(double, http, major):
    double.scenario.version = VERSIONS[major]
    double.scenario.dangling = [stale_copy()]
    double.scenario.last_execution_millis = int(time.time() * 1000) - 7200_000
    answer, body = check(http)
    assert answer.status_code == 503
    found = next(f for f in body["findings"] if f["code"] == "dangling_watches_index")
    assert found["nodes"] == ["n2BBBBBBBBBBBBBBBBBBBB"]
    assert found["evidence"]["stale_uuid"] == STALE
    assert found["evidence"]["current_uuid"] == CURRENT
    assert "watches_not_executing" in codes(body)


def test_dangling_copy_with_the_current_uuid_is_not_stale(double, http):
    entry = stale_copy()
    entry["index_uuid"] = CURRENT
    double.scenario.dangling = [entry]
    _, body = check(http)
    assert "dangling_watches_index" not in codes(body)


def test_dangling_node_failure_is_reported_with_the_other_nodes(double, http):
    double.scenario.dangling = [stale_copy(["n1AAAAAAAAAAAAAAAAAAAA"])]
    double.scenario.dangling_failed_nodes = ["n2BBBBBBBBBBBBBBBBBBBB"]
    _, body = check(http)
    assert "dangling_watches_index" in codes(body)
    incomplete = next(f for f in body["findings"] if f["code"] == "check_incomplete")
    assert incomplete["nodes"] == ["n2BBBBBBBBBBBBBBBBBBBB"]


def test_dangling_check_is_reported_impossible_before_7_9(double, http):
    double.scenario.version = "7.8.1"
    double.scenario.dangling = [stale_copy()]
    _, body = check(http)
    assert codes(body) == ["check_not_supported"]
    assert body["status"] == "green"
    assert not double.calls("GET", "/_dangling")


def test_triggered_watches_missing(double, http):
    del double.scenario.indices[".triggered_watches"]
    answer, body = check(http)
    assert answer.status_code == 200
    assert body["status"] == "yellow"
    assert codes(body) == ["triggered_watches_missing"]


@pytest.mark.parametrize(("queue", "severity"), [(25, "warning"), (1000, "critical")])
def test_execution_queue_saturated(double, http, queue, severity):
    double.scenario.nodes[0].queue_size = queue
    _, body = check(http)
    saturated = next(
        f for f in body["findings"] if f["code"] == "execution_queue_saturated"
    )
    assert saturated["severity"] == severity
    assert saturated["nodes"] == ["n1AAAAAAAAAAAAAAAAAAAA"]


@pytest.mark.parametrize("last", [None, "old"])
def test_watches_not_executing(double, http, last):
    stale_seconds = 3600
    double.scenario.last_execution_millis = (
        None if last is None else int((time.time() - stale_seconds - 60) * 1000)
    )
    answer, body = check(http)
    assert answer.status_code == 503
    assert codes(body) == ["watches_not_executing"]
    assert body["findings"][0]["evidence"]["stale_seconds"] == stale_seconds


def test_no_watches_skips_the_history(double, http):
    for node in double.scenario.nodes:
        node.watch_count = 0
    double.scenario.last_execution_millis = None
    _, body = check(http)
    assert body["status"] == "green"
    assert not double.calls("POST", "/.watcher-history-*/_search")


def test_garbage_answer_is_unsupported(double, http):
    double.scenario.garbage = True
    answer, body = check(http)
    assert answer.status_code == 503
    assert codes(body) == ["elasticsearch_unsupported"]


def test_results_are_cached(double, tmp_path):
    settings = settings_for(double, model_dir=tmp_path / "m", watcher_cache_seconds=60)
    http = make_app(settings).test_client()
    check(http)
    count = len(double.requests)
    double.scenario.nodes[0].watcher_state = "stopped"
    _, body = check(http)
    assert len(double.requests) == count
    assert body["status"] == "green"


def test_cache_zero_asks_every_time(double, http):
    check(http)
    count = len(double.requests)
    check(http)
    assert len(double.requests) == 2 * count
