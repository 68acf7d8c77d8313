"""The ``scene`` style: word crops that look like text photographed in the world.

One crop, in fixed steps that always draw from the generator in the same order:

1. **Text**: the word's mask (and a border mask when the style draws one) at a font size that
   leaves the text 65-95 % of the crop height.
2. **Layout**: padding that is sometimes negative (the crop cuts into the first or last letter a
   little, as detector boxes do), neighbouring words beside the word or on the line above/below,
   partly inside the crop (:func:`_layout`).
3. **Curve**: one time in five the baseline bends into an arch or a wave (a mesh warp).
4. **Geometry**: rotation, slant and perspective of the whole crop (one homography); with
   ``tilt_prob``, a steep rotation (up to ``tilt_deg``) whose crop is the axis-aligned box around
   the word, as detectors' boxes cut incidental text.
5. **Colours and surface**: a (background, text) colour pair measured on real crops
   (:mod:`.colors`), a photograph window or a procedural texture (:mod:`.backgrounds`),
   then shadow, extrusion and border layers, then the text.
6. **Camera**: resolution loss, defocus or motion blur, sensor noise, JPEG.

Deterministic per generator; the caller seeds it per (seed, index).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageFilter

from semimtr_cli.data.synth.backgrounds import image_background, procedural_background
from semimtr_cli.data.synth.colors import LUMA, sample_pair
from semimtr_cli.data.synth.render import noise_and_jpeg, rgb_image, random_pair, text_masks, tilt_corners


@dataclass(frozen=True)
class SceneSpec:
    """Probabilities and ranges of the scene style (lengths in units of the font size)."""

    text_height: tuple[float, float] = (0.65, 0.95)  # font size / crop height
    pad_x: tuple[float, float] = (-0.04, 0.3)
    pad_y: tuple[float, float] = (0.0, 0.18)
    neighbour_prob: float = 0.25  # a word beside the word
    line_prob: float = 0.15  # a word on the line above or below
    curve_prob: float = 0.2
    curve_amplitude: tuple[float, float] = (0.15, 0.5)
    rotation_deg: float = 6.0
    tilt_prob: float = 0.0  # a steeply rotated word in the axis-aligned box around it (incidental text)
    tilt_deg: float = 40.0
    shear: float = 0.3
    perspective: float = 0.1
    measured_colours: bool = True  # False: the wild style's random tinted pair (the ablation's "no-colours")
    textures: bool = True  # False: plain backgrounds, no photographs (the ablation's "no-surface")
    photo_prob: float = 0.6  # with a backgrounds folder: a photograph instead of a texture
    border_prob: float = 0.15
    shadow_prob: float = 0.15
    extrusion_prob: float = 0.1
    low_res_prob: float = 0.25
    low_res: tuple[float, float] = (0.4, 0.85)
    blur_prob: float = 0.2
    blur_radius: tuple[float, float] = (0.3, 1.1)
    motion_prob: float = 0.1
    noise_sigma: tuple[float, float] = (0.0, 6.0)
    jpeg_prob: float = 0.25
    jpeg_quality: tuple[int, int] = (25, 90)


SCENE = SceneSpec()


def _layout(rng, spec: SceneSpec, main: Image.Image, border: Image.Image | None, size: int,
            font_path: str, neighbours: Sequence[str]) -> tuple[list[Image.Image | None], np.ndarray]:
    """(text, border and distractor masks on one canvas, the crop's 4 corners on that canvas).

    The canvas leaves room for a neighbouring word left or right and a line above or below; the
    crop box is the word's box plus padding, so neighbours show only where padding reaches them.
    """
    w, h = main.size
    pad = [size * rng.uniform(*spec.pad_x), size * rng.uniform(*spec.pad_y),
           size * rng.uniform(*spec.pad_x), size * rng.uniform(*spec.pad_y)]  # left, top, right, bottom
    margin_x, margin_y = int(size * 2.5), int(size * 1.4)
    cw, ch = w + 2 * margin_x, h + 2 * margin_y
    text = Image.new("L", (cw, ch), 0)
    text.paste(main, (margin_x, margin_y))
    edge = None
    if border is not None:
        edge = Image.new("L", (cw, ch), 0)
        edge.paste(border, (margin_x, margin_y))
    distract = Image.new("L", (cw, ch), 0)
    drew = False
    if neighbours and rng.uniform() < spec.neighbour_prob:
        word = neighbours[int(rng.integers(len(neighbours)))]
        mask = text_masks(word, font_path, size, 0)[0]
        gap = size * rng.uniform(0.25, 0.7)
        side = 0 if rng.uniform() < 0.5 else 2
        x = margin_x - gap - mask.width if side == 0 else margin_x + w + gap
        distract.paste(mask, (int(round(x)), margin_y), mask)
        pad[side] = max(pad[side], gap + size * rng.uniform(0.1, 0.6))
        drew = True
    if neighbours and rng.uniform() < spec.line_prob:
        word = neighbours[int(rng.integers(len(neighbours)))]
        mask = text_masks(word, font_path, size, 0)[0]
        above = rng.uniform() < 0.5
        lead = h * rng.uniform(1.0, 1.25)
        x = margin_x + rng.uniform(-0.5, 0.5) * w
        distract.paste(mask, (int(round(x)), int(round(margin_y - lead if above else margin_y + lead))), mask)
        side = 1 if above else 3
        pad[side] = max(pad[side], h * rng.uniform(0.15, 0.35))
        drew = True
    x0, y0 = margin_x - pad[0], margin_y - pad[1]
    x1, y1 = margin_x + w + pad[2], margin_y + h + pad[3]
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
    return [text, edge, distract if drew else None], corners


def _curve(rng, spec: SceneSpec, masks: list, corners: np.ndarray, size: int) -> list:
    """Bend every mask's rows into an arch or a wave of the same shape (PIL mesh warp, 16 strips)."""
    amp = size * rng.uniform(*spec.curve_amplitude) * (1 if rng.uniform() < 0.5 else -1)
    wave = rng.uniform() < 0.3
    x0, x1 = corners[0, 0], corners[1, 0]
    width, height = masks[0].size

    def dy(x: float) -> float:
        t = min(max((x - x0) / max(x1 - x0, 1.0), 0.0), 1.0)
        return amp * math.sin(2 * math.pi * t) / 2 if wave else amp * (1 - (2 * t - 1) ** 2)

    edges = np.linspace(0, width, 17)
    mesh = []
    for a, b in zip(edges[:-1], edges[1:]):
        da, db = dy(a), dy(b)
        mesh.append(((int(a), 0, int(math.ceil(b)), height),
                     (a, -da, a, height - da, b, height - db, b, -db)))
    return [None if m is None else m.transform(m.size, Image.Transform.MESH, mesh, Image.Resampling.BILINEAR)
            for m in masks]


def _contrast_colour(rng, bg: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """A border/extrusion colour that separates text from background: dark on light text, else light."""
    lum = float(fg @ LUMA)
    base = 0.08 if lum > 0.5 else 0.92
    return np.clip(base + rng.uniform(-0.08, 0.08, 3), 0, 1).astype(np.float32)


def _shifted(alpha: np.ndarray, dx: int, dy: int) -> np.ndarray:
    out = np.zeros_like(alpha)
    h, w = alpha.shape[:2]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = alpha[ys, xs]
    return out


def _surface(rng, spec: SceneSpec, alphas: list, size: tuple[int, int], backgrounds: Sequence[str]) -> np.ndarray:
    """Background, shadow or extrusion, border, distractors and text composed: (h, w, 3) in [0, 1]."""
    w, h = size
    bg, fg = sample_pair(rng) if spec.measured_colours else random_pair(rng)
    if not spec.textures:
        canvas = procedural_background(rng, bg, h, w, kind="plain")
    elif backgrounds and rng.uniform() < spec.photo_prob:
        canvas = image_background(rng, backgrounds[int(rng.integers(len(backgrounds)))], bg, h, w)
    else:
        canvas = procedural_background(rng, bg, h, w)
    text, edge, distract = alphas
    solid = np.maximum(text, edge) if edge is not None else text
    effect = rng.uniform()
    if effect < spec.shadow_prob:
        dx, dy = (int(v) for v in rng.integers(1, 4, 2) * rng.choice([-1, 1], 2))
        blurred = np.asarray(Image.fromarray((_shifted(solid, dx, dy)[..., 0] * 255).astype(np.uint8))
                             .filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0))), np.float32)[..., None] / 255
        canvas *= 1 - blurred * rng.uniform(0.4, 0.8)
    elif effect < spec.shadow_prob + spec.extrusion_prob:
        depth, (sx, sy) = int(rng.integers(2, 6)), rng.choice([-1, 1], 2)
        side = _contrast_colour(rng, bg, fg) * 0.6 + fg * 0.4
        for k in range(depth, 0, -1):
            _paint(canvas, _shifted(solid, int(sx * k), int(sy * k)), side)
    if edge is not None:
        _paint(canvas, edge, _contrast_colour(rng, bg, fg))
    if distract is not None:
        _paint(canvas, distract, fg)
    return _paint(canvas, text, fg)


