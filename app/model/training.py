"""From labelled arrays to a published model: validation, scaling, solving.

Shared by the HTTP train API (through a job), the CLI and ``make run``'s
default model, so every path applies the same checks and preprocessing.
"""

from __future__ import annotations

import logging
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.model import gpu, logistic
from app.model.features import image_to_pixels

log = logging.getLogger(__name__)

# Above this many feature values the training matrix is float32 (half the
# memory, twice the BLAS speed); below it float64, for exact small results.
FLOAT64_LIMIT = 2**27

_PARAM_TYPES = {
    "solver": str,
    "learning_rate": float,
    "iterations": int,
    "l2": float,
    "tol": float,
    "max_iter": int,
    "scale": float,
    "device": str,
}


class DataError(ValueError):
    """Training input that cannot be used; ``code`` says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Dataset:
    raw: np.ndarray  # (n, F): pixels or features before scaling
    labels: np.ndarray  # (n,) int8 of 0 and 1
    classes: tuple
    input_shape: tuple | None
    default_scale: float


def validate_params(params) -> dict:
    """Fill defaults and check every training parameter; return a clean dict."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise DataError("invalid_params", "'params' must be an object.")

    unknown = sorted(set(params) - set(_PARAM_TYPES))
    if unknown:
        accepted = ", ".join(sorted(_PARAM_TYPES))
        raise DataError(
            "invalid_params", f"Unknown parameter(s) {unknown}; accepted: {accepted}."
        )

    clean = dict(logistic.DEFAULTS)
    for name, value in params.items():
        expected = _PARAM_TYPES[name]
        if expected is str:
            if not isinstance(value, str):
                raise DataError("invalid_params", f"'{name}' must be a string.")
            clean[name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError("invalid_params", f"'{name}' must be a number.")
        try:
            number = float(value)
        except OverflowError:
            # A JSON integer too large for a float: out of every range below.
            number = math.inf
        if not math.isfinite(number):
            raise DataError("invalid_params", f"'{name}' must be finite.")
        if expected is int and not number.is_integer():
            raise DataError("invalid_params", f"'{name}' must be a whole number.")
        clean[name] = expected(number)

    if clean["device"] not in gpu.DEVICES:
        raise DataError(
            "invalid_params",
            f"'device' must be one of {', '.join(gpu.DEVICES)}; "
            f"got {clean['device']!r}.",
        )
    if clean["device"] == "gpu" and not gpu.gpu_installed():
        raise DataError(
            "gpu_unavailable",
            "device 'gpu' needs CuPy where training runs "
            "(pip install cupy-cuda12x); use 'cpu'.",
        )
    if clean["solver"] not in logistic.SOLVERS:
        raise DataError(
            "invalid_params",
            f"'solver' must be one of {', '.join(logistic.SOLVERS)}; "
            f"got {clean['solver']!r}.",
        )
    limits = {
        "learning_rate": (0.0, 1e6, False),
        "iterations": (1, 1_000_000, True),
        "max_iter": (1, 1_000_000, True),
        "l2": (0.0, 1e6, True),
        "tol": (0.0, 1.0, False),
        "scale": (0.0, 1e6, False),
    }
    for name, (low, high, low_inclusive) in limits.items():
        if name not in clean:
            continue
        value = clean[name]
        too_low = value < low if low_inclusive else value <= low
        if too_low or value > high:
            bound = ">=" if low_inclusive else ">"
            raise DataError(
                "invalid_params", f"'{name}' must be {bound} {low} and <= {high}."
            )
    return clean


def dataset_from_arrays(
    *, features=None, images=None, labels=None, classes=None, input_shape=None
) -> Dataset:
    """Check labelled arrays (the layout of the shared ``train.npz``)."""
    if (features is None) == (images is None):
        raise DataError(
            "invalid_training_data", "Provide exactly one of 'images' or 'features'."
        )

    if images is not None:
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., np.newaxis]
        if images.ndim != 4 or images.dtype != np.uint8 or 0 in images.shape[1:]:
            raise DataError(
                "invalid_training_data",
                "'images' must be uint8 of shape (N, H, W, C) or (N, H, W) with no "
                f"zero side; got {images.dtype} {images.shape}.",
            )
        shape = tuple(int(side) for side in images.shape[1:])
        raw = images.reshape(images.shape[0], -1)
        default_scale = 1 / 255
    else:
        raw = np.asarray(features)
        if raw.ndim != 2 or raw.shape[1] == 0 or not _is_real(raw):
            raise DataError(
                "invalid_training_data",
                "'features' must be a numeric matrix of shape (N, F); "
                f"got {raw.dtype} {raw.shape}.",
            )
        if raw.dtype.kind == "f" and not np.isfinite(raw).all():
            raise DataError(
                "non_finite_value", "'features' holds NaN or infinite values."
            )
        shape = _check_shape(input_shape, raw.shape[1])
        default_scale = 1 / 255 if raw.dtype == np.uint8 else 1.0

    n_examples = raw.shape[0]
    labels = _check_labels(labels, n_examples)
    return Dataset(
        raw=raw,
        labels=labels,
        classes=_check_classes(classes),
        input_shape=shape,
        default_scale=default_scale,
    )


