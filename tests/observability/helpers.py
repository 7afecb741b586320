"""Shared by the observability tests: a tiny model, and reading a scrape."""

from __future__ import annotations

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from app.model import training
from app.model.store import ModelStore


def publish_tiny_model(model_dir, seed: int = 7) -> str:
    """Train a 2-feature model (classes "no" and "yes") and publish it."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(40, 2))
    labels = (features[:, 0] > 0).astype(int).tolist()
    dataset = training.dataset_from_arrays(
        features=features, labels=labels, classes=["no", "yes"]
    )
    params = training.validate_params({"solver": "lbfgs"})
    weights, bias, meta = training.train(dataset, params)
    return ModelStore(model_dir).publish(weights, bias, meta)


def samples(text: str) -> dict:
    """``{(sample name, frozenset of label pairs): value}`` from a scrape body."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(scrape: dict, name: str, **labels) -> float | None:
    return scrape.get((name, frozenset(labels.items())))
