"""A small published image model (4x5 RGB) for the hardening tests."""

from __future__ import annotations

import numpy as np
import pytest

from app.model.store import ModelStore
from tests.hardening.catalogue import N_FEATURES, SHAPE

META = {
    "classes": ["not-cat", "cat"],
    "input_shape": list(SHAPE),
    "scale": 1 / 255,
    "threshold": 0.5,
    "solver": "lbfgs",
    "params": {},
    "metrics": {},
}


def publish_model(model_dir, seed=7, bias=-0.1) -> str:
    """Publish a random 4x5x3 image model into ``model_dir``; its version id."""
    weights = np.random.default_rng(seed).normal(size=N_FEATURES)
    return ModelStore(model_dir).publish(weights, bias, META)


@pytest.fixture
def model(settings):
    return ModelStore(settings.model_dir).load(publish_model(settings.model_dir))


def error_body(status: int, body) -> tuple[int, str]:
    """``(status, code)`` after checking the body is exactly the error shape."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return status, body["error"]["code"]
