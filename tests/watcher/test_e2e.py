"""Watcher health through the real stack: uWSGI workers behind nginx, ES double.

One stack serves the whole module. Its workers read the double's scenario on
every request (the cache is off), so each test rewrites the scenario instead
of starting a stack of its own; the double runs in this process, and the
workers reach it over loopback like a real cluster. A second stack points at a
port where nothing listens, for the cluster-down cases.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import ADMIN_TOKEN, REPO, localstack
from tests.doubles.elasticsearch import (
    VERSIONS,
    ElasticsearchDouble,
    Index,
    Node,
    Scenario,
)
from tests.watcher.conftest import ES_PASSWORD
from tests.watcher.test_health import CURRENT, STALE, stale_copy
from tests.watcher.test_remedy import broken

pytestmark = pytest.mark.e2e

HEALTH = "/api/v1/health/watcher"
REMEDY = "/api/v1/health/watcher/remediate"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ES_USER = "watcher"
N1 = "n1AAAAAAAAAAAAAAAAAAAA"
N2 = "n2BBBBBBBBBBBBBBBBBBBB"
ALL_MAJORS = ["6", "7", "8", "9"]
DANGLING_MAJORS = ["7", "8", "9"]

# Short enough that the hang tests stay quick, long enough for a loaded machine.
ES_TIMEOUT = 1.0
# The report is cut off after 3 x ELASTICSEARCH_TIMEOUT (README, Watcher health); the
# slack covers nginx, uWSGI and a busy CI box, it is a bound, not a benchmark.
BUDGET = 3 * ES_TIMEOUT
SLACK = 2.0
# Not the default 3600, so a finding that quotes it proves the variable made
# it through app.env into the workers.
STALE_SECONDS = 600


@contextlib.contextmanager
def running_stack(name: str, env: dict):
    """A module-long stack; tests/conftest's stack_factory lives per test."""
    folder = REPO / "var" / "tests" / name
    shutil.rmtree(folder, ignore_errors=True)
    stack = localstack.Stack(
        var_dir=folder,
        processes=2,
        env={"ADMIN_TOKEN": ADMIN_TOKEN, "TRACING": "off", **env},
    )
    try:
        yield stack.start()
    finally:
        stack.stop()


def fresh_scenario() -> Scenario:
    return Scenario(basic_auth=(ES_USER, ES_PASSWORD))


@pytest.fixture(scope="module")
def es():
    with ElasticsearchDouble(fresh_scenario()) as double:
        yield double


@pytest.fixture(scope="module")
def stack(es):
    env = {
        "ELASTICSEARCH_URL": es.url_with_auth(),
        "ELASTICSEARCH_TIMEOUT": str(ES_TIMEOUT),
        "WATCHER_CACHE_SECONDS": "0",
        "WATCHER_STALE_SECONDS": str(STALE_SECONDS),
    }
    with running_stack("watcher-e2e", env) as started:
        yield started


@pytest.fixture(scope="module")
def down_stack():
    nobody = localstack.free_port()
    env = {
        "ELASTICSEARCH_URL": f"http://{ES_USER}:{ES_PASSWORD}@127.0.0.1:{nobody}",
        "ELASTICSEARCH_TIMEOUT": str(ES_TIMEOUT),
        "WATCHER_CACHE_SECONDS": "0",
    }
    with running_stack("watcher-e2e-down", env) as started:
        yield started


@pytest.fixture(autouse=True)
def healthy_cluster(request):
    """Every test starts from a healthy 8.x cluster and an empty request log."""
    if "es" not in request.fixturenames:
        yield None
        return
    double = request.getfixturevalue("es")
    with double.lock:
        double.scenario = fresh_scenario()
    double.clear_requests()
    yield double


def check(stack):
    answer = requests.get(stack.url + HEALTH, timeout=30)
    return answer, answer.json()


def remedy(stack, body, headers=ADMIN):
    answer = requests.post(stack.url + REMEDY, json=body, headers=headers, timeout=60)
    return answer, answer.json()


def codes(body):
    return [f["code"] for f in body["findings"]]


def the(body, code):
    found = [f for f in body["findings"] if f["code"] == code]
    assert len(found) == 1, codes(body)
    return found[0]


def on(major, listed):
    """The codes a full pass gives: 6.x adds its "no dangling API" note last."""
    return listed + (["check_not_supported"] if major == "6" else [])


