"""python -m app train / models / rollback / default-model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, SHARED_DATA


def cli(model_dir, *args):
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO,
        env=dict(os.environ, MODEL_DIR=str(model_dir)),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_the_published_recipe_from_the_npz(tmp_path):
    result = cli(
        tmp_path,
        "train",
        str(SHARED_DATA / "train.npz"),
        "--solver",
        "gd",
        "--learning-rate",
        "0.005",
        "--iterations",
        "2000",
    )

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert round(summary["train_accuracy"], 4) == 0.9904
    assert "100%" in result.stderr  # progress is shown
    assert cli(tmp_path, "models").stdout.strip() == f"* {summary['model_version']}"


def test_train_from_the_image_folder_matches_the_npz(tmp_path, cat_data):
    folder = SHARED_DATA / "train_images"
    result = cli(tmp_path, "train", str(folder), "--solver", "gd", "--iterations", "50")

    assert result.returncode == 0, result.stderr
    meta_path = next((tmp_path / "versions").iterdir()) / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert meta["input_shape"] == [64, 64, 3]
    # Subfolders sort as cat, non_cat: the folder's label 0 is "cat".
    assert meta["classes"] == ["cat", "non_cat"]
    assert meta["metrics"]["n_examples"] == len(cat_data["labels"])


def test_rollback_to_an_older_version(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(20, 2))
    labels = (features[:, 0] > 0).astype(np.int8)
    np.savez(tmp_path / "d.npz", features=features, labels=labels)
    first = json.loads(cli(tmp_path / "m", "train", str(tmp_path / "d.npz")).stdout)
    second = json.loads(cli(tmp_path / "m", "train", str(tmp_path / "d.npz")).stdout)

    result = cli(tmp_path / "m", "rollback", first["model_version"])

    assert result.returncode == 0, result.stderr
    listing = cli(tmp_path / "m", "models").stdout.split("\n")
    assert f"* {first['model_version']}" in listing
    assert f"  {second['model_version']}" in listing
    missing = cli(tmp_path / "m", "rollback", "20990101T000000000Z-abcdef")
    assert missing.returncode == 2
    assert "no model version '20990101T000000000Z-abcdef'" in missing.stderr


def test_bad_data_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "bad.npz", features=np.ones((3, 2)), labels=np.array([1, 1, 1]))

    result = cli(tmp_path, "train", str(tmp_path / "bad.npz"))

    assert result.returncode == 2
    assert "only one class" in result.stderr
    assert cli(tmp_path, "train", str(tmp_path / "missing.npz")).returncode == 2


def test_default_model_is_the_digits_task_and_only_trained_once(tmp_path):
    first = cli(tmp_path, "default-model")
    again = cli(tmp_path, "default-model")

    assert first.returncode == 0, first.stderr
    assert "already published" in again.stderr
    meta_path = next((tmp_path / "versions").iterdir()) / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert meta["classes"] == ["three", "eight"]
    assert meta["input_shape"] == [8, 8, 1]
    assert meta["metrics"]["train_accuracy"] > 0.97


@pytest.mark.parametrize("mode, channels", [("L", 1), ("RGB", 3)])
def test_image_folder_layout_is_one_subfolder_per_class(tmp_path, mode, channels):
    rng = np.random.default_rng(9)
    for label, name in enumerate(["a_neg", "b_pos"]):
        (tmp_path / "img" / name).mkdir(parents=True)
        for i in range(4):
            value = 40 + 170 * label
            shape = (6, 6) if channels == 1 else (6, 6, 3)
            noise = rng.integers(0, 30, size=shape)
            Image.fromarray((value + noise).astype(np.uint8)).convert(mode).save(
                tmp_path / "img" / name / f"{i}.png"
            )

    result = cli(tmp_path / "m", "train", str(tmp_path / "img"))

    assert result.returncode == 0, result.stderr
    meta = json.loads(
        next((tmp_path / "m" / "versions").iterdir()).joinpath("meta.json").read_text()
    )
    assert meta["input_shape"] == [6, 6, channels]
    assert meta["classes"] == ["a_neg", "b_pos"]
    assert json.loads(result.stdout)["train_accuracy"] == 1.0


def test_an_unreadable_image_in_the_folder_is_a_clear_error(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "img" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(
            tmp_path / "img" / name / "0.png"
        )
    (tmp_path / "img" / "b" / "1.png").write_bytes(b"not a png at all")

    result = cli(tmp_path / "m", "train", str(tmp_path / "img"))

    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
