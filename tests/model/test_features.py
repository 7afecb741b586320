"""Request bodies to feature matrices: the fast JSON path against the checked one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.model import features
from app.model.features import FeatureError

N = 6

# Values where two careless parsers could disagree on the float32 they give.
AWKWARD = [
    0,
    -0.0,
    255,
    -17,
    0.1,
    1.0000000596046448,  # halfway between two float32 values
    16777217,  # 2**24 + 1: not a float32
    2**53 + 1,
    2**63,
    2**64 - 1,
    10**30,
    3.4028234663852886e38,  # the largest float32
    1e-46,  # below the smallest float32 subnormal
    6.02214076e23,
    -1.5e-7,
    123456.789012345678901,
]


def bits(matrix):
    """The exact bit patterns, so -0.0 and 0.0 count as different."""
    return matrix.view(np.uint32).tolist()


def single(values):
    return json.dumps({"features": list(values)}).encode()


def batch(rows):
    return json.dumps({"instances": list(rows)}).encode()


def written_single(numbers):
    """A body from numbers already written as JSON text."""
    return b'{"features": [' + ",".join(numbers).encode() + b"]}"


def random_decimals(seed, count):
    """Numbers written the many ways JSON allows: digits, fractions, exponents."""
    rng = np.random.default_rng(seed)
    written = []
    for _ in range(count):
        digits = "".join(rng.choice(list("0123456789"), size=rng.integers(1, 22)))
        digits = digits.lstrip("0") or "0"
        sign = "-" if rng.random() < 0.5 else ""
        kind = rng.integers(3)
        if kind == 0:
            written.append(f"{sign}{digits}")
        elif kind == 1:
            written.append(f"{sign}{digits[:1]}.{digits[1:] or '0'}")
        else:
            exponent = rng.integers(-45, 38)
            written.append(f"{sign}{digits[:1]}.{digits[1:] or '0'}e{exponent}")
    return written


@pytest.mark.parametrize(
    "body, n_features",
    [
        (single(AWKWARD), len(AWKWARD)),
        (batch([AWKWARD, AWKWARD[::-1]]), len(AWKWARD)),
        (json.dumps({"features": AWKWARD}, indent=2).encode(), len(AWKWARD)),
        (b'{ "instances" : [ [1, 2.5e0, -3E+1] ,\r\n[4,5,6]\t] }', 3),
        (written_single(random_decimals(1, 2000)), 2000),
    ],
    ids=["awkward", "awkward-batch", "indented", "spacing", "random-decimals"],
)
def test_fast_and_checked_paths_give_identical_arrays(body, n_features):
    fast = features.numeric_json_body(body, n_features)
    checked = features.checked_json_body(body, n_features)

    assert fast is not None
    assert fast.dtype == np.float32
    assert fast.flags.c_contiguous
    assert fast.shape == checked.shape
    assert bits(fast) == bits(checked)


@pytest.mark.parametrize(
    "body",
    [
        single([1, 2, 3, 4, 5, True]),
        single([1, 2, 3, 4, 5, None]),
        single([1, 2, 3, 4, 5, "6"]),
        b'{"features": [1, 2, 3, 4, 5, NaN]}',
        b'{"features": [1, 2, 3, 4, 5, -Infinity]}',
        b'{"features": [1, 2, 3, 4, 5, 1e999]}',
        single([1, 2, 3, 4, 5, 1e39]),
        single([1, 2, 3, 4, 5, 10**400]),
        single([1, 2, 3, 4, 5]),
        single([[1, 2, 3, 4, 5, 6]]),
        single([1, 2, 3, 4, 5, [6]]),
        batch([[1] * N, [1] * (N + 1)]),
        batch([]),
        json.dumps({"features": [1] * N, "instances": [[1] * N]}).encode(),
        json.dumps({"features": [1] * N, "note": "x"}).encode(),
        b'{"features": [1, 1, 1, 1, 1, 1], "features": [2, 2, 2, 2, 2, 2]}',
        b'{"features": {}}',
        b'[{"features": [1, 2, 3, 4, 5, 6]}]',
        b'{"features": [1, 2, 3, 4, 5, 6]',
        b'{"features": [1, 2, 3, 4, 5, 06]}',
        b"",
    ],
)
def test_fast_path_declines_every_body_it_cannot_vouch_for(body):
    assert features.numeric_json_body(body, N) is None


@pytest.mark.parametrize(
    "body, code",
    [
        (b"", "empty_body"),
        (b'{"features": [1, 2', "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b'{"features": [1, 2, 3, 4, 5, NaN]}', "non_finite_value"),
        (b'{"features": [1, 2, 3, 4, 5, Infinity]}', "non_finite_value"),
        (b'{"features": [1, 2, 3, 4, 5, 1e999]}', "non_finite_value"),
        (single([1, 2, 3, 4, 5, 1e39]), "non_finite_value"),
        (single([1, 2, 3, 4, 5, 10**400]), "non_finite_value"),
        (single([1, 2, 3, 4, 5, True]), "non_numeric_value"),
        (single([1, 2, 3, 4, 5, None]), "non_numeric_value"),
        (single([1, 2, 3, 4, 5, "6"]), "non_numeric_value"),
        (single([1, 2, 3, 4, 5, [6]]), "non_numeric_value"),
        (single([1, 2, 3, 4, 5]), "wrong_feature_count"),
        (batch([[1] * N, [1] * (N + 1)]), "wrong_feature_count"),
        (single([]), "invalid_features"),
        (batch([]), "invalid_features"),
        (single([[1] * N]), "invalid_features"),
        (b'{"instances": [[1, 2, 3, 4, 5, 6], 7]}', "invalid_features"),
        (b'{"features": {}}', "invalid_features"),
        (
            json.dumps({"features": [1] * N, "instances": [[1] * N]}).encode(),
            "invalid_body",
        ),
        (b'{"nothing": 1}', "invalid_body"),
        (b"[1, 2, 3]", "invalid_body"),
    ],
)
def test_every_refusal_keeps_its_code(body, code):
    with pytest.raises(FeatureError) as raised:
        features.from_json_body(body, N)

    assert raised.value.code == code


def test_refusals_name_the_element_at_fault():
    with pytest.raises(FeatureError) as raised:
        features.from_json_body(single([1, 2, 3, True, 5, 6]), N)

    assert raised.value.message == (
        "'features[3]' is bool; every feature must be a number."
    )


def test_a_body_with_extra_fields_is_still_served_by_the_checked_path():
    body = json.dumps({"features": [1, 2, 3, 4, 5, 6], "note": "cat?"}).encode()

    matrix = features.from_json_body(body, N)

    assert matrix.tolist() == [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]


def test_float32_bytes_are_read_in_place():
    body = np.arange(2 * N, dtype="<f4").tobytes()

    matrix = features.from_float32_body(body, N)

    assert np.shares_memory(matrix, np.frombuffer(body, dtype=np.uint8))
    assert matrix.shape == (2, N)
    assert matrix[1].tolist() == [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
