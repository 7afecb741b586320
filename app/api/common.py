"""Small helpers every endpoint module shares."""

from __future__ import annotations

from flask import current_app, g

from app.errors import ApiError


def settings():
    return current_app.config["SETTINGS"]


def current_model():
    """The model this worker serves now, or a 503 ``no_model``."""
    model = current_app.extensions["model_cache"].get()
    if model is None:
        raise ApiError(
            503,
            "no_model",
            "No model has been published yet; train one with POST /api/v1/train "
            "or `python -m app train DATA`.",
        )
    g.model_version = model.version
    return model


def feature_error(error) -> ApiError:
    """A FeatureError or DataError from the model room, as a 400 or 415."""
    return ApiError(400, error.code, error.message)
