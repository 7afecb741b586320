"""The JPEG data-length check: no honest file refused, forged headers caught."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from app.model.jpeg import holds_less_than_declared, lower_bound_bits


def encode(array, mode="RGB", **options):
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def forge(data: bytes, height: int, width: int) -> bytes:
    forged = bytearray(data)
    start = forged.index(b"\xff\xc0")
    forged[start + 5 : start + 9] = struct.pack(">HH", height, width)
    return bytes(forged)


def images():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (8, 8), (17, 63), (64, 64), (120, 90)]:
        yield "noise", rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        yield "flat", np.full((*shape, 3), 128, np.uint8)
        ramp = np.linspace(0, 255, shape[1]).astype(np.uint8)
        yield "ramp", np.broadcast_to(ramp[None, :, None], (*shape, 3)).copy()


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("quality, subsampling", [(5, 2), (75, 1), (100, 0)])
def test_honest_jpegs_are_never_flagged(mode, quality, subsampling):
    for kind, array in images():
        data = encode(array, mode, quality=quality, subsampling=subsampling)
        needed, present = lower_bound_bits(data)
        assert present >= needed, (kind, array.shape)
        assert not holds_less_than_declared(data)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_headers_claiming_far_more_pixels_are_flagged(mode):
    for kind, array in images():
        if kind == "noise":
            continue  # noise carries enough bits to pass for a bigger flat image
        height, width = array.shape[:2]
        data = forge(encode(array, mode), 8 * height + 64, 8 * width + 64)
        assert holds_less_than_declared(data), (kind, array.shape)


def test_progressive_and_non_jpeg_data_are_not_judged():
    flat = np.full((32, 32, 3), 90, np.uint8)

    assert lower_bound_bits(encode(flat, progressive=True)) is None
    assert lower_bound_bits(b"\x89PNG\r\n") is None
    assert lower_bound_bits(b"\xff\xd8\xff") is None


def test_segments_shorter_than_their_fields_are_left_to_the_decoder():
    data = encode(np.full((16, 16, 3), 50, np.uint8))
    start = data.index(b"\xff\xda")
    # An SOS segment of length 2: no room for its component count.
    broken = data[:start] + b"\xff\xda\x00\x02" + data[start + 4 :]
    short_frame = data.replace(b"\xff\xc0\x00\x11", b"\xff\xc0\x00\x04", 1)

    assert holds_less_than_declared(broken) is False
    assert holds_less_than_declared(short_frame) is False


def test_entropy_count_skips_stuffed_bytes_and_restart_markers():
    from app.model.jpeg import _entropy_bytes

    scan = b"\x01\x02\xff\x00\x03\xff\xd3\x04" + b"\xff\xd9trailer"
    assert _entropy_bytes(scan) == 5
    assert _entropy_bytes(b"\x05\x06") == 2
