"""The request id: a sane incoming one is kept, anything else is replaced."""

from __future__ import annotations

import re

import pytest

HEX_ID = re.compile(r"[0-9a-f]{32}")


def test_sane_incoming_request_id_is_echoed(client):
    reply = client.get("/api/v1/health", headers={"X-Request-Id": "lb-7.Zq_42"})

    assert reply.headers["X-Request-Id"] == "lb-7.Zq_42"


@pytest.mark.parametrize(
    "incoming",
    ["x" * 129, 'has "quotes"', "has space", "new\\line", "caf\u00e9", ""],
    ids=["too-long", "quote", "space", "backslash", "non-ascii", "empty"],
)
def test_malformed_request_id_is_replaced_by_a_fresh_one(client, incoming):
    reply = client.get("/api/v1/health", headers={"X-Request-Id": incoming})

    assert HEX_ID.fullmatch(reply.headers["X-Request-Id"])


def test_each_request_without_an_id_gets_its_own(client):
    first = client.get("/api/v1/health").headers["X-Request-Id"]
    second = client.get("/api/v1/health").headers["X-Request-Id"]

    assert HEX_ID.fullmatch(first) and HEX_ID.fullmatch(second)
    assert first != second


def test_error_answers_carry_the_request_id_too(client):
    reply = client.get("/api/v1/nowhere", headers={"X-Request-Id": "req-404"})

    assert reply.status_code == 404
    assert reply.headers["X-Request-Id"] == "req-404"
