"""A small random image model published straight into a MODEL_DIR.

Tests and the soak need a model with known weights without training one; this
is the one way they make it, with the metadata a trained model carries.
"""

from __future__ import annotations

import numpy as np

from app.model.store import ModelStore

SHAPE = (4, 5, 3)
N_FEATURES = 60


def publish_random_image_model(model_dir, classes, seed: int, bias: float = -0.1):
    """Publish weights drawn from ``seed`` for 4x5x3 uint8 images; the version id."""
    meta = {
        "classes": list(classes),
        "input_shape": list(SHAPE),
        "scale": 1 / 255,
        "threshold": 0.5,
        "solver": "lbfgs",
        "params": {},
        "metrics": {},
    }
    weights = np.random.default_rng(seed).normal(size=N_FEATURES)
    return ModelStore(model_dir).publish(weights, bias, meta)