def changes(double):
    """The requests that change the cluster, in the order they arrived."""
    return [
        (r.method, r.path)
        for r in double.requests
        if r.method in ("DELETE", "PUT")
        or (r.method == "POST" and not r.path.endswith("/_search"))
    ]


def watcher_prefix(major):
    return "/_xpack/watcher" if major == "6" else "/_watcher"


# -- healthy -------------------------------------------------------------------


@pytest.mark.parametrize("major", ALL_MAJORS)
def test_healthy_cluster_is_200_green_through_nginx(stack, es, major):
    es.scenario.version = VERSIONS[major]

    answer, body = check(stack)

    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert body["status"] == "green"
    assert body["elasticsearch"] == {
        "version": VERSIONS[major],
        "cluster_name": "double-cluster",
    }
    watcher = dict(body["watcher"])
    assert watcher.pop("last_execution").endswith("Z")
    assert watcher == {
        "state": "started",
        "manually_stopped": False,
        "watch_count": 4,
        "nodes": [
            {
                "node_id": node_id,
                "watcher_state": "started",
                "watch_count": 2,
                "execution_queue": {"queue_size": 0, "max_size": 10},
            }
            for node_id in (N1, N2)
        ],
    }
    assert codes(body) == on(major, [])
    # One pass, on the paths of that major; no dangling API before 7.9.
    assert [(r.method, r.path) for r in es.requests] == [
        ("GET", "/"),
        ("GET", watcher_prefix(major) + "/stats"),
        ("GET", "/_cluster/state/metadata/.watches*,.triggered_watches*"),
        ("GET", "/_cluster/health/.triggered_watches,.watches"),
        *([] if major == "6" else [("GET", "/_dangling")]),
        ("POST", "/.watcher-history-*/_search"),
    ]


def test_every_worker_gives_the_same_report(stack, es):
    broken(es)

    def ask(_):
        answer, body = check(stack)
        return answer.headers["X-Served-By"], answer.status_code, tuple(codes(body))

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(ask, range(60)))

    assert {worker for worker, _, _ in seen} == {"1", "2"}
    assert {result[1:] for result in seen} == {
        (503, ("dangling_watches_index", "watches_not_executing"))
    }


# -- the cluster cannot be read: status unknown --------------------------------


def test_elasticsearch_down_is_unreachable_without_waiting(down_stack):
    started = time.monotonic()
    answer, body = check(down_stack)
    elapsed = time.monotonic() - started

    assert answer.status_code == 503
    assert body["status"] == "unknown"
    assert codes(body) == ["elasticsearch_unreachable"]
    finding = body["findings"][0]
    assert finding["severity"] == "critical"
    assert finding["evidence"] == {"timed_out": False}
    assert elapsed < ES_TIMEOUT + SLACK


def test_hanging_elasticsearch_is_cut_off_by_the_timeout(stack, es):
    es.scenario.hang_paths = ["/"]

    started = time.monotonic()
    answer, body = check(stack)
    elapsed = time.monotonic() - started

    assert answer.status_code == 503
    assert body["status"] == "unknown"
    assert codes(body) == ["elasticsearch_unreachable"]
    assert body["findings"][0]["evidence"] == {"timed_out": True}
    assert ES_TIMEOUT * 0.9 <= elapsed < ES_TIMEOUT + SLACK


def test_hanging_after_the_first_call_stays_within_the_budget(stack, es):
    es.scenario.hang_paths = ["/_cluster", "/_dangling", "/.watcher-history"]

    started = time.monotonic()
    answer, body = check(stack)
    elapsed = time.monotonic() - started

    assert elapsed < BUDGET + SLACK
    assert answer.status_code == 200
    assert body["status"] == "yellow"
    # Every check after the hang is reported as not done, none is guessed.
    assert [(f["code"], f["evidence"]) for f in body["findings"]] == [
        ("check_incomplete", {"check": "index metadata"}),
        ("check_incomplete", {"check": "dangling indices"}),
        ("check_incomplete", {"check": "watch history"}),
    ]
    assert body["watcher"]["state"] == "started"


@pytest.mark.parametrize("major", ALL_MAJORS)
def test_error_on_get_root_is_unreachable(stack, es, major):
    es.scenario.version = VERSIONS[major]
    es.scenario.fail_paths = {"/": 500}

    answer, body = check(stack)

    assert answer.status_code == 503
    assert body["status"] == "unknown"
    assert codes(body) == ["elasticsearch_unreachable"]
    assert body["findings"][0]["evidence"] == {"http_status": 500}


