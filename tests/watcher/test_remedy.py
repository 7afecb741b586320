"""POST /api/v1/health/watcher/remediate, checked against the double's state."""

from __future__ import annotations

import time

import pytest

from tests.doubles.elasticsearch import VERSIONS, Index
from tests.watcher.conftest import ADMIN_TOKEN
from tests.watcher.test_health import CURRENT, STALE, stale_copy

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
REMEDY = "/api/v1/health/watcher/remediate"


def broken(double, major="8"):
    """The case this service exists for: a stale copy, watches stalled."""
    double.scenario.version = VERSIONS[major]
    double.scenario.dangling = [stale_copy()]
    double.scenario.last_execution_millis = int(time.time() * 1000) - 7200_000


def test_remedy_needs_the_admin_token(double, http):
    answer = http.post(REMEDY, json={"confirm": True})
    assert answer.status_code == 401
    assert answer.get_json()["error"]["code"] == "missing_token"


@pytest.mark.parametrize("body", [{}, {"confirm": False}])
def test_remedy_needs_confirmation(double, http, body):
    answer = http.post(REMEDY, json=body, headers=ADMIN)
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "confirmation_required"
    assert not double.requests


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "invalid_json"),
        ({"confirm": "yes"}, "invalid_field"),
        ({"confirm": True, "force": True}, "unknown_field"),
    ],
)
def test_remedy_rejects_bad_bodies(double, http, body, code):
    if isinstance(body, str):
        answer = http.post(
            REMEDY, data=body, headers=ADMIN, content_type="application/json"
        )
    else:
        answer = http.post(REMEDY, json=body, headers=ADMIN)
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == code


def test_dry_run_plans_without_changing_anything(double, http):
    broken(double)
    answer = http.post(REMEDY, json={"dry_run": True}, headers=ADMIN)
    body = answer.get_json()
    assert answer.status_code == 200
    assert body["dry_run"] is True
    assert [a["action"] for a in body["actions"]] == [
        "delete_dangling_index",
        "restart_watcher",
    ]
    assert body["actions"][0]["index_uuid"] == STALE
    assert body["actions"][0]["result"] == "planned"
    assert body["after"] is None
    assert not [
        r
        for r in double.requests
        if r.method in ("DELETE", "POST") and "_search" not in r.path
    ]
    assert double.scenario.dangling == [stale_copy()]


@pytest.mark.parametrize("major", ["7", "8", "9"])
def test_remedy_deletes_the_stale_copy_restarts_and_checks_again(double, http, major):
    broken(double, major)
    double.scenario.dangling.append(
        {
            "index_name": ".watches-orphan",
            "index_uuid": "oRpHaNuUiD",
            "creation_date_millis": 1,
            "node_ids": ["n1AAAAAAAAAAAAAAAAAAAA"],
        }
    )
    answer = http.post(REMEDY, json={"confirm": True}, headers=ADMIN)
    body = answer.get_json()
    assert answer.status_code == 200
    assert body["before"]["status"] == "red"
    assert body["after"]["status"] == "green"
    assert [a["result"] for a in body["actions"]] == ["done", "done"]

    deletes = double.calls("DELETE")
    assert [(r.path, r.query) for r in deletes] == [
        (f"/_dangling/{STALE}", {"accept_data_loss": "true"})
    ]
    changes = [
        r.path
        for r in double.requests
        if r.method == "POST" and "_search" not in r.path
    ]
    assert changes == ["/_watcher/_stop", "/_watcher/_start"]
    # Never an index in the metadata, never the orphan that may be the only copy.
    assert [d["index_uuid"] for d in double.scenario.dangling] == ["oRpHaNuUiD"]


def test_remedy_never_deletes_a_uuid_in_the_metadata(double, http):
    broken(double)
    # The copy's uuid belongs to another .watches* index in the metadata.
    double.scenario.indices[".watches-restored"] = Index(STALE)
    answer = http.post(REMEDY, json={"confirm": True}, headers=ADMIN)
    assert answer.status_code == 200
    assert not double.calls("DELETE")
    assert double.scenario.dangling == [stale_copy()]


def test_remedy_invalidates_the_cache(double, tmp_path):
    from tests.watcher.conftest import make_app, settings_for

    broken(double)
    settings = settings_for(double, model_dir=tmp_path / "m", watcher_cache_seconds=60)
    http = make_app(settings).test_client()
    assert http.get("/api/v1/health/watcher").status_code == 503
    http.post(REMEDY, json={"confirm": True}, headers=ADMIN)
    assert http.get("/api/v1/health/watcher").status_code == 200


def test_remedy_on_6x_restarts_and_returns_manual_steps(double, http):
    double.scenario.version = VERSIONS["6"]
    for node in double.scenario.nodes:
        node.watcher_state = "stopped"
    answer = http.post(REMEDY, json={"confirm": True}, headers=ADMIN)
    body = answer.get_json()
    assert answer.status_code == 200
    assert not double.calls("DELETE")
    assert double.calls("POST", "/_xpack/watcher/_restart")
    step = body["manual_steps"][0]
    assert step["node_name"] == "es-1"
    assert step["directories"] == [
        "/var/lib/elasticsearch/nodes/0/indices/<stale-uuid>"
    ]
    assert step["current_uuids"][".watches"] == CURRENT
    assert body["after"]["status"] == "green"


def test_remedy_with_nothing_to_fix_changes_nothing(double, http):
    answer = http.post(REMEDY, json={"confirm": True}, headers=ADMIN)
    body = answer.get_json()
    assert answer.status_code == 200
    assert body["actions"] == []
    assert not [
        r
        for r in double.requests
        if r.method in ("DELETE", "POST") and "_search" not in r.path
    ]


def test_remedy_when_elasticsearch_is_down_is_503(double, http):
    double.stop()
    answer = http.post(REMEDY, json={"confirm": True}, headers=ADMIN)
    assert answer.status_code == 503
    assert answer.get_json()["error"]["code"] == "elasticsearch_unavailable"


def test_remedy_with_an_unusable_url_is_503_and_changes_nothing(double, tmp_path):
    from tests.watcher.conftest import make_app, settings_for

    settings = settings_for(
        double, model_dir=tmp_path / "models", elasticsearch_url="ftp://es"
    )
    answer = (
        make_app(settings)
        .test_client()
        .post(REMEDY, json={"confirm": True}, headers=ADMIN)
    )

    assert answer.status_code == 503
    body = answer.get_json()["error"]
    assert body["code"] == "elasticsearch_unavailable"
    assert "ELASTICSEARCH_URL cannot be used" in body["message"]
    assert double.requests == []
