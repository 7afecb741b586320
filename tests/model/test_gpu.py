"""The optional GPU path: refused clearly without CuPy, equal to the CPU with it."""

from __future__ import annotations

import numpy as np
import pytest

from app.model import gpu, training


def test_unknown_device_is_refused():
    with pytest.raises(training.DataError, match="'device' must be one of cpu, gpu"):
        training.validate_params({"device": "tpu"})


@pytest.mark.skipif(gpu.gpu_installed(), reason="CuPy is installed here")
def test_gpu_without_cupy_is_refused_with_the_install_line():
    with pytest.raises(training.DataError, match="pip install cupy") as caught:
        training.validate_params({"device": "gpu"})
    assert caught.value.code == "gpu_unavailable"


def _cuda_device_present() -> bool:
    try:
        gpu.array_module("gpu")
    except gpu.DeviceError:
        return False
    return True


@pytest.mark.skipif(
    not _cuda_device_present(), reason="needs CuPy and a CUDA device (opt-in)"
)
@pytest.mark.parametrize("solver", ["gd", "lbfgs"])
def test_gpu_training_matches_the_cpu_on_the_cat_photos(cat_data, solver):
    dataset = training.dataset_from_arrays(
        images=cat_data["images"], labels=cat_data["labels"]
    )
    params = {"solver": solver, "learning_rate": 0.005, "iterations": 2000}

    cpu_w, cpu_b, cpu_meta = training.train(dataset, {**params, "device": "cpu"})
    gpu_w, gpu_b, gpu_meta = training.train(dataset, {**params, "device": "gpu"})

    np.testing.assert_allclose(gpu_w, cpu_w, rtol=1e-6, atol=1e-9)
    assert gpu_b == pytest.approx(cpu_b, rel=1e-6)
    assert (
        gpu_meta["metrics"]["train_accuracy"] == cpu_meta["metrics"]["train_accuracy"]
    )
