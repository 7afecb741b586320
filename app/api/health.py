"""Liveness for the load balancer: cheap, local, never touches anything remote."""

from __future__ import annotations

from flask import Blueprint, current_app

bp = Blueprint("health", __name__)


@bp.get("/api/v1/health")
def health():
    model = current_app.extensions["model_cache"].get()
    return {"status": "ok", "model_version": model.version if model else None}
