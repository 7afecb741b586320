"""The Flask application factory."""

from __future__ import annotations

import logging

from flask import Flask, request

from app.errors import register_error_handlers
from app.settings import Settings

log = logging.getLogger(__name__)

_TRAIN_ENDPOINTS = {"train.start_training"}


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if not root.handlers:
        from app.observability.logs import formatter_for

        handler = logging.StreamHandler()
        handler.setFormatter(formatter_for(settings))
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    # The Elasticsearch transport logs every call at INFO; the watcher's own
    # spans and findings already say what matters.
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)


def _drain(request) -> None:
    remaining = request.content_length or 0
    stream = request.environ.get("wsgi.input")
    if not remaining or stream is None:
        return
    try:
        while remaining > 0:
            chunk = stream.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)
    except (OSError, ValueError):
        pass


try:
    # Present only inside uWSGI, which embeds it before loading the app.
    from uwsgi import worker_id as _uwsgi_worker_id
except ImportError:
    _uwsgi_worker_id = None


def _worker_id() -> str:
    """This process's uWSGI worker number (1..N); "0" outside uWSGI."""
    return str(_uwsgi_worker_id()) if _uwsgi_worker_id else "0"


def create_app(settings: Settings | None = None) -> Flask:
    from app.api import health, models, openapi, predict, train, watcher
    from app.model.jobs import JobStore
    from app.model.store import ModelCache, ModelStore
    from app.model.threads import limit_blas
    from app.observability import init_observability
    from app.tracing import init_tracing

    settings = settings or Settings.from_env()
    configure_logging(settings)
    limit_blas(settings.blas_threads)

    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = max(
        settings.max_predict_bytes, settings.max_train_bytes
    )
    app.json.sort_keys = False

    store = ModelStore(settings.model_dir)
    store.ensure()
    app.extensions["model_store"] = store
    app.extensions["model_cache"] = ModelCache(store)
    app.extensions["jobs"] = JobStore(settings.model_dir)

    @app.before_request
    def _body_limit():
        # Training uploads may be large; everything else gets the predict limit.
        if request.endpoint in _TRAIN_ENDPOINTS:
            request.max_content_length = settings.max_train_bytes
        else:
            request.max_content_length = settings.max_predict_bytes

    @app.after_request
    def _drain_unread_body(response):
        # A request refused before its body was read (401, 415, ...) must still
        # have its body consumed: uWSGI closes the socket after the response,
        # and nginx, still sending the body, would turn that into a 502.
        _drain(request)
        return response

    @app.after_request
    def _served_by(response):
        # Which uWSGI worker answered (1..N): lets an operator, and the tests,
        # check that every worker serves the same model.
        response.headers["X-Served-By"] = _worker_id()
        return response

    for module in (health, predict, train, models, watcher, openapi):
        app.register_blueprint(module.bp)
    register_error_handlers(app)
    # Before tracing, whose before-request hook still goes first: ours finds
    # the server span open, and our after-request hook runs after tracing's.
    init_observability(app, settings, _worker_id)
    init_tracing(app, settings)
    return app