@pytest.mark.parametrize("major", ALL_MAJORS)
@pytest.mark.parametrize(
    ("refusal", "http_status"), [("wrong_password", 401), ("no_privileges", 403)]
)
def test_refused_credentials_are_auth_failed(stack, es, major, refusal, http_status):
    es.scenario.version = VERSIONS[major]
    if refusal == "wrong_password":
        # The cluster's password was rotated; the service still sends the old one.
        es.scenario.basic_auth = (ES_USER, "rotated-password")
    else:
        es.scenario.forbidden = True

    answer, body = check(stack)

    assert answer.status_code == 503
    assert body["status"] == "unknown"
    assert codes(body) == ["elasticsearch_auth_failed"]
    finding = body["findings"][0]
    assert finding["severity"] == "critical"
    assert finding["evidence"] == {
        "http_status": http_status,
        "type": "security_exception",
    }


# -- one scenario per finding code ---------------------------------------------


@pytest.mark.parametrize("major", ALL_MAJORS)
def test_unlicensed_watcher_is_red(stack, es, major):
    es.scenario.version = VERSIONS[major]
    es.scenario.license_compliant = False

    answer, body = check(stack)

    assert answer.status_code == 503
    assert body["status"] == "red"
    # Nothing past watcher stats is worth asking once the license says no.
    assert codes(body) == ["watcher_not_licensed"]
    finding = body["findings"][0]
    assert finding["severity"] == "critical"
    assert finding["nodes"] == []
    assert finding["evidence"] == {"http_status": 403, "type": "security_exception"}


@pytest.mark.parametrize("major", ALL_MAJORS)
@pytest.mark.parametrize("manual", [True, False])
def test_stopped_watcher_notes_manually_stopped(stack, es, major, manual):
    es.scenario.version = VERSIONS[major]
    for node in es.scenario.nodes:
        node.watcher_state = "stopped"
    es.scenario.manually_stopped = manual

    answer, body = check(stack)

    assert answer.status_code == 503
    assert body["status"] == "red"
    assert body["watcher"]["state"] == "stopped"
    assert body["watcher"]["manually_stopped"] is manual
    assert codes(body) == on(major, ["watcher_stopped"])
    finding = the(body, "watcher_stopped")
    assert finding["severity"] == "critical"
    assert finding["nodes"] == [N1, N2]
    assert finding["evidence"] == {
        "manually_stopped": manual,
        "states": {"stopped": [N1, N2]},
    }


@pytest.mark.parametrize("major", ALL_MAJORS)
def test_watcher_started_on_some_nodes_is_mixed(stack, es, major):
    es.scenario.version = VERSIONS[major]
    es.scenario.nodes[1].watcher_state = "stopped"

    answer, body = check(stack)

    assert answer.status_code == 503
    assert body["status"] == "red"
    assert body["watcher"]["state"] == "mixed"
    assert codes(body) == on(major, ["watcher_state_mixed"])
    finding = the(body, "watcher_state_mixed")
    assert finding["severity"] == "critical"
    assert finding["nodes"] == [N2]
    assert finding["evidence"] == {"states": {"started": [N1], "stopped": [N2]}}


@pytest.mark.parametrize("major", ALL_MAJORS)
def test_watcher_starting_with_a_red_index_is_stuck_at_once(stack, es, major):
    es.scenario.version = VERSIONS[major]
    for node in es.scenario.nodes:
        node.watcher_state = "starting"
    es.scenario.indices[".watches"].health = "red"

    answer, body = check(stack)

    assert answer.status_code == 503
    assert body["status"] == "red"
    assert codes(body) == on(
        major, ["watches_index_unhealthy", "watcher_stuck_starting"]
    )
    finding = the(body, "watcher_stuck_starting")
    assert finding["severity"] == "critical"
    assert finding["nodes"] == [N1, N2]
    assert "because .watches is red" in finding["message"]
    # Each worker counts from its own first sighting (a documented limitation).
    seen = finding["evidence"]["seen_starting_seconds"]
    assert sorted(seen) == [N1, N2]
    assert all(0 <= value < 60 for value in seen.values())


