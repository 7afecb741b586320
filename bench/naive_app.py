"""The baseline: predict the way a first Flask handler usually does it.

Stdlib ``json`` parses the body, ``np.asarray`` turns the list into an array and
one dot product scores it. It checks nothing the real handler checks; it exists
so the benchmark can show what that handler's work costs, served by the same
uWSGI ini and nginx server block (``bench/run.py`` swaps only the ini's
``module`` line).

It scores the model ``MODEL_DIR/current`` held when the worker started.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from flask import Flask, jsonify, request

application = Flask(__name__)

_folder = Path(os.environ.get("MODEL_DIR", "var/models")) / "current"
_meta = json.loads((_folder / "meta.json").read_text())
with np.load(_folder / "model.npz") as _archive:
    WEIGHTS = _archive["weights"] * _meta["scale"]
    BIAS = float(_archive["bias"])


@application.get("/api/v1/health")
def health():
    # The stack counts as started once every worker has answered this with its
    # uWSGI worker id, as the service's own health answer does.
    import uwsgi

    reply = jsonify(status="ok")
    reply.headers["X-Served-By"] = str(uwsgi.worker_id())
    return reply


@application.post("/api/v1/predict")
def predict():
    document = json.loads(request.get_data())

    features = np.asarray(document["features"])
    z = float(np.dot(features, WEIGHTS)) + BIAS

    probability = float(1.0 / (1.0 + np.exp(-z)))
    return jsonify(probability=probability, label=int(probability >= 0.5))
