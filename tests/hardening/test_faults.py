"""Faults injected into a running service: kills, corrupt files, a full disk, ES."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from app.model.jobs import JobStore
from app.model.store import ModelStore, new_version_id
from tests.conftest import ADMIN_TOKEN
from tests.doubles.elasticsearch import ElasticsearchDouble, Scenario
from tests.hardening.conftest import error_body, publish_model

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ROW = [7.0] * 60


def predict(url, rows=1, timeout=10):
    return requests.post(
        url + "/api/v1/predict", json={"instances": [ROW] * rows}, timeout=timeout
    )


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def npz_upload(**arrays) -> dict:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    return {"data": (buffer, "train.npz")}


@pytest.mark.e2e
def test_worker_killed_mid_request_fails_only_that_request(stack_factory):
    stack = stack_factory(processes=2)
    publish_model(stack.model_dir)
    before = set(stack.worker_pids())
    slow_body = json.dumps({"instances": [ROW] * 40_000})

    slow = {}

    def send_slow():
        slow["reply"] = requests.post(
            stack.url + "/api/v1/predict",
            data=slow_body,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )

    sender = threading.Thread(target=send_slow)
    idle = {pid: cpu_ticks(pid) for pid in before}
    sender.start()
    # The worker parsing 2.4 million numbers is the one whose CPU time climbs.
    busy = wait_for(
        lambda: next((pid for pid in before if cpu_ticks(pid) - idle[pid] >= 5), None),
        20,
        "a worker to pick up the slow request",
    )
    os.kill(busy, signal.SIGKILL)

    with ThreadPoolExecutor(max_workers=4) as pool:
        others = list(pool.map(lambda _: predict(stack.url), range(40)))
    sender.join(60)

    assert error_body(slow["reply"].status_code, slow["reply"].json()) == (
        503,
        "service_unavailable",
    )
    assert [reply.status_code for reply in others] == [200] * 40
    respawned = wait_for(
        lambda: len(stack.worker_pids()) == 2 and set(stack.worker_pids()) - before,
        20,
        "the master to respawn the worker",
    )
    assert busy not in stack.worker_pids() and len(respawned) == 1
    assert predict(stack.url).status_code == 200


@pytest.mark.e2e
def test_training_killed_mid_run_fails_and_the_model_keeps_serving(
    stack_factory, cat_npz_bytes
):
    stack = stack_factory(processes=2)
    version = publish_model(stack.model_dir)
    reply = requests.post(
        stack.url + "/api/v1/train",
        headers=AUTH,
        files={"data": ("train.npz", cat_npz_bytes, "application/octet-stream")},
        data={"params": json.dumps({"solver": "gd", "iterations": 200_000})},
        timeout=60,
    )
    job_id = reply.json()["job_id"]
    jobs = JobStore(stack.model_dir)

    record = wait_for(
        lambda: (r := jobs.read(job_id))["status"] == "running" and r, 60, "running"
    )
    os.kill(record["pid"], signal.SIGKILL)
    status = wait_for(
        lambda: (
            (r := requests.get(stack.url + reply.json()["status_url"]).json())["status"]
            != "running"
            and r
        ),
        10,
        "the job to stop reading running",
    )

    assert status["status"] == "failed"
    assert "killed" in status["error"]
    assert predict(stack.url).json()["model_version"] == version
    assert ModelStore(stack.model_dir).versions() == [version]


@pytest.mark.e2e
def test_corrupt_model_file_is_refused_with_a_log_line_and_old_one_serves(
    stack_factory,
):
    stack = stack_factory(processes=2)
    good = publish_model(stack.model_dir)
    assert predict(stack.url).json()["model_version"] == good

    # A copy of the good version with its model.npz cut in half, made current
    # behind the store's back (as a bad deploy or a full disk would).
    store = ModelStore(stack.model_dir)
    bad = new_version_id()
    shutil.copytree(store.versions_dir / good, store.versions_dir / bad)
    model_file = store.versions_dir / bad / "model.npz"
    model_file.write_bytes(model_file.read_bytes()[:100])
    link = stack.model_dir / ".current-test"
    os.symlink(os.path.join("versions", bad), link)
    os.replace(link, store.current_link)

    served = {predict(stack.url).json()["model_version"] for _ in range(20)}

    assert served == {good}
    log = (stack.log_dir / "uwsgi.log").read_text()
    assert f"refusing model version {bad}: version {bad}: model.npz does not " in log


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs as MODEL_DIR: a real ENOSPC, not a simulated one."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "models"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_no_space_while_publishing_fails_the_job_and_publishes_nothing(
    settings, make_app, small_disk
):
    settings = type(settings)(
        model_dir=small_disk, admin_token=ADMIN_TOKEN, tracing=False
    )
    good = publish_model(small_disk)
    client = make_app(settings).test_client()
    # 160,000 uint8 pixels per image: 320 KB of upload, 1.28 MB of weights.
    images = np.zeros((2, 400, 400, 1), np.uint8)
    images[1] += 1

    reply = client.post(
        "/api/v1/train",
        data=npz_upload(images=images, labels=np.array([0, 1])),
        headers=AUTH,
    )
    job_id = reply.get_json()["job_id"]
    jobs = JobStore(small_disk)
    record = wait_for(
        lambda: (r := jobs.read(job_id))["status"] in ("succeeded", "failed") and r,
        60,
        "the job to end",
    )

    assert record["status"] == "failed"
    assert "No space left on device" in record["error"]
    store = ModelStore(small_disk)
    assert store.current_version() == good
    assert store.versions() == [good]
    assert [p.name for p in store.versions_dir.iterdir()] == [good]
    assert (
        client.post("/predict", json={"features": ROW}).get_json()["model_version"]
        == good
    )


def test_two_trainings_at_once_run_one_after_the_other(client, admin_headers):
    body = {
        "features": [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]],
        "labels": [0, 1, 1, 0],
        "params": {"solver": "gd", "iterations": 300_000},
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        replies = list(
            pool.map(
                lambda _: client.post(
                    "/api/v1/train", json=body, headers=admin_headers
                ),
                range(2),
            )
        )
    job_ids = [reply.get_json()["job_id"] for reply in replies]

    records = [
        wait_for(
            lambda job_id=job_id: (
                (r := client.get(f"/api/v1/train/{job_id}").get_json())["status"]
                in ("succeeded", "failed")
                and r
            ),
            120,
            "both jobs to end",
        )
        for job_id in job_ids
    ]

    assert [reply.status_code for reply in replies] == [202, 202]
    assert [record["status"] for record in records] == ["succeeded", "succeeded"]
    first, second = sorted(records, key=lambda record: record["started"])
    # Never interleaved: the second starts only after the first has finished.
    assert first["finished"] <= second["started"]


@pytest.mark.e2e
def test_predict_is_unaffected_while_elasticsearch_hangs(stack_factory):
    scenario = Scenario(hang_paths=["/"], hang_seconds=20.0)
    with ElasticsearchDouble(scenario) as es:
        stack = stack_factory(
            processes=2,
            env={
                "ELASTICSEARCH_URL": es.url,
                "ELASTICSEARCH_TIMEOUT": "1",
                "WATCHER_CACHE_SECONDS": "0",
            },
        )
        version = publish_model(stack.model_dir)

        with ThreadPoolExecutor(max_workers=6) as pool:
            watcher = [
                pool.submit(
                    requests.get, stack.url + "/api/v1/health/watcher", timeout=30
                )
                for _ in range(2)
            ]
            started = time.monotonic()
            predictions = list(pool.map(lambda _: predict(stack.url), range(60)))
            predict_seconds = time.monotonic() - started
            watcher = [future.result() for future in watcher]
        es.release.set()

    assert [reply.json()["model_version"] for reply in predictions] == [version] * 60
    assert predict_seconds < 10
    for reply in watcher:
        assert reply.status_code == 503
        assert reply.json()["status"] == "unknown"
        assert reply.elapsed.total_seconds() < 10
