"""The embedded default data set, so ``make run`` serves a model with no download.

scikit-learn installs the UCI optical handwritten digits (1,797 grey 8x8
images, values 0..16) inside its package. The default task is binary: is this
digit an eight (label 1) or a three (label 0), the two digits with the most
similar strokes. Pixels are stretched to 0..255 uint8 so that the model serves
8x8 greyscale PNG uploads exactly like its training images.
"""

from __future__ import annotations

import numpy as np

from app.model.training import Dataset, dataset_from_arrays

DESCRIPTION = "scikit-learn digits (UCI optical recognition), 3 vs 8, 8x8 grey"


def load() -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.isin(digits.target, (3, 8))
    pixels = np.rint(digits.images[keep] * (255 / 16)).astype(np.uint8)
    labels = (digits.target[keep] == 8).astype(np.int8)
    return dataset_from_arrays(
        images=pixels[..., np.newaxis], labels=labels, classes=["three", "eight"]
    )
