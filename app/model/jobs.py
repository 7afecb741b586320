"""Training jobs: a record on disk per job, a process per training run.

The HTTP worker that accepts a training request only stores the data and the
job record, then starts ``python -m app run-job <id>`` in its own session and
answers 202; the solver never runs on a serving worker. Any worker can answer
the job's status, because the record is a file under ``MODEL_DIR/jobs``.

Jobs run one at a time and in the order they were accepted: a runner holds
an exclusive ``flock`` on ``MODEL_DIR/train.lock`` while it trains, and takes
it only when its ticket (``MODEL_DIR/jobs/queue/<time>-<id>``, made with the
record) is the oldest of the jobs still waiting; ``flock`` alone hands the lock
to whichever waiter the kernel wakes. A runner that dies (SIGKILL, OOM) cannot
write its own failure, so readers check that a running job's process is still
alive.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
ACTIVE = ("queued", "running")

# A queued job whose runner never wrote its pid within this time is dead.
SPAWN_GRACE_SECONDS = 60


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _process_start_ticks(pid: int) -> int | None:
    """The kernel's start time of ``pid``, to tell a live runner from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after it do not.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


class JobStore:
    def __init__(self, model_dir):
        self.root = Path(model_dir) / "jobs"
        self.queue = self.root / "queue"
        self.lock_path = Path(model_dir) / "train.lock"

    def _record(self, job_id: str) -> Path:
        return self.root / f"{job_id}.json"

    def data_path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.data.npz"

    def new_id(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        return secrets.token_hex(16)

    def create(
        self, job_id: str, params: dict, source: str, trace_context: dict | None = None
    ) -> dict:
        record = {
            "job_id": job_id,
            "status": "queued",
            "progress": 0.0,
            "model_version": None,
            "metrics": None,
            "error": None,
            "params": params,
            "source": source,
            "created": _now(),
            "started": None,
            "finished": None,
            "pid": None,
            "pid_start": None,
            # The queuing request's span, so the runner's span joins its trace.
            "trace_context": trace_context,
        }
        self._write(job_id, record)
        self.queue.mkdir(exist_ok=True)
        (self.queue / f"{time.time_ns():020d}-{job_id}").touch()
        return record

    def first_in_line(self) -> str | None:
        """The oldest job still waiting or running; tickets of ended jobs go."""
        try:
            tickets = sorted(os.listdir(self.queue))
        except FileNotFoundError:
            return None
        for ticket in tickets:
            job_id = ticket.partition("-")[2]
            record = self.read(job_id)
            if record is not None and record["status"] in ACTIVE:
                return job_id
            (self.queue / ticket).unlink(missing_ok=True)
        return None

    def leave_queue(self, job_id: str) -> None:
        for ticket in self.queue.glob(f"*-{job_id}"):
            ticket.unlink(missing_ok=True)

    def _write(self, job_id: str, record: dict) -> None:
        # Write and rename: a reader never sees half a record.
        path = self._record(job_id)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record))
        os.replace(temporary, path)

    def update(self, job_id: str, **changes) -> dict:
        record = json.loads(self._record(job_id).read_text())
        record.update(changes)
        self._write(job_id, record)
        return record

    def read(self, job_id: str) -> dict | None:
        if not JOB_ID.match(job_id):
            return None
        try:
            record = json.loads(self._record(job_id).read_text())
        except FileNotFoundError:
            return None
        return self._with_liveness(record)

    def _with_liveness(self, record: dict, recheck: bool = True) -> dict:
        if record["status"] not in ACTIVE:
            return record

        pid = record.get("pid")
        if pid is None:
            created = datetime.fromisoformat(record["created"])
            age = (datetime.now(UTC) - created).total_seconds()
            if age < SPAWN_GRACE_SECONDS:
                return record
            reason = "the training process never started"
        elif _process_start_ticks(pid) == record.get("pid_start"):
            return record
        else:
            reason = "the training process exited without finishing (killed?)"

        job_id = record["job_id"]
        if recheck:
            # The runner may have written its outcome (or its pid) and exited
            # between our read and the check: read again before judging.
            fresh = json.loads(self._record(job_id).read_text())
            if (fresh["status"], fresh.get("pid")) != (record["status"], pid):
                return self._with_liveness(fresh, recheck=False)

        record = dict(record, status="failed", error=reason, finished=_now())
        try:
            self._write(job_id, record)
            # A dead runner's finally never ran: its upload and ticket go here.
            self.data_path(job_id).unlink(missing_ok=True)
            self.leave_queue(job_id)
        except OSError:
            pass
        return record


def python_executable() -> str:
    """The Python interpreter; under uWSGI, ``sys.executable`` is uwsgi itself."""
    if os.path.basename(sys.executable).startswith("uwsgi"):
        for name in ("python3", "python"):
            candidate = os.path.join(sys.prefix, "bin", name)
            if os.access(candidate, os.X_OK):
                return candidate
    return sys.executable


def spawn(job_id: str, model_dir) -> None:
    """Start the runner in its own session, detached from the serving worker."""
    env = dict(os.environ, MODEL_DIR=str(model_dir))
    log_path = Path(model_dir) / "jobs" / f"{job_id}.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [python_executable(), "-m", "app", "run-job", job_id],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,
            close_fds=True,
        )
    # Reap it when it ends, so a long-lived worker collects no zombies.
    threading.Thread(target=process.wait, name=f"reap-{job_id}", daemon=True).start()


def run(job_id: str, model_dir, train_fn) -> int:
    """Body of the runner process: wait for the lock, train, publish, record."""
    jobs = JobStore(model_dir)
    pid = os.getpid()
    record = jobs.update(job_id, pid=pid, pid_start=_process_start_ticks(pid))
    if record["status"] not in ACTIVE:
        # Judged dead before it started (a runner slower than the spawn grace):
        # the client has been told it failed, so it must not train now.
        log.error("training job %s is %s; not starting it", job_id, record["status"])
        return 1

    def on_term(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_term)

    lock = open(jobs.lock_path, "a+")
    try:
        _wait_for_turn(jobs, job_id, lock)
        jobs.update(job_id, status="running", started=_now())

        last_write = 0.0

        def progress(fraction, iteration, loss):
            nonlocal last_write
            now = time.monotonic()
            if now - last_write >= 0.25 or fraction >= 1.0:
                last_write = now
                jobs.update(job_id, progress=round(float(fraction), 4))

        version, metrics = train_fn(jobs.data_path(job_id), progress)
        jobs.update(
            job_id,
            status="succeeded",
            progress=1.0,
            model_version=version,
            metrics=metrics,
            finished=_now(),
        )
        return 0
    except BaseException as error:  # noqa: BLE001 - every failure must be recorded
        message = str(error) or type(error).__name__
        log.exception("training job %s failed", job_id)
        jobs.update(job_id, status="failed", error=message, finished=_now())
        return 1
    finally:
        jobs.data_path(job_id).unlink(missing_ok=True)
        jobs.leave_queue(job_id)
        lock.close()


def _wait_for_turn(jobs: JobStore, job_id: str, lock) -> None:
    """Hold the training lock once every older job has ended."""
    while True:
        fcntl.flock(lock, fcntl.LOCK_EX)
        first = jobs.first_in_line()
        if first is None or first == job_id:
            return
        fcntl.flock(lock, fcntl.LOCK_UN)
        time.sleep(0.05)