def _is_real(array) -> bool:
    return array.dtype.kind in "uif"


def _check_shape(input_shape, n_features):
    if input_shape is None:
        return None
    valid = (
        isinstance(input_shape, (list, tuple))
        and len(input_shape) == 3
        and all(
            isinstance(side, (int, np.integer))
            and not isinstance(side, bool)
            and side > 0
            for side in input_shape
        )
    )
    if not valid:
        raise DataError(
            "invalid_input_shape", "'input_shape' must be [height, width, channels]."
        )
    if int(np.prod(input_shape)) != n_features:
        raise DataError(
            "invalid_input_shape",
            f"'input_shape' {list(input_shape)} has {int(np.prod(input_shape))} "
            f"values but each example has {n_features} features.",
        )
    return tuple(int(side) for side in input_shape)


def _check_labels(labels, n_examples):
    if labels is None:
        raise DataError("missing_labels", "Training data needs 'labels'.")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "uifb":
        raise DataError("invalid_labels", "'labels' must be a flat list of 0 and 1.")
    if labels.shape[0] != n_examples:
        raise DataError(
            "length_mismatch",
            f"There are {n_examples} examples but {labels.shape[0]} labels.",
        )
    if n_examples == 0:
        raise DataError("empty_training_data", "Training data holds no examples.")
    if not np.isin(labels, (0, 1)).all():
        raise DataError("invalid_labels", "Every label must be 0 or 1.")
    if np.unique(labels).size < 2:
        raise DataError(
            "single_class", "The labels hold only one class; both 0 and 1 are needed."
        )
    return labels.astype(np.int8)


def _check_classes(classes):
    if classes is None:
        return ("0", "1")
    # Only a list of two names: a bare string, a number or an object would
    # otherwise be iterated into something that merely looks like two names.
    names = np.asarray(classes).tolist() if isinstance(classes, np.ndarray) else classes
    if isinstance(names, list | tuple):
        names = [_class_name(name) for name in names]
    if not (
        isinstance(names, list)
        and len(names) == 2
        and all(isinstance(name, str) and name for name in names)
    ):
        raise DataError(
            "invalid_classes",
            "'classes' must be a list of two non-empty names: [label 0, label 1].",
        )
    return tuple(names)


def _class_name(name):
    if isinstance(name, bytes):
        try:
            return name.decode()
        except UnicodeDecodeError:
            return None
    return name


def _check_unpacked_size(path_or_file, max_bytes: int) -> None:
    """Refuse an archive whose members would inflate beyond ``max_bytes``.

    The sizes come from the zip's central directory, read before anything is
    decompressed; a member that lies about its size fails zlib's length check
    when it is read.
    """
    try:
        with zipfile.ZipFile(path_or_file) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except zipfile.BadZipFile:
        return  # np.load gives the precise error
    finally:
        if hasattr(path_or_file, "seek"):
            path_or_file.seek(0)
    if unpacked > max_bytes:
        raise DataError(
            "training_data_too_large",
            f"The .npz unpacks to {unpacked} bytes; at most {max_bytes} are "
            "accepted (MAX_TRAIN_BYTES).",
        )


def _looks_like_npz_or_npy(path_or_file) -> bool:
    """Whether the file starts as a zip archive or a .npy array does."""
    if hasattr(path_or_file, "read"):
        head = path_or_file.read(6)
        path_or_file.seek(0)
    else:
        with open(path_or_file, "rb") as handle:
            head = handle.read(6)
    return head.startswith(b"PK\x03\x04") or head == b"\x93NUMPY"


