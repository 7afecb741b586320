"""The training runner's span, a child of the request span that queued the job.

The runner is its own process (``python -m app run-job``), so it makes its own
tracer and flushes it before it exits. The queuing request's context travels
in the job record (``trace_context``: the ``ot-tracer-*`` fields).
"""

from __future__ import annotations

import logging

import opentracing

from app.tracing import activate, propagation, setup

log = logging.getLogger(__name__)

# Progress is logged on the span at every tenth of the run, so a long job's
# span holds about ten progress logs, not one per solver iteration.
PROGRESS_STEPS = 10


class JobTrace:
    """A ``train.job`` span around one run; a no-op when tracing is off."""

    def __init__(self, settings, record: dict):
        self._settings = settings
        self._record = record
        self._holder = None
        self._scope = None
        self.span = None

    def __enter__(self) -> JobTrace:
        reason = setup.why_off(self._settings)
        if reason is None:
            self._holder = setup.ProcessTracer(self._settings, role="training-job")
            tracer = self._holder.get()
        else:
            log.info("tracing off: %s", reason)
            tracer = opentracing.global_tracer()

        incoming = propagation.extract(self._record.get("trace_context") or {})
        params = self._record.get("params") or {}
        tags = {
            "component": "training",
            "job.id": self._record["job_id"],
            "train.solver": str(params.get("solver", "")),
            "train.source": str(self._record.get("source") or ""),
            **incoming.tags,
        }
        self._scope = activate(
            tracer,
            "train.job",
            child_of=incoming.context,
            tags=tags,
            ignore_active_span=True,
        )
        self.span = self._scope.span
        return self

    def progress(self, callback):
        """``callback`` that also logs each tenth of the progress on the span."""
        last_step = [-1]

        def logged(fraction, iteration, loss):
            step = int(fraction * PROGRESS_STEPS)
            if step != last_step[0]:
                last_step[0] = step
                self.span.log_kv(
                    {
                        "event": "progress",
                        "fraction": round(float(fraction), 4),
                        "iteration": int(iteration),
                        "loss": float(loss),
                    }
                )
            callback(fraction, iteration, loss)

        return logged

    def outcome(self, record: dict | None) -> None:
        """Tag the span with how the job ended, from its final record."""
        if record is None:
            return
        self.span.set_tag("job.status", record["status"])
        if record.get("model_version"):
            self.span.set_tag("model.version", record["model_version"])
        if record["status"] == "failed":
            self.span.set_tag("error", True)
            self.span.log_kv(
                {
                    "event": "error",
                    "error.kind": "training_failed",
                    "message": record.get("error") or "",
                }
            )

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc is not None:
            self.span.set_tag("error", True)
            self.span.log_kv(
                {
                    "event": "error",
                    "error.kind": exc_type.__name__,
                    "message": str(exc),
                }
            )
        self._scope.close()

        # The runner exits right after: send its spans now, not at the next tick.
        if self._holder is not None:
            try:
                self._holder.flush()
            except Exception:  # noqa: BLE001 - a failed report must not fail the job
                log.warning("could not report the training job's span", exc_info=True)
