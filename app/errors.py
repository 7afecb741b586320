"""One API error type and the handlers that turn every failure into JSON.

Every error the service answers has the shape
``{"error": {"code": "...", "message": "..."}}``; Werkzeug's own HTTP errors
(404, 405, 413, ...) are mapped onto the same shape, and anything unexpected
becomes a 500 ``internal_error`` whose traceback goes to the log, never to the
client.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    429: "too_many_requests",
    431: "headers_too_large",
}


class ApiError(Exception):
    """A failure the client can act on: an HTTP status, a stable code, a message."""

    def __init__(self, status: int, code: str, message: str, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def error_response(status: int, code: str, message: str, headers=None):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError):
        return error_response(error.status, error.code, error.message, error.headers)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        status = error.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = error.description or error.name
        if status == 413:
            message = (
                "The request body is larger than this endpoint accepts; "
                "send fewer examples per request or raise the limit "
                "(MAX_PREDICT_BYTES / MAX_TRAIN_BYTES)."
            )
        headers = {}
        if status == 405 and error.response is None:
            allowed = getattr(error, "valid_methods", None)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        return error_response(status, code, message, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error while serving a request")
        return error_response(
            500, "internal_error", "The server failed to handle this request."
        )