def _paint(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """``canvas * (1 - alpha) + colour * alpha`` written into ``canvas`` (h, w, 3), which it returns."""
    canvas *= 1 - alpha
    canvas += colour * alpha
    return canvas


def _camera(rng, spec: SceneSpec, img: Image.Image, height: int) -> Image.Image:
    """Resize to ``height`` (through a lower resolution sometimes), blur, noise and JPEG."""
    width = max(height // 2, int(round(img.width * height / img.height)))
    if rng.uniform() < spec.low_res_prob:
        f = rng.uniform(*spec.low_res)
        img = img.resize((max(2, round(width * f)), max(2, round(height * f))), Image.Resampling.BILINEAR)
    img = img.resize((width, height), Image.Resampling.BILINEAR)
    if rng.uniform() < spec.blur_prob:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(*spec.blur_radius)))
    if rng.uniform() < spec.motion_prob:
        k = np.zeros((5, 5), np.float32)
        angle = rng.uniform(0, math.pi)
        for t in np.linspace(-2, 2, 9):
            k[int(round(2 + t * math.sin(angle))), int(round(2 + t * math.cos(angle)))] = 1
        img = img.filter(ImageFilter.Kernel((5, 5), k.ravel().tolist(), scale=float(k.sum())))
    return noise_and_jpeg(rng, img, spec.noise_sigma, spec.jpeg_prob, spec.jpeg_quality)


