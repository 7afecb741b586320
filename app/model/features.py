"""Turn request bodies and image files into one float32 feature matrix.

Every path ends in the same place: a C-contiguous float32 array of shape
``(n_examples, n_features)`` holding *raw* values (pixels 0..255 for images);
the model applies its own scale. An image is flattened in (row, column,
channel) order, so R, G and B of each pixel sit next to each other, the same
order as a ``(H, W, C)`` array's ``reshape(-1)``.
"""

from __future__ import annotations

import io
import json
import math
import warnings

import numpy as np
import orjson
from PIL import Image, UnidentifiedImageError

from app.model import jpeg

# Decompression bombs: refuse any image of more pixels than this before decoding.
MAX_IMAGE_PIXELS = 4096 * 4096

# The fast JSON path takes a body only when deleting these bytes from it leaves
# exactly what they leave of one quoted key: then the body's only string is
# that key, and the parser can only have produced numbers and lists, never a
# string, true, false or null, so no element needs its type checked.
_NUMERIC_JSON_BYTES = b"0123456789+-.eE,[]{}: \t\r\n"
_FAST_KEYS = {
    b'"features"'.translate(None, _NUMERIC_JSON_BYTES): "features",
    b'"instances"'.translate(None, _NUMERIC_JSON_BYTES): "instances",
}

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_FORMATS = {"PNG", "JPEG"}


