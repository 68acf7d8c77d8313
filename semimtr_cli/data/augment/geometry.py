"""Geometric building blocks for the augmentation pipelines (warps, crops, resizes).

Arrays are RGB uint8 ``HxWx3``; coordinates follow OpenCV's convention (pixel ``i`` sits at
integer coordinate ``i``) so the official formulas carry over; conversion to PIL's
continuous convention (pixel ``i`` covers ``[i, i+1)``) happens in :func:`warp`. Warps run in
PIL's C ``Image.transform`` (no antialiasing, like ``cv2.warpAffine``); OpenCV's replicate
border is reproduced by edge-padding the input just enough to cover every sampled point.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image

from semimtr_cli.data.augment.base import pad_edges, to_pil
from semimtr_cli.data.image import resize_levels

NEAREST, LINEAR, CUBIC, AREA = "nearest", "linear", "cubic", "area"
INTERPOLATIONS = (NEAREST, LINEAR, CUBIC, AREA)
_PIL_WARP = {
    NEAREST: Image.Resampling.NEAREST,
    LINEAR: Image.Resampling.BILINEAR,
    CUBIC: Image.Resampling.BICUBIC,
    AREA: Image.Resampling.BILINEAR,  # cv2.warp* treats INTER_AREA as linear
}
_MAX_PAD_FACTOR = 3  # never pad more than 3x the image size (guards degenerate homographies)


def random_interpolation(rng: np.random.Generator) -> str:
    """One of nearest/linear/cubic/area with equal probability (ABINet ``get_interpolation``)."""
    return INTERPOLATIONS[int(rng.integers(4))]


# ----------------------------------------------------------------------------- warping


def warp(arr: np.ndarray, inverse: np.ndarray, out_w: int, out_h: int, interpolation: str, *, replicate: bool = True, as_image: bool = False):
    """Resample ``arr`` onto an ``out_w x out_h`` canvas.

    Args:
        inverse: 3x3 matrix mapping output pixel coordinates to input pixel coordinates
            (OpenCV convention); affine when its last row is ``0 0 1``.
        interpolation: one of :data:`INTERPOLATIONS`.
        replicate: border mode; True = OpenCV ``BORDER_REPLICATE``, False = constant 0.
        as_image: return the PIL image instead of an array (saves a copy when the next step
            works on PIL).
    """
    h, w = arr.shape[:2]
    out_w, out_h = max(int(out_w), 1), max(int(out_h), 1)
    (a, b, c), (d, e, f), (g, k, m) = np.asarray(inverse, dtype=np.float64).tolist()  # floats: 3x3 numpy math costs more
    left = top = 0
    if replicate:  # pad just enough to cover where the canvas corners land
        xs, ys = [], []
        for cx, cy in ((0, 0), (out_w - 1, 0), (0, out_h - 1), (out_w - 1, out_h - 1)):
            z = g * cx + k * cy + m
            z = z if abs(z) >= 1e-9 else 1e-9
            xs.append((a * cx + b * cy + c) / z)
            ys.append((d * cx + e * cy + f) / z)
        cap_x, cap_y = _MAX_PAD_FACTOR * w + 4, _MAX_PAD_FACTOR * h + 4
        left = min(max(0, math.ceil(-min(xs)) + 2), cap_x)
        right = min(max(0, math.ceil(max(xs) - (w - 1)) + 2), cap_x)
        top = min(max(0, math.ceil(-min(ys)) + 2), cap_y)
        bottom = min(max(0, math.ceil(max(ys) - (h - 1)) + 2), cap_y)
        if left or right or top or bottom:
            arr = pad_edges(arr, top, bottom, left, right)
    # PIL maps continuous output coordinates (pixel centre at i + 0.5) to continuous input ones:
    # shift by -0.5 into OpenCV pixel coordinates, apply ``inverse``, add the padding and +0.5.
    sx, sy = left + 0.5, top + 0.5
    z_row = (g, k, m - 0.5 * (g + k))
    x_row = [v + sx * zv for v, zv in zip((a, b, c - 0.5 * (a + b)), z_row)]
    y_row = [v + sy * zv for v, zv in zip((d, e, f - 0.5 * (d + e)), z_row)]
    z = z_row[2]
    data = tuple(v / z for v in (*x_row, *y_row))
    img = to_pil(arr)
    if abs(g) < 1e-12 and abs(k) < 1e-12:
        out = img.transform((out_w, out_h), Image.Transform.AFFINE, data, resample=_PIL_WARP[interpolation])
    else:
        out = img.transform((out_w, out_h), Image.Transform.PERSPECTIVE, data + (g / z, k / z),
                            resample=_PIL_WARP[interpolation])
    return out if as_image else np.asarray(out)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """3x3 inverse of the 2x3 affine map ``m`` (closed form: ``np.linalg.inv`` costs ~10 us per call)."""
    (a, b, c), (d, e, f) = m[0], m[1]
    det = a * e - b * d
    if abs(det) < 1e-12:
        raise np.linalg.LinAlgError("singular affine matrix")
    return np.array([[e / det, -b / det, (b * f - c * e) / det], [-d / det, a / det, (c * d - a * f) / det], [0.0, 0.0, 1.0]])


def homography(src_pts, dst_pts) -> np.ndarray:
    """3x3 matrix mapping the four ``src_pts`` onto ``dst_pts`` (like ``getPerspectiveTransform``).

    Raises:
        np.linalg.LinAlgError: for degenerate point sets.
    """
    rows, rhs = [], []
    for (u, v), (x, y) in zip(src_pts, dst_pts):
        rows += [(u, v, 1, 0, 0, 0, -u * x, -v * x), (0, 0, 0, u, v, 1, -u * y, -v * y)]
        rhs += [x, y]
    sol = np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64))
    return np.append(sol, 1.0).reshape(3, 3)


def _convex_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    pts = sorted(set(points))
    if len(pts) <= 2:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def min_area_rect_bounds(points) -> tuple[int, int, int, int]:
    """Axis-aligned integer bounds of the minimum-area rectangle around ``points``.

    Mirrors ``cv2.boxPoints(cv2.minAreaRect(pts)).astype(int)`` followed by min/max, as the
    official CVRandomAffine/CVRandomPerspective compute their output canvas.
    Returns ``(min_x, min_y, max_x, max_y)``.
    """
    hull = _convex_hull([(float(x), float(y)) for x, y in points])
    if len(hull) < 3:
        xs = [p[0] for p in hull]
        ys = [p[1] for p in hull]
        return int(min(xs)), int(min(ys)), int(max(xs)), int(max(ys))
    best = None
    for i in range(len(hull)):
        (x0, y0), (x1, y1) = hull[i], hull[(i + 1) % len(hull)]
        theta = math.atan2(y1 - y0, x1 - x0)
        c, s = math.cos(theta), math.sin(theta)
        us = [c * x + s * y for x, y in hull]
        vs = [-s * x + c * y for x, y in hull]
        area = (max(us) - min(us)) * (max(vs) - min(vs))
        if best is None or area < best[0]:
            best = (area, c, s, min(us), max(us), min(vs), max(vs))
    _, c, s, u0, u1, v0, v1 = best
    corners = [(c * u - s * v, s * u + c * v) for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))]
    xs = [int(x) for x, _ in corners]  # astype(int) truncates toward zero
    ys = [int(y) for _, y in corners]
    return min(xs), min(ys), max(xs), max(ys)


# ----------------------------------------------------------------------------- ABINet geometry


def abinet_rotate(arr: np.ndarray, angle_deg: float, interpolation: str, *, as_image: bool = False):
    """Rotate about the centre onto a canvas enlarged to the rotated size (``CVRandomRotation``)."""
    h, w = arr.shape[:2]
    a = math.radians(angle_deg)
    cos, sin = math.cos(a), math.sin(a)
    cx, cy = w / 2, h / 2
    fwd = np.array([[cos, sin, (1 - cos) * cx - sin * cy], [-sin, cos, sin * cx + (1 - cos) * cy]])
    dst_w = int(h * abs(sin) + w * abs(cos))
    dst_h = int(h * abs(cos) + w * abs(sin))
    fwd[0, 2] += (dst_w - w) / 2
    fwd[1, 2] += (dst_h - h) / 2
    return warp(arr, invert_affine(fwd), dst_w, dst_h, interpolation, as_image=as_image)


def abinet_affine_matrix(center, angle_deg: float, scale: float, shear_deg: tuple[float, float]) -> np.ndarray:
    """The 2x3 matrix the official ``CVRandomAffine`` passes to ``warpAffine`` as forward map.

    (It is torchvision 0.4's *inverse* rotation-scale-shear matrix; the official code uses it
    as the forward transform, so the effective scale is ``1/scale``. Kept as is.)
    """
    rot = math.radians(angle_deg)
    sx, sy = (math.radians(s) for s in shear_deg)
    cx, cy = center
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = np.array([d, -b, 0.0, -c, a, 0.0]) / scale
    m[2] += m[0] * (-cx) + m[1] * (-cy) + cx
    m[5] += m[3] * (-cx) + m[4] * (-cy) + cy
    return m.reshape(2, 3)


def abinet_affine(arr: np.ndarray, angle_deg: float, scale: float, shear_deg: tuple[float, float], interpolation: str, *, as_image: bool = False):
    """Rotation + scale + shear onto the canvas of the projected corners (``CVRandomAffine``)."""
    h, w = arr.shape[:2]
    m = abinet_affine_matrix((w / 2, h / 2), angle_deg, scale, shear_deg)
    corners = [(0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1)]
    ends = [(int(m[0, 0] * x + m[0, 1] * y + m[0, 2]), int(m[1, 0] * x + m[1, 1] * y + m[1, 2])) for x, y in corners]
    x0, y0, x1, y1 = min_area_rect_bounds(ends)
    dst_w, dst_h = max(x1 - x0, 1), max(y1 - y0, 1)
    m[0, 2] += (dst_w - w) / 2
    m[1, 2] += (dst_h - h) / 2
    try:
        inv = invert_affine(m)
    except np.linalg.LinAlgError:
        return arr
    return warp(arr, inv, dst_w, dst_h, interpolation, as_image=as_image)


def abinet_perspective(arr: np.ndarray, offsets_w, offsets_h, interpolation: str, *, as_image: bool = False):
    """Move each corner inward by integer offsets and crop to the result (``CVRandomPerspective``).

    ``offsets_w``/``offsets_h``: four ints each, for top-left, top-right, bottom-right,
    bottom-left.
    """
    h, w = arr.shape[:2]
    ow, oh = [int(v) for v in offsets_w], [int(v) for v in offsets_h]
    start = [(0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1)]
    end = [(ow[0], oh[0]), (w - 1 - ow[1], oh[1]), (w - 1 - ow[2], h - 1 - oh[2]), (ow[3], h - 1 - oh[3])]
    x0, y0, x1, y1 = min_area_rect_bounds(end)
    x0, y0 = max(x0, 0), max(y0, 0)
    try:
        inv = homography(end, start)
    except np.linalg.LinAlgError:
        return arr
    inv = inv @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], dtype=np.float64)
    return warp(arr, inv, x1 - x0, y1 - y0, interpolation, as_image=as_image)


# ----------------------------------------------------------------------------- resizing


def resize_cv2_like(arr: np.ndarray, width: int, height: int, interpolation: str) -> np.ndarray:
    """Resize like ``cv2.resize``: nearest/linear/cubic without antialiasing, area = box average."""
    h, w = arr.shape[:2]
    if (w, h) == (width, height):
        return arr
    if interpolation == LINEAR:  # torch's uint8 kernel: PIL's result when enlarging, 2-3x faster
        return resize_levels(arr, height, width).permute(1, 2, 0).numpy()
    img = to_pil(arr)
    if interpolation == AREA:
        return np.asarray(img.resize((width, height), Image.Resampling.BOX))
    if width >= w and height >= h:  # enlarging: PIL's resize equals the cv2 kernels here, and is faster
        return np.asarray(img.resize((width, height), _PIL_WARP[interpolation]))
    data = (w / width, 0.0, 0.0, 0.0, h / height, 0.0)
    return np.asarray(img.transform((width, height), Image.Transform.AFFINE, data, resample=_PIL_WARP[interpolation]))


@functools.lru_cache(maxsize=64)
def reflect101_index(n: int, pad: int) -> np.ndarray:
    """Source indices of ``-pad .. n + pad - 1`` under OpenCV's BORDER_REFLECT_101 (``gfedcb|abcdefgh|gfedcba``;
    repeated for sides shorter than ``pad``; 0 for a side of 1)."""
    idx = np.arange(-pad, n + pad)
    if n == 1:
        return np.zeros_like(idx)
    while (idx < 0).any() or (idx >= n).any():
        idx = np.where(idx < 0, -idx, idx)
        idx = np.where(idx >= n, 2 * n - 2 - idx, idx)
    return idx


def _binomial_halve(p: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Taps 1-4-6-4-1 around every second sample of ``p`` (padded by 2 on each side) along
    ``axis`` (1 or 2 of a planar ``3 x H x W`` uint16 array): ``n_out`` sums of up to 16x the input."""
    def at(k):  # samples k, k + 2, ... (n_out of them) along axis
        idx = slice(k, k + 2 * n_out - 1, 2)
        return p[:, idx] if axis == 1 else p[:, :, idx]

    out = at(2) * 6
    out += at(0)
    out += at(4)
    odd = at(1) + at(3)
    odd <<= 2
    out += odd
    return out


