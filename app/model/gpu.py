"""The optional GPU path: the same solvers on CuPy arrays.

``logistic`` takes its array module as ``xp``; with ``device="gpu"`` training
hands it CuPy (the array layer of RAPIDS), so the products with X run on the
GPU while SciPy's L-BFGS-B steps stay on the host.

# Limitation: CuPy is not a dependency (its wheels are tied to a CUDA
# version); install the one for your CUDA, e.g. `pip install cupy-cuda12x`.
# The tests run the GPU path only where CuPy finds a device.
"""

from __future__ import annotations

import importlib.util

import numpy as np

DEVICES = ("cpu", "gpu")


class DeviceError(RuntimeError):
    """The requested device cannot be used here."""


def gpu_installed() -> bool:
    """Whether CuPy can be imported, without importing it (cheap, for requests)."""
    return importlib.util.find_spec("cupy") is not None


def array_module(device: str):
    if device == "cpu":
        return np
    if not gpu_installed():
        raise DeviceError(
            "device 'gpu' needs CuPy: install the wheel for your CUDA, "
            "e.g. `pip install cupy-cuda12x`."
        )

    import cupy

    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as error:
        raise DeviceError(f"device 'gpu': CUDA is not usable here: {error}") from None
    if count == 0:
        raise DeviceError("device 'gpu': CuPy finds no CUDA device.")
    return cupy
