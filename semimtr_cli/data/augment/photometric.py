"""Photometric building blocks for the augmentation pipelines (no geometry change).

Every function takes an RGB uint8 array ``HxWx3`` (and, where it draws random numbers, a
``numpy.random.Generator``) and returns a new RGB uint8 array of the same shape. They are
written for tiny word crops (about 32x100 px): table look-ups, PIL's C filters and a few
vectorised numpy passes, never per-pixel Python. The ranges that mirror the official pipelines
live in :mod:`semimtr_cli.data.augment.abinet` and :mod:`semimtr_cli.data.augment.strong`;
these functions take explicit values.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from semimtr_cli.data.augment.base import pad_edges, to_pil

_LEVELS = np.arange(256, dtype=np.float32)


# ----------------------------------------------------------------------------- helpers


def to_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB") if img.mode != "RGB" else img)


def apply_lut(arr: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Map every level through a 256-entry table (float tables are rounded and clipped)."""
    if table.dtype != np.uint8:
        table = np.clip(np.rint(table), 0, 255).astype(np.uint8)
    return table[arr]


def correlate(arr: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """OpenCV ``filter2D``-style correlation with a kernel of at most 5x5, result clipped.

    The anchor is the kernel centre (for even sizes, index ``k // 2`` as OpenCV does); borders
    are edge-replicated (OpenCV reflects; the difference is confined to the outermost pixel).
    Implemented with PIL's C ``Kernel`` filter on an edge-padded copy.
    """
    kh, kw = kernel.shape
    if kh != kw or kh > 5:
        raise ValueError(f"kernel must be square and at most 5x5, got {kernel.shape}")
    size = 3 if kh <= 3 else 5
    full = np.zeros((size, size), dtype=np.float64)
    off = size // 2 - kh // 2
    full[off : off + kh, off : off + kw] = kernel
    r = size // 2
    padded = pad_edges(arr, r, r, r, r)
    # PIL flips the kernel vertically before applying it; pre-flip to get a correlation.
    flt = ImageFilter.Kernel((size, size), full[::-1].ravel().tolist(), scale=1, offset=0)
    out = np.asarray(to_pil(padded).filter(flt))
    return out[r:-r, r:-r]


# ----------------------------------------------------------------------------- level maps


def invert(arr: np.ndarray) -> np.ndarray:
    return 255 - arr


def gamma_contrast(arr: np.ndarray, gamma: float) -> np.ndarray:
    """``255 * (x / 255) ** gamma`` (imgaug ``GammaContrast``)."""
    return apply_lut(arr, 255.0 * (_LEVELS / 255.0) ** gamma)


def linear_contrast(arr: np.ndarray, alpha: float, center: float = 128.0) -> np.ndarray:
    """``center + alpha * (x - center)`` (imgaug ``LinearContrast``)."""
    return apply_lut(arr, center + alpha * (_LEVELS - center))


def scale_channels(arr: np.ndarray, multipliers) -> np.ndarray:
    """Multiply R, G, B by per-channel factors, rounded and clipped."""
    out = arr.astype(np.float32) * np.asarray(multipliers, dtype=np.float32)
    return np.clip(np.rint(out, out=out), 0, 255, out=out).astype(np.uint8)


# ----------------------------------------------------------------------------- colour ops


def grayscale_blend(arr: np.ndarray, alpha: float) -> np.ndarray:
    """Blend towards the luma image (BT.601 weights), ``alpha`` in [0, 1]."""
    img = to_pil(arr)
    grey = img.convert("L").convert("RGB")
    return np.asarray(Image.blend(img, grey, float(alpha)))


def channel_permute(arr: np.ndarray, order) -> np.ndarray:
    return np.ascontiguousarray(arr[..., list(order)])


def kmeans_quantize(arr: np.ndarray, n_colors: int, rng: np.random.Generator, max_iter: int = 10, eps: float = 1.0) -> np.ndarray:
    """Reduce to at most ``n_colors`` colours by k-means in RGB (random pixels as seeds).

    Stops after ``max_iter`` iterations or when no centre moves by ``eps`` levels or more,
    as imgaug's ``cv2.kmeans`` call does.
    """
    h, w = arr.shape[:2]
    x = arr.reshape(-1, 3).astype(np.float32)
    k = min(int(n_colors), x.shape[0])
    centres = x[rng.choice(x.shape[0], size=k, replace=False)]
    x_sq = (x * x).sum(1, keepdims=True)
    labels = np.zeros(x.shape[0], dtype=np.intp)
    for _ in range(max_iter):
        dist = x_sq - 2.0 * (x @ centres.T) + (centres * centres).sum(1)[None, :]
        labels = dist.argmin(1)
        counts = np.bincount(labels, minlength=k).astype(np.float32)
        sums = np.stack([np.bincount(labels, weights=x[:, c], minlength=k) for c in range(3)], 1)
        filled = counts > 0
        new = centres.copy()
        new[filled] = sums[filled] / counts[filled, None]
        shift = float(np.abs(new - centres).max())
        centres = new
        if shift < eps:
            break
    palette = np.clip(np.rint(centres), 0, 255).astype(np.uint8)
    return palette[labels].reshape(h, w, 3)


def equalize_luma(arr: np.ndarray) -> np.ndarray:
    """Histogram-equalise the luma (Y of YCbCr), keep chroma."""
    y, cb, cr = to_pil(arr).convert("YCbCr").split()
    return np.asarray(Image.merge("YCbCr", (ImageOps.equalize(y), cb, cr)).convert("RGB"))


def multiply_brightness(arr: np.ndarray, factor: float, space: str) -> np.ndarray:
    """Multiply the brightness channel (``"YCbCr"`` -> Y, ``"HSV"`` -> V) by ``factor``."""
    conv = np.array(to_pil(arr).convert(space))
    idx = 0 if space == "YCbCr" else 2
    table = np.clip(np.rint(_LEVELS * factor), 0, 255).astype(np.uint8)
    conv[..., idx] = table[conv[..., idx]]
    return np.asarray(to_pil(conv, space).convert("RGB"))


def add_hue_saturation(arr: np.ndarray, hue_shift: int, saturation_add: int) -> np.ndarray:
    """Rotate hue by ``hue_shift`` PIL hue units (256 = 360 deg) and add to saturation (0..255)."""
    hsv = np.array(to_pil(arr).convert("HSV"))
    hue_table = ((np.arange(256) + int(hue_shift)) % 256).astype(np.uint8)
    sat_table = np.clip(np.arange(256) + int(saturation_add), 0, 255).astype(np.uint8)
    hsv[..., 0] = hue_table[hsv[..., 0]]
    hsv[..., 1] = sat_table[hsv[..., 1]]
    return np.asarray(to_pil(hsv, "HSV").convert("RGB"))


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Approximate white-point RGB multipliers (0..1) of a black body at ``kelvin`` K.

    Tanner Helland's fitted curves; imgaug uses a 100 K lookup table of the same curve family
    (values agree within a few levels).
    """
    t = min(max(kelvin, 1000.0), 40000.0) / 100.0
    if t <= 66:
        r = 255.0
        g = 99.4708025861 * math.log(t) - 161.1195681661
        b = 0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307
    else:
        r = 329.698727446 * (t - 60) ** -0.1332047592
        g = 288.1221695283 * (t - 60) ** -0.0755148492
        b = 255.0
    return tuple(min(max(c, 0.0), 255.0) / 255.0 for c in (r, g, b))  # type: ignore[return-value]


def color_temperature(arr: np.ndarray, kelvin: float) -> np.ndarray:
    return scale_channels(arr, kelvin_to_rgb(kelvin))


def dropout(arr: np.ndarray, rng: np.random.Generator, p: float, per_channel: bool) -> np.ndarray:
    """Set a fraction ``p`` of pixels (or of channel values) to 0."""
    h, w = arr.shape[:2]
    keep = rng.random((h, w, 3 if per_channel else 1), dtype=np.float32) >= p
    return arr * keep


# ----------------------------------------------------------------------------- ColorJitter (torchvision on PIL)


def jitter_brightness(img: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance(factor)


def jitter_contrast(img: Image.Image, factor: float) -> Image.Image:
    """``ImageEnhance.Contrast(img).enhance(factor)`` of an RGB image, pixel for pixel: blend from
    the rounded mean grey level; the mean comes from numpy (exact integer sum) instead of
    ``ImageStat``'s Python loop over the histogram, which cost more than the blend."""
    mean = int(np.asarray(img.convert("L")).mean() + 0.5)
    return Image.blend(Image.new("RGB", img.size, (mean, mean, mean)), img, factor)


def jitter_saturation(img: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Color(img).enhance(factor)


def jitter_hue(img: Image.Image, shift: float) -> Image.Image:
    """Rotate hue by ``shift`` turns (``-0.5..0.5``), wrapping in uint8 as torchvision does."""
    h, s, v = img.convert("HSV").split()
    return Image.merge("HSV", (h.point(_hue_table(int(shift * 255))), s, v)).convert("RGB")


@functools.lru_cache(maxsize=256)
def _hue_table(delta: int) -> list[int]:
    return [(level + delta) % 256 for level in range(256)]


# ----------------------------------------------------------------------------- convolutions


def sharpen_kernel(alpha: float, lightness: float) -> np.ndarray:
    """imgaug ``Sharpen`` matrix: identity blended with a Laplacian-style kernel."""
    effect = np.full((3, 3), -1.0)
    effect[1, 1] = 8.0 + lightness
    ident = np.zeros((3, 3))
    ident[1, 1] = 1.0
    return (1 - alpha) * ident + alpha * effect


def emboss_kernel(alpha: float, strength: float) -> np.ndarray:
    """imgaug ``Emboss`` matrix: identity blended with a diagonal relief kernel."""
    s = strength
    effect = np.array([[-1 - s, -s, 0], [-s, 1, s], [0, s, 1 + s]], dtype=np.float64)
    ident = np.zeros((3, 3))
    ident[1, 1] = 1.0
    return (1 - alpha) * ident + alpha * effect


def rotate_kernel(kernel: np.ndarray, angle_deg: float, center: tuple[float, float]) -> np.ndarray:
    """Rotate a small kernel about ``center`` (x, y) with bilinear sampling, zeros outside.

    Same convention as OpenCV's ``getRotationMatrix2D`` + ``warpAffine`` (positive angle =
    counter-clockwise on screen).
    """
    k = kernel.shape[0]
    cx, cy = center
    a = math.radians(angle_deg)
    cos, sin = math.cos(a), math.sin(a)
    ys, xs = np.mgrid[0:k, 0:k].astype(np.float64)
    # inverse mapping of the forward rotation matrix
    dx, dy = xs - cx, ys - cy
    sx = cos * dx - sin * dy + cx
    sy = sin * dx + cos * dy + cy
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = sx - x0, sy - y0
    padded = np.zeros((k + 2, k + 2))
    padded[1:-1, 1:-1] = kernel

    def at(yy, xx):
        yy = np.clip(yy + 1, 0, k + 1)
        xx = np.clip(xx + 1, 0, k + 1)
        return padded[yy, xx]

    return (
        at(y0, x0) * (1 - fx) * (1 - fy)
        + at(y0, x0 + 1) * fx * (1 - fy)
        + at(y0 + 1, x0) * (1 - fx) * fy
        + at(y0 + 1, x0 + 1) * fx * fy
    )


def imgaug_motion_kernel(k: int, angle_deg: float, direction: float) -> np.ndarray:
    """imgaug ``MotionBlur`` kernel: a vertical line with a linear weight ramp, rotated, normalised."""
    d = (min(max(direction, -1.0), 1.0) + 1.0) / 2.0
    line = np.zeros((k, k))
    line[:, k // 2] = np.linspace(d, 1.0 - d, num=k)
    rot = rotate_kernel(line, angle_deg, ((k - 1) / 2, (k - 1) / 2))
    rot = np.floor(rot * 255.0) / 255.0  # imgaug rotates a uint8 copy of the kernel
    total = rot.sum()
    if total <= 0:
        rot = np.zeros((k, k))
        rot[k // 2, k // 2] = 1.0
        return rot
    return rot / total


def abinet_motion_kernel(size: int, angle_deg: float) -> np.ndarray:
    """ABINet ``CVMotionBlur`` kernel: a horizontal line rotated about ``(size//2, size//2)``,
    divided by ``size`` (not by its sum, as the official code does)."""
    line = np.zeros((size, size))
    line[size // 2, :] = 1.0
    c = float(size // 2)
    return rotate_kernel(line, angle_deg, (c, c)) / size


# ----------------------------------------------------------------------------- blurs


def gaussian_blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    return np.asarray(to_pil(arr).filter(ImageFilter.GaussianBlur(float(sigma))))


def box_blur(arr: np.ndarray, k: int) -> np.ndarray:
    """Mean over a ``k x k`` window (even ``k``: symmetric window with half-weight ends)."""
    return np.asarray(to_pil(arr).filter(ImageFilter.BoxBlur((k - 1) / 2.0)))


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Comparators of Batcher's odd-even merge sort for ``n`` (a power of two) inputs."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


@functools.lru_cache(maxsize=None)
def _median_network(m: int) -> tuple[tuple[int, int], ...]:
    """Comparators that place the median of ``m`` inputs at index ``m // 2`` (pruned sort net)."""
    n = 1
    while n < m:
        n *= 2
    pairs = [(a, b) for a, b in _batcher_pairs(n) if b < m]  # padding inputs act as +inf
    needed = {m // 2}
    kept = []
    for a, b in reversed(pairs):
        if a in needed or b in needed:
            kept.append((a, b))
            needed.update((a, b))
    return tuple(reversed(kept))


def median_blur(arr: np.ndarray, k: int) -> np.ndarray:
    """Exact ``k x k`` median (odd ``k``), edge-replicated borders.

    A pruned sorting network of element-wise min/max over the ``k*k`` shifted planes: about
    10x faster than PIL's ``MedianFilter`` on word crops, with identical results.
    """
    r = k // 2
    h, w = arr.shape[:2]
    padded = pad_edges(arr, r, r, r, r)
    planes = [padded[dy : dy + h, dx : dx + w].copy() for dy in range(k) for dx in range(k)]
    for a, b in _median_network(k * k):
        lo = np.minimum(planes[a], planes[b])
        np.maximum(planes[a], planes[b], out=planes[b])
        planes[a] = lo
    return planes[(k * k) // 2]


# ----------------------------------------------------------------------------- noise


def add_gaussian_noise(arr: np.ndarray, rng: np.random.Generator, std: float, per_channel: bool, truncate: bool = False) -> np.ndarray:
    """Add zero-mean Gaussian noise (one value per pixel, or per channel value)."""
    h, w = arr.shape[:2]
    noise = rng.standard_normal((h, w, 3 if per_channel else 1), dtype=np.float32)
    noise *= std
    out = arr + noise
    if not truncate:
        np.rint(out, out=out)
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def impulse_noise(arr: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """Replace a fraction ``p`` of channel values by Beta(0.5, 0.5)*255 (mostly near 0 or 255)."""
    mask = rng.random(arr.shape, dtype=np.float32) < p
    out = arr.copy()
    n = int(mask.sum())
    if n:
        out[mask] = np.rint(rng.beta(0.5, 0.5, n) * 255.0).astype(np.uint8)
    return out


def multiply_elementwise(arr: np.ndarray, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Multiply each pixel (all channels alike) by its own factor in ``[low, high)``."""
    h, w = arr.shape[:2]
    mul = rng.random((h, w, 1), dtype=np.float32)
    mul *= high - low
    mul += low
    out = arr * mul
    return np.clip(np.rint(out, out=out), 0, 255, out=out).astype(np.uint8)