def pyr_down(arr: np.ndarray) -> np.ndarray:
    """``cv2.pyrDown``: 5x5 binomial blur (reflect-101 border), keep even rows and columns.

    Works on a planar (channel-first) uint16 copy, so every numpy pass runs along a row rather
    than over three interleaved channels (1.5-2x faster on word-crop sizes); exact integer
    arithmetic with OpenCV's rounding, ``(sum + 128) >> 8``.
    """
    h, w = arr.shape[:2]
    rows, cols = reflect101_index(h, 2), reflect101_index(w, 2)
    p = np.empty((arr.shape[2], h + 4, w + 4), dtype=np.uint16)
    p[:, 2 : h + 2, 2 : w + 2] = arr.transpose(2, 0, 1)
    p[:, :2, 2 : w + 2] = p[:, rows[:2] + 2, 2 : w + 2]
    p[:, h + 2 :, 2 : w + 2] = p[:, rows[h + 2 :] + 2, 2 : w + 2]
    p[:, :, :2] = p[:, :, cols[:2] + 2]
    p[:, :, w + 2 :] = p[:, :, cols[w + 2 :] + 2]
    out = _binomial_halve(_binomial_halve(p, (w + 1) // 2, axis=2), (h + 1) // 2, axis=1)
    out += 128
    out >>= 8
    return np.ascontiguousarray(out.transpose(1, 2, 0), dtype=np.uint8)


def pyramid_rescale(arr: np.ndarray, factor: int, interp_up: str, interp_down: str, base_w: int = 512, base_h: int = 128) -> np.ndarray:
    """ABINet ``CVRescale``: resize to ``base_w x base_h``, ``factor`` pyrDowns, resize back.

    Shortcut for small crops (the usual case): when the image already fits inside pyramid
    level ``L`` (size ``base >> L``), the resize goes straight to level ``min(L, factor - 1)``
    (level 1 for ``factor == 1``) and the remaining pyrDowns follow. Upsampling a crop to
    512x128 and blurring at that scale adds detail far below the crop's own resolution, so
    the result is visually the same at a fraction of the cost; images larger than the base
    size take the exact official path.
    """
    if factor <= 0:
        return arr
    h, w = arr.shape[:2]
    fits = 0
    while fits < factor and (base_w >> (fits + 1)) >= w and (base_h >> (fits + 1)) >= h:
        fits += 1
    start = min(fits, max(factor - 1, 1)) if fits else 0
    small = resize_cv2_like(arr, base_w >> start, base_h >> start, interp_up)
    for _ in range(factor - start):
        small = pyr_down(small)
    return resize_cv2_like(small, w, h, interp_down)


# ----------------------------------------------------------------------------- SeqCLR geometry


def crop_keep_size(arr: np.ndarray, top: float, right: float, bottom: float, left: float) -> np.ndarray:
    """Crop fractions of each side, then resize (bicubic) back to the input size."""
    h, w = arr.shape[:2]
    t, b = int(round(top * h)), int(round(bottom * h))
    lft, r = int(round(left * w)), int(round(right * w))
    while t + b > h - 1 and (t or b):  # keep at least one row / column
        if t >= b:
            t -= 1
        else:
            b -= 1
    while lft + r > w - 1 and (lft or r):
        if lft >= r:
            lft -= 1
        else:
            r -= 1
    if not (t or b or lft or r):
        return arr
    img = to_pil(arr)
    return np.asarray(img.resize((w, h), Image.Resampling.BICUBIC, box=(lft, t, w - r, h - b)))


def elastic_nearest(arr: np.ndarray, rng: np.random.Generator, alpha: float) -> np.ndarray:
    """Per-pixel random displacement ``U(-1,1)*alpha`` (x and y), nearest sampling, black outside.

    Mirrors imgaug ``ElasticTransformation(alpha, sigma=0.25)`` with its default order 0 and
    constant mode: a Gaussian of sigma 0.25 leaves the displacement noise unsmoothed (the
    neighbour weight is e^-8), so the smoothing is skipped.
    """
    h, w = arr.shape[:2]
    dx = rng.random((h, w), dtype=np.float32)
    dy = rng.random((h, w), dtype=np.float32)
    xs = np.rint((dx * 2 - 1) * alpha + np.arange(w, dtype=np.float32)[None, :]).astype(np.intp)
    ys = np.rint((dy * 2 - 1) * alpha + np.arange(h, dtype=np.float32)[:, None]).astype(np.intp)
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    out = arr[np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)]
    out[~inside] = 0
    return out


def corner_jitter_perspective(arr: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """imgaug ``PerspectiveTransform(keep_size=True)``: map an inner quadrilateral onto the image.

    ``jitter``: (4, 2) normal samples (fractions of width/height) for the corners
    top-left, top-right, bottom-right, bottom-left; their absolute values move the corners
    inward, so the effect is a slight perspective zoom-in. Border: constant 0.
    """
    h, w = arr.shape[:2]
    j = np.mod(np.abs(np.asarray(jitter, dtype=np.float64)), 1.0)
    quad = [
        (j[0, 0] * w, j[0, 1] * h),
        ((1 - j[1, 0]) * w, j[1, 1] * h),
        ((1 - j[2, 0]) * w, (1 - j[2, 1]) * h),
        (j[3, 0] * w, (1 - j[3, 1]) * h),
    ]
    rect = [(0, 0), (w, 0), (w, h), (0, h)]
    try:
        m = homography(rect, quad)  # continuous output coords -> continuous input coords
    except np.linalg.LinAlgError:
        return arr
    m = m / m[2, 2]
    data = (m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2], m[2, 0], m[2, 1])
    img = to_pil(arr)
    return np.asarray(img.transform((w, h), Image.Transform.PERSPECTIVE, data, resample=Image.Resampling.BILINEAR))