def render_scene(text: str, font_path: str, rng: np.random.Generator, height: int = 32, *,
                 backgrounds: Sequence[str] = (), neighbours: Sequence[str] = (),
                 spec: SceneSpec = SCENE) -> Image.Image:
    """``text`` as an RGB scene crop ``height`` pixels high (width by aspect, >= height / 2).

    ``backgrounds``: photograph files to cut windows from (none: procedural textures);
    ``neighbours``: words to draw beside or around the word, partly cut by the crop.
    """
    size = max(8, int(round(height * rng.uniform(*spec.text_height))))
    stroke = max(1, int(round(size * rng.uniform(0.05, 0.1)))) if rng.uniform() < spec.border_prob else 0
    fill, border, _ = text_masks(text, font_path, size, stroke)
    masks, corners = _layout(rng, spec, fill, border, size, font_path, neighbours)
    if rng.uniform() < spec.curve_prob:
        masks = _curve(rng, spec, masks, corners, size)
    steep = spec.tilt_prob > 0 and rng.uniform() < spec.tilt_prob  # no draw when off: the crops stay as before
    out_w, out_h, coeffs = tilt_corners(rng, corners, rotation_deg=spec.tilt_deg if steep else spec.rotation_deg,
                                        shear=spec.shear, perspective=spec.perspective,
                                        steepness=math.inf if steep else 0.5, min_side=2)
    alphas = [None if m is None else np.asarray(
        m.transform((out_w, out_h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR, fillcolor=0),
        np.float32)[..., None] / 255.0 for m in masks]
    canvas = _surface(rng, spec, alphas, (out_w, out_h), backgrounds)
    img = rgb_image(canvas)
    return _camera(rng, spec, img, height)
