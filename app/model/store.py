"""Model versions on disk, published atomically, reloaded cheaply by every worker.

Layout of ``MODEL_DIR``::

    versions/<version>/model.npz   weights and bias (no pickle, ever)
    versions/<version>/meta.json   preprocessing, classes, params, metrics, sha256
    current -> versions/<version>  the published version, switched by rename(2)

A version folder is written under a temporary name, fsynced and renamed into
place before ``current`` is switched, so a reader sees either the old version
or the whole new one. Old versions stay for rollback.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy import special

log = logging.getLogger(__name__)

VERSION_PATTERN = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]{6}$")
FORMAT = "logreg-npz-1"


class ModelFileError(ValueError):
    """A version on disk is missing, corrupt or inconsistent."""


@dataclass(frozen=True)
class LoadedModel:
    """A published model, ready to score raw (unscaled) feature rows."""

    version: str
    meta: dict
    weights: np.ndarray  # float64, applies to scaled features
    bias: float
    scaled_weights: np.ndarray  # float32, weights * scale: applies to raw rows

    @property
    def n_features(self) -> int:
        return int(self.meta["n_features"])

    @property
    def input_shape(self):
        shape = self.meta.get("input_shape")
        return tuple(shape) if shape else None

    @property
    def classes(self):
        return tuple(self.meta["classes"])

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    def probabilities(self, raw_rows):
        """P(label 1) for each raw row; the scale is folded into the weights.

        Each row gets its own dot product rather than one matrix-vector
        product: BLAS sums a batch in a different order than a single row, and
        an example must score the same whether it is sent alone or in a batch.
        """
        weights = self.scaled_weights
        z = np.fromiter(
            (np.dot(row, weights) for row in raw_rows),
            dtype=np.float64,
            count=raw_rows.shape[0],
        )
        return special.expit(z + self.bias)


def new_version_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z"
    return f"{stamp}-{secrets.token_hex(3)}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class ModelStore:
    def __init__(self, root):
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.current_link = self.root / "current"

    def ensure(self) -> None:
        self.versions_dir.mkdir(parents=True, exist_ok=True)

    def current_version(self) -> str | None:
        """The published version id, from one readlink(2): cheap enough per request."""
        try:
            target = os.readlink(self.current_link)
        except FileNotFoundError:
            return None
        return os.path.basename(target)

    def versions(self) -> list[str]:
        """Every complete version folder, oldest first."""
        if not self.versions_dir.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.versions_dir.iterdir()
            if VERSION_PATTERN.match(entry.name)
        )

    def publish(self, weights, bias: float, meta: dict) -> str:
        """Write a new version and make it current; nothing is visible until done."""
        self.ensure()
        version = new_version_id()
        staging = self.versions_dir / f".staging-{version}"
        staging.mkdir()
        try:
            buffer = _npz_bytes(weights, bias)
            _write_file(staging / "model.npz", buffer)

            record = dict(meta)
            record.update(
                format=FORMAT,
                version=version,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                sha256=hashlib.sha256(buffer).hexdigest(),
                n_features=int(np.asarray(weights).shape[0]),
            )
            _write_file(staging / "meta.json", json.dumps(record, indent=2).encode())
            _fsync_dir(staging)

            os.rename(staging, self.versions_dir / version)
            _fsync_dir(self.versions_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

        self.set_current(version)
        return version

    def set_current(self, version: str) -> None:
        """Point ``current`` at a complete version (publish, or roll back)."""
        self.load(version)  # refuse to publish anything that would not load

        temporary = self.root / f".current-{os.getpid()}-{secrets.token_hex(4)}"
        os.symlink(os.path.join("versions", version), temporary)
        try:
            os.replace(temporary, self.current_link)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_dir(self.root)

    def load(self, version: str) -> LoadedModel:
        if not VERSION_PATTERN.match(version):
            raise ModelFileError(f"{version!r} is not a model version id.")
        folder = self.versions_dir / version

        try:
            meta = json.loads((folder / "meta.json").read_text())
            blob = (folder / "model.npz").read_bytes()
        except FileNotFoundError as error:
            raise ModelFileError(
                f"version {version} is missing {error.filename}"
            ) from None
        except (OSError, ValueError) as error:
            raise ModelFileError(f"version {version} is unreadable: {error}") from None

        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelFileError(
                f"version {version}: meta.json is not a {FORMAT} record"
            )
        if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
            raise ModelFileError(
                f"version {version}: model.npz does not match its sha256"
            )

        weights, bias = _read_npz(blob, version)
        _check_meta(meta, weights, version)

        scale = float(meta["scale"])
        return LoadedModel(
            version=version,
            meta=meta,
            weights=weights,
            bias=bias,
            scaled_weights=(weights * scale).astype(np.float32),
        )


def _npz_bytes(weights, bias) -> bytes:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        weights=np.asarray(weights, dtype=np.float64),
        bias=np.asarray(bias, dtype=np.float64),
    )
    return buffer.getvalue()


def _read_npz(blob: bytes, version: str):
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
            weights = np.array(archive["weights"], dtype=np.float64)
            bias = np.array(archive["bias"], dtype=np.float64)
    except (KeyError, ValueError, OSError, EOFError) as error:
        raise ModelFileError(
            f"version {version}: model.npz is invalid: {error}"
        ) from None

    if weights.ndim != 1 or bias.shape != ():
        raise ModelFileError(f"version {version}: weights or bias have the wrong shape")
    if not (np.isfinite(weights).all() and np.isfinite(bias)):
        raise ModelFileError(f"version {version}: weights or bias are not finite")
    return weights, float(bias)


def _check_meta(meta: dict, weights, version: str) -> None:
    classes = meta.get("classes")
    if not (isinstance(classes, list) and len(classes) == 2):
        raise ModelFileError(f"version {version}: 'classes' must list two names")
    if meta.get("n_features") != weights.shape[0]:
        raise ModelFileError(
            f"version {version}: n_features disagrees with the weights"
        )

    shape = meta.get("input_shape")
    if shape is not None:
        valid = (
            isinstance(shape, list)
            and len(shape) == 3
            and all(isinstance(side, int) and side > 0 for side in shape)
        )
        if not valid or int(np.prod(shape)) != weights.shape[0]:
            raise ModelFileError(
                f"version {version}: input_shape disagrees with weights"
            )

    for key in ("scale", "threshold"):
        value = meta.get(key)
        if not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ModelFileError(f"version {version}: '{key}' must be a finite number")


class ModelCache:
    """The model this process serves, swapped when ``current`` moves.

    A version that fails to load is logged once and skipped: the process keeps
    serving what it had, or, when it had nothing yet, the newest version on
    disk that does load.
    """

    def __init__(self, store: ModelStore):
        self.store = store
        self._loaded: LoadedModel | None = None
        self._refused: str | None = None
        self._lock = threading.Lock()

    def get(self) -> LoadedModel | None:
        target = self.store.current_version()
        loaded = self._loaded
        if target is None or (loaded is not None and loaded.version == target):
            return loaded
        if target == self._refused:
            return loaded

        with self._lock:
            if self._loaded is not None and self._loaded.version == target:
                return self._loaded
            try:
                self._loaded = self.store.load(target)
                self._refused = None
                log.info("serving model version %s", target)
            except ModelFileError as error:
                self._refused = target
                log.error("refusing model version %s: %s", target, error)
                if self._loaded is None:
                    self._loaded = self._newest_good(exclude=target)
            return self._loaded

    def _newest_good(self, exclude: str) -> LoadedModel | None:
        for version in reversed(self.store.versions()):
            if version == exclude:
                continue
            try:
                model = self.store.load(version)
            except ModelFileError as error:
                log.error("refusing model version %s: %s", version, error)
                continue
            log.warning("serving older model version %s instead", version)
            return model
        return None
