"""POST /api/v1/predict and /predict through the Flask app."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.model.store import ModelStore
from tests.models import SHAPE, publish_random_image_model


@pytest.fixture
def model(settings):
    version = publish_random_image_model(settings.model_dir, ["not-dog", "dog"], 5)
    return ModelStore(settings.model_dir).load(version)


def pixels(seed=0, shape=SHAPE):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def png(array, mode=None, format="PNG"):
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(buffer, format=format)
    return buffer.getvalue()


def probabilities(reply):
    assert reply.status_code == 200, reply.get_json()
    return [p["probability"] for p in reply.get_json()["predictions"]]


def error_code(reply):
    body = reply.get_json()
    assert set(body) == {"error"}, body
    return reply.status_code, body["error"]["code"]


def test_no_model_is_a_503(client):
    reply = client.post("/api/v1/predict", json={"features": [1, 2]})
    assert error_code(reply) == (503, "no_model")


def test_one_example_as_json(client, model):
    row = pixels().reshape(-1)

    reply = client.post("/api/v1/predict", json={"features": row.tolist()})

    body = reply.get_json()
    expected = model.probabilities(row[np.newaxis].astype(np.float32))[0]
    assert body["model_version"] == model.version
    assert body["predictions"] == [
        {
            "label": int(expected >= 0.5),
            "class": ("not-dog", "dog")[int(expected >= 0.5)],
            "probability": expected,
        }
    ]


def test_json_bytes_and_images_give_identical_probabilities(client, model):
    images = [pixels(seed) for seed in range(3)]
    rows = np.stack([image.reshape(-1) for image in images])

    as_json = client.post("/predict", json={"instances": rows.tolist()})
    as_bytes = client.post(
        "/predict",
        data=rows.astype("<f4").tobytes(),
        content_type="application/octet-stream",
    )
    as_files = client.post(
        "/predict",
        data={
            "image": [
                (io.BytesIO(png(image)), f"{i}.png") for i, image in enumerate(images)
            ]
        },
        content_type="multipart/form-data",
    )
    as_body = client.post("/predict", data=png(images[1]), content_type="image/png")

    expected = probabilities(as_json)
    assert len(expected) == 3
    assert probabilities(as_bytes) == expected
    assert probabilities(as_files) == expected
    assert probabilities(as_body) == [expected[1]]


def test_images_are_converted_and_resized_like_training(client, model):
    large = np.kron(pixels(2), np.ones((8, 8, 1), dtype=np.uint8))  # 32x40 blocks
    grey = pixels(3)[..., 0]

    resized = client.post("/predict", data=png(large), content_type="image/png")
    converted = client.post("/predict", data=png(grey), content_type="image/png")
    jpeg = client.post(
        "/predict", data=png(pixels(4), format="JPEG"), content_type="image/jpeg"
    )

    expected_resize = np.asarray(
        Image.fromarray(large).resize((SHAPE[1], SHAPE[0]), Image.Resampling.BILINEAR)
    )
    expected_grey = np.asarray(Image.fromarray(grey).convert("RGB"))
    assert probabilities(resized) == pytest.approx(
        model.probabilities(expected_resize.reshape(1, -1).astype(np.float32)).tolist(),
        abs=0,
    )
    assert (
        probabilities(converted)
        == model.probabilities(expected_grey.reshape(1, -1).astype(np.float32)).tolist()
    )
    assert len(probabilities(jpeg)) == 1


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"features": [1.0] * 59}, 400, "wrong_feature_count"),
        ({"features": ["1"] * 60}, 400, "non_numeric_value"),
        ({"features": [True] * 60}, 400, "non_numeric_value"),
        ({"features": [None] * 60}, 400, "non_numeric_value"),
        ({"features": [1e39] * 60}, 400, "non_finite_value"),
        ({"features": []}, 400, "invalid_features"),
        ({"instances": []}, 400, "invalid_features"),
        ({"instances": [[1.0] * 60, [1.0] * 61]}, 400, "wrong_feature_count"),
        ({"features": [[1.0] * 60]}, 400, "invalid_features"),
        ({"features": [1] * 60, "instances": [[1] * 60]}, 400, "invalid_body"),
        ({"nothing": 1}, 400, "invalid_body"),
        ([1, 2, 3], 400, "invalid_body"),
    ],
)
def test_bad_json_gets_a_specific_4xx(client, model, body, status, code):
    assert error_code(client.post("/api/v1/predict", json=body)) == (status, code)


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"", "empty_body"),
        (b'{"features": [1, 2', "invalid_json"),
        (b'{"features": [NaN]}', "non_finite_value"),
        (b'{"features": [Infinity]}', "non_finite_value"),
        (b"[" * 100000 + b"]" * 100000, "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
    ],
)
def test_malformed_json_bodies(client, model, raw, code):
    reply = client.post("/api/v1/predict", data=raw, content_type="application/json")
    assert error_code(reply) == (400, code)


def test_float32_bodies_must_hold_whole_finite_examples(client, model):
    partial = np.zeros(61, dtype="<f4").tobytes()
    nan = np.full(60, np.nan, dtype="<f4").tobytes()

    assert error_code(
        client.post("/predict", data=partial, content_type="application/octet-stream")
    ) == (400, "wrong_byte_count")
    assert error_code(
        client.post("/predict", data=nan, content_type="application/octet-stream")
    ) == (400, "non_finite_value")
    assert error_code(
        client.post("/predict", data=b"", content_type="application/octet-stream")
    ) == (400, "empty_body")


def test_unreadable_images_and_missing_files(client, model):
    truncated = png(pixels())[:30]
    gif = io.BytesIO()
    Image.fromarray(pixels()).save(gif, format="GIF")

    assert error_code(
        client.post("/predict", data=truncated, content_type="image/png")
    ) == (
        400,
        "invalid_image",
    )
    assert error_code(
        client.post("/predict", data=gif.getvalue(), content_type="image/png")
    ) == (400, "unsupported_image")
    assert error_code(
        client.post("/predict", data={"other": "x"}, content_type="multipart/form-data")
    ) == (400, "missing_image")


def test_unlisted_content_type_is_415(client, model):
    reply = client.post("/predict", data="1,2,3", content_type="text/csv")
    assert error_code(reply) == (415, "unsupported_media_type")
    assert "application/json" in reply.get_json()["error"]["message"]


def test_body_over_the_limit_is_413(settings, make_app, model):
    client = make_app(settings, max_predict_bytes=100).test_client()
    reply = client.post(
        "/predict", data=b"\0" * 240, content_type="application/octet-stream"
    )
    assert error_code(reply) == (413, "payload_too_large")


def test_wrong_method_and_unknown_path_are_json(client):
    assert error_code(client.get("/api/v1/predict")) == (405, "method_not_allowed")
    assert error_code(client.get("/api/v1/nope")) == (404, "not_found")


def test_health_is_cheap_and_names_the_model(client, model):
    assert client.get("/api/v1/health").get_json() == {
        "status": "ok",
        "model_version": model.version,
    }


def test_model_metadata(client, model):
    body = client.get("/api/v1/model").get_json()
    assert body["model_version"] == model.version
    assert body["input_shape"] == [4, 5, 3]
    assert body["n_features"] == 60
    assert body["classes"] == ["not-dog", "dog"]
    assert body["scale"] == pytest.approx(1 / 255)
    assert body["threshold"] == 0.5
