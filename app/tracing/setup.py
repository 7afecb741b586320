"""One LightStep tracer per process, made after uWSGI forks, flushed at exit.

uWSGI loads the app in the master and forks the workers from it. A tracer made
in the master would be copied into every worker with the same reporter id, and
its flush thread would not exist there (threads do not survive ``fork``). So
under uWSGI each worker makes its own tracer in a post-fork hook; anywhere else
(the Flask dev server, tests, the training runner) it is made at once. A pid
check on every request catches any other forking server.

Buffered spans are flushed from a Python ``atexit`` hook. With uWSGI 2.0 the
workers run it on ``uwsgi --stop`` (SIGINT), on SIGTERM with ``die-on-term``,
and on a graceful reload (SIGHUP) or recycle, so the last spans still arrive.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading

import opentracing

from app.tracing.redact import Scrubber, ScrubbingRecorder

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
    if settings.tracer != "lightstep":
        return f"TRACER={settings.tracer} is not supported yet; use TRACER=lightstep"
    if not settings.lightstep_access_token:
        return "LIGHTSTEP_ACCESS_TOKEN is not set"
    return None


def collector_url(settings) -> str:
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

    tags = {"process.pid": str(os.getpid()), "logreg.role": role}
    worker = _worker_id()
    if worker:
        tags["uwsgi.worker_id"] = str(worker)
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
    tracer.recorder = ScrubbingRecorder(tracer.recorder, Scrubber(settings.secrets()))
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


def start_per_process(holder: ProcessTracer) -> None:
    """Make the tracer after uWSGI's fork, or now outside uWSGI."""
    try:
        import uwsgi  # noqa: F401 - present only inside uWSGI
        from uwsgidecorators import postfork
    except ImportError:
        holder.get()
        return

    # In the master the global tracer stays the no-op: the master serves no
    # request, and whatever it made would die in the fork.
    postfork(holder.get)
