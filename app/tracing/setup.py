"""One LightStep tracer per process, made after uWSGI forks, flushed at exit.

uWSGI loads the app in the master and forks the workers from it. A tracer made
in the master would be copied into every worker with the same reporter id, and
its flush thread would not exist there (threads do not survive ``fork``). So
under uWSGI each worker makes its own tracer in a post-fork hook; anywhere else
(the Flask dev server, tests, the training runner) it is made at once. A pid
check on every request catches any other forking server.

Buffered spans are flushed from a Python ``atexit`` hook. uWSGI 2.0 runs a
worker's Python exit hooks only when the worker exits while idle: always on a
graceful reload (SIGHUP) or a graceful stop (SIGTERM, which deploy/uwsgi/app.ini
maps to ``gracefully_kill_them_all``), because the worker first finishes its
request; on ``uwsgi --stop`` (SIGINT) only if it happens to be idle.

The post-fork hook must stay short and must not swallow a stop signal: until it
returns, uWSGI has not yet installed the worker's own signal handlers, and the
disposition inherited from the master ignores SIGINT and SIGHUP (or turns SIGINT
into a ``KeyboardInterrupt`` inside the hook). A worker that loses its stop
signal that way lives on until the master's mercy runs out (30 s) and is killed.
So ``lightstep`` is imported in the master, and the hook first restores the
default action of the stop signals: a worker that has served nothing yet holds
no span, and may die at once.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading

import opentracing

from app.tracing.redact import Scrubber
from app.tracing.report import SpanReporter

log = logging.getLogger(__name__)

# A report that hangs holds up a worker's exit; the library's default is 30 s.
REPORT_TIMEOUT_SECONDS = 5.0
# Spans a worker buffers between reports; beyond it new spans are dropped. The
# library's 1000 is less than one busy worker makes in a 2.5 s flush period
# (about 300 requests/s, 3 spans each); a span is about half a kilobyte.
MAX_BUFFERED_SPANS = 20_000


def why_off(settings) -> str | None:
    """Why tracing is off with these settings, or None when it is on."""
    if not settings.tracing:
        return "TRACING=off"
    if settings.tracer == "otlp":
        from app.tracing import otlp

        return otlp.why_off(settings)
    if not settings.lightstep_access_token:
        return "LIGHTSTEP_ACCESS_TOKEN is not set"
    return None


def collector_url(settings) -> str:
    if settings.tracer == "otlp":
        return settings.otlp_endpoint
    scheme = "http" if settings.lightstep_collector_encryption == "none" else "https"
    host = settings.lightstep_collector_host
    return f"{scheme}://{host}:{settings.lightstep_collector_port}/api/v2/reports"


def _worker_id() -> int | None:
    try:
        import uwsgi
    except ImportError:
        return None
    return uwsgi.worker_id()


def make_tracer(settings, role: str = "server"):
    """A LightStep tracer reporting over HTTP, its spans scrubbed of secrets."""
    import lightstep
    import lightstep.util

    # The library draws reporter ids from its own generator, seeded when it is
    # imported and never again; imported in the master (see preload), every
    # worker would report under the master's next id.
    lightstep.util.guid_rng.seed()
    tags = {"process.pid": str(os.getpid()), "logreg.role": role}
    worker = _worker_id()
    if worker:
        tags["uwsgi.worker_id"] = str(worker)
    if settings.tracer == "otlp":
        from app.tracing import otlp

        return otlp.make_tracer(
            settings, tags, timeout=REPORT_TIMEOUT_SECONDS, max_spans=MAX_BUFFERED_SPANS
        )
    tracer = lightstep.Tracer(
        component_name=settings.lightstep_component_name,
        access_token=settings.lightstep_access_token,
        collector_host=settings.lightstep_collector_host,
        collector_port=settings.lightstep_collector_port,
        collector_encryption=settings.lightstep_collector_encryption,
        use_http=True,
        # Only text headers cross process boundaries here; the binary format
        # would import basictracer's deprecated protobuf descriptors.
        disable_binary_format=True,
        periodic_flush_seconds=settings.lightstep_flush_seconds,
        timeout_seconds=REPORT_TIMEOUT_SECONDS,
        max_span_records=MAX_BUFFERED_SPANS,
        tags=tags,
    )
    # The library's recorder builds protobuf messages in pure Python on the
    # request thread; this one keeps the tracer, its settings and identity, and
    # encodes the same reports at a fraction of the cost (see report.py).
    tracer.recorder = SpanReporter.replacing(
        tracer.recorder, Scrubber(settings.secrets())
    )
    return tracer


class ProcessTracer:
    """The tracer of the current process, made again in a child after a fork."""

    def __init__(self, settings, role: str = "server"):
        self._settings = settings
        self._role = role
        self._lock = threading.Lock()
        self._pid = None
        self._tracer = None

    def get(self):
        """This process's tracer, making it first if this process has none."""
        if self._pid == os.getpid():
            return self._tracer
        with self._lock:
            if self._pid != os.getpid():
                self._start()
        return self._tracer

    def _start(self) -> None:
        tracer = make_tracer(self._settings, self._role)
        self._tracer = tracer
        self._pid = os.getpid()
        opentracing.set_global_tracer(tracer)
        # Registered per tracer, so a forked child flushes its own, not the
        # parent's copy.
        atexit.register(self._flush_at_exit, tracer, self._pid)
        log.debug("tracer started in pid %s", self._pid)

    @staticmethod
    def _flush_at_exit(tracer, pid: int) -> None:
        if pid != os.getpid():
            return
        # Limitation: a process killed outright (SIGKILL, harakiri, a reload
        # past worker-reload-mercy, OOM) runs no exit hook; the spans it still
        # buffers, at most LIGHTSTEP_FLUSH_SECONDS' worth, are lost.
        try:
            tracer.recorder.shutdown(flush=True)
        except Exception:  # noqa: BLE001 - exit must go on whatever the collector does
            log.warning("could not flush the last spans at exit", exc_info=True)

    def flush(self) -> None:
        if self._pid == os.getpid() and self._tracer is not None:
            self._tracer.flush()


# The signals the master sends a worker to stop it (SIGINT), reload it (SIGHUP)
# or reap it (SIGTERM).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)


def preload() -> None:
    """Import the tracer's modules now, so that a forked worker finds them loaded.

    Importing ``lightstep`` (protobuf descriptors, thrift, requests) takes a
    large part of a second on a busy machine; done once in the master, the
    copy-on-write fork hands it to every worker for free.
    """
    import lightstep  # noqa: F401

    import app.tracing.report  # noqa: F401


def _start_in_worker(holder: ProcessTracer) -> None:
    # uWSGI installs the worker's handlers only after the post-fork hooks;
    # until then a stop signal would be ignored or raised as KeyboardInterrupt
    # here, and lost (see the module docstring).
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    holder.get()


def start_per_process(holder: ProcessTracer) -> None:
    """Make the tracer after uWSGI's fork, or now outside uWSGI."""
    try:
        import uwsgi  # noqa: F401 - present only inside uWSGI
        from uwsgidecorators import postfork
    except ImportError:
        holder.get()
        return

    # In the master the global tracer stays the no-op: the master serves no
    # request, and whatever it made would die in the fork. Its modules,
    # though, are loaded here, once.
    preload()
    postfork(lambda: _start_in_worker(holder))
