"""Fixtures for the tracing tests: the collector double and a traced app."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.model import training
from app.model.store import ModelStore
from tests.doubles.lightstep_collector import LightStepCollector

ACCESS_TOKEN = "test-lightstep-token-3b9e71"


@pytest.fixture
def collector():
    with LightStepCollector() as running:
        yield running


@pytest.fixture
def traced_settings(settings, collector):
    return dataclasses.replace(
        settings,
        tracing=True,
        lightstep_access_token=ACCESS_TOKEN,
        lightstep_collector_host=collector.host,
        lightstep_collector_port=collector.port,
        lightstep_collector_encryption="none",
        lightstep_flush_seconds=0.1,
    )


@pytest.fixture
def publish_model():
    """Train a tiny 2-feature model and publish it under ``model_dir``."""

    def publish(model_dir) -> str:
        rng = np.random.default_rng(7)
        features = rng.normal(size=(40, 2))
        labels = (features[:, 0] > 0).astype(int).tolist()
        dataset = training.dataset_from_arrays(features=features, labels=labels)
        params = training.validate_params({"solver": "lbfgs"})
        weights, bias, meta = training.train(dataset, params)
        return ModelStore(model_dir).publish(weights, bias, meta)

    return publish
