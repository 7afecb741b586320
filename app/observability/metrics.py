"""Prometheus metrics, added up over every uWSGI worker and training job.

Each uWSGI worker is its own process, so a counter in memory would only count
that worker's share. With ``PROMETHEUS_MULTIPROC_DIR`` set (the uWSGI ini sets
it under ``RUN_DIR``), ``prometheus_client`` keeps every process's values in a
file of its own in that folder, and a scrape, whichever worker answers it,
adds the files up. The variable must be in the environment before
``prometheus_client`` is first imported: it picks its storage at import time.
Training runners inherit it from the worker that starts them.

Without the variable (the test client, ``flask run``), the values live in this
process's memory and a scrape shows this process alone.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
import time
from datetime import datetime
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Read once, like prometheus_client does: the storage cannot change later.
MULTIPROC_DIR = os.environ.get(MULTIPROC_ENV) or None

# Only the files prometheus_client writes: <type>[_<mode>]_<pid>.db.
_VALUE_FILE = re.compile(r"[a-z]+(_[a-z]+)?_\d+\.db")
_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
UNMATCHED = "(unmatched)"

# This process's metrics, for the scrape when not in multiprocess mode. A
# registry of our own keeps them apart from prometheus_client's global one.
REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "logreg_http_requests",
    "HTTP requests answered by the app, by route, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "logreg_http_request_duration_seconds",
    "Time from the app receiving a request to its answer, in seconds.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
PREDICTIONS = Counter(
    "logreg_predictions",
    "Examples scored, by the class they were given.",
    ["class"],
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "logreg_predict_batch_size",
    "Examples per predict request, by input kind.",
    ["input"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
    registry=REGISTRY,
)
# One series per version a live worker serves or served: 1 while at least one
# live worker serves it, 0 once none does. Files of dead workers are dropped
# at scrape time (see _LiveCollector).
MODEL_INFO = Gauge(
    "logreg_model_info",
    "The model version the live workers serve (1) or served before (0).",
    ["model_version"],
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
TRAINING_JOBS = Counter(
    "logreg_training_jobs",
    "Training jobs finished, by outcome (succeeded or failed).",
    ["outcome"],
    registry=REGISTRY,
)
TRAINING_SECONDS = Histogram(
    "logreg_training_job_duration_seconds",
    "Time a training job ran, from taking the training lock to its end.",
    ["outcome"],
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
    registry=REGISTRY,
)
WATCHER_CHECKS = Counter(
    "logreg_watcher_checks",
    "Watcher health checks run against the cluster, by resulting status.",
    ["status"],
    registry=REGISTRY,
)
WATCHER_FINDINGS = Counter(
    "logreg_watcher_findings",
    "Findings reported by watcher health checks, by finding code.",
    ["code"],
    registry=REGISTRY,
)
ELASTICSEARCH_SECONDS = Histogram(
    "logreg_elasticsearch_request_duration_seconds",
    "Time of each Elasticsearch call, by method and HTTP status (none: no answer).",
    ["method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)

_INPUT_KINDS = {
    "application/json": "json",
    "application/octet-stream": "float32",
    "image/png": "image",
    "image/jpeg": "image",
    "multipart/form-data": "multipart",
}

_served = {"version": None}
_served_lock = threading.Lock()
_failed = threading.Event()


def _guard(record):
    """Metrics must never fail a request: note the first failure and go on."""
    try:
        record()
    except OSError:
        # The multiprocess folder is missing or not writable.
        if not _failed.is_set():
            _failed.set()
            log.warning(
                "metrics not recorded: %s=%s is not a writable folder",
                MULTIPROC_ENV,
                MULTIPROC_DIR,
                exc_info=True,
            )


def observe_request(route, method: str, status: int, seconds: float) -> None:
    labels = (
        route or UNMATCHED,
        method if method in _KNOWN_METHODS else "other",
        str(status),
    )

    def record():
        REQUESTS.labels(*labels).inc()
        REQUEST_SECONDS.labels(*labels).observe(seconds)

    _guard(record)


def observe_predictions(classes, labels, mimetype: str | None) -> None:
    """``labels`` are the 0/1 labels given; ``classes`` their two names."""
    positives = sum(labels)
    counts = {classes[0]: len(labels) - positives, classes[1]: positives}
    kind = _INPUT_KINDS.get(mimetype or "", "other")

    def record():
        for name, count in counts.items():
            if count:
                PREDICTIONS.labels(name).inc(count)
        BATCH_SIZE.labels(kind).observe(len(labels))

    _guard(record)


def note_model_version(version: str | None) -> None:
    """Say which version this process serves now (a no-op when unchanged)."""
    if not version or version == _served["version"]:
        return

    def record():
        with _served_lock:
            previous = _served["version"]
            if previous == version:
                return
            if previous:
                MODEL_INFO.labels(previous).set(0)
            MODEL_INFO.labels(version).set(1)
            _served["version"] = version

    _guard(record)


def observe_job_record(job: dict | None) -> None:
    """Count a finished job from its record (in the runner process)."""
    if not job or job.get("status") not in ("succeeded", "failed"):
        return
    outcome = job["status"]
    seconds = None
    try:
        started = datetime.fromisoformat(job["started"])
        seconds = (datetime.fromisoformat(job["finished"]) - started).total_seconds()
    except (KeyError, TypeError, ValueError):
        pass  # a job that failed before it ran has no duration

    def record():
        TRAINING_JOBS.labels(outcome).inc()
        if seconds is not None:
            TRAINING_SECONDS.labels(outcome).observe(max(seconds, 0.0))

    _guard(record)


def observe_watcher_report(report: dict) -> None:
    def record():
        WATCHER_CHECKS.labels(report.get("status") or "unknown").inc()
        for finding in report.get("findings") or ():
            WATCHER_FINDINGS.labels(finding.get("code") or "unknown").inc()

    _guard(record)


class ElasticsearchTimer:
    """Times one Elasticsearch call; set ``status`` once an answer came back."""

    def __init__(self, method: str):
        self.method = method
        self.status: int | None = None

    def __enter__(self) -> ElasticsearchTimer:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        seconds = time.perf_counter() - self._started
        status = "none" if self.status is None else str(self.status)
        _guard(
            lambda: ELASTICSEARCH_SECONDS.labels(self.method, status).observe(seconds)
        )


# -- the multiprocess folder ---------------------------------------------------


def _in_uwsgi_master() -> bool:
    try:
        import uwsgi
    except ImportError:
        return False
    return uwsgi.worker_id() == 0


def prepare_folder() -> None:
    """Create the folder; in uWSGI's master, empty it of the last run's values.

    The master loads the app once before forking the workers, and again on
    every graceful reload, after the old workers are gone. Counters start
    from zero then, which Prometheus reads as a restart, as it should.
    """
    if MULTIPROC_DIR is None:
        return
    folder = Path(MULTIPROC_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    if not _in_uwsgi_master():
        return
    # Only prometheus_client's own files: a misconfigured folder (a home
    # directory, /tmp) loses nothing else.
    for path in folder.iterdir():
        if _VALUE_FILE.fullmatch(path.name):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _LiveCollector:
    """Drop the live-gauge files of exited processes, then add up the rest.

    uWSGI's master, which sees its workers exit, runs no Python when one
    does, so nothing calls ``mark_process_dead`` at that moment; each scrape
    does it instead, for every process that no longer exists.
    """

    def __init__(self, folder: str):
        self._folder = folder
        self._inner = multiprocess.MultiProcessCollector(None, path=folder)

    def collect(self):
        for path in glob.glob(os.path.join(self._folder, "gauge_live*_*.db")):
            pid = int(os.path.basename(path).rsplit("_", 1)[1][: -len(".db")])
            if not _alive(pid):
                try:
                    multiprocess.mark_process_dead(pid, self._folder)
                except FileNotFoundError:
                    pass  # another worker's scrape removed it first
        return self._inner.collect()


def exposition() -> tuple[bytes, str]:
    """The scrape body in Prometheus' text format, and its content type."""
    if MULTIPROC_DIR is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    registry.register(_LiveCollector(MULTIPROC_DIR))
    return generate_latest(registry), CONTENT_TYPE_LATEST
