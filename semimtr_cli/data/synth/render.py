"""Rendering styles and the word-crop renderer of `semimtr synth`.

A :class:`StyleSpec` holds the ranges a style draws from (:data:`STYLES`: ``clean`` and
``wild``, see :mod:`semimtr_cli.data.synth.generate`); :func:`render_word` turns one word, one font and
one random generator into an RGB crop, in fixed steps (text masks, padding, geometry, colours,
resizing, degradations) that always draw from the generator in the same order.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from semimtr_cli.core.errors import UsageError
from semimtr_cli.data.synth.fonts import load_font


@dataclass(frozen=True)
class StyleSpec:
    """Ranges a style draws from. Lengths are fractions of the font size unless noted."""

    name: str
    supersample: int  # render at this multiple of the final height, then downsample
    rotation_deg: float  # uniform in [-r, r]
    shear: float  # horizontal slant factor, uniform in [-s, s]
    perspective: float  # corner jitter, fraction of the box height
    pad_x: tuple[float, float]
    pad_y: tuple[float, float]
    backgrounds: tuple[tuple[str, float], ...]  # (kind, weight)
    tint: float  # max colour saturation (0 = grey)
    contrast: tuple[float, float]  # luminance difference text vs background
    low_contrast_prob: float
    low_contrast: tuple[float, float]
    light_on_dark_prob: float
    shadow_prob: float
    outline_prob: float
    blur_prob: float  # one of: Gaussian blur, motion blur, down-and-up scaling
    blur_kinds: tuple[tuple[str, float], ...]  # (kind, weight)
    blur_radius: tuple[float, float]  # Gaussian, final-resolution pixels
    noise_sigma: tuple[float, float]  # 0..255 units
    jpeg_prob: float
    jpeg_quality: tuple[int, int]
    downscale: tuple[float, float]  # scale factor of the low-resolution pass
    font_size_jitter: float  # internal font size multiplied by U(1 - j, 1 + j)


STYLES: dict[str, StyleSpec] = {
    "clean": StyleSpec(
        name="clean",
        supersample=1,
        rotation_deg=2.0,
        shear=0.0,
        perspective=0.0,
        pad_x=(0.08, 0.35),
        pad_y=(0.04, 0.18),
        backgrounds=(("plain", 0.6), ("gradient", 0.4)),
        tint=0.15,
        contrast=(0.45, 0.95),
        low_contrast_prob=0.0,
        low_contrast=(0.45, 0.45),
        light_on_dark_prob=0.3,
        shadow_prob=0.0,
        outline_prob=0.0,
        blur_prob=0.1,
        blur_kinds=(("gaussian", 1.0),),
        blur_radius=(0.3, 0.6),
        noise_sigma=(0.0, 3.0),
        jpeg_prob=0.0,
        jpeg_quality=(90, 95),
        downscale=(1.0, 1.0),
        font_size_jitter=0.0,
    ),
    "wild": StyleSpec(
        name="wild",
        supersample=2,
        rotation_deg=10.0,
        shear=0.25,
        perspective=0.12,
        pad_x=(0.05, 0.6),
        pad_y=(0.02, 0.3),
        backgrounds=(("plain", 0.15), ("gradient", 0.3), ("texture", 0.35), ("grain", 0.2)),
        tint=0.5,
        contrast=(0.3, 0.9),
        low_contrast_prob=0.2,
        low_contrast=(0.18, 0.3),
        light_on_dark_prob=0.4,
        shadow_prob=0.25,
        outline_prob=0.2,
        blur_prob=0.5,
        blur_kinds=(("gaussian", 0.5), ("motion", 0.2), ("downscale", 0.3)),
        blur_radius=(0.3, 0.9),
        noise_sigma=(2.0, 10.0),
        jpeg_prob=0.3,
        jpeg_quality=(20, 70),
        downscale=(0.5, 0.85),
        font_size_jitter=0.15,
    ),
}


# scene: the look of photographed text (scene.py); dotmatrix: LED signs and inkjet codes (dotmatrix.py)
STYLE_NAMES = (*STYLES, "scene", "dotmatrix")


def check_style(style: str) -> str:
    """``style`` if it names a style; UsageError listing them otherwise."""
    if style not in STYLE_NAMES:
        raise UsageError(f"unknown '{style}' (choose from: {', '.join(STYLE_NAMES)})", param="style")
    return style


def get_style(style: str | StyleSpec) -> StyleSpec:
    """The :class:`StyleSpec` of a ``clean``/``wild`` style name (UsageError otherwise)."""
    if isinstance(style, StyleSpec):
        return style
    if check_style(style) not in STYLES:
        raise UsageError(f"'{style}' has its own renderer, not a StyleSpec", param="style")
    return STYLES[style]


# ---------------------------------------------------------------------------------------------
# Rendering steps


def homography(src: np.ndarray, dst: np.ndarray) -> tuple[float, ...]:
    """8 coefficients (a..h) of the projective map taking the 4 points ``src`` onto ``dst``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -x * u, -y * u])
        rows.append([0, 0, 0, x, y, 1, -x * v, -y * v])
        rhs += [u, v]
    return tuple(float(c) for c in np.linalg.solve(np.asarray(rows, float), np.asarray(rhs, float)))


