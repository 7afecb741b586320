"""Catch a baseline JPEG whose frame header claims more pixels than its data holds.

libjpeg meets the end of such a file, pads the missing blocks and reports
success, and Pillow hands the padded image back; nothing raises. The check
here is a lower bound from the file's own Huffman tables: every 8x8 block
costs at least the shortest DC code plus the shortest AC code, so a scan with
fewer entropy-coded bits than ``blocks x that`` cannot hold the image its
header declares.

# Limitation: only baseline and extended sequential JPEGs with a single scan
# are checked; progressive and multi-scan files are passed to the decoder as
# they are.
"""

from __future__ import annotations

import math
import struct

_SEQUENTIAL_FRAMES = {0xC0, 0xC1}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


class _Frame:
    def __init__(self, height, width, components):
        self.height = height
        self.width = width
        self.components = components  # id -> (h, v)


def lower_bound_bits(data: bytes) -> tuple[int, int] | None:
    """``(bits needed at least, bits present)`` for a checkable JPEG, else None."""
    if not data.startswith(b"\xff\xd8"):
        return None

    frame = None
    min_dc, min_ac = {}, {}
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue

        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        segment = data[position + 4 : position + 2 + length]
        if len(segment) != length - 2:
            return None

        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if marker not in _SEQUENTIAL_FRAMES:
                return None
            frame = _parse_frame(segment)
        elif marker == 0xC4:
            _parse_huffman(segment, min_dc, min_ac)
        elif marker == 0xDA:
            if frame is None:
                return None
            return _scan_bounds(
                frame, segment, data[position + 2 + length :], min_dc, min_ac
            )
        position += 2 + length
    return None


def _parse_frame(segment):
    height, width, count = struct.unpack(">HHB", segment[1:6])
    components = {}
    for index in range(count):
        ident, sampling = segment[6 + 3 * index], segment[7 + 3 * index]
        components[ident] = (sampling >> 4, sampling & 0x0F)
    return _Frame(height, width, components)


def _parse_huffman(segment, min_dc, min_ac):
    offset = 0
    while offset + 17 <= len(segment):
        table_class, table_id = segment[offset] >> 4, segment[offset] & 0x0F
        counts = segment[offset + 1 : offset + 17]
        shortest = next((bits + 1 for bits, n in enumerate(counts) if n), None)
        if shortest is not None:
            (min_ac if table_class else min_dc)[table_id] = shortest
        offset += 17 + sum(counts)


def _scan_bounds(frame, header, rest, min_dc, min_ac):
    count = header[0]
    if count != len(frame.components):
        return None  # a multi-scan file: each scan holds part of the image

    h_max = max(h for h, _ in frame.components.values())
    v_max = max(v for _, v in frame.components.values())
    if count == 1:
        # A one-component scan is not interleaved: its unit is a single block.
        h, v = next(iter(frame.components.values()))
        mcus = math.ceil(math.ceil(frame.width * h / h_max) / 8) * math.ceil(
            math.ceil(frame.height * v / v_max) / 8
        )
        frame = _Frame(frame.height, frame.width, {k: (1, 1) for k in frame.components})
    else:
        mcus = math.ceil(frame.width / (8 * h_max)) * math.ceil(
            frame.height / (8 * v_max)
        )

    per_mcu = 0
    for index in range(count):
        ident, tables = header[1 + 2 * index], header[2 + 2 * index]
        if ident not in frame.components:
            return None
        dc, ac = min_dc.get(tables >> 4), min_ac.get(tables & 0x0F)
        if dc is None or ac is None:
            return None
        h, v = frame.components[ident]
        per_mcu += h * v * (dc + ac)

    return mcus * per_mcu, 8 * _entropy_bytes(rest)


def _entropy_bytes(rest: bytes) -> int:
    """Bytes of entropy-coded data before the next real marker."""
    total = 0
    position = 0
    while True:
        # Only 0xFF bytes need a look; find() skips the runs between them in C.
        marker = rest.find(b"\xff", position)
        if marker < 0:
            return total + len(rest) - position
        total += marker - position
        following = rest[marker + 1] if marker + 1 < len(rest) else None
        if following == 0x00:  # a stuffed 0xFF data byte
            total += 1
            position = marker + 2
        elif following is not None and 0xD0 <= following <= 0xD7:  # restart marker
            position = marker + 2
        else:
            return total


def holds_less_than_declared(data: bytes) -> bool:
    try:
        bounds = lower_bound_bits(data)
    except (IndexError, struct.error):
        # Segments too short for their own fields: leave the verdict to the
        # decoder, which refuses what it cannot read.
        return False
    return bounds is not None and bounds[1] < bounds[0]
