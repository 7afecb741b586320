"""Watcher health over HTTP: decode, validate, call ``app.watcher``, encode."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from app import watcher
from app.api.auth import require_admin
from app.errors import ApiError

bp = Blueprint("watcher", __name__)

_HEALTHY = ("green", "yellow")
_REMEDY_FIELDS = {"confirm", "dry_run"}


@bp.get("/api/v1/health/watcher")
def watcher_health():
    report = watcher.get_report(current_app.config["SETTINGS"])

    # A monitor polls the status code alone: 200 while watches execute.
    response = jsonify(report)
    response.status_code = 200 if report["status"] in _HEALTHY else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/api/v1/health/watcher/remediate")
def watcher_remediate():
    require_admin()

    try:
        body = request.get_json(silent=True)
    except RecursionError:
        # silent= covers malformed JSON only; a body nested too deeply for the
        # parser must be refused the same way, not become a 500.
        body = None
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "invalid_json",
            'The body must be a JSON object such as {"confirm": true} or '
            '{"dry_run": true}, sent with Content-Type: application/json.',
        )
    unknown = sorted(set(body) - _REMEDY_FIELDS)
    if unknown:
        raise ApiError(
            400,
            "unknown_field",
            f"Unknown field(s) {', '.join(unknown)}; accepted: confirm, dry_run.",
        )
    for name in _REMEDY_FIELDS & set(body):
        if not isinstance(body[name], bool):
            raise ApiError(
                400, "invalid_field", f"'{name}' must be true or false (a boolean)."
            )
    dry_run = body.get("dry_run", False)
    if not dry_run and body.get("confirm") is not True:
        raise ApiError(
            400,
            "confirmation_required",
            'The remedy deletes data on the cluster; send {"confirm": true} to run '
            'it, or {"dry_run": true} to see what it would do.',
        )

    try:
        result = watcher.remediate(current_app.config["SETTINGS"], dry_run=dry_run)
    except watcher.RemedyUnavailable as error:
        raise ApiError(503, error.code, error.message) from None

    response = jsonify(result)
    response.headers["Cache-Control"] = "no-store"
    return response
