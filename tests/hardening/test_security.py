"""Secrets stay out of logs and bodies; no pickle; uWSGI drops root; nginx hides."""

from __future__ import annotations

import ast
import os
import stat
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, localstack
from tests.doubles.elasticsearch import ElasticsearchDouble, Scenario
from tests.hardening.conftest import publish_model

ADMIN_TOKEN = "adm-9c1f5e77d2b04a8e"
ES_PASSWORD = "es-pw-41b7c0d93e6f"
ES_API_KEY = "es-key-b55e08a1c7d2"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


def test_every_np_load_in_the_app_refuses_pickle():
    calls = []
    for path in (REPO / "app").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [alias.name for alias in node.names]
                assert "pickle" not in names and node_module(node) != "pickle", path
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and getattr(node.func.value, "id", None) == "np"
            ):
                keywords = {k.arg: k.value for k in node.keywords}
                allow = keywords.get("allow_pickle")
                calls.append(
                    (path.name, isinstance(allow, ast.Constant) and allow.value)
                )

    assert len(calls) >= 2
    assert all(value is False for _, value in calls), calls


def node_module(node):
    return getattr(node, "module", None)


@pytest.mark.e2e
def test_no_secret_appears_in_any_log_line_or_response(stack_factory):
    scenario = Scenario(basic_auth=("watcher", ES_PASSWORD), api_key=ES_API_KEY)
    with ElasticsearchDouble(scenario) as es:
        stack = stack_factory(
            processes=2,
            env={
                "ADMIN_TOKEN": ADMIN_TOKEN,
                "ELASTICSEARCH_URL": es.url_with_auth(),
                "ELASTICSEARCH_API_KEY": ES_API_KEY,
                "ELASTICSEARCH_TIMEOUT": "2",
                "LOG_LEVEL": "DEBUG",
            },
        )
        publish_model(stack.model_dir)
        url = stack.url
        good = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        # A wrong token that shares the real one's prefix, and the real token in
        # places it does not belong (query string, body, other headers).
        wrong = {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}x"}
        replies = [
            requests.post(
                url + "/api/v1/train",
                json={"features": [[0.0], [1.0]], "labels": [0, 1]},
                headers=good,
            ),
            requests.post(url + "/api/v1/train", json={}, headers=wrong),
            requests.post(url + "/api/v1/train", json={}),
            requests.post(
                url + "/api/v1/predict",
                json={"features": [ADMIN_TOKEN]},
                headers={"X-Api-Key": ES_API_KEY},
            ),
            requests.get(url + "/api/v1/health/watcher"),
            requests.post(
                url + "/api/v1/health/watcher/remediate",
                json={"dry_run": True},
                headers=good,
            ),
            requests.post(
                url + "/api/v1/health/watcher/remediate", json={}, headers=wrong
            ),
            requests.get(url + "/api/v1/model"),
        ]
        job = requests.get(url + replies[0].json()["status_url"])
        replies.append(job)
        es.scenario.garbage = True
        replies.append(requests.get(url + "/api/v1/health/watcher"))

    statuses = [reply.status_code for reply in replies]
    assert statuses[:4] == [202, 403, 401, 400]
    assert statuses[5:8] == [200, 403, 200]
    texts = {
        f"response {i} ({reply.request.method} {reply.request.path_url[:30]})": (
            reply.text + str(dict(reply.headers))
        )
        for i, reply in enumerate(replies)
    }
    log_files = [
        path
        for folder in (stack.log_dir, stack.model_dir / "jobs")
        for path in folder.rglob("*")
        if path.is_file() and not path.name.endswith(".json")
    ]
    assert {path.name for path in log_files} >= {"uwsgi.log", "requests.log"}
    for path in log_files:
        texts[str(path)] = path.read_text(errors="replace")

    leaks = [
        (where, name)
        for where, text in texts.items()
        for name, secret in (
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            ("ES password", ES_PASSWORD),
            ("ES API key", ES_API_KEY),
        )
        if secret in text
    ]
    assert leaks == []


def _unreachable_by_others(path: Path):
    """The first folder on the way to ``path`` that others may not search."""
    for folder in [*reversed(path.parents), path]:
        if not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def process_ids(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uid = next(line for line in status if line.startswith("Uid:")).split()[1]
    gid = next(line for line in status if line.startswith("Gid:")).split()[1]
    return int(uid), int(gid)


@pytest.mark.e2e
def test_uwsgi_started_as_root_drops_to_the_app_user(request):
    if os.geteuid() != 0:
        pytest.skip("the privilege drop needs the stack started as root")
    import pwd

    try:
        account = pwd.getpwnam("www-data")
    except KeyError:
        pytest.skip("no www-data user on this machine")
    blocked = _unreachable_by_others(Path(sys.base_prefix))
    if blocked:
        pytest.skip(
            f"www-data cannot load Python from {sys.base_prefix}: {blocked} is not "
            "searchable by others; run with a system-wide Python to check the drop"
        )

    stack = localstack.Stack(
        var_dir=REPO / "var" / "tests" / "privilege-drop",
        processes=2,
        env={"ADMIN_TOKEN": ADMIN_TOKEN, "TRACING": "off"},
        user="www-data",
    )
    try:
        stack.start()
        version = publish_model(stack.model_dir)
        reply = requests.post(
            stack.url + "/api/v1/predict", json={"features": [1] * 60}, timeout=10
        )
        error = requests.get(stack.url + "/nope", timeout=10)

        assert reply.json()["model_version"] == version
        expected = (account.pw_uid, account.pw_gid)
        assert process_ids(stack.uwsgi_pid) == expected
        assert [process_ids(pid) for pid in stack.worker_pids()] == [expected] * 2
        socket = stack.socket_path.stat()
        assert stat.S_ISSOCK(socket.st_mode)
        assert stat.S_IMODE(socket.st_mode) == 0o660
        assert (socket.st_uid, socket.st_gid) == expected
        for answer in (reply, error):
            assert answer.headers["Server"] == "nginx"
            for name, value in SECURITY_HEADERS.items():
                assert answer.headers[name] == value
    finally:
        stack.stop()
