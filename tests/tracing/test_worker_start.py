"""What a uWSGI worker does after the fork, checked with real forks."""

from __future__ import annotations

import os
import signal

from app.tracing import setup


def _in_child(work) -> str:
    """Run ``work`` in a forked child and return what it printed to the pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            os.write(write_end, str(work()).encode())
        except BaseException as error:  # noqa: BLE001 - the parent shows it
            os.write(write_end, f"failed: {error!r}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return text


def test_workers_forked_after_preload_report_under_different_ids(traced_settings):
    setup.preload()

    def reporter_id():
        # The child leaves with os._exit: no flush, no report.
        return setup.make_tracer(traced_settings).recorder.reporter_id

    first, second = _in_child(reporter_id), _in_child(reporter_id)

    assert first.isdigit(), first
    assert first != second


def test_worker_start_gives_stop_signals_their_default_action():
    class Holder:
        started = 0

        def get(self):
            self.started += 1

    saved = {signum: signal.getsignal(signum) for signum in setup._STOP_SIGNALS}
    holder = Holder()
    try:
        for signum in saved:
            signal.signal(signum, signal.SIG_IGN)

        setup._start_in_worker(holder)

        actions = [signal.getsignal(signum) for signum in saved]
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert actions == [signal.SIG_DFL] * 3
    assert holder.started == 1
