"""Backgrounds behind synthetic words: crops of the user's photographs or procedural textures.

``--backgrounds DIR`` gives a folder of images (photographs of walls, signs, packaging, streets...
never a benchmark test image); :func:`image_background` cuts a random window out of one, at a
random scale, and tints it towards the drawn background colour so the text keeps its contrast.
Without a folder :func:`procedural_background` draws one of several textures (smooth noise
fields, wood-like stripes, brick or tile grids, fabric-like grain, soft gradients) in that colour.
Both return (h, w, 3) float32 in [0, 1].
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.files import list_images

PROCEDURAL_KINDS = ("plain", "gradient", "noise", "stripes", "grid", "grain")
_CACHE_SIDE = 256  # background photographs are kept at most this many pixels on the short side


def list_backgrounds(folder: str | Path) -> list[str]:
    """Image files under ``folder`` (recursively); SemimtrError when there are none."""
    files = [str(p) for p in list_images(folder)]
    if not files:
        raise SemimtrError(f"no image files in the backgrounds folder {folder}")
    return files


@lru_cache(maxsize=256)
def _photo(path: str) -> np.ndarray:
    """The photograph at ``path`` as float32 RGB, shrunk so its short side is <= 256 px."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = _CACHE_SIDE / min(im.size)
            if scale < 1:
                im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                               Image.Resampling.BILINEAR)
            return np.asarray(im, np.float32) / 255.0
    except OSError as exc:
        raise SemimtrError(f"{path}: cannot read background image ({exc})") from None


def image_background(rng: np.random.Generator, path: str, colour: np.ndarray, h: int, w: int) -> np.ndarray:
    """A random window of the photograph at ``path``, resized to (h, w), with its mean moved
    most of the way to ``colour`` (the photograph's structure stays, its tone follows the draw)."""
    photo = _photo(path)
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.3, 1.0)
    ch = max(2, min(ph, int(round(ph * scale))))
    cw = max(2, min(pw, int(round(ch * w / max(h, 1)))))
    y = int(rng.integers(0, ph - ch + 1))
    x = int(rng.integers(0, pw - cw + 1))
    window = Image.fromarray((photo[y:y + ch, x:x + cw] * 255).astype(np.uint8))
    arr = np.asarray(window.resize((w, h), Image.Resampling.BILINEAR), np.float32) / 255.0
    detail = (arr - arr.mean((0, 1))) * rng.uniform(0.3, 0.8)
    return np.clip(colour + detail, 0, 1)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int]) -> np.ndarray:
    """(h, w) float32 in about [-0.5, 0.5]: random values on a coarse grid, bicubically enlarged."""
    coarse = rng.uniform(0, 255, (max(cells[0], 2), max(cells[1], 2))).astype(np.uint8)
    field = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(field, np.float32) / 255.0 - 0.5


def procedural_background(rng: np.random.Generator, colour: np.ndarray, h: int, w: int,
                          kind: str | None = None) -> np.ndarray:
    """A texture of ``kind`` (random of :data:`PROCEDURAL_KINDS` when None) around ``colour``."""
    kind = kind or PROCEDURAL_KINDS[int(rng.integers(len(PROCEDURAL_KINDS)))]
    base = np.broadcast_to(colour.astype(np.float32), (h, w, 3))
    if kind == "plain":
        return base.copy()
    ys, xs = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]  # broadcast as a grid
    strength = rng.uniform(0.04, 0.16)
    if kind == "gradient":
        theta = rng.uniform(0, 2 * math.pi)
        t = xs * math.cos(theta) / max(w, 1) + ys * math.sin(theta) / max(h, 1)
        field = (t - t.mean()) / (np.ptp(t) + 1e-6)
    elif kind == "noise":
        field = _smooth_noise(rng, h, w, (int(rng.integers(2, 8)), int(rng.integers(3, 20))))
    elif kind == "stripes":  # wood grain, corrugated metal, blinds
        period = rng.uniform(3, 14)
        wobble = _smooth_noise(rng, h, w, (3, 6)) * rng.uniform(0, 6)
        along = ys if rng.uniform() < 0.7 else xs
        field = 0.5 * np.sin(2 * math.pi * (along + wobble) / period)
    elif kind == "grid":  # bricks, tiles
        cell_h, cell_w = rng.uniform(6, 20), rng.uniform(10, 40)
        row = np.floor(ys / cell_h)
        shifted = xs + (row % 2) * cell_w / 2 * (rng.uniform() < 0.6)
        edge = (np.mod(ys, cell_h) < 1.2) | (np.mod(shifted, cell_w) < 1.2)
        field = np.where(edge, -0.5, 0.1 * _smooth_noise(rng, h, w, (4, 8)))
    else:  # grain: paper, concrete, fabric
        field = rng.normal(0, 0.25, (h, w)).astype(np.float32) + _smooth_noise(rng, h, w, (3, 6))
    tint = 1.0 + rng.uniform(-0.3, 0.3, 3).astype(np.float32)
    return np.clip(base + (strength * field)[..., None] * tint, 0, 1).astype(np.float32)
