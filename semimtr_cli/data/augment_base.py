"""The pipeline contract every augmentation follows, and the samplers the ABINet ops share.

A pipeline is a picklable callable ``pipeline(img, rng=None) -> np.ndarray`` (RGB uint8 in and
out; see :mod:`semimtr_cli.data.augment` for the randomness design). :class:`Pipeline` holds
the owned generator and the ``seed``; subclasses implement :meth:`Pipeline.apply`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PIL import Image

#: One augmentation op: (image, generator) -> image.
Op = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def as_rgb_array(img) -> np.ndarray:
    """An RGB uint8 ``HxWx3`` array of ``img`` (array or PIL image); ValueError for anything else."""
    if isinstance(img, Image.Image):
        img = img.convert("RGB") if img.mode != "RGB" else img
        return np.asarray(img)
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 HxWx3 array, got {arr.dtype} {arr.shape}")
    return arr


def sample_sym(rng: np.random.Generator, magnitude: float) -> float:
    """ABINet ``sample_sym``: (Beta(4,4) - 0.5) * 2 * magnitude, in [-magnitude, magnitude]."""
    return float((rng.beta(4, 4) - 0.5) * 2 * magnitude)


def sample_asym(rng: np.random.Generator, magnitude: float, size=None):
    """ABINet ``sample_asym``: Beta(1,4) * magnitude, in [0, magnitude]."""
    return rng.beta(1, 4, size) * magnitude


class Pipeline:
    """Base: owned generator, seed handling, ``__call__`` contract."""

    name = "base"

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def reseed(self, seed) -> None:
        """Reset the owned generator (frozen construction-time parameters are kept)."""
        self._rng = np.random.default_rng(seed)

    def __call__(self, img, rng: np.random.Generator | None = None) -> np.ndarray:
        arr = as_rgb_array(img)
        out = self.apply(arr, self._rng if rng is None else rng)
        return np.ascontiguousarray(out)

    def apply(self, arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-able settings, including anything frozen at construction (for run logs)."""
        return {"pipeline": self.name, "seed": self.seed}


class Identity(Pipeline):
    """No augmentation (``none``): returns the image as an RGB uint8 array."""

    name = "none"

    def apply(self, arr, rng):
        return arr
