"""GET /api/v1/openapi.json: every endpoint, its content types and its errors.

The document is a plain dict built here, next to nothing else, so a test can
hold it against the app's url rules and against the error codes the code
raises (tests/hardening/test_openapi.py).
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("openapi", __name__)

# The error codes each endpoint can answer, by HTTP status.
_TOO_LARGE = {413: ["payload_too_large"]}
_ADMIN = {401: ["missing_token"], 403: ["admin_disabled", "invalid_token"]}
_FEATURE_CODES = [
    "empty_body",
    "invalid_json",
    "invalid_body",
    "invalid_features",
    "wrong_feature_count",
    "non_numeric_value",
    "non_finite_value",
]
PREDICT_ERRORS = {
    400: [
        *_FEATURE_CODES,
        "wrong_byte_count",
        "invalid_image",
        "unsupported_image",
        "unsupported_channels",
        "image_too_large",
        "missing_image",
        "model_takes_features",
        "bad_request",
    ],
    **_TOO_LARGE,
    415: ["unsupported_media_type"],
    503: ["no_model"],
}
TRAIN_ERRORS = {
    400: [
        *_FEATURE_CODES,
        "missing_features",
        "missing_data",
        "missing_labels",
        "invalid_labels",
        "invalid_classes",
        "invalid_input_shape",
        "invalid_params",
        "invalid_training_data",
        "training_data_too_large",
        "gpu_unavailable",
        "empty_training_data",
        "length_mismatch",
        "single_class",
        "bad_request",
    ],
    **_ADMIN,
    **_TOO_LARGE,
    415: ["unsupported_media_type"],
    507: ["insufficient_storage"],
}
JOB_ERRORS = {404: ["job_not_found"]}
MODEL_ERRORS = {503: ["no_model"]}
REMEDIATE_ERRORS = {
    400: [
        "invalid_json",
        "unknown_field",
        "invalid_field",
        "confirmation_required",
    ],
    **_ADMIN,
    **_TOO_LARGE,
    503: ["elasticsearch_not_configured", "elasticsearch_unavailable"],
}
# Werkzeug's own errors (unknown path, wrong method) and the last resort.
COMMON_ERRORS = {
    404: ["not_found"],
    405: ["method_not_allowed"],
    500: ["internal_error"],
}

_STATUS_TEXT = {
    400: "The input is not valid; the code says which check failed.",
    401: "No 'Authorization: Bearer <ADMIN_TOKEN>' header.",
    403: "The token is wrong, or no ADMIN_TOKEN is configured.",
    404: "No such resource.",
    405: "The method is not allowed on this path.",
    413: "The body is over MAX_PREDICT_BYTES (MAX_TRAIN_BYTES for training).",
    415: "The Content-Type is not one this endpoint accepts.",
    500: "An unexpected failure; the traceback is in the server log only.",
    503: "The service cannot answer this now; the code says why.",
    507: "No space left to store the training data.",
}


def error_schema(codes) -> dict:
    return {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "enum": sorted(codes)},
                    "message": {"type": "string"},
                },
            }
        },
    }


def _json(schema) -> dict:
    return {"application/json": {"schema": schema}}


def _responses(ok: dict, errors: dict) -> dict:
    merged = {status: list(codes) for status, codes in COMMON_ERRORS.items()}
    for status, codes in errors.items():
        merged.setdefault(status, []).extend(codes)

    responses = dict(ok)
    for status in sorted(merged):
        responses[str(status)] = {
            "description": _STATUS_TEXT[status],
            "content": _json(error_schema(merged[status])),
        }
    return responses


_NUMBER_ROW = {"type": "array", "minItems": 1, "items": {"type": "number"}}
_BINARY = {"type": "string", "format": "binary"}
_NULLABLE_STRING = {"type": ["string", "null"]}

_PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["features"],
                        "additionalProperties": False,
                        "properties": {"features": _NUMBER_ROW},
                    },
                    {
                        "type": "object",
                        "required": ["instances"],
                        "additionalProperties": False,
                        "properties": {
                            "instances": {
                                "type": "array",
                                "minItems": 1,
                                "items": _NUMBER_ROW,
                            }
                        },
                    },
                ]
            }
        },
        "application/octet-stream": {"schema": _BINARY},
        "image/png": {"schema": _BINARY},
        "image/jpeg": {"schema": _BINARY},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {"image": {"type": "array", "items": _BINARY}},
            }
        },
    },
}

_PREDICTIONS = {
    "type": "object",
    "required": ["model_version", "predictions"],
    "additionalProperties": False,
    "properties": {
        "model_version": {"type": "string"},
        "predictions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["label", "class", "probability"],
                "additionalProperties": False,
                "properties": {
                    "label": {"type": "integer", "enum": [0, 1]},
                    "class": {"type": "string"},
                    "probability": {"type": "number", "minimum": 0, "maximum": 1},
                },
            },
        },
    },
}

_PARAMS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "solver": {"type": "string", "enum": ["lbfgs", "gd"]},
        "learning_rate": {"type": "number"},
        "iterations": {"type": "integer"},
        "l2": {"type": "number"},
        "tol": {"type": "number"},
        "max_iter": {"type": "integer"},
        "scale": {"type": "number"},
        "device": {"type": "string", "enum": ["cpu", "gpu"]},
    },
}

_TRAIN_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["features", "labels"],
                "additionalProperties": False,
                "properties": {
                    "features": {"type": "array", "items": _NUMBER_ROW},
                    "labels": {"type": "array", "items": {"enum": [0, 1]}},
                    "classes": {
                        "type": "array",
                        "minItems": 2,
                        "maxItems": 2,
                        "items": {"type": "string", "minLength": 1},
                    },
                    "input_shape": {
                        "type": "array",
                        "minItems": 3,
                        "maxItems": 3,
                        "items": {"type": "integer", "minimum": 1},
                    },
                    "params": _PARAMS,
                },
            }
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": _BINARY,
                    "params": {"type": "string", "description": "a JSON object"},
                },
            }
        },
    },
}

_JOB = {
    "type": "object",
    "required": ["job_id", "status", "progress"],
    "additionalProperties": False,
    "properties": {
        "job_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "status": {"enum": ["queued", "running", "succeeded", "failed"]},
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "model_version": _NULLABLE_STRING,
        "metrics": {"type": ["object", "null"]},
        "error": _NULLABLE_STRING,
        "created": {"type": "string"},
        "started": _NULLABLE_STRING,
        "finished": _NULLABLE_STRING,
    },
}

_MODEL = {
    "type": "object",
    "required": ["model_version", "classes", "n_features", "scale", "threshold"],
    "additionalProperties": False,
    "properties": {
        "model_version": {"type": "string"},
        "created": {"type": "string"},
        "classes": {"type": "array", "items": {"type": "string"}},
        "input_shape": {
            "type": ["array", "null"],
            "items": {"type": "integer"},
        },
        "n_features": {"type": "integer"},
        "scale": {"type": "number"},
        "threshold": {"type": "number"},
        "solver": {"type": "string"},
        "params": {"type": "object"},
        "metrics": {"type": "object"},
    },
}

_WATCHER_REPORT = {
    "type": "object",
    "required": ["status", "elasticsearch", "watcher", "findings", "checked_at"],
    "properties": {
        "status": {"enum": ["green", "yellow", "red", "unknown"]},
        "elasticsearch": {"type": "object"},
        "watcher": {"type": "object"},
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "severity", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "severity": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
        "checked_at": _NULLABLE_STRING,
    },
}

_REMEDY = {
    "type": "object",
    "required": ["dry_run", "actions", "manual_steps", "before", "after"],
    "properties": {
        "dry_run": {"type": "boolean"},
        "actions": {"type": "array"},
        "manual_steps": {"type": "array"},
        "before": _WATCHER_REPORT,
        "after": {"oneOf": [_WATCHER_REPORT, {"type": "null"}]},
    },
}

_ADMIN_SECURITY = [{"adminToken": []}]


def _predict_operation(summary: str) -> dict:
    return {
        "summary": summary,
        "requestBody": _PREDICT_BODY,
        "responses": _responses(
            {
                "200": {
                    "description": "P(label 1) per example",
                    "content": _json(_PREDICTIONS),
                }
            },
            PREDICT_ERRORS,
        ),
    }


def build_document() -> dict:
    """The OpenAPI 3.1 document of this service."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "logreg-service",
            "version": "1",
            "description": "Logistic regression image classifier. Every error is "
            '{"error": {"code", "message"}}.',
        },
        "components": {
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ADMIN_TOKEN from the service's environment.",
                }
            }
        },
        "paths": {
            "/api/v1/health": {
                "get": {
                    "summary": "Liveness and the served model version",
                    "responses": _responses(
                        {
                            "200": {
                                "description": "The worker is up",
                                "content": _json(
                                    {
                                        "type": "object",
                                        "required": ["status", "model_version"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "status": {"enum": ["ok"]},
                                            "model_version": _NULLABLE_STRING,
                                        },
                                    }
                                ),
                            }
                        },
                        {},
                    ),
                }
            },
            "/api/v1/predict": {"post": _predict_operation("Score examples")},
            "/predict": {"post": _predict_operation("Score examples (short path)")},
            "/api/v1/train": {
                "post": {
                    "summary": "Start a training job (admin)",
                    "security": _ADMIN_SECURITY,
                    "requestBody": _TRAIN_BODY,
                    "responses": _responses(
                        {
                            "202": {
                                "description": "Queued; poll status_url",
                                "content": _json(
                                    {
                                        "type": "object",
                                        "required": ["job_id", "status", "status_url"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "job_id": {"type": "string"},
                                            "status": {"enum": ["queued"]},
                                            "status_url": {"type": "string"},
                                        },
                                    }
                                ),
                            }
                        },
                        TRAIN_ERRORS,
                    ),
                }
            },
            "/api/v1/train/{job_id}": {
                "get": {
                    "summary": "A training job's status, progress and metrics",
                    "parameters": [
                        {
                            "name": "job_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": _responses(
                        {"200": {"description": "The job", "content": _json(_JOB)}},
                        JOB_ERRORS,
                    ),
                }
            },
            "/api/v1/model": {
                "get": {
                    "summary": "The current model's metadata",
                    "responses": _responses(
                        {"200": {"description": "Metadata", "content": _json(_MODEL)}},
                        MODEL_ERRORS,
                    ),
                }
            },
            "/api/v1/health/watcher": {
                "get": {
                    "summary": "Elasticsearch Watcher health",
                    "responses": _responses(
                        {
                            "200": {
                                "description": "green or yellow",
                                "content": _json(_WATCHER_REPORT),
                            },
                            "503": {
                                "description": "red or unknown: the same report",
                                "content": _json(_WATCHER_REPORT),
                            },
                        },
                        {},
                    ),
                }
            },
            "/api/v1/health/watcher/remediate": {
                "post": {
                    "summary": "Remove a stale .watches copy, restart Watcher (admin)",
                    "security": _ADMIN_SECURITY,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "confirm": {"type": "boolean"},
                                        "dry_run": {"type": "boolean"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": _responses(
                        {
                            "200": {
                                "description": "Plan and result",
                                "content": _json(_REMEDY),
                            }
                        },
                        REMEDIATE_ERRORS,
                    ),
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of every worker (nginx: loopback)",
                    "responses": _responses(
                        {
                            "200": {
                                "description": "The Prometheus text exposition format",
                                "content": {
                                    "text/plain": {"schema": {"type": "string"}}
                                },
                            }
                        },
                        {},
                    ),
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": _responses(
                        {
                            "200": {
                                "description": "OpenAPI 3.1",
                                "content": _json({"type": "object"}),
                            }
                        },
                        {},
                    ),
                }
            },
        },
    }


@bp.get("/api/v1/openapi.json")
def openapi_document():
    return build_document()
