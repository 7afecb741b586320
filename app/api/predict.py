"""POST /api/v1/predict (and /predict): features, float32 bytes or images in."""

from __future__ import annotations

import orjson
from flask import Blueprint, current_app, request

from app.api.common import current_model, feature_error
from app.errors import ApiError
from app.model import features
from app.observability.metrics import observe_predictions
from app.tracing import child_span

bp = Blueprint("predict", __name__)

ACCEPTED = (
    "application/json, application/octet-stream (little-endian float32), "
    "image/png, image/jpeg, multipart/form-data with 'image' files"
)


def _image_shape(model):
    if model.input_shape is None:
        raise ApiError(
            400,
            "model_takes_features",
            "The current model was trained on plain features, not images; "
            "send its features as JSON or float32 bytes.",
        )
    return model.input_shape


def decode(model):
    """The request body as a float32 (n, F) matrix of raw values."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        return features.from_json_body(request.get_data(cache=False), model.n_features)
    if mimetype == "application/octet-stream":
        return features.from_float32_body(
            request.get_data(cache=False), model.n_features
        )
    if mimetype in ("image/png", "image/jpeg"):
        body = request.get_data(cache=False)
        if not body:
            raise ApiError(
                400, "empty_body", "The request body is empty; send an image."
            )
        return features.from_images([body], _image_shape(model))
    if mimetype == "multipart/form-data":
        uploads = request.files.getlist("image")
        if not uploads:
            raise ApiError(
                400,
                "missing_image",
                "The multipart body has no 'image' file; attach one or more as "
                "-F image=@photo.png.",
            )
        blobs = [upload.read() for upload in uploads]
        return features.from_images(blobs, _image_shape(model))

    shown = mimetype or "none"
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {shown} is not accepted; send {ACCEPTED}.",
    )


@bp.post("/api/v1/predict")
@bp.post("/predict")
def predict():
    model = current_model()

    with child_span("predict.decode", {"content_type": request.mimetype or ""}):
        try:
            rows = decode(model)
        except features.FeatureError as error:
            raise feature_error(error) from None

    with child_span("predict.score", {"batch_size": int(rows.shape[0])}):
        probabilities = model.probabilities(rows)

    names = model.classes
    labels = (probabilities >= model.threshold).astype(int).tolist()
    observe_predictions(names, labels, request.mimetype)
    predictions = [
        {"label": label, "class": names[label], "probability": probability}
        for label, probability in zip(labels, probabilities.tolist(), strict=True)
    ]

    # orjson writes the same JSON as Flask's encoder (compact, shortest float
    # that reads back exactly, keys in order) several times faster, which
    # matters for a batch of thousands.
    body = orjson.dumps({"model_version": model.version, "predictions": predictions})
    return current_app.response_class(body + b"\n", mimetype="application/json")
