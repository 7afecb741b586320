"""The double answers like the real servers; these pin the manners we rely on."""

from __future__ import annotations

import time

import elasticsearch
import pytest
import requests

from tests.doubles.elasticsearch import VERSIONS, ElasticsearchDouble, Scenario

COMPAT_9 = "application/vnd.elasticsearch+json; compatible-with=9"


@pytest.mark.parametrize(
    ("version", "header"),
    [
        ("6.8.23", None),
        ("7.13.4", None),
        ("7.17.25", "Elasticsearch"),
        ("8.15.3", "Elasticsearch"),
        ("9.1.5", "Elasticsearch"),
    ],
)
def test_product_header_is_sent_from_7_14(version, header):
    with ElasticsearchDouble(Scenario(version=version)) as es:
        answer = requests.get(es.url + "/", timeout=2)
    assert answer.status_code == 200
    assert answer.headers.get("X-Elastic-Product") == header
    assert answer.json()["tagline"] == "You Know, for Search"


def test_product_header_is_absent_on_401():
    with ElasticsearchDouble(Scenario(basic_auth=("u", "p"))) as es:
        answer = requests.get(es.url + "/", timeout=2)
    assert answer.status_code == 401
    assert "X-Elastic-Product" not in answer.headers
    assert answer.json()["error"]["type"] == "security_exception"
    assert answer.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("major", "compat", "accepted"),
    [
        ("7", 7, True),
        ("7", 8, False),
        ("8", 7, True),
        ("8", 8, True),
        ("8", 9, False),
        ("9", 8, True),
        ("9", 9, True),
        ("9", 7, False),
    ],
)
def test_compatible_with_is_accepted_per_major(major, compat, accepted):
    accept = f"application/vnd.elasticsearch+json; compatible-with={compat}"
    with ElasticsearchDouble(Scenario(version=VERSIONS[major])) as es:
        answer = requests.get(es.url + "/", headers={"Accept": accept}, timeout=2)
    if accepted:
        assert answer.status_code == 200
    else:
        assert answer.status_code == 400
        assert answer.json()["error"]["type"] == "media_type_header_exception"


def test_stock_9x_client_fails_on_8x_and_works_on_9x():
    # The reason app.watcher.client bypasses the client's own request path.
    with ElasticsearchDouble(Scenario(version=VERSIONS["8"])) as es:
        with pytest.raises(elasticsearch.BadRequestError):
            elasticsearch.Elasticsearch(es.url).info()
    with ElasticsearchDouble(Scenario(version=VERSIONS["9"])) as es:
        assert (
            elasticsearch.Elasticsearch(es.url).info()["version"]["number"]
            == (VERSIONS["9"])
        )


def test_stock_9x_client_rejects_6x_for_missing_product_header():
    with ElasticsearchDouble(Scenario(version=VERSIONS["6"])) as es:
        with pytest.raises(elasticsearch.UnsupportedProductError):
            elasticsearch.Elasticsearch(
                es.url, headers={"accept": "application/json"}
            ).info()


def test_health_of_a_missing_index_waits_then_answers_408():
    with ElasticsearchDouble(Scenario()) as es:
        started = time.monotonic()
        answer = requests.get(
            es.url + "/_cluster/health/.nope", params={"timeout": "300ms"}, timeout=5
        )
        waited = time.monotonic() - started
    assert answer.status_code == 408
    assert answer.json()["timed_out"] is True
    assert waited >= 0.3


def test_dangling_answers_500_with_node_failures_and_the_other_results():
    entry = {
        "index_name": ".watches",
        "index_uuid": "x",
        "creation_date_millis": 1,
        "node_ids": ["n1AAAAAAAAAAAAAAAAAAAA"],
    }
    scenario = Scenario(
        dangling=[entry], dangling_failed_nodes=["n2BBBBBBBBBBBBBBBBBBBB"]
    )
    with ElasticsearchDouble(scenario) as es:
        answer = requests.get(es.url + "/_dangling", timeout=2)
    body = answer.json()
    assert answer.status_code == 500
    assert body["_nodes"]["failed"] == 1
    assert body["_nodes"]["failures"][0]["node_id"] == "n2BBBBBBBBBBBBBBBBBBBB"
    assert body["dangling_indices"] == [entry]


@pytest.mark.parametrize(
    ("major", "path", "status"),
    [
        ("6", "/_xpack/watcher/stats", 200),
        ("6", "/_watcher/stats", 400),
        ("7", "/_watcher/stats", 200),
        ("8", "/_watcher/stats", 200),
        ("8", "/_xpack/watcher/stats", 400),
        ("9", "/_watcher/stats", 200),
    ],
)
def test_watcher_paths_per_major(major, path, status):
    with ElasticsearchDouble(Scenario(version=VERSIONS[major])) as es:
        answer = requests.get(es.url + path, timeout=2)
    assert answer.status_code == status
    if status == 200:
        body = answer.json()
        assert set(body) == {"_nodes", "cluster_name", "manually_stopped", "stats"}
        assert body["stats"][0]["execution_thread_pool"] == {
            "queue_size": 0,
            "max_size": 10,
        }


def test_license_error_has_the_real_shape():
    with ElasticsearchDouble(Scenario(license_compliant=False)) as es:
        answer = requests.get(es.url + "/_watcher/stats", timeout=2)
    assert answer.status_code == 403
    assert answer.json()["error"]["license.expired.feature"] == "watcher"
