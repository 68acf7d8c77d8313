"""The ``dotmatrix`` style: text made of dots, as LED signs and inkjet-printed codes show it.

Two real surfaces share one construction:

* **LED displays** (bus and train destination signs, shop tickers, price boards): lit dots in
  amber, red, green, white or blue on a dark panel whose unlit dots stay faintly visible, with a
  glow around each lit dot;
* **inkjet / dot-matrix print** (best-before dates, lot codes and prices on packaging, receipts):
  dark ink dots on a light, tinted or textured surface, slightly misplaced, some missing.

The word is drawn with an ordinary font on a coarse grid of ``rows`` cells per text line
(7 to 10), thresholded into on/off cells, and every cell is stamped with a round or square dot
(:func:`dot_mask`), so letters keep the font's shapes but are made of separate dots: a domain
shift from the solid strokes the shipped model learned, which the quickstart adapts to.
All randomness comes from the generator, in a fixed order.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

from semimtr_cli.data.synth.backgrounds import procedural_background
from semimtr_cli.data.synth.render import noise_and_jpeg, rgb_image, text_masks, tilt_corners

CELL = 5  # supersampled pixels per dot cell
LED_COLOURS = np.array([  # lit-dot colours of LED displays (RGB, 0..1)
    [1.00, 0.62, 0.05],  # amber
    [1.00, 0.16, 0.08],  # red
    [0.25, 1.00, 0.35],  # green
    [0.95, 0.95, 0.85],  # white
    [0.30, 0.65, 1.00],  # blue
], np.float32)
LED_WEIGHTS = np.array([0.4, 0.2, 0.15, 0.15, 0.1])
INK_COLOURS = np.array([[0.05, 0.05, 0.06], [0.08, 0.10, 0.35], [0.45, 0.05, 0.05]], np.float32)  # black, blue, red ink
INK_WEIGHTS = np.array([0.75, 0.15, 0.1])


def dot_grid(text: str, font_path: str, rows: int) -> np.ndarray:
    """(rows', cols) bool: which cells of a ``rows``-high text line are on (rows' >= rows with descenders)."""
    fill, _, _ = text_masks(text, font_path, max(6, int(round(rows / 0.72))), 0)
    return np.asarray(fill) >= 128


def dot_mask(grid: np.ndarray, rng: np.random.Generator, radius: float, square: bool, jitter: float,
             dropout: float) -> np.ndarray:
    """(rows * CELL, cols * CELL) float32 in [0, 1]: one dot of ``radius`` (fraction of the cell)
    per on cell of ``grid``, moved by up to ``jitter`` cells, each missing with probability ``dropout``."""
    rows, cols = grid.shape
    r, c = np.nonzero(grid & (rng.uniform(size=grid.shape) >= dropout))
    ys, xs = np.mgrid[0:CELL, 0:CELL].astype(np.float32) + 0.5 - CELL / 2
    shift = (rng.uniform(-jitter, jitter, (len(r), 2, 1, 1)) * CELL).astype(np.float32) if jitter else np.zeros((1, 2, 1, 1), np.float32)
    dx, dy = xs - shift[:, 0], ys - shift[:, 1]
    dist = np.maximum(np.abs(dx), np.abs(dy)) if square else np.hypot(dx, dy)
    out = np.zeros((rows, CELL, cols, CELL), np.float32)
    out[r, :, c, :] = np.clip(radius * CELL / 2 - dist + 0.5, 0, 1)
    return out.reshape(rows * CELL, cols * CELL)


def _padding(rng: np.random.Generator) -> np.ndarray:
    """(2, 2) np.pad widths in cells: 0-2 cells of empty panel above/below the text, 1-4 left/right."""
    return np.stack([rng.integers(0, 3, 2), rng.integers(1, 5, 2)])


def _tilted(masks: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The masks under one small rotation (+-3 deg), slant (+-0.15) and perspective jitter."""
    h, w = masks[0].shape
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    out_w, out_h, coeffs = tilt_corners(rng, src, rotation_deg=3.0, shear=0.15, perspective=0.06, steepness=math.inf)
    return [np.asarray(Image.fromarray(np.uint8(m * 255)).transform(
        (out_w, out_h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR, fillcolor=0), np.float32) / 255.0
        for m in masks]


def _led(rng: np.random.Generator, lit: np.ndarray, unlit: np.ndarray) -> np.ndarray:
    """(h, w, 3) LED panel: dark background, faint unlit dots, lit dots with a glow."""
    h, w = lit.shape
    colour = LED_COLOURS[rng.choice(len(LED_COLOURS), p=LED_WEIGHTS)] * rng.uniform(0.85, 1.0)
    panel = np.float32(rng.uniform(0.0, 0.12)) + rng.normal(0, 0.01, 3).astype(np.float32)
    canvas = np.broadcast_to(np.clip(panel, 0, 1), (h, w, 3)).astype(np.float32)
    canvas = canvas + unlit[..., None] * np.float32(rng.uniform(0.03, 0.2)) * (0.4 + 0.6 * colour)
    glow = np.asarray(Image.fromarray(np.uint8(lit * 255)).filter(ImageFilter.GaussianBlur(CELL * rng.uniform(0.3, 0.9))),
                      np.float32) / 255.0
    canvas = canvas + glow[..., None] * colour * np.float32(rng.uniform(0.2, 0.6))
    return canvas * (1 - lit[..., None]) + colour * lit[..., None]


def _ink(rng: np.random.Generator, dots: np.ndarray) -> np.ndarray:
    """(h, w, 3) printed code: ink dots on a light, tinted or textured surface."""
    h, w = dots.shape
    surface = np.clip(rng.uniform(0.55, 0.95) + rng.normal(0, 0.06, 3), 0, 1).astype(np.float32)
    canvas = procedural_background(rng, surface, h, w)
    ink = INK_COLOURS[rng.choice(len(INK_COLOURS), p=INK_WEIGHTS)]
    alpha = dots[..., None] * np.float32(rng.uniform(0.7, 1.0))
    return canvas * (1 - alpha) + ink * alpha


def render_dotmatrix(text: str, font_path: str, rng: np.random.Generator, height: int = 32) -> Image.Image:
    """``text`` as an RGB dot-matrix crop ``height`` pixels high (width by aspect, >= height / 2):
    an LED display 60 % of the time, inkjet print otherwise."""
    rows = int(rng.integers(7, 11))
    led = rng.uniform() < 0.6
    grid = dot_grid(text, font_path, rows)
    square = rng.uniform() < (0.25 if led else 0.1)
    radius = rng.uniform(0.35, 0.7) if led else rng.uniform(0.4, 0.75)
    jitter, dropout = (0.0, 0.0) if led else (rng.uniform(0.0, 0.15), rng.uniform(0.0, 0.06))
    pad = _padding(rng)
    lit = np.pad(dot_mask(grid, rng, radius, square, jitter, dropout), pad * CELL)
    if led:  # the panel's unlit dots fill every cell, the padding's too
        every = dot_mask(np.pad(np.ones_like(grid), pad), rng, radius, square, 0.0, 0.0)
        lit, unlit = _tilted([lit, every], rng)
        canvas = _led(rng, lit, unlit * (1 - lit))
    else:
        (lit,) = _tilted([lit], rng)
        canvas = _ink(rng, lit)
    img = rgb_image(canvas)
    width = max(height // 2, int(round(img.width * height / img.height)))
    img = img.resize((width, height), Image.Resampling.BOX)
    if rng.uniform() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    return noise_and_jpeg(rng, img, (0.0, 6.0), 0.3, (40, 90))