def _tinted(rng: np.random.Generator, lum: float, saturation: float) -> np.ndarray:
    """An RGB colour in [0, 1] with mean ``lum`` and a random tint of strength ``saturation``."""
    direction = rng.normal(size=3)
    direction -= direction.mean()
    direction /= np.linalg.norm(direction) + 1e-6
    return np.clip(lum + direction * saturation * rng.uniform(0, 1), 0.0, 1.0)


def _background(rng: np.random.Generator, spec: StyleSpec, lum: float, h: int, w: int) -> np.ndarray:
    """(h, w, 3) float32 background in [0, 1] whose mean luminance is about ``lum``."""
    kinds, weights = zip(*spec.backgrounds)
    kind = kinds[rng.choice(len(kinds), p=np.asarray(weights) / sum(weights))]
    base = _tinted(rng, lum, spec.tint).astype(np.float32)
    if kind == "plain":
        return np.broadcast_to(base, (h, w, 3)).astype(np.float32)
    if kind == "gradient":
        other = _tinted(rng, np.clip(lum + rng.uniform(-0.12, 0.12), 0, 1), spec.tint).astype(np.float32)
        theta = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xs * math.cos(theta) / max(w, 1) + ys * math.sin(theta) / max(h, 1)
        t = (t - t.min()) / (np.ptp(t) + 1e-6)
        return base + (other - base) * t[..., None]
    if kind == "texture":
        gh, gw = int(rng.integers(2, 6)), int(rng.integers(3, 12))
        coarse = rng.uniform(-1, 1, (gh, gw, 3)) * rng.uniform(0.05, 0.18)
        coarse_img = Image.fromarray(((coarse + 0.5) * 255).clip(0, 255).astype(np.uint8))
        field = np.asarray(coarse_img.resize((w, h), Image.Resampling.BICUBIC), np.float32) / 255.0 - 0.5
        return np.clip(base + field, 0, 1)
    # grain: fine per-pixel noise plus faint horizontal streaks
    grain = rng.normal(0, rng.uniform(0.03, 0.08), (h, w, 1)).astype(np.float32)
    streaks = rng.normal(0, 0.03, (h, 1, 1)).astype(np.float32)
    return np.clip(base + grain + streaks, 0, 1)


def _contrast_pair(rng: np.random.Generator, spec: StyleSpec) -> tuple[float, float]:
    """(background luminance, text luminance) in [0, 1]."""
    if rng.uniform() < spec.low_contrast_prob:
        diff = rng.uniform(*spec.low_contrast)
    else:
        diff = rng.uniform(*spec.contrast)
    bright = rng.uniform(diff, 1.0)
    dark = bright - diff
    if rng.uniform() < spec.light_on_dark_prob:
        return dark, bright
    return bright, dark