@pytest.mark.parametrize("major", ALL_MAJORS)
@pytest.mark.parametrize("starting", [[N1], [N1, N2]])
def test_watcher_starting_without_a_cause_is_a_warning_during_the_grace(
    stack, es, major, starting
):
    # A rolling restart: nodes pass through `starting` on their way back.
    es.scenario.version = VERSIONS[major]
    for node in es.scenario.nodes:
        if node.node_id in starting:
            node.watcher_state = "starting"

    answer, body = check(stack)

    assert answer.status_code == 200
    assert body["status"] == "yellow"
    # Not watcher_state_mixed as well: one node state, one finding.
    assert codes(body) == on(major, ["watcher_stuck_starting"])
    finding = the(body, "watcher_stuck_starting")
    assert finding["severity"] == "warning"
    assert finding["nodes"] == starting


def test_stopped_and_starting_nodes_beside_a_started_one_are_told_apart(stack, es):
    es.scenario.nodes.append(Node("n3CCCCCCCCCCCCCCCCCCCC", "es-3"))
    es.scenario.nodes[0].watcher_state = "starting"
    es.scenario.nodes[1].watcher_state = "stopped"

    answer, body = check(stack)

    assert answer.status_code == 503
    assert body["watcher"]["state"] == "mixed"
    assert codes(body) == ["watcher_state_mixed", "watcher_stuck_starting"]
    mixed = the(body, "watcher_state_mixed")
    assert mixed["nodes"] == [N2]
    assert mixed["evidence"] == {
        "states": {
            "starting": [N1],
            "stopped": [N2],
            "started": ["n3CCCCCCCCCCCCCCCCCCCC"],
        }
    }
    stuck = the(body, "watcher_stuck_starting")
    assert (stuck["severity"], stuck["nodes"]) == ("warning", [N1])


@pytest.mark.parametrize("major", ALL_MAJORS)
def test_missing_watches_index(stack, es, major):
    es.scenario.version = VERSIONS[major]
    del es.scenario.indices[".watches"]

    answer, body = check(stack)

    assert answer.status_code == 503
    assert body["status"] == "red"
    assert codes(body) == on(major, ["watches_index_missing"])
    finding = the(body, "watches_index_missing")
    assert finding["severity"] == "critical"
    assert finding["evidence"] == {"indices_found": [".triggered_watches"]}
    # Health is asked only for indices that exist, so it never waits for a 408.
    health = [r.path for r in es.calls("GET") if r.path.startswith("/_cluster/health")]
    assert health == ["/_cluster/health/.triggered_watches"]


@pytest.mark.parametrize("major", DANGLING_MAJORS)
def test_missing_watches_index_lists_a_dangling_copy_to_import(stack, es, major):
    es.scenario.version = VERSIONS[major]
    del es.scenario.indices[".watches"]
    es.scenario.dangling = [stale_copy()]

    answer, body = check(stack)

    assert answer.status_code == 503
    # Its name is not in the metadata: it may be the last copy, never "stale".
    assert codes(body) == ["watches_index_missing"]
    assert the(body, "watches_index_missing")["evidence"] == {
        "indices_found": [".triggered_watches"],
        "dangling_copies": [
            {
                "index_name": ".watches",
                "index_uuid": STALE,
                "node_ids": [N2],
                "creation_date_millis": 1600000000000,
            }
        ],
    }


@pytest.mark.parametrize("major", ALL_MAJORS)
@pytest.mark.parametrize(
    ("health", "severity", "http_status", "status", "shards"),
    [
        ("red", "critical", 503, "red", (0, 2)),
        ("yellow", "warning", 200, "yellow", (1, 1)),
    ],
)
def test_unhealthy_watches_index(
    stack, es, major, health, severity, http_status, status, shards
):
    es.scenario.version = VERSIONS[major]
    es.scenario.indices[".watches"].health = health

    answer, body = check(stack)

    assert answer.status_code == http_status
    assert body["status"] == status
    assert codes(body) == on(major, ["watches_index_unhealthy"])
    finding = the(body, "watches_index_unhealthy")
    assert finding["severity"] == severity
    active_primaries, unassigned = shards
    assert finding["evidence"] == {
        ".watches": {
            "status": health,
            "number_of_shards": 1,
            "number_of_replicas": 1,
            "active_primary_shards": active_primaries,
            "unassigned_shards": unassigned,
        }
    }


