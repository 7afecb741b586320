"""What an operator sees: Prometheus metrics, JSON logs, request ids.

- ``metrics``: the counters and histograms, added up over every uWSGI worker,
  and ``GET /metrics``.
- ``logs``: the JSON log formatter; each request-scoped line carries the
  request id and the trace and span ids.
- ``request_id``: nginx's id for the request (or a trusted caller's), echoed
  in ``X-Request-Id`` and set on the server span as ``http.request_id``.

:func:`init_observability` wires them into the app. Its hooks must run after
tracing's, which opens the server span: tracing puts its hook first.
"""

from __future__ import annotations

import logging
import time

import opentracing
from flask import Blueprint, current_app, g, request

from app.observability import metrics, request_id
from app.observability.logs import ACCESS_LOGGER

access_log = logging.getLogger(ACCESS_LOGGER)

bp = Blueprint("observability", __name__)


@bp.get("/metrics")
def scrape():
    # The scraping worker reports its own model too, even if it has served
    # no request since the last publish.
    model = current_app.extensions["model_cache"].get()
    metrics.note_model_version(model.version if model else None)

    body, content_type = metrics.exposition()
    return current_app.response_class(body, content_type=content_type)


def _begin() -> None:
    g._observed_since = time.perf_counter()
    chosen = request_id.current()
    # The same tag nginx's span carries, so one search finds both spans.
    span = opentracing.global_tracer().active_span
    if span is not None:
        span.set_tag("http.request_id", chosen)


def _finish(response, worker_id):
    started = g.get("_observed_since")
    seconds = time.perf_counter() - started if started is not None else 0.0
    chosen = request_id.current()
    response.headers[request_id.HEADER] = chosen

    rule = request.url_rule
    route = rule.rule if rule is not None else None
    status = response.status_code
    version = g.get("model_version")
    metrics.observe_request(route, request.method, status, seconds)
    metrics.note_model_version(version)

    if not access_log.isEnabledFor(logging.INFO):
        return response
    access_log.info(
        "%s %s %d",
        request.method,
        route or metrics.UNMATCHED,
        status,
        extra={
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "path": request.path,
            "model_version": version,
            "worker": worker_id(),
        },
    )
    return response


def init_observability(app, settings, worker_id=lambda: "0") -> None:
    """Request ids, the access line and metrics for every request of ``app``."""
    metrics.prepare_folder()
    app.before_request(_begin)
    app.after_request(lambda response: _finish(response, worker_id))
    app.register_blueprint(bp)