def random_pair(rng: np.random.Generator, style: str = "wild") -> tuple[np.ndarray, np.ndarray]:
    """(background, text) RGB in [0, 1], float32: a contrast pair of ``style`` with random tints."""
    spec = get_style(style)
    bg_lum, fg_lum = _contrast_pair(rng, spec)
    return _tinted(rng, bg_lum, spec.tint).astype(np.float32), _tinted(rng, fg_lum, spec.tint).astype(np.float32)


def text_masks(
    text: str, font_path: str, size: int, stroke: int
) -> tuple[Image.Image, Image.Image | None, tuple[int, int, int, int]]:
    """Masks (fill, stroke or None) of ``text`` and its line box (x0, y0, x1, y1) in mask pixels.

    Each mask is rasterised once by FreeType (``getmask2``, the call ``ImageDraw.text`` makes,
    with the same arguments); its offset is the text's bounding box, so no second layout pass
    (``getbbox``) is needed. The pixels equal ``ImageDraw.text``'s.
    """
    font, ref_top, ref_bottom = load_font(font_path, size)
    glyphs, offset = _glyphs(font, text, 0)
    edge, edge_offset = _glyphs(font, text, stroke) if stroke else (None, offset)
    outer = edge if stroke else glyphs  # the box is the stroke's when there is one
    left, top = edge_offset
    right, bottom = left + outer.size[0], top + outer.size[1]
    top, bottom = min(top, ref_top - stroke), max(bottom, ref_bottom + stroke)
    if right <= left:  # nothing drawable (e.g. only spaces): keep a space-wide box
        right = left + max(1, int(font.getlength(text or " ")))
    width, height = right - left + 2, bottom - top + 2
    origin = (1 - left, 1 - top)
    fill = _placed(glyphs, offset, origin, (width, height))
    outline = _placed(edge, edge_offset, origin, (width, height)) if stroke else None
    return fill, outline, (1, 1, width - 1, height - 1)


def _glyphs(font: ImageFont.FreeTypeFont, text: str, stroke: int) -> tuple:
    """(8-bit coverage of ``text`` on its baseline, offset of its top-left from the origin)."""
    return font.getmask2(text, "L", stroke_width=stroke, anchor="ls", ink=255, start=(0.0, 0.0), stroke_filled=True)


def _placed(glyphs, offset: tuple[int, int], origin: tuple[int, int], size: tuple[int, int]) -> Image.Image:
    """An L image of ``size`` holding ``glyphs`` at ``origin`` + ``offset`` (drawn as ImageDraw.text draws)."""
    out = Image.new("L", size, 0)
    ImageDraw.Draw(out).draw.draw_bitmap((origin[0] + offset[0], origin[1] + offset[1]), glyphs, 255)
    return out


def _font_size_and_stroke(rng: np.random.Generator, spec: StyleSpec, height: int) -> tuple[int, int]:
    """(internal font size, outline stroke width or 0), both in supersampled pixels."""
    size = height * spec.supersample * 0.8
    if spec.font_size_jitter:
        size *= rng.uniform(1 - spec.font_size_jitter, 1 + spec.font_size_jitter)
    size = max(6, int(round(size)))
    stroke = max(1, int(round(size * rng.uniform(0.04, 0.08)))) if rng.uniform() < spec.outline_prob else 0
    return size, stroke