@pytest.mark.parametrize("major", DANGLING_MAJORS)
def test_stale_watches_copy_is_dangling_with_nodes_and_uuids(stack, es, major):
    broken(es, major)
    es.scenario.dangling = [stale_copy((N2, N1))]

    answer, body = check(stack)

    assert answer.status_code == 503
    assert body["status"] == "red"
    assert codes(body) == ["dangling_watches_index", "watches_not_executing"]
    finding = the(body, "dangling_watches_index")
    assert finding["severity"] == "critical"
    assert finding["nodes"] == [N1, N2]
    assert finding["evidence"] == {
        "index_name": ".watches",
        "stale_uuid": STALE,
        "current_uuid": CURRENT,
        "creation_date_millis": 1600000000000,
    }
    assert finding["remedy"].startswith(
        f"DELETE /_dangling/{STALE}?accept_data_loss=true, then restart Watcher"
    )


@pytest.mark.parametrize("major", ALL_MAJORS)
def test_missing_triggered_watches_is_yellow(stack, es, major):
    es.scenario.version = VERSIONS[major]
    del es.scenario.indices[".triggered_watches"]

    answer, body = check(stack)

    assert answer.status_code == 200
    assert body["status"] == "yellow"
    assert codes(body) == on(major, ["triggered_watches_missing"])
    finding = the(body, "triggered_watches_missing")
    assert finding["severity"] == "warning"
    assert finding["evidence"] == {"indices_found": [".watches"]}


@pytest.mark.parametrize("major", ALL_MAJORS)
@pytest.mark.parametrize(
    ("queued", "severity", "http_status"),
    [(25, "warning", 200), (1000, "critical", 503)],
)
def test_saturated_execution_queue(stack, es, major, queued, severity, http_status):
    es.scenario.version = VERSIONS[major]
    es.scenario.nodes[0].queue_size = queued

    answer, body = check(stack)

    assert answer.status_code == http_status
    assert codes(body) == on(major, ["execution_queue_saturated"])
    finding = the(body, "execution_queue_saturated")
    assert finding["severity"] == severity
    assert finding["nodes"] == [N1]
    assert finding["evidence"] == {
        "queues": {N1: {"queue_size": queued, "max_size": 10}},
        "reject_size": 1000,
    }


@pytest.mark.parametrize("major", ALL_MAJORS)
@pytest.mark.parametrize("history", ["empty", "older_than_stale_seconds"])
def test_watches_not_executing(stack, es, major, history):
    es.scenario.version = VERSIONS[major]
    if history == "empty":
        es.scenario.last_execution_millis = None
        last = None
    else:
        # Fresh by the default 3600 s, stale by the stack's WATCHER_STALE_SECONDS.
        seconds = int(time.time()) - STALE_SECONDS - 100
        es.scenario.last_execution_millis = seconds * 1000
        last = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

    answer, body = check(stack)

    assert answer.status_code == 503
    assert body["status"] == "red"
    assert body["watcher"]["last_execution"] == last
    assert codes(body) == on(major, ["watches_not_executing"])
    finding = the(body, "watches_not_executing")
    assert finding["severity"] == "critical"
    assert finding["evidence"] == {
        "watch_count": 4,
        "last_execution": last,
        "stale_seconds": STALE_SECONDS,
    }


# -- the remedy ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "http_status", "code"),
    [
        ({}, 401, "missing_token"),
        ({"Authorization": "Bearer not-the-admin-token"}, 403, "invalid_token"),
        ({"Authorization": f"Basic {ADMIN_TOKEN}"}, 401, "missing_token"),
    ],
)
def test_remedy_refuses_without_the_admin_token(stack, es, headers, http_status, code):
    broken(es)

    answer, body = remedy(stack, {"confirm": True}, headers=headers)

    assert answer.status_code == http_status
    assert body["error"]["code"] == code
    assert es.requests == []


@pytest.mark.parametrize("sent", [{}, {"confirm": False}, {"dry_run": False}])
def test_remedy_without_confirmation_is_400(stack, es, sent):
    broken(es)

    answer, body = remedy(stack, sent)

    assert answer.status_code == 400
    assert body["error"]["code"] == "confirmation_required"
    assert es.requests == []


def planned_delete():
    return {
        "action": "delete_dangling_index",
        "index_name": ".watches",
        "index_uuid": STALE,
        "current_uuid": CURRENT,
        "node_ids": [N2],
        "request": f"DELETE /_dangling/{STALE}?accept_data_loss=true",
        "result": "planned",
    }


PLANNED_RESTART = {
    "action": "restart_watcher",
    "requests": ["POST /_watcher/_stop", "POST /_watcher/_start"],
    "result": "planned",
}


