"""The hostile catalogue: each input gets its own 4xx and code, never a 5xx."""

from __future__ import annotations

import time

import pytest
import requests

from app.api.openapi import build_document
from tests.conftest import ADMIN_TOKEN
from tests.hardening.catalogue import ADMIN, CATALOGUE, jpeg_declaring, png_declaring
from tests.hardening.conftest import error_body, publish_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

VIA_NGINX = [case for case in CATALOGUE if case.via_nginx]


def _headers(case) -> dict:
    headers = {}
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    if case.auth == ADMIN:
        headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    elif case.auth is not None:
        headers["Authorization"] = f"Bearer {case.auth}"
    return headers


def documented_codes(path: str, method: str, status: int) -> list[str]:
    """The error codes the OpenAPI document lists for this operation and status."""
    paths = build_document()["paths"]
    template = "/api/v1/train/{job_id}" if path.startswith("/api/v1/train/") else path
    operation = paths.get(template, {}).get(method.lower())
    if operation is None:  # wrong method or unknown path: Werkzeug's own codes
        operation = paths["/api/v1/health"]["get"]
    schema = operation["responses"][str(status)]["content"]["application/json"]
    return schema["schema"]["properties"]["error"]["properties"]["code"]["enum"]


def test_catalogue_names_are_unique_and_every_row_expects_a_4xx():
    names = [case.name for case in CATALOGUE]

    assert len(names) == len(set(names))
    assert all(400 <= case.status < 500 for case in CATALOGUE)
    assert len(VIA_NGINX) >= 20


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda case: case.name)
def test_hostile_input_gets_its_documented_4xx(client, model, case):
    reply = client.open(
        case.path, method=case.method, data=case.body, headers=_headers(case)
    )

    assert error_body(reply.status_code, reply.get_json()) == (case.status, case.code)
    assert case.code in documented_codes(case.path, case.method, case.status)


def test_decompression_bomb_is_refused_before_decoding(client, model):
    bomb = png_declaring(30_000, 30_000)
    assert len(bomb) < 100

    started = time.perf_counter()
    reply = client.post("/predict", data=bomb, content_type="image/png")
    elapsed = time.perf_counter() - started

    assert error_body(reply.status_code, reply.get_json()) == (400, "invalid_image")
    # Decoding 900 megapixels would take seconds and gigabytes.
    assert elapsed < 0.5


@pytest.mark.e2e
def test_hostile_inputs_through_nginx_get_the_same_answers(stack_factory):
    stack = stack_factory(processes=2)
    publish_model(stack.model_dir)
    workers = sorted(stack.worker_pids())

    answers = {}
    for case in VIA_NGINX:
        reply = requests.request(
            case.method,
            stack.url + case.path,
            data=case.body,
            headers=_headers(case),
            timeout=30,
        )
        assert reply.headers["Content-Type"] == "application/json", case.name
        assert reply.headers["X-Content-Type-Options"] == "nosniff", case.name
        answers[case.name] = error_body(reply.status_code, reply.json())

    assert answers == {case.name: (case.status, case.code) for case in VIA_NGINX}
    health = requests.get(stack.url + "/api/v1/health", timeout=10)
    assert health.status_code == 200
    # No input crashed a worker: the same processes still serve.
    assert sorted(stack.worker_pids()) == workers


# libjpeg pads such a file and reports success; app/model/jpeg.py refuses it.
def test_jpeg_whose_header_claims_more_than_its_data_is_refused(client, model):
    reply = client.post(
        "/predict", data=jpeg_declaring(64, 64), content_type="image/jpeg"
    )

    assert error_body(reply.status_code, reply.get_json()) == (400, "invalid_image")