def _padded_box(rng: np.random.Generator, spec: StyleSpec, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """The 4 corners (clockwise from top-left) of the text box with random padding, in mask pixels."""
    x0, y0, x1, y1 = box
    x0 -= size * rng.uniform(*spec.pad_x)
    x1 += size * rng.uniform(*spec.pad_x)
    y0 -= size * rng.uniform(*spec.pad_y)
    y1 += size * rng.uniform(*spec.pad_y)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def tilt_corners(rng: np.random.Generator, corners: np.ndarray, *, rotation_deg: float, shear: float,
                 perspective: float, steepness: float, min_side: int = 1) -> tuple[int, int, tuple[float, ...]]:
    """Rotate, slant and jitter the 4 ``corners`` (clockwise from top-left): (output width, output
    height, PIL coefficients mapping output pixels back to the corners' pixels).

    The angle is uniform within ``rotation_deg`` and within ``atan(steepness * height / width)``
    (long words rotate less, so the crop stays near the text height; ``math.inf`` lifts that
    limit); the slant within ``shear``; each corner moves by up to ``perspective`` times the box
    height. A zero ``shear`` or ``perspective`` draws nothing. The output is the axis-aligned box of the result.
    """
    (x0, y0), (x1, y1) = corners[0], corners[2]
    limit = min(math.radians(rotation_deg), math.atan(steepness * (y1 - y0) / max(x1 - x0, 1.0)))
    angle = rng.uniform(-limit, limit)
    slant = rng.uniform(-shear, shear) if shear else 0.0
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    dst = (corners - corners.mean(0)) @ (rot @ np.array([[1.0, -slant], [0.0, 1.0]])).T
    if perspective:
        dst += rng.uniform(-perspective, perspective, (4, 2)) * (y1 - y0)
    dst -= dst.min(0)
    out_w = max(min_side, int(math.ceil(dst[:, 0].max())))
    out_h = max(min_side, int(math.ceil(dst[:, 1].max())))
    return out_w, out_h, homography(dst, corners)


def _compose(
    rng: np.random.Generator,
    spec: StyleSpec,
    warp: Callable[[Image.Image], Image.Image],
    fill_mask: Image.Image,
    outline_mask: Image.Image | None,
    size: tuple[int, int],
) -> Image.Image:
    """Background, optional shadow, optional outline and the text, composed into an RGB image."""
    out_w, out_h = size
    ss = spec.supersample
    alpha = np.asarray(warp(fill_mask), np.float32)[..., None] / 255.0
    bg_lum, fg_lum = _contrast_pair(rng, spec)
    canvas = _background(rng, spec, bg_lum, out_h, out_w)
    fg = _tinted(rng, fg_lum, spec.tint).astype(np.float32)
    if rng.uniform() < spec.shadow_prob:
        dx, dy = (int(v) for v in rng.integers(1, 2 + ss * 2, 2) * rng.choice([-1, 1], 2))
        shadow = warp(outline_mask if outline_mask is not None else fill_mask)
        shadow = shadow.transform(shadow.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy), fillcolor=0)
        shadow = shadow.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5) * ss))
        s_alpha = np.asarray(shadow, np.float32)[..., None] / 255.0 * rng.uniform(0.4, 0.8)
        s_col = np.float32(bg_lum - 0.4 if bg_lum > 0.4 else bg_lum + 0.3)  # darker, unless too dark
        canvas = canvas * (1 - s_alpha) + s_col * s_alpha
    if outline_mask is not None:
        o_alpha = np.asarray(warp(outline_mask), np.float32)[..., None] / 255.0
        o_lum = 1.0 - fg_lum if abs(bg_lum - (1.0 - fg_lum)) > 0.15 else bg_lum
        o_col = _tinted(rng, o_lum, spec.tint).astype(np.float32)
        canvas = canvas * (1 - o_alpha) + o_col * o_alpha
    canvas = canvas * (1 - alpha) + fg * alpha
    return rgb_image(canvas)


def _resize_to_height(rng: np.random.Generator, spec: StyleSpec, img: Image.Image, height: int) -> tuple[Image.Image, str | None]:
    """(crop at exactly ``height`` pixels, width by aspect ratio, blur kind chosen for it or None).

    The ``downscale`` blur happens here: a low-resolution pass before the final resize.
    """
    out_w, out_h = img.size
    final_w = max(int(math.ceil(height / 2)), int(round(out_w * height / out_h)))
    blur = None
    if rng.uniform() < spec.blur_prob:
        kinds, weights = zip(*spec.blur_kinds)
        blur = kinds[rng.choice(len(kinds), p=np.asarray(weights) / sum(weights))]
    if blur == "downscale":
        f = rng.uniform(*spec.downscale)
        small = (max(1, int(round(final_w * f))), max(1, int(round(height * f))))
        img = img.resize(small, Image.Resampling.BILINEAR)
    return img.resize((final_w, height), Image.Resampling.BILINEAR), blur


