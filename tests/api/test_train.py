"""POST /api/v1/train and GET /api/v1/train/<job_id> through the Flask app."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest


def wait_for(client, status_url, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = client.get(status_url).get_json()
        if record["status"] in ("succeeded", "failed"):
            return record
        time.sleep(0.05)
    pytest.fail(f"job did not finish: {record}")


def small_problem(n=60):
    rng = np.random.default_rng(2)
    features = rng.normal(size=(n, 4))
    labels = (features[:, 0] - features[:, 1] > 0).astype(int)
    return features, labels


def npz(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def error_code(reply):
    body = reply.get_json()
    assert set(body) == {"error"}, body
    return reply.status_code, body["error"]["code"]


def test_json_training_runs_off_the_request_and_publishes(client, admin_headers):
    features, labels = small_problem()

    reply = client.post(
        "/api/v1/train",
        json={
            "features": features.tolist(),
            "labels": labels.tolist(),
            "classes": ["left", "right"],
            "params": {"solver": "lbfgs", "l2": 0.001},
        },
        headers=admin_headers,
    )

    assert reply.status_code == 202
    body = reply.get_json()
    assert body["status"] == "queued"
    assert reply.headers["Location"] == body["status_url"]
    record = wait_for(client, body["status_url"])
    assert record["status"] == "succeeded", record
    assert record["metrics"]["train_accuracy"] == 1.0
    assert set(record["metrics"]) >= {
        "train_accuracy",
        "log_loss",
        "iterations",
        "seconds",
    }

    model = client.get("/api/v1/model").get_json()
    assert model["model_version"] == record["model_version"]
    assert model["classes"] == ["left", "right"]
    assert model["params"] == {
        "solver": "lbfgs",
        "l2": 0.001,
        "tol": 1e-6,
        "max_iter": 500,
        "scale": 1.0,
    }
    assert model["input_shape"] is None


def test_npz_upload_with_images_trains_an_image_model(client, admin_headers):
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, size=(30, 3, 3, 1), dtype=np.uint8)
    labels = (images.reshape(30, -1).mean(axis=1) > 127).astype(np.int8)
    labels[:2] = [0, 1]

    reply = client.post(
        "/api/v1/train",
        data={
            "data": (io.BytesIO(npz(images=images, labels=labels)), "d.npz"),
            "params": json.dumps(
                {"solver": "gd", "iterations": 50, "learning_rate": 0.1}
            ),
        },
        content_type="multipart/form-data",
        headers=admin_headers,
    )

    record = wait_for(client, reply.get_json()["status_url"])
    assert record["status"] == "succeeded", record
    model = client.get("/api/v1/model").get_json()
    assert model["input_shape"] == [3, 3, 1]
    assert model["scale"] == pytest.approx(1 / 255)
    assert model["classes"] == ["0", "1"]
    assert record["metrics"]["iterations"] == 50


@pytest.mark.parametrize(
    "document, code",
    [
        ({"features": [[1, 2], [3, 4]], "labels": [0, 2]}, "invalid_labels"),
        ({"features": [[1, 2], [3, 4]], "labels": [1, 1]}, "single_class"),
        ({"features": [[1, 2], [3, 4]], "labels": [0, 1, 1]}, "length_mismatch"),
        ({"features": [[1, 2], [3, 4]]}, "missing_labels"),
        ({"features": [[1, 2], [3, "x"]], "labels": [0, 1]}, "non_numeric_value"),
        ({"features": [[1, 2], [3]], "labels": [0, 1]}, "wrong_feature_count"),
        ({"features": [[1, 2], [3, 4]], "labels": [0.5, 1]}, "invalid_labels"),
        ({"features": [[1, 2], [3, 4]], "labels": [False, True]}, "invalid_labels"),
        ({"labels": [0, 1]}, "missing_features"),
        (
            {
                "features": [[1, 2], [3, 4]],
                "labels": [0, 1],
                "params": {"solver": "sgd"},
            },
            "invalid_params",
        ),
        (
            {
                "features": [[1, 2], [3, 4]],
                "labels": [0, 1],
                "params": {"iterations": -5},
            },
            "invalid_params",
        ),
        (
            {"features": [[1, 2], [3, 4]], "labels": [0, 1], "params": {"nope": 1}},
            "invalid_params",
        ),
        (
            {"features": [[1, 2], [3, 4]], "labels": [0, 1], "params": {"l2": "big"}},
            "invalid_params",
        ),
        (
            {"features": [[1, 2], [3, 4]], "labels": [0, 1], "classes": ["a"]},
            "invalid_classes",
        ),
        (
            {"features": [[1, 2], [3, 4]], "labels": [0, 1], "input_shape": [3, 1, 1]},
            "invalid_input_shape",
        ),
    ],
)
def test_bad_training_input_is_refused_and_the_model_stays(
    client, admin_headers, document, code
):
    reply = client.post("/api/v1/train", json=document, headers=admin_headers)

    assert error_code(reply) == (400, code)
    assert client.get("/api/v1/health").get_json()["model_version"] is None


def test_npz_with_object_arrays_is_refused(client, admin_headers):
    data = npz(
        features=np.array([[1, "a"], [2, "b"]], dtype=object), labels=np.array([0, 1])
    )

    reply = client.post(
        "/api/v1/train",
        data={"data": (io.BytesIO(data), "evil.npz")},
        content_type="multipart/form-data",
        headers=admin_headers,
    )

    assert error_code(reply) == (400, "invalid_training_data")
    assert "pickle" in reply.get_json()["error"]["message"]


def test_multipart_without_data_file(client, admin_headers):
    reply = client.post(
        "/api/v1/train",
        data={"x": "1"},
        content_type="multipart/form-data",
        headers=admin_headers,
    )
    assert error_code(reply) == (400, "missing_data")


def test_train_content_type_must_be_json_or_multipart(client, admin_headers):
    reply = client.post(
        "/api/v1/train", data=b"abc", content_type="text/plain", headers=admin_headers
    )
    assert error_code(reply) == (415, "unsupported_media_type")


def test_token_is_required_and_checked(client):
    features, labels = small_problem()
    document = {"features": features.tolist(), "labels": labels.tolist()}

    missing = client.post("/api/v1/train", json=document)
    wrong = client.post(
        "/api/v1/train", json=document, headers={"Authorization": "Bearer nope"}
    )
    basic = client.post(
        "/api/v1/train", json=document, headers={"Authorization": "Basic eDp5"}
    )

    assert error_code(missing) == (401, "missing_token")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert error_code(wrong) == (403, "invalid_token")
    assert error_code(basic) == (401, "missing_token")


def test_without_a_configured_token_admin_is_disabled_with_the_fix(settings, make_app):
    client = make_app(settings, admin_token="").test_client()

    reply = client.post("/api/v1/train", json={}, headers={"Authorization": "Bearer "})

    assert error_code(reply) == (403, "admin_disabled")
    assert "ADMIN_TOKEN" in reply.get_json()["error"]["message"]


def test_unknown_job_is_404(client):
    assert error_code(client.get("/api/v1/train/" + "a" * 32)) == (404, "job_not_found")
    assert error_code(client.get("/api/v1/train/not-an-id")) == (404, "job_not_found")


def test_npz_that_unpacks_beyond_the_limit_is_refused(
    settings, make_app, admin_headers
):
    client = make_app(settings, max_train_bytes=1_000_000).test_client()
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, features=np.zeros((1000, 2000)), labels=np.arange(1000) % 2
    )
    assert len(buffer.getvalue()) < 100_000  # 16 MB of zeros, compressed

    reply = client.post(
        "/api/v1/train",
        data={"data": (io.BytesIO(buffer.getvalue()), "bomb.npz")},
        content_type="multipart/form-data",
        headers=admin_headers,
    )

    assert error_code(reply) == (400, "training_data_too_large")
    assert "MAX_TRAIN_BYTES" in reply.get_json()["error"]["message"]


def test_a_file_that_is_not_an_npz_is_named_as_such(client, admin_headers):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64

    reply = client.post(
        "/api/v1/train",
        data={"data": (io.BytesIO(png), "eight.png")},
        content_type="multipart/form-data",
        headers=admin_headers,
    )

    assert error_code(reply) == (400, "invalid_training_data")
    message = reply.get_json()["error"]["message"]
    assert message.startswith("The file is not an .npz archive")
    assert "pickle" not in message


def test_deeply_nested_params_field_is_a_400(client, admin_headers):
    features, labels = small_problem()
    data = npz(features=features, labels=labels)

    reply = client.post(
        "/api/v1/train",
        data={"data": (io.BytesIO(data), "d.npz"), "params": "[" * 100_000},
        content_type="multipart/form-data",
        headers=admin_headers,
    )

    assert error_code(reply) == (400, "invalid_params")


def test_npz_header_declaring_a_giant_array_is_refused(client, admin_headers):
    import zipfile

    header = (
        b"{'descr': '<f8', 'fortran_order': False, 'shape': (10000000, 10000000), }"
    )
    header += b" " * (117 - len(header)) + b"\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("features.npy", member + b"\0" * 64)
        labels = io.BytesIO()
        np.save(labels, np.array([0, 1]))
        archive.writestr("labels.npy", labels.getvalue())

    reply = client.post(
        "/api/v1/train",
        data={"data": (io.BytesIO(buffer.getvalue()), "giant.npz")},
        content_type="multipart/form-data",
        headers=admin_headers,
    )

    assert error_code(reply) == (400, "training_data_too_large")


def test_a_full_disk_leaves_no_half_written_upload(
    client, admin_headers, monkeypatch, settings
):
    features, labels = small_problem()

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("app.api.train.np.savez", no_space)
    reply = client.post(
        "/api/v1/train",
        json={"features": features.tolist(), "labels": labels.tolist()},
        headers=admin_headers,
    )

    assert error_code(reply) == (507, "insufficient_storage")
    assert list((settings.model_dir / "jobs").glob("*.tmp")) == []
    assert list((settings.model_dir / "jobs").glob("*.npz")) == []
