"""The current model's metadata."""

from __future__ import annotations

from flask import Blueprint

from app.api.common import current_model

bp = Blueprint("models", __name__)


@bp.get("/api/v1/model")
def model_metadata():
    model = current_model()
    meta = model.meta
    return {
        "model_version": model.version,
        "created": meta.get("created"),
        "classes": meta["classes"],
        "input_shape": meta["input_shape"],
        "n_features": meta["n_features"],
        "scale": meta["scale"],
        "threshold": meta["threshold"],
        # Written by every training; a version made by hand may lack them.
        "solver": meta.get("solver"),
        "params": meta.get("params", {}),
        "metrics": meta.get("metrics", {}),
    }
