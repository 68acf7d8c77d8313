"""Text and background colours as real word crops have them.

:func:`estimate_pair` splits one real crop into text and background (Otsu's threshold on the
grey levels; the class that owns most of the border is the background) and returns their mean
colours. ``scripts/measure_text_colors.py`` runs it over public *training-split* crops and
writes the packaged table ``resources/text_colors.npy``: (N, 6) uint8 rows of background RGB
then text RGB, the statistics only, never an image. :func:`sample_pair` draws a row and jitters
it, so rendered crops get the natural, often desaturated and sometimes low-contrast colours of
signs and shop fronts instead of random hues.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

COLOR_TABLE = "text_colors.npy"
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luminance weights (float64)


def otsu_threshold(grey: np.ndarray) -> float:
    """Otsu's threshold (0..255) of a uint8 grey image: the level that best splits two classes."""
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(hist)
    m0 = np.cumsum(hist * levels)
    w1 = total - w0
    mean_all = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean_all * w0 - m0 * total) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1
    return float(np.argmax(between))


def estimate_pair(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(background RGB, text RGB) float means of an HxWx3 uint8 word crop, or None if it has one tone.

    The background is the Otsu class that covers more of the crop's one-pixel border.
    """
    if rgb.shape[0] < 4 or rgb.shape[1] < 4:
        return None
    grey = (rgb @ LUMA).astype(np.uint8)
    if int(grey.max()) - int(grey.min()) < 8:
        return None
    dark = grey <= otsu_threshold(grey)
    border = np.concatenate([dark[0], dark[-1], dark[:, 0], dark[:, -1]])
    background_is_dark = border.mean() >= 0.5
    text = dark != background_is_dark
    if text.sum() < 4 or (~text).sum() < 4:
        return None
    pixels = rgb.reshape(-1, 3).astype(np.float64)
    flat = text.ravel()
    return pixels[~flat].mean(0), pixels[flat].mean(0)


@lru_cache(maxsize=1)
def packaged_pairs() -> np.ndarray:
    """(N, 6) uint8: background RGB, text RGB of real training-split crops (see module docstring)."""
    with resources.files("semimtr_cli").joinpath("resources", COLOR_TABLE).open("rb") as f:
        return np.load(f)


def sample_pair(rng: np.random.Generator, jitter: float = 0.06, min_contrast: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(background, text) RGB in [0, 1] from the packaged table, each channel moved by up to
    ``jitter``, swapped one time in seven (more light-on-dark variety than the table's), and the
    text's luminance pushed away from the background's until they differ by ``min_contrast``
    (the estimate of a blurred real crop understates its contrast; a label must stay legible)."""
    table = packaged_pairs()
    row = table[int(rng.integers(len(table)))].astype(np.float32) / 255.0
    bg, fg = row[:3], row[3:]
    if rng.uniform() < 0.15:
        bg, fg = fg, bg
    shift = rng.uniform(-jitter, jitter, 6).astype(np.float32)
    bg, fg = np.clip(bg + shift[:3], 0, 1), np.clip(fg + shift[3:], 0, 1)
    gap = float((fg - bg) @ LUMA)
    if abs(gap) < min_contrast:
        direction = 1.0 if gap >= 0 else -1.0
        if not 0.0 <= float(bg @ LUMA) + direction * min_contrast <= 1.0:
            direction = -direction
        target = float(bg @ LUMA) + direction * min_contrast
        for _ in range(6):  # channels that clip at 0 or 1 leave the rest of the shift to the others
            fg = np.clip(fg + (target - float(fg @ LUMA)), 0, 1)
    return bg, fg