@pytest.mark.parametrize("major", DANGLING_MAJORS)
def test_dry_run_lists_the_plan_and_changes_nothing(stack, es, major):
    broken(es, major)

    answer, body = remedy(stack, {"dry_run": True})

    assert answer.status_code == 200
    assert body["dry_run"] is True
    assert body["actions"] == [planned_delete(), PLANNED_RESTART]
    assert body["manual_steps"] == []
    assert body["before"]["status"] == "red"
    assert body["after"] is None
    assert changes(es) == []
    assert es.scenario.dangling == [stale_copy()]
    assert [n.watcher_state for n in es.scenario.nodes] == ["started", "started"]


@pytest.mark.parametrize("major", DANGLING_MAJORS)
def test_confirmed_remedy_deletes_only_the_stale_copy_and_restarts(stack, es, major):
    broken(es, major)
    orphan = {
        "index_name": ".watches-orphan",
        "index_uuid": "oRpHaNwAtChEsUuId00001",
        "creation_date_millis": 1,
        "node_ids": [N1],
    }
    es.scenario.dangling.append(orphan)
    in_metadata = {index.uuid for index in es.scenario.indices.values()}

    answer, body = remedy(stack, {"confirm": True})

    assert answer.status_code == 200
    assert body["dry_run"] is False
    assert body["before"]["status"] == "red"
    assert [(a["action"], a["result"]) for a in body["actions"]] == [
        ("delete_dangling_index", "done"),
        ("restart_watcher", "done"),
    ]
    deletes = es.calls("DELETE")
    assert [(r.path, r.query) for r in deletes] == [
        (f"/_dangling/{STALE}", {"accept_data_loss": "true"})
    ]
    assert not in_metadata & {r.path.rsplit("/", 1)[1] for r in deletes}
    # Stop before start, and both after the delete: a start with the stale copy
    # still there would come up stuck again.
    assert changes(es) == [
        ("DELETE", f"/_dangling/{STALE}"),
        ("POST", "/_watcher/_stop"),
        ("POST", "/_watcher/_start"),
    ]
    assert es.scenario.dangling == [orphan]
    assert body["after"]["status"] == "green"
    assert codes(body["after"]) == []


def test_remedy_never_deletes_a_uuid_that_is_in_the_metadata(stack, es):
    broken(es)
    # The listed copy's uuid now belongs to an index in the cluster metadata.
    es.scenario.indices[".watches-restored"] = Index(STALE)

    answer, body = remedy(stack, {"confirm": True})

    assert answer.status_code == 200
    assert [a["action"] for a in body["actions"]] == []
    assert es.calls("DELETE") == []
    assert changes(es) == []
    assert es.scenario.dangling == [stale_copy()]


@pytest.mark.parametrize("major", ["7", "8", "9"])
def test_remedy_restarts_a_stopped_watcher_with_stop_then_start(stack, es, major):
    es.scenario.version = VERSIONS[major]
    for node in es.scenario.nodes:
        node.watcher_state = "stopped"

    answer, body = remedy(stack, {"confirm": True})

    assert answer.status_code == 200
    assert body["actions"] == [{**PLANNED_RESTART, "result": "done"}]
    assert changes(es) == [("POST", "/_watcher/_stop"), ("POST", "/_watcher/_start")]
    assert body["after"]["status"] == "green"


def test_remedy_on_6x_restarts_through_xpack_and_lists_manual_steps(stack, es):
    es.scenario.version = VERSIONS["6"]
    for node in es.scenario.nodes:
        node.watcher_state = "stopped"

    answer, body = remedy(stack, {"confirm": True})

    assert answer.status_code == 200
    assert body["actions"] == [
        {
            "action": "restart_watcher",
            "requests": ["POST /_xpack/watcher/_restart"],
            "result": "done",
        }
    ]
    assert changes(es) == [("POST", "/_xpack/watcher/_restart")]
    assert es.calls("GET", "/_dangling") == []
    assert [step["node_id"] for step in body["manual_steps"]] == [N1, N2]
    assert body["manual_steps"][0]["directories"] == [
        "/var/lib/elasticsearch/nodes/0/indices/<stale-uuid>"
    ]
    # Only .watches copies are looked for, so only their uuids are listed.
    assert body["manual_steps"][0]["current_uuids"] == {".watches": CURRENT}
    assert body["after"]["status"] == "green"


