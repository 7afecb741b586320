"""POST /api/v1/train (admin) and GET /api/v1/train/<job_id>."""

from __future__ import annotations

import errno

import numpy as np
from flask import Blueprint, current_app, request, url_for

from app.api.auth import require_admin
from app.api.common import feature_error
from app.errors import ApiError
from app.model import features, jobs, training
from app.tracing import current_context

bp = Blueprint("train", __name__)


def _dataset_from_json(body: bytes):
    document = features.parse_json(body)
    if not isinstance(document, dict):
        raise ApiError(
            400,
            "invalid_body",
            "The JSON body must be an object with 'features' and 'labels'.",
        )
    if "features" not in document:
        raise ApiError(400, "missing_features", "The JSON body needs 'features'.")

    matrix = features.rows_to_matrix(
        document["features"], None, "features", dtype=np.float64
    )
    labels = document.get("labels")
    if isinstance(labels, list) and not all(
        type(label) is int and not isinstance(label, bool) for label in labels
    ):
        raise ApiError(400, "invalid_labels", "Every label must be the integer 0 or 1.")
    dataset = training.dataset_from_arrays(
        features=matrix,
        labels=labels,
        classes=document.get("classes"),
        input_shape=document.get("input_shape"),
    )
    return dataset, document.get("params")


def _dataset_from_multipart():
    upload = request.files.get("data")
    if upload is None:
        raise ApiError(
            400,
            "missing_data",
            "The multipart body needs a 'data' file: an .npz with 'images' "
            "(N, H, W, C uint8) or 'features' (N, F), 'labels' and optional 'classes'.",
        )
    limit = current_app.config["SETTINGS"].max_train_bytes
    dataset = training.dataset_from_npz(upload.stream, max_bytes=limit)

    params = request.form.get("params")
    if params is not None:
        try:
            params = features.parse_json(params.encode())
        except features.FeatureError as error:
            raise ApiError(
                400,
                "invalid_params",
                f"The 'params' form field must be a JSON object: {error.message}",
            ) from None
    return dataset, params


def _save_for_runner(path, dataset) -> None:
    """Store the validated data in the .npz layout the runner reads back."""
    arrays = {"labels": dataset.labels, "classes": np.array(dataset.classes)}
    if dataset.input_shape and dataset.raw.dtype == np.uint8:
        arrays["images"] = dataset.raw.reshape((-1, *dataset.input_shape))
    else:
        arrays["features"] = dataset.raw
        if dataset.input_shape:
            arrays["input_shape"] = np.array(dataset.input_shape)

    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)
        temporary.rename(path)
    except BaseException:
        # A full disk must not also keep up to MAX_TRAIN_BYTES of half a file.
        temporary.unlink(missing_ok=True)
        raise


@bp.post("/api/v1/train")
def start_training():
    require_admin()

    mimetype = request.mimetype
    try:
        if mimetype == "application/json":
            dataset, params = _dataset_from_json(request.get_data(cache=False))
        elif mimetype == "multipart/form-data":
            dataset, params = _dataset_from_multipart()
        else:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Content-Type {mimetype or 'none'} is not accepted; send "
                "application/json or multipart/form-data with a 'data' .npz file.",
            )
        params = training.validate_params(params)
    except (features.FeatureError, training.DataError) as error:
        raise feature_error(error) from None

    job_store = current_app.extensions["jobs"]
    job_id = job_store.new_id()
    try:
        _save_for_runner(job_store.data_path(job_id), dataset)
        job_store.create(
            job_id, params, source=mimetype, trace_context=current_context()
        )
        jobs.spawn(job_id, current_app.config["SETTINGS"].model_dir)
    except OSError as error:
        job_store.data_path(job_id).unlink(missing_ok=True)
        if error.errno == errno.ENOSPC:
            raise ApiError(
                507, "insufficient_storage", "No space left to store the training data."
            ) from None
        raise

    status_url = url_for("train.job_status", job_id=job_id)
    return (
        {"job_id": job_id, "status": "queued", "status_url": status_url},
        202,
        {"Location": status_url},
    )


@bp.get("/api/v1/train/<job_id>")
def job_status(job_id):
    record = current_app.extensions["jobs"].read(job_id)
    if record is None:
        raise ApiError(404, "job_not_found", f"No training job {job_id!r}.")
    return {
        key: record[key]
        for key in (
            "job_id",
            "status",
            "progress",
            "model_version",
            "metrics",
            "error",
            "created",
            "started",
            "finished",
        )
    }