class FeatureError(ValueError):
    """The input cannot become a feature matrix; ``code`` says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _reject_constant(name):
    raise FeatureError(
        "non_finite_value",
        f"{name} is not a number this service accepts; send finite numbers only.",
    )


def parse_json(body: bytes):
    """Parse a JSON body, refusing NaN and Infinity literals."""
    if not body:
        raise FeatureError(
            "empty_body", "The request body is empty; send a JSON object."
        )
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except FeatureError:
        raise
    except RecursionError:
        raise FeatureError(
            "invalid_json", "The JSON body is nested too deeply."
        ) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise FeatureError(
            "invalid_json", f"The body is not valid JSON: {error}."
        ) from None


def rows_to_matrix(rows, n_features, field="instances", dtype=np.float32, single=False):
    """Validate a list of equal-length number lists and return an (n, F) array.

    ``single``: the client sent one flat list, so messages name ``field`` itself
    rather than ``field[0]``.
    """
    if not isinstance(rows, list) or not rows:
        raise FeatureError(
            "invalid_features", f"'{field}' must be a non-empty list of number lists."
        )

    width = n_features
    for index, row in enumerate(rows):
        name = field if single else f"{field}[{index}]"
        if not isinstance(row, list) or not row:
            raise FeatureError(
                "invalid_features",
                f"'{name}' must be a non-empty list of numbers.",
            )
        if width is None:
            width = len(row)
        if len(row) != width:
            raise FeatureError(
                "wrong_feature_count",
                f"'{name}' has {len(row)} features; "
                + (
                    f"the model takes {width}."
                    if n_features is not None
                    else f"every row must have {width}, like the first."
                ),
            )
        _check_numbers(row, name)

    # Every element is a real int or float by now, so this cannot fail or
    # silently coerce; values beyond the dtype's range become inf and are refused.
    try:
        with np.errstate(over="ignore"):
            matrix = np.array(rows, dtype=dtype)
    except OverflowError:
        matrix = np.array([np.inf], dtype=dtype)
    if not np.isfinite(matrix).all():
        raise FeatureError(
            "non_finite_value",
            f"'{field}' holds values outside the {np.dtype(dtype).name} range; "
            "send finite numbers.",
        )
    return matrix


def _check_numbers(row, where):
    for position, value in enumerate(row):
        # bool is an int subclass; true/false are not features.
        if type(value) is float:
            if not math.isfinite(value):
                raise FeatureError(
                    "non_finite_value", f"'{where}[{position}]' is not a finite number."
                )
        elif type(value) is not int:
            kind = "null" if value is None else type(value).__name__
            raise FeatureError(
                "non_numeric_value",
                f"'{where}[{position}]' is {kind}; every feature must be a number.",
            )


def from_json_body(body: bytes, n_features: int):
    """``{"features": [...]}`` (one example) or ``{"instances": [[...], ...]}``.

    A body of plain numbers takes the fast path; anything else, and every
    body that would be refused, takes the checked path, which names the fault.
    Both give the same array for any body the fast path accepts.
    """
    matrix = numeric_json_body(body, n_features)
    if matrix is not None:
        return matrix
    return checked_json_body(body, n_features)


def numeric_json_body(body: bytes, n_features: int):
    """The (n, F) float32 matrix of a body holding only its key and numbers.

    None when the body is anything else, or is wrong in any way: the caller
    then takes the checked path, so this one never has to explain a refusal.
    """
    # One pass over the body, and its result is a few bytes: no copy of it.
    field = _FAST_KEYS.get(body.translate(None, _NUMERIC_JSON_BYTES))
    if field is None:
        return None

    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        # NaN, Infinity, 1e999, bad syntax: the checked path names each.
        return None
    if not isinstance(document, dict):
        return None
    value = document.get(field)
    if not isinstance(value, list) or not value:
        return None

    # The same conversion as the checked path: the same float32 for every value.
    try:
        with np.errstate(over="ignore"):
            matrix = np.array(value, dtype=np.float32)
    except (ValueError, TypeError, OverflowError):
        return None  # ragged rows, nested lists, objects, out-of-range integers

    if field == "features":
        expected = (n_features,)
    else:
        expected = (len(value), n_features)
    if matrix.shape != expected or not np.isfinite(matrix).all():
        return None
    return matrix.reshape(-1, n_features)


def checked_json_body(body: bytes, n_features: int):
    """The precise path: every element checked, each failure named exactly."""
    document = parse_json(body)
    if not isinstance(document, dict):
        raise FeatureError(
            "invalid_body",
            "The JSON body must be an object with 'features' or 'instances'.",
        )

    has_features = "features" in document
    has_instances = "instances" in document
    if has_features == has_instances:
        raise FeatureError(
            "invalid_body",
            "Send exactly one of 'features' (one example) or 'instances' (many).",
        )

    if has_features:
        features = document["features"]
        if not isinstance(features, list) or (
            features and isinstance(features[0], list)
        ):
            raise FeatureError(
                "invalid_features",
                "'features' must be a flat list of numbers; use 'instances' for many.",
            )
        return rows_to_matrix([features], n_features, "features", single=True)
    return rows_to_matrix(document["instances"], n_features, "instances")


def from_float32_body(body: bytes, n_features: int):
    """Little-endian float32 values, a whole number of examples."""
    example_bytes = 4 * n_features
    if not body:
        raise FeatureError("empty_body", "The request body is empty.")
    if len(body) % example_bytes:
        raise FeatureError(
            "wrong_byte_count",
            f"The body has {len(body)} bytes, not a multiple of {example_bytes} "
            f"({n_features} little-endian float32 values per example).",
        )

    # A view on the body: no copy unless the machine is big-endian.
    matrix = np.frombuffer(body, dtype="<f4").reshape(-1, n_features)
    if not np.isfinite(matrix).all():
        raise FeatureError(
            "non_finite_value", "The body holds NaN or infinite float32 values."
        )
    return matrix.astype(np.float32, copy=False)


def image_to_pixels(data: bytes, input_shape):
    """Decode a PNG or JPEG and return uint8 pixels of shape ``input_shape``.

    The image is converted to the model's channel count and, when its size
    differs, resized with bilinear filtering: the same steps used when training
    from an image folder, so both paths see the same pixels.
    """
    height, width, channels = input_shape
    mode = _MODES.get(channels)
    if mode is None:
        raise FeatureError(
            "unsupported_channels",
            f"The model expects {channels} channels; images can feed 1, 3 or 4.",
        )

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in _FORMATS:
                raise FeatureError(
                    "unsupported_image",
                    f"Images must be PNG or JPEG, got {image.format or 'unknown'}.",
                )
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise FeatureError(
                    "image_too_large",
                    f"The image is {image.width}x{image.height}; at most "
                    f"{MAX_IMAGE_PIXELS} pixels are accepted.",
                )
            if image.format == "JPEG" and jpeg.holds_less_than_declared(data):
                raise FeatureError(
                    "invalid_image",
                    f"The JPEG declares {image.width}x{image.height} pixels but "
                    "holds too little data for them; it is truncated or forged.",
                )
            image.load()
    except FeatureError:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ):
        raise FeatureError(
            "invalid_image", "The image could not be decoded as PNG or JPEG."
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise FeatureError(
            "invalid_image", f"The image could not be decoded: {error}."
        ) from None

    if image.mode != mode:
        image = image.convert(mode)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)

    pixels = np.asarray(image, dtype=np.uint8)
    return pixels.reshape(height, width, channels)


def from_images(blobs, input_shape):
    """Decode each image and stack them into float32 (n, H*W*C)."""
    n_features = int(np.prod(input_shape))
    matrix = np.empty((len(blobs), n_features), dtype=np.float32)
    for row, blob in enumerate(blobs):
        matrix[row] = image_to_pixels(blob, input_shape).reshape(-1)
    return matrix
