"""Training augmentation pipelines: the factory, two-view pairs and the per-LMDB pipeline.

Every pipeline is a picklable callable ``pipeline(img, rng=None) -> np.ndarray``:

* ``img``: RGB uint8 array ``HxWx3`` or an RGB PIL image.
* returns: RGB uint8 array ``H'xW'x3`` (geometry may change the size; the 32x128 resize
  happens later in :func:`semimtr_cli.data.image.to_model_input`).
* ``rng``: a ``numpy.random.Generator`` for this call's random draws. When omitted, the
  pipeline's own generator (seeded at construction with ``seed``) is used.

Randomness design: parameters the official code freezes at construction (ABINet's geometric
type, its deterioration parameters) are drawn once from ``seed`` when the pipeline is built.
Per-call draws come from the ``rng`` argument, so a dataset can make every sample
reproducible regardless of worker assignment, e.g.
``pipeline(img, np.random.default_rng([seed, epoch, index]))``. A pipeline copied into
DataLoader workers carries the same owned generator state in each worker: pass ``rng``
explicitly, or call :meth:`reseed` in ``worker_init_fn``.

Names for :func:`build_pipeline`: ``abinet`` (weak/teacher view, ``abinet.py``),
``strong1`` (SemiMTR severity 1: student view and both SeqCLR views) and ``strong2``
(severity 2, SeqCLR paper's list), both in ``strong.py``, and ``none``. Which views a
training stage draws is the recipe's ``augment`` block (``train.recipe.training_views``);
:class:`PerSourcePipeline` is how training builds them (one frozen pipeline per LMDB).
See docs/augmentation.md for the mapping to the official code and every difference.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from semimtr_cli.core.errors import UsageError
from semimtr_cli.data.augment.abinet import AbinetAugment
from semimtr_cli.data.augment.base import Identity, Pipeline
from semimtr_cli.data.augment.strong import Strong1Augment, Strong2Augment

__all__ = [
    "PIPELINE_NAMES", "Pipeline", "Identity", "AbinetAugment", "Strong1Augment", "Strong2Augment",
    "build_pipeline", "TwoViewPipeline", "two_view", "PerSourcePipeline",
]

PIPELINE_NAMES = ("abinet", "strong1", "strong2", "none")
_BUILDERS = {"abinet": AbinetAugment, "strong1": Strong1Augment, "strong2": Strong2Augment, "none": Identity}


def build_pipeline(name: str, seed: int | None = None, **options) -> Pipeline:
    """Build a pipeline by name (``abinet``, ``strong1``, ``strong2``, ``none``).

    ``options`` are the class's keyword arguments (e.g. ``geometry_p=0``,
    ``freeze_geometry_type=False``).

    Raises:
        UsageError: unknown name or option.
    """
    key = str(name).strip().lower()
    if key not in _BUILDERS:
        raise UsageError(f"unknown augmentation pipeline {name!r}; choose one of {', '.join(PIPELINE_NAMES)}")
    try:
        return _BUILDERS[key](seed, **options)
    except TypeError as exc:
        raise UsageError(f"pipeline {key!r}: {exc}") from None


class TwoViewPipeline:
    """Two independent augmented views of the same crop: ``(img, rng) -> (view1, view2)``.

    Each view is computed from the original image (the student view is not stacked on the
    teacher view), as in SemiMTR's two-view datasets.
    """

    def __init__(self, first: Pipeline, second: Pipeline):
        self.first = first
        self.second = second

    def __call__(self, img, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.first(img, rng), self.second(img, rng)

    def reseed(self, seed) -> None:
        self.first.reseed(seed)
        self.second.reseed(None if seed is None else [int(np.asarray(seed).ravel()[0]), 1])

    def describe(self) -> dict[str, Any]:
        return {"first": self.first.describe(), "second": self.second.describe()}


def two_view(first: str, second: str, seed: int | None = None, **options) -> TwoViewPipeline:
    """Pipelines ``first`` and ``second`` as one two-view pipeline, seeded ``seed`` and ``seed + 1``
    (e.g. a fine-tuning recipe's ``augment.teacher`` and ``augment.student``). ``options`` go
    to both pipelines where they accept them."""
    seeds = (None, None) if seed is None else (int(seed), int(seed) + 1)
    return TwoViewPipeline(
        build_pipeline(first, seeds[0], **_accepted(first, options)),
        build_pipeline(second, seeds[1], **_accepted(second, options)),
    )


def _accepted(name: str, options: dict) -> dict:
    cls = _BUILDERS.get(str(name).strip().lower())
    if cls is None:
        return options  # build_pipeline names the unknown pipeline
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in options.items() if k in params}


class PerSourcePipeline:
    """A named augmentation pipeline built once per LMDB, seeded ``seed * 1000 + lmdb index``.

    The official loader builds its transform per LMDB dataset, and ABINet's augmentation
    freezes one geometric type and one set of deterioration parameters at construction, so
    each LMDB gets its own frozen choice. This reproduces that. Built lazily in each worker.

    ``ramp`` = (start, length) in global draws switches the augmentation on gradually (a named
    CPU-recipe option, off in the paper recipes): the crop of draw ``d`` is augmented with
    probability ``clip((d - start) / length, 0, 1)``, so a model from scratch first locks onto
    characters on clean crops. The decision comes from the item's own generator, so it is as
    reproducible as the augmentation itself.
    """

    def __init__(self, name: str, seed: int, ramp: tuple[int, int] = (0, 0)):
        self.name, self.seed = name, int(seed)
        self.ramp = (int(ramp[0]), int(ramp[1]))
        self._built: dict[int, Pipeline] = {}

    def augment_share(self, draw: int) -> float:
        """Probability that the crop of global draw ``draw`` is augmented."""
        start, length = self.ramp
        if draw < start:
            return 0.0
        return 1.0 if length <= 0 else min(1.0, (draw - start) / length)

    def __call__(self, img: np.ndarray, rng: np.random.Generator, *, source: int = 0, draw: int = 0) -> np.ndarray:
        if self.ramp != (0, 0) and rng.uniform() >= self.augment_share(draw):
            return img
        return self.for_source(source)(img, rng)

    def for_source(self, source: int) -> Pipeline:
        """The frozen pipeline of source (LMDB) ``source``, built on first use."""
        if source not in self._built:
            self._built[source] = build_pipeline(self.name, seed=self.seed * 1000 + source)
        return self._built[source]
