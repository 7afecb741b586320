"""The main job end to end: real uWSGI workers behind real nginx on loopback."""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PUBLISHED_RECIPE = {"solver": "gd", "learning_rate": 0.005, "iterations": 2000}


def wait_for_job(url, status_url, timeout=120):
    deadline = time.monotonic() + timeout
    seen_progress = []
    while time.monotonic() < deadline:
        record = requests.get(url + status_url, timeout=10).json()
        seen_progress.append(record["progress"])
        if record["status"] in ("succeeded", "failed"):
            return record, seen_progress
        time.sleep(0.2)
    pytest.fail(f"training job did not finish within {timeout}s: {record}")


def train_cat_model(stack, cat_npz_bytes, params=PUBLISHED_RECIPE):
    reply = requests.post(
        stack.url + "/api/v1/train",
        headers=AUTH,
        files={"data": ("train.npz", cat_npz_bytes, "application/octet-stream")},
        data={"params": json.dumps(params)},
        timeout=60,
    )
    assert reply.status_code == 202, reply.text
    return wait_for_job(stack.url, reply.json()["status_url"])


def versions_by_worker(stack, requests_count=200):
    """Ask /api/v1/health concurrently until every worker has answered."""

    def ask(_):
        reply = requests.get(stack.url + "/api/v1/health", timeout=10)
        return reply.headers["X-Served-By"], reply.json()["model_version"]

    seen = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for worker, version in pool.map(ask, range(requests_count)):
            seen.setdefault(worker, set()).add(version)
    return seen


def png_bytes(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_published_recipe_through_nginx_and_identical_predictions(
    stack_factory, cat_data, cat_npz_bytes
):
    stack = stack_factory(processes=2)
    assert requests.get(stack.url + "/api/v1/health").json() == {
        "status": "ok",
        "model_version": None,
    }

    record, progress = train_cat_model(stack, cat_npz_bytes)
    assert record["status"] == "succeeded", record
    assert record["metrics"]["train_accuracy"] == pytest.approx(207 / 209)
    assert round(record["metrics"]["train_accuracy"], 4) == 0.9904
    assert record["metrics"]["iterations"] == 2000
    assert record["progress"] == 1.0
    assert progress == sorted(progress)

    images = cat_data["images"][:5]
    rows = images.reshape(5, -1)

    as_json = requests.post(
        stack.url + "/api/v1/predict", json={"instances": rows.tolist()}, timeout=30
    )
    as_bytes = requests.post(
        stack.url + "/predict",
        data=rows.astype("<f4").tobytes(),
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    as_png = requests.post(
        stack.url + "/api/v1/predict",
        files=[
            ("image", (f"{i}.png", png_bytes(img), "image/png"))
            for i, img in enumerate(images)
        ],
        timeout=30,
    )
    one_png = requests.post(
        stack.url + "/api/v1/predict",
        data=png_bytes(images[0]),
        headers={"Content-Type": "image/png"},
        timeout=30,
    )
    for reply in (as_json, as_bytes, as_png, one_png):
        assert reply.status_code == 200, reply.text
        assert reply.json()["model_version"] == record["model_version"]

    expected = [p["probability"] for p in as_json.json()["predictions"]]
    assert [p["probability"] for p in as_bytes.json()["predictions"]] == expected
    assert [p["probability"] for p in as_png.json()["predictions"]] == expected
    assert one_png.json()["predictions"][0]["probability"] == expected[0]

    labels = [p["label"] for p in as_json.json()["predictions"]]
    assert labels == [int(p >= 0.5) for p in expected]
    names = [p["class"] for p in as_json.json()["predictions"]]
    assert names == [("non-cat", "cat")[label] for label in labels]


def test_every_worker_serves_the_new_model_after_training(stack_factory, cat_npz_bytes):
    stack = stack_factory(processes=2)

    first, _ = train_cat_model(
        stack, cat_npz_bytes, {"solver": "lbfgs", "max_iter": 50}
    )
    assert first["status"] == "succeeded", first
    second, _ = train_cat_model(stack, cat_npz_bytes, {"solver": "lbfgs", "l2": 0.1})
    assert second["status"] == "succeeded", second
    assert second["model_version"] != first["model_version"]

    time.sleep(1.0)  # the contract: every worker within a second
    seen = versions_by_worker(stack)
    assert set(seen) == {"1", "2"}, seen
    assert all(versions == {second["model_version"]} for versions in seen.values()), (
        seen
    )

    model = requests.get(stack.url + "/api/v1/model").json()
    assert model["model_version"] == second["model_version"]
    assert model["params"]["l2"] == 0.1
    assert model["input_shape"] == [64, 64, 3]
    assert model["classes"] == ["non-cat", "cat"]


def test_training_needs_the_admin_token_through_nginx(stack_factory, cat_npz_bytes):
    stack = stack_factory(processes=2)
    files = {"data": ("train.npz", cat_npz_bytes, "application/octet-stream")}

    missing = requests.post(stack.url + "/api/v1/train", files=files, timeout=30)
    wrong = requests.post(
        stack.url + "/api/v1/train",
        files=files,
        headers={"Authorization": "Bearer not-the-token"},
        timeout=30,
    )

    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_token"
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "invalid_token"
    assert requests.get(stack.url + "/api/v1/health").json()["model_version"] is None


def test_nginx_answers_oversized_bodies_with_the_json_error(stack_factory):
    stack = stack_factory(processes=2, env={"MAX_PREDICT_BYTES": "1000"})

    reply = requests.post(
        stack.url + "/api/v1/predict",
        data=b"\0" * 5000,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )

    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "payload_too_large"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert "nginx/" not in reply.headers.get("Server", "")


def test_unknown_path_is_a_json_404(stack_factory):
    stack = stack_factory(processes=2)

    outside = requests.get(stack.url + "/nothing-here", timeout=10)
    inside = requests.get(stack.url + "/api/v1/nothing-here", timeout=10)

    assert outside.status_code == inside.status_code == 404
    assert (
        outside.json()["error"]["code"] == inside.json()["error"]["code"] == "not_found"
    )


def test_default_model_serves_digit_pngs(stack_factory, tmp_path):
    from app.model import default_data

    stack = stack_factory(processes=2, name="default-model")
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "app", "default-model"],
        env={"MODEL_DIR": str(stack.model_dir), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    time.sleep(0.1)

    dataset = default_data.load()
    eights = dataset.raw[dataset.labels == 1][:3].reshape(-1, 8, 8)
    replies = [
        requests.post(
            stack.url + "/predict",
            data=png_bytes(pixels),
            headers={"Content-Type": "image/png"},
            timeout=10,
        ).json()
        for pixels in eights
    ]
    assert [r["predictions"][0]["class"] for r in replies] == ["eight"] * 3
    assert np.all([r["predictions"][0]["probability"] > 0.5 for r in replies])
