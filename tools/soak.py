"""A bounded soak of the real stack: mixed traffic, a training run, model switches.

    .venv/bin/python tools/soak.py --seconds 60

Starts uWSGI and nginx on 127.0.0.1 (nothing else is contacted), publishes a
model, then sends predict (JSON, float32, PNG), health, metadata, job status
and bad requests from several threads. A third of the way in it trains a new
model over HTTP (the runner publishes and switches ``current``); two thirds in
it rolls back to the first model. Every predict answer must name a published
version and carry exactly the probabilities that version gives offline: no
answer from a half-switched model. Worker RSS is sampled as it runs.

Prints a table of counts and RSS, and exits 1 on any unexpected answer, or when
worker memory keeps growing in the second half.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import requests
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.model.store import ModelStore  # noqa: E402
from deploy import localstack  # noqa: E402
from tests.models import (  # noqa: E402
    N_FEATURES,
    SHAPE,
    publish_random_image_model,
)

TOKEN = "soak-admin-token"
# Memory may grow this much from the middle of the run to its end, per worker.
RSS_GROWTH_LIMIT = 1.25


def _rows():
    rng = np.random.default_rng(11)
    return rng.integers(0, 256, size=(3, N_FEATURES)).astype(np.float32)


def _png(row) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(row.astype(np.uint8).reshape(SHAPE)).save(buffer, format="PNG")
    return buffer.getvalue()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Soak:
    def __init__(self, stack, seconds: float, threads: int):
        self.stack = stack
        self.url = stack.url
        self.seconds = seconds
        self.threads = threads
        self.store = ModelStore(stack.model_dir)
        self.rows = _rows()
        self.png = _png(self.rows[0])
        self.counts = Counter()
        self.errors: list[str] = []
        self.answers: list[tuple[str, str, list]] = []  # (kind, version, probs)
        self.rss: list[tuple[float, list[int]]] = []
        self.lock = threading.Lock()
        self.job_url = None

    def fail(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def record(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] += 1

    # -- traffic ---------------------------------------------------------

    def one_request(self, session, step: int) -> None:
        kind = ("json", "float32", "png", "health", "model", "bad", "job")[step % 7]
        if kind == "job" and not self.job_url:
            kind = "health"
        url = self.url
        if kind == "json":
            reply = session.post(
                url + "/api/v1/predict",
                json={"instances": self.rows.tolist()},
                timeout=30,
            )
        elif kind == "float32":
            reply = session.post(
                url + "/predict",
                data=self.rows.astype("<f4").tobytes(),
                headers={"Content-Type": "application/octet-stream"},
                timeout=30,
            )
        elif kind == "png":
            reply = session.post(
                url + "/api/v1/predict",
                data=self.png,
                headers={"Content-Type": "image/png"},
                timeout=30,
            )
        elif kind == "bad":
            reply = session.post(
                url + "/api/v1/predict", json={"features": [1.0]}, timeout=30
            )
            if reply.status_code != 400:
                self.fail(f"bad input answered {reply.status_code}: {reply.text[:200]}")
            self.record(kind)
            return
        elif kind == "job":
            reply = session.get(url + self.job_url, timeout=30)
        else:
            path = "/api/v1/model" if kind == "model" else "/api/v1/health"
            reply = session.get(url + path, timeout=30)

        self.record(kind)
        if reply.status_code != 200:
            self.fail(f"{kind} answered {reply.status_code}: {reply.text[:200]}")
            return
        if kind in ("json", "float32", "png"):
            body = reply.json()
            probabilities = [p["probability"] for p in body["predictions"]]
            with self.lock:
                self.answers.append((kind, body["model_version"], probabilities))

    def client(self, deadline: float, offset: int) -> None:
        session = requests.Session()
        step = offset
        while time.monotonic() < deadline:
            try:
                self.one_request(session, step)
            except (requests.RequestException, ValueError, KeyError) as error:
                self.fail(f"request failed: {error!r}")
            step += 1

    # -- events in the middle -------------------------------------------

    def train(self) -> str:
        rng = np.random.default_rng(3)
        features = rng.integers(0, 256, size=(40, N_FEATURES)).tolist()
        labels = [i % 2 for i in range(40)]
        reply = requests.post(
            self.url + "/api/v1/train",
            json={
                "features": features,
                "labels": labels,
                "classes": ["no", "yes"],
                "input_shape": list(SHAPE),
                "params": {"solver": "lbfgs", "scale": 1 / 255},
            },
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )
        if reply.status_code != 202:
            self.fail(f"training answered {reply.status_code}: {reply.text[:200]}")
            return ""
        self.job_url = reply.json()["status_url"]
        deadline = time.monotonic() + max(self.seconds, 30)
        while time.monotonic() < deadline:
            record = requests.get(self.url + self.job_url, timeout=30).json()
            if record["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        if record["status"] != "succeeded":
            self.fail(f"training did not succeed: {record}")
            return ""
        return record["model_version"]

    def sample_rss(self, started: float) -> None:
        pids = sorted(self.stack.worker_pids())
        self.rss.append((time.monotonic() - started, [_rss_kib(p) for p in pids]))

    def run(self) -> int:
        first = self.store.current_version()
        started = time.monotonic()
        deadline = started + self.seconds
        clients = [
            threading.Thread(target=self.client, args=(deadline, i), daemon=True)
            for i in range(self.threads)
        ]
        for thread in clients:
            thread.start()

        trained = rolled_back = False
        second = ""
        next_sample = started
        while time.monotonic() < deadline:
            elapsed = time.monotonic() - started
            if not trained and elapsed >= self.seconds / 3:
                trained = True
                second = self.train()
            if not rolled_back and elapsed >= 2 * self.seconds / 3:
                rolled_back = True
                self.store.set_current(first)
            if time.monotonic() >= next_sample:
                self.sample_rss(started)
                next_sample += max(self.seconds / 12, 1)
            time.sleep(0.05)
        for thread in clients:
            thread.join(60)
        self.sample_rss(started)

        versions = [v for v in (first, second) if v]
        self.check_answers(versions)
        self.check_memory()
        self.report(versions)
        return 1 if self.errors else 0

    # -- verdict -------------------------------------------------------

    def check_answers(self, versions) -> None:
        expected = {}
        for version in versions:
            model = self.store.load(version)
            expected[version] = {
                "json": model.probabilities(self.rows).tolist(),
                "float32": model.probabilities(self.rows).tolist(),
                "png": model.probabilities(self.rows[:1]).tolist(),
            }
        seen = Counter()
        for kind, version, probabilities in self.answers:
            seen[version] += 1
            if version not in expected:
                self.fail(f"{kind} answered by unpublished version {version}")
            elif probabilities != expected[version][kind]:
                self.fail(f"{kind} from {version} gave {probabilities}, not its own")
        self.versions_seen = seen
        if len(versions) == 2 and len(seen) < 2:
            self.fail(f"the switch was never observed: {dict(seen)}")

    def check_memory(self) -> None:
        if len(self.rss) < 4:
            return
        middle = self.rss[len(self.rss) // 2][1]
        last = self.rss[-1][1]
        for worker, (mid, end) in enumerate(zip(middle, last, strict=False), 1):
            if mid and end > mid * RSS_GROWTH_LIMIT:
                self.fail(f"worker {worker} RSS grew from {mid} KiB to {end} KiB")

    def report(self, versions) -> None:
        total = sum(self.counts.values())
        print(f"soak: {self.seconds:.0f}s, {self.threads} client threads")
        print(f"{'kind':<10}{'requests':>10}")
        for kind, count in sorted(self.counts.items()):
            print(f"{kind:<10}{count:>10}")
        print(f"{'total':<10}{total:>10}")
        print("answers per model version: " + json.dumps(dict(self.versions_seen)))
        print(f"{'t (s)':>7}  worker RSS (KiB)")
        for at, values in self.rss:
            print(f"{at:>7.1f}  " + "  ".join(f"{v:>8}" for v in values))
        print(f"requests {total} errors {len(self.errors)}")
        for message in self.errors[:20]:
            print("error: " + message)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--var", default=str(REPO / "var" / "soak"))
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds must be between 1 and 600")

    stack = localstack.Stack(
        var_dir=args.var,
        processes=args.processes,
        env={"ADMIN_TOKEN": TOKEN, "TRACING": "off"},
    )
    import shutil

    shutil.rmtree(stack.var, ignore_errors=True)
    stack.start()
    try:
        publish_random_image_model(stack.model_dir, ["no", "yes"], seed=7)
        return Soak(stack, args.seconds, args.threads).run()
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