def test_remedy_on_6x_without_restart_endpoint_stops_then_starts(stack, es):
    es.scenario.version = VERSIONS["6"]
    for node in es.scenario.nodes:
        node.watcher_state = "stopped"
    es.scenario.fail_paths = {"/_xpack/watcher/_restart": 404}

    answer, body = remedy(stack, {"confirm": True})

    assert answer.status_code == 200
    assert body["actions"] == [
        {
            "action": "restart_watcher",
            "requests": ["POST /_xpack/watcher/_stop", "POST /_xpack/watcher/_start"],
            "result": "done",
        }
    ]
    assert changes(es) == [
        ("POST", "/_xpack/watcher/_restart"),
        ("POST", "/_xpack/watcher/_stop"),
        ("POST", "/_xpack/watcher/_start"),
    ]
    assert body["after"]["status"] == "green"


def test_remedy_with_elasticsearch_down_is_503_and_changes_nothing(down_stack):
    answer, body = remedy(down_stack, {"confirm": True})

    assert answer.status_code == 503
    assert body["error"]["code"] == "elasticsearch_unavailable"


# -- the command line ----------------------------------------------------------


def run_watcher_check(url: str) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ELASTICSEARCH_")},
        "ELASTICSEARCH_URL": url,
        "ELASTICSEARCH_TIMEOUT": str(ES_TIMEOUT),
        "TRACING": "off",
    }
    return subprocess.run(
        [sys.executable, "-m", "app", "watcher-check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("scenario", "status", "exit_code"),
    [
        ("healthy", "green", 0),
        ("triggered_watches_missing", "yellow", 1),
        ("dangling_watches_index", "red", 2),
        ("wrong_password", "unknown", 2),
    ],
)
def test_watcher_check_command_exits_with_the_status(es, scenario, status, exit_code):
    if scenario == "triggered_watches_missing":
        del es.scenario.indices[".triggered_watches"]
    elif scenario == "dangling_watches_index":
        broken(es)
    elif scenario == "wrong_password":
        es.scenario.basic_auth = (ES_USER, "rotated-password")

    done = run_watcher_check(es.url.replace("://", f"://{ES_USER}:{ES_PASSWORD}@"))

    assert done.returncode == exit_code, done.stderr
    assert json.loads(done.stdout)["status"] == status
    assert ES_PASSWORD not in done.stdout + done.stderr


def test_watcher_check_command_with_elasticsearch_down_exits_2():
    nobody = localstack.free_port()
    done = run_watcher_check(f"http://{ES_USER}:{ES_PASSWORD}@127.0.0.1:{nobody}")

    assert done.returncode == 2, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "unknown"
    assert [f["code"] for f in report["findings"]] == ["elasticsearch_unreachable"]
    assert ES_PASSWORD not in done.stdout + done.stderr


# -- secrets -------------------------------------------------------------------


def test_no_secret_reaches_a_response_or_a_log_line(stack, es, down_stack):
    bodies = []
    broken(es)
    bodies.append(check(stack)[0].text)
    bodies.append(remedy(stack, {"dry_run": True})[0].text)
    bodies.append(remedy(stack, {"confirm": True})[0].text)
    bodies.append(remedy(stack, {"confirm": True}, headers={})[0].text)
    es.scenario.basic_auth = (ES_USER, "rotated-password")
    bodies.append(check(stack)[0].text)
    bodies.append(check(down_stack)[0].text)
    bodies.append(remedy(down_stack, {"confirm": True})[0].text)

    for text in bodies:
        assert ES_PASSWORD not in text
        assert ADMIN_TOKEN not in text
    # The admin's bearer token is for this service only, never for the cluster.
    assert es.requests
    for recorded in es.requests:
        assert ADMIN_TOKEN not in str(recorded.headers)

    # The logs hold what every earlier test in this module did, too.
    logs = sorted(
        path
        for started in (stack, down_stack)
        for path in started.log_dir.iterdir()
        if path.name in ("uwsgi.log", "requests.log") or path.name.startswith("nginx-")
    )
    assert {path.name for path in logs} >= {
        "uwsgi.log",
        "requests.log",
        "nginx-access.log",
        "nginx-error.log",
    }
    for path in logs:
        for number, line in enumerate(path.read_text(errors="replace").splitlines()):
            assert ES_PASSWORD not in line, f"{path}:{number + 1}"
            assert ADMIN_TOKEN not in line, f"{path}:{number + 1}"
