"""A small published image model (4x5 RGB) for the hardening tests."""

from __future__ import annotations

import pytest

from app.model.store import ModelStore
from tests.models import publish_random_image_model


def publish_model(model_dir, seed=7, bias=-0.1) -> str:
    """Publish a random 4x5x3 image model into ``model_dir``; its version id."""
    return publish_random_image_model(model_dir, ["not-cat", "cat"], seed, bias)


@pytest.fixture
def model(settings):
    return ModelStore(settings.model_dir).load(publish_model(settings.model_dir))


def error_body(status: int, body) -> tuple[int, str]:
    """``(status, code)`` after checking the body is exactly the error shape."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return status, body["error"]["code"]
