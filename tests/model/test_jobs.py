"""Training jobs: records on disk, one runner process at a time, deaths noticed."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from app.model import jobs
from tests.conftest import REPO


def write_job(job_store, n=40, params=None):
    job_id = job_store.new_id()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(n, 3))
    labels = (features[:, 0] > 0).astype(np.int8)
    np.savez(job_store.data_path(job_id), features=features, labels=labels)
    job_store.create(job_id, params or {"solver": "lbfgs"}, source="test")
    return job_id


def run_job(model_dir, job_id):
    return subprocess.Popen(
        [sys.executable, "-m", "app", "run-job", job_id],
        cwd=REPO,
        env=dict(os.environ, MODEL_DIR=str(model_dir)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_status(job_store, job_id, wanted, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = job_store.read(job_id)
        if record["status"] in wanted:
            return record
        time.sleep(0.05)
    pytest.fail(f"job never reached {wanted}: {job_store.read(job_id)}")


def test_runner_trains_publishes_and_records_success(tmp_path):
    job_store = jobs.JobStore(tmp_path)
    job_id = write_job(job_store)

    assert run_job(tmp_path, job_id).wait(60) == 0

    record = job_store.read(job_id)
    assert record["status"] == "succeeded"
    assert record["progress"] == 1.0
    assert record["metrics"]["train_accuracy"] == 1.0
    assert (tmp_path / "current").is_symlink()
    assert os.readlink(tmp_path / "current").endswith(record["model_version"])
    assert not job_store.data_path(job_id).exists()


def test_second_job_waits_queued_while_the_lock_is_held(tmp_path):
    job_store = jobs.JobStore(tmp_path)
    job_id = write_job(job_store)
    holder = open(job_store.lock_path, "a+")
    fcntl.flock(holder, fcntl.LOCK_EX)

    runner = run_job(tmp_path, job_id)
    try:
        time.sleep(1.5)
        record = job_store.read(job_id)
        assert record["status"] == "queued"
        assert record["pid"] == runner.pid
    finally:
        holder.close()

    assert runner.wait(60) == 0
    assert job_store.read(job_id)["status"] == "succeeded"


def test_killed_runner_reads_as_failed_and_publishes_nothing(tmp_path):
    job_store = jobs.JobStore(tmp_path)
    job_id = write_job(job_store, params={"solver": "gd", "iterations": 1_000_000})

    runner = run_job(tmp_path, job_id)
    wait_status(job_store, job_id, {"running"})
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)

    record = job_store.read(job_id)
    assert record["status"] == "failed"
    assert "exited without finishing" in record["error"]
    assert not (tmp_path / "current").exists()


def test_terminated_runner_records_its_own_failure(tmp_path):
    job_store = jobs.JobStore(tmp_path)
    job_id = write_job(job_store, params={"solver": "gd", "iterations": 1_000_000})

    runner = run_job(tmp_path, job_id)
    wait_status(job_store, job_id, {"running"})
    runner.send_signal(signal.SIGTERM)

    assert runner.wait(20) == 1
    record = job_store.read(job_id)
    assert record["status"] == "failed"
    assert record["error"] == "stopped by signal 15"


def test_unknown_or_malformed_job_ids_read_as_none(tmp_path):
    job_store = jobs.JobStore(tmp_path)
    assert job_store.read("0" * 32) is None
    assert job_store.read("../../etc/passwd") is None


def test_jobs_run_in_the_order_they_were_accepted(tmp_path):
    job_store = jobs.JobStore(tmp_path)
    ids = [
        write_job(job_store, params={"solver": "gd", "iterations": 300})
        for _ in range(3)
    ]
    holder = open(job_store.lock_path, "a+")
    fcntl.flock(holder, fcntl.LOCK_EX)

    # Started newest first: only the tickets can put them back in order.
    runners = [run_job(tmp_path, job_id) for job_id in reversed(ids)]
    try:
        time.sleep(1.5)
        assert [job_store.read(job_id)["status"] for job_id in ids] == ["queued"] * 3
    finally:
        holder.close()
    for runner in runners:
        assert runner.wait(120) == 0

    starts = [job_store.read(job_id)["started"] for job_id in ids]
    assert starts == sorted(starts)
    assert not list(job_store.queue.iterdir())


def test_a_dead_older_job_does_not_block_the_queue(tmp_path):
    job_store = jobs.JobStore(tmp_path)
    dead = write_job(job_store)
    job_store.update(dead, pid=2**22 + 7, pid_start=1)  # a pid that is not running
    alive = write_job(job_store)

    assert run_job(tmp_path, alive).wait(60) == 0

    assert job_store.read(dead)["status"] == "failed"
    assert job_store.read(alive)["status"] == "succeeded"
