"""Command line: ``python -m app train DATA``, ``watcher-check``, and more.

Run ``python -m app --help`` for the list.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from app.settings import Settings, SettingsError

log = logging.getLogger("app.cli")


def _progress_printer(stream=sys.stderr):
    """A one-line progress bar for a terminal, plain lines for a log file."""
    interactive = stream.isatty()
    last_shown = [-1]

    def show(fraction, iteration, loss):
        percent = int(fraction * 100)
        if percent == last_shown[0]:
            return
        last_shown[0] = percent
        bar = "#" * (percent // 5)
        line = (
            f"training [{bar:<20}] {percent:3d}%  "
            f"iteration {iteration}  loss {loss:.6f}"
        )
        if interactive:
            stream.write("\r" + line)
            if fraction >= 1.0:
                stream.write("\n")
        elif percent % 10 == 0:
            stream.write(line + "\n")
        stream.flush()

    return show


def _load_dataset(path: Path):
    from app.model import training

    if path.is_dir():
        return training.dataset_from_folder(path)
    return training.dataset_from_npz(path)


def cmd_train(args, settings: Settings) -> int:
    from PIL import UnidentifiedImageError

    from app.model import training
    from app.model.features import FeatureError
    from app.model.store import ModelStore
    from app.model.threads import set_training_threads

    set_training_threads(args.threads)
    params = {
        name: getattr(args, name)
        for name in (
            "solver",
            "learning_rate",
            "iterations",
            "l2",
            "tol",
            "max_iter",
            "scale",
            "device",
        )
        if getattr(args, name) is not None
    }
    try:
        params = training.validate_params(params)
        dataset = _load_dataset(Path(args.data))
    except (
        training.DataError,
        FeatureError,
        UnidentifiedImageError,
        FileNotFoundError,
        NotADirectoryError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    print(
        f"training {params['solver']} on {dataset.raw.shape[0]} examples of "
        f"{dataset.raw.shape[1]} features",
        file=sys.stderr,
    )
    weights, bias, meta = training.train(dataset, params, progress=_progress_printer())
    version = ModelStore(settings.model_dir).publish(weights, bias, meta)

    metrics = meta["metrics"]
    print(
        json.dumps(
            {
                "model_version": version,
                "train_accuracy": metrics["train_accuracy"],
                "log_loss": metrics["log_loss"],
                "iterations": metrics["iterations"],
                "seconds": metrics["seconds"],
            }
        )
    )
    return 0


def cmd_run_job(args, settings: Settings) -> int:
    from app.model import jobs, training
    from app.model.store import ModelStore
    from app.model.threads import set_training_threads
    from app.observability.metrics import observe_job_record
    from app.tracing.jobs import JobTrace

    set_training_threads()
    job_store = jobs.JobStore(settings.model_dir)
    record = job_store.read(args.job_id)
    if record is None:
        print(f"error: no job {args.job_id}", file=sys.stderr)
        return 2

    with JobTrace(settings, record) as trace:

        def train_fn(data_path, progress):
            dataset = training.dataset_from_npz(data_path)
            weights, bias, meta = training.train(
                dataset, record["params"], progress=trace.progress(progress)
            )
            version = ModelStore(settings.model_dir).publish(weights, bias, meta)
            return version, meta["metrics"]

        status = jobs.run(args.job_id, settings.model_dir, train_fn)
        trace.outcome(job_store.read(args.job_id))
    observe_job_record(job_store.read(args.job_id))
    return status


def cmd_default_model(args, settings: Settings) -> int:
    """Train and publish the embedded default model unless one is published."""
    from app.model import default_data, training
    from app.model.store import ModelStore

    store = ModelStore(settings.model_dir)
    if store.current_version() and not args.force:
        print(f"model {store.current_version()} already published", file=sys.stderr)
        return 0

    dataset = default_data.load()
    params = training.validate_params({"solver": "lbfgs"})
    weights, bias, meta = training.train(dataset, params, progress=_progress_printer())
    meta["dataset"] = default_data.DESCRIPTION
    version = store.publish(weights, bias, meta)
    print(
        f"published default model {version}: {default_data.DESCRIPTION}, "
        f"train accuracy {meta['metrics']['train_accuracy']:.4f}",
        file=sys.stderr,
    )
    return 0


def cmd_models(args, settings: Settings) -> int:
    from app.model.store import ModelStore

    store = ModelStore(settings.model_dir)
    current = store.current_version()
    for version in store.versions():
        print(("* " if version == current else "  ") + version)
    return 0


def cmd_rollback(args, settings: Settings) -> int:
    from app.model.store import ModelFileError, ModelStore

    store = ModelStore(settings.model_dir)
    if args.version not in store.versions():
        print(
            f"error: no model version {args.version!r}; "
            "`python -m app models` lists them.",
            file=sys.stderr,
        )
        return 2
    try:
        store.set_current(args.version)
    except ModelFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"current model is now {args.version}", file=sys.stderr)
    return 0


def cmd_watcher_check(args, settings: Settings) -> int:
    from app.watcher.cli import watcher_check_main

    return watcher_check_main(args.rest, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="Train and manage the service's models; check Watcher health.",
    )
    # run-job is started by the service itself, so it is left out of the list.
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="{train,models,rollback,default-model,watcher-check}",
    )

    train = commands.add_parser("train", help="train a model and publish it")
    train.add_argument("data", help=".npz (images or features, labels) or image folder")
    train.add_argument("--solver", choices=("lbfgs", "gd"))
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--iterations", type=int)
    train.add_argument("--l2", type=float)
    train.add_argument("--tol", type=float)
    train.add_argument("--max-iter", type=int)
    train.add_argument("--scale", type=float, help="multiplier for raw values")
    train.add_argument(
        "--device", choices=("cpu", "gpu"), help="gpu: CuPy arrays (needs CuPy)"
    )
    train.add_argument("--threads", type=int, help="BLAS threads (default: all cores)")
    train.set_defaults(handler=cmd_train)

    job = commands.add_parser("run-job")
    job.add_argument("job_id")
    job.set_defaults(handler=cmd_run_job)

    default = commands.add_parser(
        "default-model", help="publish the embedded default model if none exists"
    )
    default.add_argument(
        "--force", action="store_true", help="train even if one exists"
    )
    default.set_defaults(handler=cmd_default_model)

    listing = commands.add_parser("models", help="list model versions (* = current)")
    listing.set_defaults(handler=cmd_models)

    rollback = commands.add_parser("rollback", help="make an older version current")
    rollback.add_argument("version")
    rollback.set_defaults(handler=cmd_rollback)

    watcher = commands.add_parser(
        "watcher-check", help="print the Elasticsearch Watcher health report"
    )
    watcher.add_argument("rest", nargs=argparse.REMAINDER)
    watcher.set_defaults(handler=cmd_watcher_check)
    return parser


def main(argv=None) -> int:
    from app import configure_logging

    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # The service's own set-up: JSON or text lines, secrets scrubbed.
    configure_logging(settings)
    return args.handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
