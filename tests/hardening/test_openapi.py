"""The OpenAPI document is served, complete, and true to what the app answers."""

from __future__ import annotations

import ast
from pathlib import Path

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.openapi import build_document
from app.model import jobs
from tests.conftest import ADMIN_TOKEN
from tests.hardening.conftest import publish_model

APP = Path(__file__).resolve().parents[2] / "app"
ERROR_CLASSES = {"ApiError", "FeatureError", "DataError", "RemedyUnavailable"}
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def raised_error_codes() -> set[str]:
    """Every literal error code passed to an error class anywhere under app/."""
    codes = set()
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in ERROR_CLASSES:
                continue
            for argument in node.args[:2]:
                if isinstance(argument, ast.Constant) and isinstance(
                    argument.value, str
                ):
                    codes.add(argument.value)
                    break
    return codes


def documented_error_codes(document) -> set[str]:
    codes = set()
    for operations in document["paths"].values():
        for operation in operations.values():
            for response in operation["responses"].values():
                schema = response.get("content", {}).get("application/json", {})
                error = schema.get("schema", {}).get("properties", {}).get("error")
                if error and "properties" in error:
                    codes.update(error["properties"]["code"]["enum"])
    return codes


def test_document_is_served_as_json(client):
    reply = client.get("/api/v1/openapi.json")

    assert reply.status_code == 200
    assert reply.mimetype == "application/json"
    assert reply.get_json() == build_document()
    assert reply.get_json()["openapi"] == "3.1.0"


def test_every_url_rule_and_method_is_documented(app):
    documented = {
        (path, method.upper())
        for path, operations in build_document()["paths"].items()
        for method in operations
    }
    served = {
        (rule.rule.replace("<job_id>", "{job_id}"), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }

    assert served == documented


def test_every_raised_error_code_is_documented():
    raised = raised_error_codes()

    assert len(raised) >= 35
    assert raised - documented_error_codes(build_document()) == set()


def test_every_schema_in_the_document_is_valid_json_schema():
    def schemas(node):
        if isinstance(node, dict):
            if "schema" in node and isinstance(node["schema"], dict):
                yield node["schema"]
            for value in node.values():
                yield from schemas(value)

    found = list(schemas(build_document()["paths"]))

    assert len(found) > 40
    for schema in found:
        jsonschema_rs.validator_for(schema)  # raises on an invalid schema


def _response_schema(path, method, status):
    operation = build_document()["paths"][path][method]
    return operation["responses"][str(status)]["content"]["application/json"]["schema"]


def test_real_success_bodies_validate_against_their_schemas(client, model, settings):
    calls = [
        ("/api/v1/health", "get", client.get("/api/v1/health")),
        ("/api/v1/model", "get", client.get("/api/v1/model")),
        (
            "/api/v1/predict",
            "post",
            client.post("/api/v1/predict", json={"instances": [[1] * 60, [2] * 60]}),
        ),
        (
            "/api/v1/train",
            "post",
            client.post(
                "/api/v1/train",
                json={"features": [[1.0], [2.0]], "labels": [0, 1]},
                headers=ADMIN_HEADERS,
            ),
        ),
    ]
    job_id = calls[-1][2].get_json()["job_id"]
    calls.append(
        (
            "/api/v1/train/{job_id}",
            "get",
            client.get(f"/api/v1/train/{job_id}"),
        )
    )

    for path, method, reply in calls:
        assert reply.status_code in (200, 202), (path, reply.get_json())
        schema = _response_schema(path, method, reply.status_code)
        jsonschema_rs.validate(schema, reply.get_json())


@pytest.fixture
def api_schema(settings, make_app, monkeypatch):
    # Schema-valid training bodies would each start a runner process; the
    # property run is about the HTTP layer, so the job is only recorded.
    monkeypatch.setattr(jobs, "spawn", lambda job_id, model_dir: None)
    publish_model(settings.model_dir)
    app = make_app(settings)
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


property_schema = schemathesis.pytest.from_fixture("api_schema")


@property_schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_generated_requests_never_get_a_5xx_or_an_undocumented_answer(case):
    response = case.call(headers=ADMIN_HEADERS)

    # The watcher endpoints answer 503 by design when no cluster is set.
    if not case.path.startswith("/api/v1/health/watcher"):
        assert response.status_code < 500, (case.path, response.text)
    case.validate_response(
        response,
        checks=(
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ),
    )