def dataset_from_npz(path_or_file, max_bytes: int | None = None) -> Dataset:
    """Read a ``.npz`` with ``images`` or ``features``, ``labels``, ``classes``.

    ``max_bytes`` bounds the unpacked size, for archives from untrusted clients.
    """
    if not _looks_like_npz_or_npy(path_or_file):
        # np.load takes anything else for a pickle, and would say so.
        raise DataError(
            "invalid_training_data",
            "The file is not an .npz archive; save one with numpy.savez(path, "
            "images=..., labels=..., classes=...).",
        )
    if max_bytes is not None:
        _check_unpacked_size(path_or_file, max_bytes)
    try:
        loaded = np.load(path_or_file, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(
                "invalid_training_data",
                "The file is a single .npy array; send an .npz archive with "
                "'images' or 'features' and 'labels'.",
            )
        with loaded as archive:
            arrays = {name: archive[name] for name in archive.files}
    except DataError:
        raise
    except ValueError as error:
        # Object arrays need pickle, which is never allowed.
        raise DataError(
            "invalid_training_data", f"The .npz cannot be read without pickle: {error}"
        ) from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise DataError(
            "invalid_training_data", f"The file is not a readable .npz: {error}"
        ) from None
    except MemoryError:
        # An array header may declare a shape far beyond the bytes it holds.
        raise DataError(
            "training_data_too_large",
            "An array in the .npz declares more data than this server can hold.",
        ) from None

    allowed = {"images", "features", "labels", "classes", "input_shape"}
    extra = sorted(set(arrays) - allowed)
    if extra:
        raise DataError(
            "invalid_training_data",
            f"Unexpected arrays {extra}; accepted: {', '.join(sorted(allowed))}.",
        )
    shape = arrays.get("input_shape")
    if shape is not None:
        if shape.ndim != 1 or shape.dtype.kind not in "iu":
            raise DataError(
                "invalid_input_shape",
                "'input_shape' must be three integers: [height, width, channels].",
            )
        shape = [int(side) for side in shape]
    return dataset_from_arrays(
        features=arrays.get("features"),
        images=arrays.get("images"),
        labels=arrays.get("labels"),
        classes=arrays.get("classes"),
        input_shape=shape,
    )


def dataset_from_folder(folder) -> Dataset:
    """One subfolder per class (sorted: the first is label 0), images inside.

    Every image is converted and resized to the first image's size and mode,
    with the same function that serves image predictions.
    """
    folder = Path(folder)
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    if len(class_dirs) != 2:
        raise DataError(
            "invalid_training_data",
            f"{folder} must hold exactly two class subfolders; "
            f"found {len(class_dirs)}.",
        )

    suffixes = {".png", ".jpg", ".jpeg"}
    files = [
        (label, path)
        for label, class_dir in enumerate(class_dirs)
        for path in sorted(class_dir.iterdir())
        if path.suffix.lower() in suffixes
    ]
    if not files:
        raise DataError("empty_training_data", f"No PNG or JPEG images under {folder}.")

    from PIL import Image

    with Image.open(files[0][1]) as first:
        channels = {"L": 1, "RGB": 3, "RGBA": 4}.get(first.mode, 3)
        shape = (first.height, first.width, channels)

    images = np.stack([image_to_pixels(path.read_bytes(), shape) for _, path in files])
    labels = np.array([label for label, _ in files], dtype=np.int8)
    return dataset_from_arrays(
        images=images, labels=labels, classes=[d.name for d in class_dirs]
    )


def train(dataset: Dataset, params: dict, progress=None):
    """Fit the model; return ``(weights, bias, meta)`` ready for publishing."""
    params = validate_params(params)
    try:
        xp = gpu.array_module(params["device"])
    except gpu.DeviceError as error:
        raise DataError("gpu_unavailable", str(error)) from None
    scale = params.get("scale", dataset.default_scale)

    n, n_features = dataset.raw.shape
    dtype = np.float64 if n * n_features <= FLOAT64_LIMIT else np.float32
    # One scaled copy in the solver's dtype; the raw array is left untouched.
    X = xp.multiply(xp.asarray(dataset.raw), dtype(scale), dtype=dtype)
    y = dataset.labels.astype(np.float64)

    if params["solver"] == "gd":
        result = logistic.fit_gd(
            X,
            y,
            learning_rate=params["learning_rate"],
            iterations=params["iterations"],
            progress=progress,
            xp=xp,
        )
        used = {k: params[k] for k in ("solver", "learning_rate", "iterations")}
    else:
        result = logistic.fit_lbfgs(
            X,
            y,
            l2=params["l2"],
            tol=params["tol"],
            max_iter=params["max_iter"],
            progress=progress,
            xp=xp,
        )
        used = {k: params[k] for k in ("solver", "l2", "tol", "max_iter")}
        if not result.converged:
            log.warning(
                "lbfgs stopped after %d iterations without converging",
                result.iterations,
            )
    used["scale"] = scale
    if params["device"] != "cpu":
        used["device"] = params["device"]
    if progress is not None:
        progress(1.0, result.iterations, result.loss)

    probabilities = logistic.predict_proba(
        X, xp.asarray(result.weights), result.bias, xp=xp
    )
    probabilities = probabilities.get() if xp is not np else probabilities
    accuracy = float(((probabilities >= 0.5) == (dataset.labels == 1)).mean())
    log_loss, _, _ = logistic.loss_and_gradient(
        xp.asarray(result.weights), result.bias, X, xp.asarray(y), 0.0, xp
    )

    meta = {
        "classes": list(dataset.classes),
        "input_shape": list(dataset.input_shape) if dataset.input_shape else None,
        "scale": scale,
        "threshold": 0.5,
        "solver": params["solver"],
        "params": used,
        "metrics": {
            "train_accuracy": accuracy,
            "log_loss": log_loss,
            "objective": result.loss,
            "iterations": result.iterations,
            "converged": result.converged,
            "seconds": round(result.seconds, 4),
            "n_examples": int(n),
            "costs": [[i, c] for i, c in result.costs],
        },
    }
    return result.weights, result.bias, meta
