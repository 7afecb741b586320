"""Model versions on disk: atomic publish, integrity checks, fallback, rollback."""

from __future__ import annotations

import io
import json
import logging
import os

import numpy as np
import pytest

from app.model.store import ModelCache, ModelFileError, ModelStore

META = {
    "classes": ["no", "yes"],
    "input_shape": None,
    "scale": 0.5,
    "threshold": 0.5,
    "solver": "lbfgs",
    "params": {},
    "metrics": {},
}


def publish(store, weights=(1.0, -2.0, 0.5), bias=0.25, **meta):
    return store.publish(np.array(weights), bias, dict(META, **meta))


def test_publish_then_load_round_trips_weights_and_metadata(tmp_path):
    store = ModelStore(tmp_path)

    version = publish(store)
    model = store.load(version)

    assert store.current_version() == version
    np.testing.assert_array_equal(model.weights, [1.0, -2.0, 0.5])
    assert model.bias == 0.25
    assert model.classes == ("no", "yes")
    assert model.n_features == 3
    np.testing.assert_array_equal(model.scaled_weights, np.float32([0.5, -1.0, 0.25]))


def test_probabilities_apply_scale_and_bias(tmp_path):
    store = ModelStore(tmp_path)
    model = store.load(publish(store))

    probabilities = model.probabilities(np.float32([[2, 1, 0], [0, 0, 0]]))

    # z = 0.5 * (2*1 + 1*-2) + 0.25 = 0.25, then the bias alone.
    expected = 1 / (1 + np.exp(-np.array([0.25, 0.25])))
    np.testing.assert_allclose(probabilities, expected, rtol=1e-12)


def test_a_row_scores_the_same_alone_and_in_a_batch(tmp_path):
    store = ModelStore(tmp_path)
    rng = np.random.default_rng(1)
    model = store.load(publish(store, weights=rng.normal(size=12288) / 255))
    rows = rng.integers(0, 256, size=(64, 12288)).astype(np.float32)

    batch = model.probabilities(rows)
    alone = np.concatenate([model.probabilities(rows[i : i + 1]) for i in range(64)])

    np.testing.assert_array_equal(batch, alone)


def test_versions_stay_on_disk_and_rollback_switches_current(tmp_path):
    store = ModelStore(tmp_path)
    first = publish(store)
    second = publish(store, bias=1.0)

    assert store.versions() == [first, second]
    store.set_current(first)

    assert store.current_version() == first
    assert (tmp_path / "current").is_symlink()
    assert os.readlink(tmp_path / "current") == f"versions/{first}"


def test_model_file_is_plain_npz_loadable_without_pickle(tmp_path):
    store = ModelStore(tmp_path)
    version = publish(store)

    with np.load(
        tmp_path / "versions" / version / "model.npz", allow_pickle=False
    ) as f:
        assert sorted(f.files) == ["bias", "weights"]
    meta = json.loads((tmp_path / "versions" / version / "meta.json").read_text())
    assert meta["version"] == version and meta["format"] == "logreg-npz-1"


def test_truncated_model_file_is_refused(tmp_path):
    store = ModelStore(tmp_path)
    version = publish(store)
    path = tmp_path / "versions" / version / "model.npz"
    path.write_bytes(path.read_bytes()[:40])

    with pytest.raises(ModelFileError, match="sha256"):
        store.load(version)


def test_object_arrays_are_refused_even_with_a_matching_hash(tmp_path):
    store = ModelStore(tmp_path)
    version = publish(store)
    folder = tmp_path / "versions" / version
    buffer = io.BytesIO()
    np.savez(buffer, weights=np.array([1, "x"], dtype=object), bias=np.array(0.0))
    (folder / "model.npz").write_bytes(buffer.getvalue())
    meta = json.loads((folder / "meta.json").read_text())
    import hashlib

    meta["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))

    with pytest.raises(ModelFileError, match="invalid"):
        store.load(version)


def test_failed_publish_leaves_nothing_visible(tmp_path, monkeypatch):
    store = ModelStore(tmp_path)
    good = publish(store)

    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("app.model.store._write_file", full_disk)
    with pytest.raises(OSError):
        publish(store, bias=9.0)

    assert store.current_version() == good
    assert store.versions() == [good]
    assert [p.name for p in (tmp_path / "versions").iterdir()] == [good]


def test_cache_follows_current_and_keeps_serving_through_a_corrupt_version(
    tmp_path, caplog
):
    store = ModelStore(tmp_path)
    cache = ModelCache(store)
    first = publish(store)
    assert cache.get().version == first

    second = publish(store, bias=2.0)
    assert cache.get().version == second

    third = publish(store, bias=3.0)
    (tmp_path / "versions" / third / "meta.json").write_text("{not json")
    with caplog.at_level(logging.ERROR):
        assert cache.get().version == second
        assert cache.get().version == second
    refusals = [r for r in caplog.records if "refusing model version" in r.message]
    assert len(refusals) == 1 and third in refusals[0].message


def test_fresh_process_falls_back_to_the_newest_good_version(tmp_path):
    store = ModelStore(tmp_path)
    good = publish(store)
    bad = publish(store, bias=5.0)
    (tmp_path / "versions" / bad / "model.npz").write_bytes(b"garbage")

    assert ModelCache(store).get().version == good


def test_set_current_refuses_a_version_that_does_not_load(tmp_path):
    store = ModelStore(tmp_path)
    good = publish(store)
    bad = publish(store)
    (tmp_path / "versions" / bad / "model.npz").unlink()
    store.set_current(good)

    with pytest.raises(ModelFileError, match="missing"):
        store.set_current(bad)
    assert store.current_version() == good


def test_no_model_means_none(tmp_path):
    store = ModelStore(tmp_path)
    assert store.current_version() is None
    assert ModelCache(store).get() is None
