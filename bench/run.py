"""`make bench`: the real stack under load beside its baselines, in one table.

Every figure comes from this one run on this machine:

- serving: nginx and uWSGI (one worker per core) on 127.0.0.1, driven by
  ``wrk`` for a fixed time per row; the naive baseline handler is served by
  the same uWSGI ini and nginx server block, with only the ini's ``module``
  line swapped;
- training: the service's solvers beside a plain NumPy loop (``gd``) and
  scikit-learn's ``LogisticRegression(solver="lbfgs")`` (``lbfgs``), on the
  shared cat photos and on a synthetic 20000 x 12288 float32 set;
- the peak resident memory of a worker, read from ``/proc`` after the load.

The table is printed and written as Markdown to ``var/bench/results.md``.
Nothing is sent anywhere but loopback.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script, Python puts bench/ on the path, not the checkout.
    sys.path.insert(0, str(REPO))

from app.model import logistic  # noqa: E402
from app.model.store import ModelStore  # noqa: E402
from app.model.threads import set_training_threads  # noqa: E402
from deploy import localstack  # noqa: E402

CAT_DATA = REPO.parent / "shared" / "data" / "catvnoncat" / "train.npz"
OUT = REPO / "var" / "bench"
NAIVE_MODULE = "bench.naive_app:application"
SERVICE_MODULE = "app.wsgi:application"
COLLECTOR_TOKEN = "bench-collector-token"

# The solvers' settings, the same for the service and for its baselines.
GD_RATE = 0.005
GD_ITERATIONS = 2000
L2 = 0.01
TOL = 1e-6
CAT_MAX_ITER = 500
SYNTHETIC_SHAPE = (20000, 12288)
# Both L-BFGS runs on the synthetic set stop here, so the run stays short; the
# final losses are compared at that same iteration budget.
SYNTHETIC_MAX_ITER = 100

LUA = """\
wrk.method = "{method}"
{body}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {{"requests": %.0f, "duration_us": %.0f, "p50_us": %.0f, '
    .. '"p99_us": %.0f, "status_errors": %.0f, "socket_errors": %.0f}}\\n',
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""

LUA_BODY = """\
wrk.headers["Content-Type"] = "{content_type}"
local file = assert(io.open("{path}", "rb"))
wrk.body = file:read("*all")
file:close()
"""


class BenchError(RuntimeError):
    """A run that cannot give honest numbers; the message says why."""


class NaiveStack(localstack.Stack):
    """The same uWSGI ini and nginx block, serving the naive baseline app."""

    def prepare(self) -> None:
        super().prepare()

        ini = self.run_dir / "uwsgi.ini"
        text = ini.read_text()
        swapped = text.replace(f"module = {SERVICE_MODULE}", f"module = {NAIVE_MODULE}")
        if swapped.count(NAIVE_MODULE) != 1:
            raise BenchError(f"{ini} should name {SERVICE_MODULE} exactly once.")
        ini.write_text(swapped)


# -- load ----------------------------------------------------------------


@dataclass
class Load:
    """One wrk run: what was sent and what came back."""

    name: str
    requests_per_second: float
    examples_per_second: float
    p50_ms: float
    p99_ms: float


def run_wrk(url, name, *, body=None, content_type="", examples=1, args=None):
    """Load ``url`` for ``args.seconds`` and return its figures."""
    method = "POST" if body is not None else "GET"
    script = OUT / "wrk" / f"{name.replace(' ', '_').replace('/', '_')}.lua"
    script.parent.mkdir(parents=True, exist_ok=True)
    lua_body = ""
    if body is not None:
        body_path = script.with_suffix(".body")
        body_path.write_bytes(body)
        lua_body = LUA_BODY.format(content_type=content_type, path=body_path)
    script.write_text(LUA.format(method=method, body=lua_body))

    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=args.seconds + 60
    )
    if result.returncode:
        raise BenchError(f"wrk failed for {name}: {result.stderr or result.stdout}")
    line = next((x for x in result.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise BenchError(f"wrk printed no summary for {name}:\n{result.stdout}")
    figures = json.loads(line[len("BENCH ") :])

    # A rate made of error answers would flatter the service: refuse it.
    if figures["status_errors"] or figures["socket_errors"] or not figures["requests"]:
        raise BenchError(f"{name}: errors under load: {figures}")

    rate = figures["requests"] / (figures["duration_us"] / 1e6)
    return Load(
        name=name,
        requests_per_second=rate,
        examples_per_second=rate * examples,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
    )


def post(url, body, content_type):
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": content_type}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.loads(reply.read())


# -- workloads -----------------------------------------------------------


@dataclass
class Bodies:
    json_one: bytes
    float32_one: bytes
    png_one: bytes
    json_hundred: bytes
    float32_thousand: bytes


def make_bodies(images) -> Bodies:
    from PIL import Image

    rows = images.reshape(images.shape[0], -1)
    thousand = np.resize(rows, (1000, rows.shape[1]))
    png = io.BytesIO()
    Image.fromarray(images[0]).save(png, format="PNG")
    return Bodies(
        json_one=json.dumps({"features": rows[0].tolist()}).encode(),
        float32_one=rows[0].astype("<f4").tobytes(),
        png_one=png.getvalue(),
        json_hundred=json.dumps({"instances": rows[:100].tolist()}).encode(),
        float32_thousand=thousand.astype("<f4").tobytes(),
    )


def check_answers(url, bodies: Bodies) -> None:
    """Every encoding of the same photo must score the same before timing it."""
    predict = url + "/api/v1/predict"
    as_json = post(predict, bodies.json_one, "application/json")
    as_bytes = post(predict, bodies.float32_one, "application/octet-stream")
    as_png = post(predict, bodies.png_one, "image/png")

    scores = {
        "json": as_json["predictions"][0]["probability"],
        "float32": as_bytes["predictions"][0]["probability"],
        "png": as_png["predictions"][0]["probability"],
    }
    if len(set(scores.values())) != 1:
        raise BenchError(f"one photo scored differently by encoding: {scores}")


def serve_service(stack, bodies, args) -> tuple[list[Load], float]:
    """The service's rows, then the peak resident memory of its workers (MiB)."""
    predict = stack.url + "/api/v1/predict"
    check_answers(stack.url, bodies)
    warm_up(predict, bodies.json_one, "application/json", args)

    loads = [
        run_wrk(stack.url + "/api/v1/health", "GET /api/v1/health", args=args),
        run_wrk(
            predict,
            "predict 1, JSON",
            body=bodies.json_one,
            content_type="application/json",
            args=args,
        ),
        run_wrk(
            predict,
            "predict 1, float32",
            body=bodies.float32_one,
            content_type="application/octet-stream",
            args=args,
        ),
        run_wrk(
            predict,
            "predict 1, PNG 64x64",
            body=bodies.png_one,
            content_type="image/png",
            args=args,
        ),
        run_wrk(
            predict,
            "predict 100, JSON",
            body=bodies.json_hundred,
            content_type="application/json",
            examples=100,
            args=args,
        ),
        run_wrk(
            predict,
            "predict 1000, float32",
            body=bodies.float32_thousand,
            content_type="application/octet-stream",
            examples=1000,
            args=args,
        ),
    ]
    return loads, peak_worker_mib(stack)


def warm_up(url, body, content_type, args) -> None:
    """Every worker loads the model and fills its caches before a row is timed."""
    quick = argparse.Namespace(**{**vars(args), "seconds": 1})
    run_wrk(url, "warm-up", body=body, content_type=content_type, args=quick)


def peak_worker_mib(stack) -> float:
    peaks = []
    for pid in stack.worker_pids():
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    if not peaks:
        raise BenchError("no uWSGI worker found to read its peak memory from.")
    return max(peaks)


TRACING_ROUNDS = 3


def serve_traced(model_dir, bodies, args) -> tuple[Load, Load] | None:
    """Tracing off and on, both stacks up, measured in alternating rounds.

    The collector is a sink (``decode=False``): it counts spans without the
    pure-Python protobuf decoding, which a real collector does elsewhere and
    which would otherwise take CPU from the workers on these shared cores.
    Each mode's figure is its median round.
    """
    try:
        sys.path.insert(0, str(REPO))
        from tests.doubles.lightstep_collector import LightStepCollector
    except ImportError as error:
        print(f"tracing rows not measured: no collector double ({error})")
        return None

    rounds: dict[str, list[Load]] = {"off": [], "on": []}
    stacks = {}
    with LightStepCollector(decode=False) as collector:
        try:
            for tracing in ("off", "on"):
                env = {"TRACING": tracing, "MODEL_DIR": str(model_dir)}
                if tracing == "on":
                    env.update(collector.env(COLLECTOR_TOKEN, flush_seconds=2.5))
                stacks[tracing] = localstack.Stack(
                    var_dir=OUT / f"stack-tracing-{tracing}",
                    processes=args.processes,
                    env=env,
                ).start()
            for _ in range(TRACING_ROUNDS):
                for tracing, stack in stacks.items():
                    predict = stack.url + "/api/v1/predict"
                    warm_up(
                        predict, bodies.float32_one, "application/octet-stream", args
                    )
                    rounds[tracing].append(
                        run_wrk(
                            predict,
                            f"predict 1, float32, tracing {tracing}",
                            body=bodies.float32_one,
                            content_type="application/octet-stream",
                            args=args,
                        )
                    )
        finally:
            for stack in stacks.values():
                stack.stop()
        if not collector.span_count():
            raise BenchError("tracing on, yet the collector received no span.")

    def median(loads):
        return sorted(loads, key=lambda load: load.requests_per_second)[len(loads) // 2]

    return median(rounds["off"]), median(rounds["on"])


def serve_naive(model_dir, bodies, args) -> Load:
    stack = NaiveStack(
        var_dir=OUT / "stack-naive",
        processes=args.processes,
        env={"TRACING": "off", "MODEL_DIR": str(model_dir)},
    )
    try:
        stack.start()
        predict = stack.url + "/api/v1/predict"
        post(predict, bodies.json_one, "application/json")
        warm_up(predict, bodies.json_one, "application/json", args)
        return run_wrk(
            predict,
            "naive baseline: predict 1, JSON",
            body=bodies.json_one,
            content_type="application/json",
            args=args,
        )
    finally:
        stack.stop()


# -- training ------------------------------------------------------------


@dataclass
class Fit:
    name: str
    seconds: float
    loss: float
    iterations: int


def plain_numpy_gd(X, y, learning_rate, iterations) -> tuple[np.ndarray, float]:
    """The textbook loop: forward pass, cost, gradients, update, every step."""
    n = X.shape[0]
    w = np.zeros(X.shape[1])
    b = 0.0
    for _ in range(iterations):
        a = 1.0 / (1.0 + np.exp(-(X @ w + b)))
        cost = -np.mean(y * np.log(a) + (1 - y) * np.log(1 - a))  # noqa: F841
        dz = a - y
        w = w - learning_rate * (X.T @ dz) / n
        b = b - learning_rate * float(dz.sum()) / n
    return w, b


def objective(X, y, w, b, l2) -> float:
    """Both sides' final weights scored by one function, so losses compare."""
    loss, _, _ = logistic.loss_and_gradient(
        np.asarray(w, dtype=np.float64), float(b), X, y, l2
    )
    return loss


def timed(function):
    started = time.perf_counter()
    value = function()
    return value, time.perf_counter() - started


def fit_gd_pair(X, y) -> tuple[Fit, Fit]:
    ours, seconds = timed(lambda: logistic.fit_gd(X, y, GD_RATE, GD_ITERATIONS, l2=0.0))
    ours_fit = Fit(
        "service gd",
        seconds,
        objective(X, y, ours.weights, ours.bias, 0.0),
        GD_ITERATIONS,
    )

    (w, b), seconds = timed(lambda: plain_numpy_gd(X, y, GD_RATE, GD_ITERATIONS))
    plain_fit = Fit(
        "plain NumPy loop", seconds, objective(X, y, w, b, 0.0), GD_ITERATIONS
    )
    return ours_fit, plain_fit


def fit_lbfgs_pair(X, y, max_iter) -> tuple[Fit, Fit]:
    from sklearn.linear_model import LogisticRegression

    ours, seconds = timed(
        lambda: logistic.fit_lbfgs(X, y, l2=L2, tol=TOL, max_iter=max_iter)
    )
    ours_fit = Fit(
        "service lbfgs",
        seconds,
        objective(X, y, ours.weights, ours.bias, L2),
        ours.iterations,
    )

    # The service minimises mean loss + l2/2 |w|^2; scikit-learn's C times the
    # summed loss + 1/2 |w|^2 has the same minimum when C = 1 / (l2 * n).
    reference = LogisticRegression(
        C=1.0 / (L2 * X.shape[0]), solver="lbfgs", tol=TOL, max_iter=max_iter
    )
    _, seconds = timed(lambda: reference.fit(X, y))
    reference_fit = Fit(
        "scikit-learn lbfgs",
        seconds,
        objective(X, y, reference.coef_[0], reference.intercept_[0], L2),
        int(reference.n_iter_[0]),
    )
    return ours_fit, reference_fit


def train_all(args) -> dict:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    set_training_threads()
    warnings.simplefilter("ignore", ConvergenceWarning)
    fits = {}

    with np.load(CAT_DATA, allow_pickle=False) as archive:
        images = archive["images"]
        labels = archive["labels"].astype(np.float64)
    # The service's own preprocessing: pixels / 255 in float64 at this size.
    X = images.reshape(images.shape[0], -1) * (1 / 255)
    fits["cat gd"] = fit_gd_pair(X, labels)
    fits["cat lbfgs"] = fit_lbfgs_pair(X, labels, CAT_MAX_ITER)

    if not args.skip_synthetic:
        X, y = synthetic_set()
        fits["synthetic lbfgs"] = fit_lbfgs_pair(X, y, SYNTHETIC_MAX_ITER)
        del X
    return fits


def synthetic_set() -> tuple[np.ndarray, np.ndarray]:
    """Float32 features, labels from a hidden linear model with 10% flipped."""
    rng = np.random.default_rng(20000)
    n, f = SYNTHETIC_SHAPE
    X = rng.standard_normal((n, f), dtype=np.float32)
    hidden = rng.standard_normal(f).astype(np.float32) / np.sqrt(f)
    y = (X @ hidden > 0).astype(np.float64)
    flip = rng.random(n) < 0.1
    y[flip] = 1 - y[flip]
    return X, y


def publish_cat_model(model_dir: Path) -> str:
    """The model every serving row scores: lbfgs on the cat photos."""
    from app.model.training import dataset_from_npz, train

    weights, bias, meta = train(dataset_from_npz(CAT_DATA), {"solver": "lbfgs"})
    return ModelStore(model_dir).publish(weights, bias, meta)


# -- report --------------------------------------------------------------


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    blas = ", ".join(
        f"{name}={os.environ[name]}"
        for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")
        if name in os.environ
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
        + (f", {blas}" if blas else "")
    )


def markdown_table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if i else "---" for i in range(len(header))))
    lines[-1] += "|"
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def ratio_line(goal, ratio, target, met, detail="") -> list[str]:
    verdict = "met" if met else "not met"
    shown = "n/a" if ratio is None else f"{ratio:.2f}x"
    return [goal, target, shown, verdict + (f" ({detail})" if detail else "")]


def report(loads, naive, traced, peak_mib, fits, args) -> str:
    by_name = {load.name: load for load in loads}
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
        f"Load: wrk, {args.threads} thread(s), {args.connections} connections, "
        f"{args.seconds} s per row; nginx and {args.processes} uWSGI workers "
        f"on 127.0.0.1. Load average when the run began: {args.load_before:.2f} "
        "(anything else running shares these cores).",
        "",
    ]

    serving = [*loads, naive, *(traced or ())]
    lines += markdown_table(
        ["serving", "requests/s", "examples/s", "p50 ms", "p99 ms"],
        [
            [
                load.name,
                f"{load.requests_per_second:,.0f}",
                f"{load.examples_per_second:,.0f}",
                f"{load.p50_ms:.2f}",
                f"{load.p99_ms:.2f}",
            ]
            for load in serving
        ],
    )
    if traced is None:
        lines.append("| predict, tracing on / off | not measured | | | |")
    lines += ["", f"Peak resident memory of a worker: {peak_mib:.0f} MiB.", ""]

    training_rows = []
    for task, pair in fits.items():
        for fit in pair:
            training_rows.append(
                [task, fit.name, f"{fit.seconds:.2f}", str(fit.iterations)]
                + [f"{fit.loss:.6f}"]
            )
    lines += markdown_table(
        ["training", "solver", "seconds", "iterations", "final loss"], training_rows
    )
    lines += [
        "",
        f"gd: {GD_ITERATIONS} iterations at rate {GD_RATE}, no penalty. lbfgs: "
        f"l2 {L2} (scikit-learn C = 1 / (l2 * n)), tol {TOL}, at most "
        f"{CAT_MAX_ITER} iterations on the cat photos and {SYNTHETIC_MAX_ITER} on "
        f"the synthetic {SYNTHETIC_SHAPE[0]} x {SYNTHETIC_SHAPE[1]} float32 set. "
        "Losses: both sides' weights scored by the service's objective.",
        "",
    ]

    goals = [
        ratio_line(
            "JSON predict vs naive baseline",
            by_name["predict 1, JSON"].requests_per_second / naive.requests_per_second,
            ">= 5x",
            by_name["predict 1, JSON"].requests_per_second
            >= 5 * naive.requests_per_second,
        ),
        ratio_line(
            "float32 predict vs health",
            by_name["predict 1, float32"].requests_per_second
            / by_name["GET /api/v1/health"].requests_per_second,
            ">= 0.5x",
            by_name["predict 1, float32"].requests_per_second
            >= 0.5 * by_name["GET /api/v1/health"].requests_per_second,
        ),
    ]
    if traced is None:
        goals.append(ratio_line("tracing on vs off", None, ">= 0.9x", False))
    else:
        off, on = traced
        ratio = on.requests_per_second / off.requests_per_second
        goals.append(ratio_line("tracing on vs off", ratio, ">= 0.9x", ratio >= 0.9))
    for task, (ours, baseline) in fits.items():
        ratio = baseline.seconds / ours.seconds
        gap = abs(ours.loss - baseline.loss)
        if "lbfgs" in task:
            met = ratio >= 1 and gap <= 1e-4
            target = "speed >= 1x, loss within 1e-4"
        else:
            met = ratio >= 1
            target = "speed >= 1x"
        goals.append(
            ratio_line(
                f"{task} vs {baseline.name}", ratio, target, met, f"loss gap {gap:.1e}"
            )
        )
    lines += markdown_table(["goal", "target", "ratio", "verdict"], goals)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="per load row")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="wrk's threads")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--skip-synthetic",
        action="store_true",
        help="leave out the 1 GB synthetic training set",
    )
    args = parser.parse_args(argv)
    args.load_before = os.getloadavg()[0]

    if shutil.which("wrk") is None:
        print("error: wrk is missing: apt-get install wrk", file=sys.stderr)
        return 1
    if not CAT_DATA.exists():
        print(f"error: the shared cat data is missing: {CAT_DATA}", file=sys.stderr)
        return 1

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    model_dir = OUT / "models"

    # Training first: it uses every core, and must not overlap the load rows.
    fits = train_all(args)
    publish_cat_model(model_dir)

    with np.load(CAT_DATA, allow_pickle=False) as archive:
        bodies = make_bodies(archive["images"])

    stack = localstack.Stack(
        var_dir=OUT / "stack",
        processes=args.processes,
        env={"TRACING": "off", "MODEL_DIR": str(model_dir)},
    )
    try:
        stack.start()
        loads, peak_mib = serve_service(stack, bodies, args)
    finally:
        stack.stop()
    naive = serve_naive(model_dir, bodies, args)
    traced = serve_traced(model_dir, bodies, args)

    table = report(loads, naive, traced, peak_mib, fits, args)
    (OUT / "results.md").write_text(table)
    print(table, end="")
    print(f"\n(written to {OUT / 'results.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