def _degrade(rng: np.random.Generator, spec: StyleSpec, img: Image.Image, blur: str | None) -> Image.Image:
    """Degradations at final resolution: motion or Gaussian blur, noise, JPEG artefacts."""
    if blur == "motion":
        kernel = np.zeros((3, 3), np.float32)
        if rng.uniform() < 0.5:
            kernel[1, :] = 1
        else:
            kernel[np.arange(3), np.arange(3)] = 1
        img = img.filter(ImageFilter.Kernel((3, 3), kernel.ravel().tolist(), scale=3))
    elif blur == "gaussian":
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(*spec.blur_radius)))
    return noise_and_jpeg(rng, img, spec.noise_sigma, spec.jpeg_prob, spec.jpeg_quality)


def rgb_image(canvas: np.ndarray) -> Image.Image:
    """(h, w, 3) float levels in [0, 1] -> RGB image, rounded to 8 bits (``canvas`` is used up: scaled in place)."""
    canvas *= 255.0
    canvas += 0.5
    return Image.fromarray(np.clip(canvas, 0, 255, out=canvas).astype(np.uint8), "RGB")


def noise_and_jpeg(rng: np.random.Generator, img: Image.Image, noise_sigma: tuple[float, float], jpeg_prob: float,
                   jpeg_quality: tuple[int, int]) -> Image.Image:
    """Grey sensor noise (sigma drawn from ``noise_sigma``, 0..255 units; skipped below 0.5), then
    with probability ``jpeg_prob`` a JPEG round trip at a quality drawn from ``jpeg_quality``."""
    sigma = rng.uniform(*noise_sigma)
    if sigma > 0.5:
        width, height = img.size
        arr = np.asarray(img, np.float32)  # a new, writable array
        arr += rng.normal(0, sigma, (height, width, 1)).astype(np.float32)
        arr += 0.5
        img = Image.fromarray(np.clip(arr, 0, 255, out=arr).astype(np.uint8), "RGB")
    if rng.uniform() < jpeg_prob:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(*jpeg_quality)))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


def render_word(
    text: str,
    font_path: str | Path,
    rng: np.random.Generator,
    style: str | StyleSpec = "clean",
    height: int = 32,
) -> Image.Image:
    """Render ``text`` with the font at ``font_path`` as an RGB word crop ``height`` pixels high.

    Width follows the text (at least ``height / 2``). All randomness comes from ``rng``.
    """
    spec = get_style(style)
    size, stroke = _font_size_and_stroke(rng, spec, height)
    fill_mask, outline_mask, box = text_masks(text, str(font_path), size, stroke)
    out_w, out_h, coeffs = tilt_corners(rng, _padded_box(rng, spec, box, size), rotation_deg=spec.rotation_deg,
                                        shear=spec.shear, perspective=spec.perspective, steepness=0.6)

    def warp(mask: Image.Image) -> Image.Image:
        return mask.transform((out_w, out_h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR, fillcolor=0)

    img = _compose(rng, spec, warp, fill_mask, outline_mask, (out_w, out_h))
    img, blur = _resize_to_height(rng, spec, img, height)
    return _degrade(rng, spec, img, blur)


def encode_image(img: Image.Image, image_format: str = "png") -> bytes:
    """PNG (deterministic; zlib level 1: the noise makes higher levels slower, not smaller) or JPEG (quality 95)."""
    buf = io.BytesIO()
    if image_format == "png":
        img.save(buf, "PNG", compress_level=1)
    elif image_format in ("jpg", "jpeg"):
        img.save(buf, "JPEG", quality=95)
    else:
        raise UsageError(f"unknown image format '{image_format}' (choose png or jpg)")
    return buf.getvalue()
