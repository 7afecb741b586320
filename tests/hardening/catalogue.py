"""Hostile inputs, one per row: what is sent, and the exact 4xx it must get.

Shared by the Flask-level run (every row) and the run through nginx (the rows
marked ``via_nginx``). Bodies are built once, at import, and kept small except
where size is the point (a million features, a body over the limit).
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tests.models import N_FEATURES, SHAPE

ADMIN = "admin"  # a row that carries the admin token


@dataclass(frozen=True)
class Hostile:
    name: str
    path: str
    content_type: str | None
    body: bytes
    status: int
    code: str
    auth: str | None = ADMIN
    method: str = "POST"
    via_nginx: bool = False


def _json(document) -> bytes:
    return json.dumps(document).encode()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG of a few dozen bytes whose header claims this size."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 16, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


def image_bytes(format="PNG", shape=SHAPE, seed=0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format)
    return buffer.getvalue()


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG with its frame header (SOF0) rewritten to lie."""
    data = bytearray(image_bytes("JPEG"))
    start = data.index(b"\xff\xc0")
    # SOF0: marker, length (2), precision (1), height (2), width (2).
    data[start + 5 : start + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def multipart(fields, boundary="hostileboundary") -> tuple[bytes, str]:
    """Encode ``(name, filename or None, bytes)`` parts by hand, as a client would."""
    parts = []
    for name, filename, content in fields:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        parts.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _row(value, count=N_FEATURES):
    return [value] * count


_GIF = io.BytesIO()
Image.new("RGB", (5, 4)).save(_GIF, format="GIF")
_NO_FILE, _NO_FILE_TYPE = multipart([("note", None, "☃ ünïcödé".encode())])
_EMPTY_FILE, _EMPTY_FILE_TYPE = multipart([("image", "empty.png", b"")])
_NO_DATA, _NO_DATA_TYPE = multipart([("params", None, b'{"solver": "gd"}')])
_OBJECT_NPZ, _OBJECT_NPZ_TYPE = multipart(
    [
        (
            "data",
            "evil.npz",
            npz_bytes(
                features=np.array([[1.0], [2.0]]),
                labels=np.array([0, 1], dtype=object),
            ),
        )
    ]
)


def _train_npz(name, status, code, **arrays):
    body, content_type = multipart([("data", "train.npz", npz_bytes(**arrays))])
    return Hostile(name, "/api/v1/train", content_type, body, status, code)


def _train_npz_file(name, status, code, content):
    body, content_type = multipart([("data", "train.npz", content)])
    return Hostile(name, "/api/v1/train", content_type, body, status, code)


_NPY = io.BytesIO()
np.save(_NPY, np.zeros((2, 2)))
_NPY = _NPY.getvalue()
_TWO = {"features": np.zeros((2, 1)), "labels": np.array([0, 1])}
_BAD_PARAMS, _BAD_PARAMS_TYPE = multipart(
    [("data", "train.npz", npz_bytes(**_TWO)), ("params", None, b"{not json")]
)

PREDICT = "/api/v1/predict"
TRAIN = "/api/v1/train"
REMEDIATE = "/api/v1/health/watcher/remediate"
JSON = "application/json"
FLOAT32 = "application/octet-stream"

CATALOGUE = [
    # JSON predict bodies
    Hostile(
        "truncated json",
        PREDICT,
        JSON,
        b'{"features": [1, 2',
        400,
        "invalid_json",
        via_nginx=True,
    ),
    Hostile(
        "deeply nested json",
        PREDICT,
        JSON,
        b'{"features": ' + b"[" * 50_000,
        400,
        "invalid_json",
        via_nginx=True,
    ),
    Hostile(
        "nested rows",
        PREDICT,
        JSON,
        _json({"instances": [[[[1]]] * 60]}),
        400,
        "non_numeric_value",
    ),
    Hostile(
        "float beyond float64",
        PREDICT,
        JSON,
        b'{"features": [' + b",".join([b"1e400"] * 60) + b"]}",
        400,
        "non_finite_value",
        via_nginx=True,
    ),
    Hostile(
        "integer beyond float32",
        PREDICT,
        JSON,
        _json({"features": _row(10**60)}),
        400,
        "non_finite_value",
    ),
    Hostile(
        "integer of 5000 digits",
        PREDICT,
        JSON,
        b'{"features": [' + b"9" * 5000 + b"]}",
        400,
        "invalid_json",
        via_nginx=True,
    ),
    Hostile(
        "strings for numbers",
        PREDICT,
        JSON,
        _json({"features": _row("1.5")}),
        400,
        "non_numeric_value",
        via_nginx=True,
    ),
    Hostile(
        "booleans for numbers",
        PREDICT,
        JSON,
        _json({"features": _row(True)}),
        400,
        "non_numeric_value",
    ),
    Hostile(
        "nulls for numbers",
        PREDICT,
        JSON,
        _json({"features": _row(None)}),
        400,
        "non_numeric_value",
    ),
    Hostile(
        "NaN literal",
        PREDICT,
        JSON,
        b'{"features": [NaN]}',
        400,
        "non_finite_value",
        via_nginx=True,
    ),
    Hostile(
        "-Infinity literal",
        PREDICT,
        JSON,
        b'{"instances": [[-Infinity, 1]]}',
        400,
        "non_finite_value",
    ),
    Hostile(
        "empty features",
        PREDICT,
        JSON,
        _json({"features": []}),
        400,
        "invalid_features",
        via_nginx=True,
    ),
    Hostile(
        "empty instance row",
        PREDICT,
        JSON,
        _json({"instances": [[]]}),
        400,
        "invalid_features",
    ),
    Hostile(
        "a million features",
        PREDICT,
        JSON,
        b'{"features": [' + b",".join([b"0"] * 1_000_000) + b"]}",
        400,
        "wrong_feature_count",
        via_nginx=True,
    ),
    Hostile(
        "unicode key", PREDICT, JSON, _json({"fëätürés☃": _row(1)}), 400, "invalid_body"
    ),
    Hostile(
        "unicode values",
        PREDICT,
        JSON,
        _json({"features": _row("☃🐈")}),
        400,
        "non_numeric_value",
        via_nginx=True,
    ),
    Hostile(
        "lone surrogate",
        PREDICT,
        JSON,
        b'{"features": [' + b",".join([b'"\\ud800"'] * 60) + b"]}",
        400,
        "non_numeric_value",
    ),
    Hostile(
        "invalid utf-8",
        PREDICT,
        JSON,
        b'{"features": ["\xff\xfe"]}',
        400,
        "invalid_json",
    ),
    Hostile("top-level string", PREDICT, JSON, b'"features"', 400, "invalid_body"),
    Hostile("empty json body", PREDICT, JSON, b"", 400, "empty_body"),
    # float32 bodies
    Hostile(
        "float32 wrong byte count",
        PREDICT,
        FLOAT32,
        b"\0" * (4 * 60 + 2),
        400,
        "wrong_byte_count",
        via_nginx=True,
    ),
    Hostile("float32 one byte", "/predict", FLOAT32, b"\x01", 400, "wrong_byte_count"),
    Hostile(
        "float32 infinity",
        "/predict",
        FLOAT32,
        np.full(60, np.inf, "<f4").tobytes(),
        400,
        "non_finite_value",
    ),
    # images
    Hostile(
        "decompression bomb png 30000x30000",
        PREDICT,
        "image/png",
        png_declaring(30_000, 30_000),
        400,
        "invalid_image",
        via_nginx=True,
    ),
    Hostile(
        "png declaring 5000x5000",
        PREDICT,
        "image/png",
        png_declaring(5_000, 5_000),
        400,
        "image_too_large",
    ),
    Hostile(
        "jpeg with a lying 5000x5000 header",
        PREDICT,
        "image/jpeg",
        jpeg_declaring(5_000, 5_000),
        400,
        "image_too_large",
        via_nginx=True,
    ),
    Hostile(
        "truncated png", PREDICT, "image/png", image_bytes()[:40], 400, "invalid_image"
    ),
    Hostile(
        "gif sent as png",
        PREDICT,
        "image/png",
        _GIF.getvalue(),
        400,
        "unsupported_image",
    ),
    Hostile(
        "random bytes as jpeg",
        PREDICT,
        "image/jpeg",
        b"\x13\x37" * 500,
        400,
        "invalid_image",
    ),
    Hostile("empty png body", PREDICT, "image/png", b"", 400, "empty_body"),
    Hostile(
        "multipart with no file",
        PREDICT,
        _NO_FILE_TYPE,
        _NO_FILE,
        400,
        "missing_image",
        via_nginx=True,
    ),
    Hostile(
        "multipart with an empty file",
        PREDICT,
        _EMPTY_FILE_TYPE,
        _EMPTY_FILE,
        400,
        "invalid_image",
    ),
    Hostile(
        "multipart without boundary",
        PREDICT,
        "multipart/form-data",
        b"--x--",
        400,
        "missing_image",
    ),
    # content types
    Hostile(
        "text/plain",
        PREDICT,
        "text/plain",
        b"1,2,3",
        415,
        "unsupported_media_type",
        via_nginx=True,
    ),
    Hostile("no content type", PREDICT, None, b"{}", 415, "unsupported_media_type"),
    Hostile(
        "image/gif",
        PREDICT,
        "image/gif",
        _GIF.getvalue(),
        415,
        "unsupported_media_type",
    ),
    Hostile("png sent as json", PREDICT, JSON, image_bytes(), 400, "invalid_json"),
    # training (admin token sent)
    Hostile(
        "train labels as strings",
        TRAIN,
        JSON,
        _json({"features": [[1.0], [2.0]], "labels": ["0", "1"]}),
        400,
        "invalid_labels",
        via_nginx=True,
    ),
    Hostile(
        "train label 2",
        TRAIN,
        JSON,
        _json({"features": [[1.0], [2.0]], "labels": [0, 2]}),
        400,
        "invalid_labels",
    ),
    Hostile(
        "train one class",
        TRAIN,
        JSON,
        _json({"features": [[1.0], [2.0]], "labels": [1, 1]}),
        400,
        "single_class",
    ),
    Hostile(
        "train length mismatch",
        TRAIN,
        JSON,
        _json({"features": [[1.0], [2.0]], "labels": [0, 1, 0]}),
        400,
        "length_mismatch",
    ),
    Hostile(
        "train NaN feature",
        TRAIN,
        JSON,
        b'{"features": [[NaN], [1]], "labels": [0, 1]}',
        400,
        "non_finite_value",
    ),
    Hostile(
        "train classes as a number",
        TRAIN,
        JSON,
        _json({"features": [[1.0], [2.0]], "labels": [0, 1], "classes": 5}),
        400,
        "invalid_classes",
        via_nginx=True,
    ),
    Hostile(
        "train classes as a string",
        TRAIN,
        JSON,
        _json({"features": [[1.0], [2.0]], "labels": [0, 1], "classes": "ab"}),
        400,
        "invalid_classes",
    ),
    Hostile(
        "train params huge integer",
        TRAIN,
        JSON,
        _json(
            {
                "features": [[1.0], [2.0]],
                "labels": [0, 1],
                "params": {"iterations": 10**400},
            }
        ),
        400,
        "invalid_params",
        via_nginx=True,
    ),
    Hostile(
        "train params unknown",
        TRAIN,
        JSON,
        _json({"features": [[1.0], [2.0]], "labels": [0, 1], "params": {"epochs": 3}}),
        400,
        "invalid_params",
    ),
    Hostile(
        "train deeply nested json", TRAIN, JSON, b"[" * 100_000, 400, "invalid_json"
    ),
    Hostile(
        "train npz with object arrays",
        TRAIN,
        _OBJECT_NPZ_TYPE,
        _OBJECT_NPZ,
        400,
        "invalid_training_data",
        via_nginx=True,
    ),
    _train_npz(
        "train npz 2-d input_shape",
        400,
        "invalid_input_shape",
        **_TWO,
        input_shape=np.ones((3, 3), dtype=np.int64),
    ),
    _train_npz(
        "train npz zero-size images",
        400,
        "invalid_training_data",
        images=np.zeros((2, 0, 3, 3), np.uint8),
        labels=np.array([0, 1]),
    ),
    _train_npz(
        "train npz undecodable class names",
        400,
        "invalid_classes",
        **_TWO,
        classes=np.array([b"\xff\xfe", b"x"]),
    ),
    _train_npz(
        "train npz scalar classes", 400, "invalid_classes", **_TWO, classes=np.array(5)
    ),
    _train_npz_file("train single npy", 400, "invalid_training_data", _NPY),
    _train_npz_file("train not a zip", 400, "invalid_training_data", b"PK\x03\x04"),
    Hostile(
        "train multipart with no file",
        TRAIN,
        _NO_DATA_TYPE,
        _NO_DATA,
        400,
        "missing_data",
        via_nginx=True,
    ),
    Hostile(
        "train params not json",
        TRAIN,
        _BAD_PARAMS_TYPE,
        _BAD_PARAMS,
        400,
        "invalid_params",
    ),
    Hostile(
        "train csv", TRAIN, "text/csv", b"1,0\n2,1\n", 415, "unsupported_media_type"
    ),
    Hostile(
        "train without token",
        TRAIN,
        JSON,
        b"{}",
        401,
        "missing_token",
        auth=None,
        via_nginx=True,
    ),
    Hostile(
        "train with a wrong token",
        TRAIN,
        JSON,
        b"{}",
        403,
        "invalid_token",
        auth="wrong-token-☃".encode().decode("latin-1"),
        via_nginx=True,
    ),
    # remediation and job status
    Hostile(
        "remediate deeply nested json",
        REMEDIATE,
        JSON,
        b"[" * 100_000,
        400,
        "invalid_json",
        via_nginx=True,
    ),
    Hostile(
        "remediate NaN confirm",
        REMEDIATE,
        JSON,
        b'{"confirm": NaN}',
        400,
        "invalid_field",
    ),
    Hostile(
        "remediate unicode field",
        REMEDIATE,
        JSON,
        _json({"bestätigen": True}),
        400,
        "unknown_field",
    ),
    Hostile(
        "remediate without token",
        REMEDIATE,
        JSON,
        b"{}",
        401,
        "missing_token",
        auth=None,
    ),
    Hostile(
        "job id in unicode",
        "/api/v1/train/%E2%98%83",
        None,
        b"",
        404,
        "job_not_found",
        method="GET",
        via_nginx=True,
    ),
    Hostile(
        "job id path traversal",
        "/api/v1/train/..%2F..%2Fetc%2Fpasswd",
        None,
        b"",
        404,
        "not_found",
        method="GET",
    ),
    Hostile(
        "job id of a job file name",
        "/api/v1/train/" + "0" * 31 + "g",
        None,
        b"",
        404,
        "job_not_found",
        method="GET",
    ),
    Hostile(
        "delete on predict",
        PREDICT,
        None,
        b"",
        405,
        "method_not_allowed",
        method="DELETE",
        via_nginx=True,
    ),
]
