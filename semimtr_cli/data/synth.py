"""Render synthetic word crops from fonts and a word list (the data behind `semimtr synth`).

Two rendering styles:

* ``clean``: plain or lightly tinted backgrounds, clear dark/light contrast, mild colour,
  rotation within +-2 degrees, little noise. Default fonts: the sans family.
* ``wild``: a shifted distribution for semi-supervised experiments: gradient / textured /
  grainy backgrounds, sometimes low contrast, shadows and outlines, blur and motion blur,
  low-resolution and JPEG artefacts, rotation within +-10 degrees, slant and perspective.
  Default fonts: the serif and mono families (so a clean labeled set and a wild unlabeled set
  differ in fonts too).

Every sample ``i`` draws from its own generator ``numpy.random.default_rng([seed, i])``, so a
sample does not depend on ``count``, on the other samples or on the number of worker processes,
and the same seed gives byte-identical files. Crops are word-shaped: ``height`` pixels high
(default 32) and as wide as the text needs (at least ``height / 2``).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..errors import SemimtrError, UsageError
from ..fsutil import atomic_dir
from .lmdb_io import LmdbWriter, is_lmdb_dir
from .wordlist import WordList, packaged_words

# ---------------------------------------------------------------------------------------------
# Fonts

FONT_EXTENSIONS = (".ttf", ".otf", ".ttc")

# matplotlib's bundled fonts that draw ordinary text (symbol-only fonts such as cmex10, cmsy10,
# cmmi10, STIXSiz*, STIXNonUni*, DejaVu*Display and LastResortHE are left out).
BUNDLED_FONT_SETS: dict[str, tuple[str, ...]] = {
    "sans": (
        "DejaVuSans.ttf",
        "DejaVuSans-Bold.ttf",
        "DejaVuSans-Oblique.ttf",
        "DejaVuSans-BoldOblique.ttf",
        "cmss10.ttf",
    ),
    "serif": (
        "DejaVuSerif.ttf",
        "DejaVuSerif-Bold.ttf",
        "DejaVuSerif-Italic.ttf",
        "DejaVuSerif-BoldItalic.ttf",
        "STIXGeneral.ttf",
        "STIXGeneralBol.ttf",
        "STIXGeneralItalic.ttf",
        "STIXGeneralBolIta.ttf",
        "cmr10.ttf",
        "cmb10.ttf",
        "cmti10.ttf",
    ),
    "mono": (
        "DejaVuSansMono.ttf",
        "DejaVuSansMono-Bold.ttf",
        "DejaVuSansMono-Oblique.ttf",
        "DejaVuSansMono-BoldOblique.ttf",
        "cmtt10.ttf",
    ),
}
FONT_SET_PRESETS = ("sans", "serif", "mono", "all")
DEFAULT_FONT_SET = {"clean": "sans", "wild": "serif,mono"}

# The Computer Modern TTFs use TeX's OT1 layout: letters and digits sit at their ASCII codes but
# several punctuation codes hold other glyphs ('<' is an inverted '!', '"' a closing quote...).
# Only these characters are trusted to look like their label in those fonts.
_OT1_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#%&'()*+,-./:;=?@[]")
_PROBE = "abcdefghijklmnopqrstuvwxyz0123456789"


def bundled_font_dir() -> Path:
    """matplotlib's folder of bundled TrueType fonts (DejaVu, STIX, Computer Modern)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def list_font_files(root: str | Path) -> list[Path]:
    """TTF/OTF/TTC files under ``root`` (recursively, sorted; hidden entries skipped).

    Raises:
        SemimtrError: if ``root`` is missing or holds no font file.
    """
    root = Path(root)
    if not root.exists():
        raise SemimtrError(f"font folder not found: {root}")
    if root.is_file():
        found = [root] if root.suffix.lower() in FONT_EXTENSIONS else []
    else:
        found = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and p.suffix.lower() in FONT_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
    if not found:
        raise SemimtrError(f"no font files (.ttf/.otf/.ttc) found in {root}")
    return found


def _select(pool: dict[str, Path], spec: str, *, allow_presets: bool) -> list[Path]:
    chosen: dict[str, Path] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item == "all":
            chosen.update(pool)
        elif item in BUNDLED_FONT_SETS:
            if not allow_presets:
                raise UsageError(
                    f"font set '{item}' names matplotlib's bundled fonts; with --fonts use 'all' "
                    "or a comma list of font file names"
                )
            chosen.update({name: pool[name] for name in BUNDLED_FONT_SETS[item] if name in pool})
        else:
            matches = {n: p for n, p in pool.items() if item in (n, Path(n).stem)}
            if not matches:
                raise UsageError(
                    f"unknown font or font set '{item}' (presets: {', '.join(FONT_SET_PRESETS)}; "
                    f"fonts: {', '.join(sorted(pool)[:12])}{' ...' if len(pool) > 12 else ''})"
                )
            chosen.update(matches)
    if not chosen:
        raise UsageError(f"font set '{spec}' selects no font")
    return [chosen[name] for name in sorted(chosen)]


def resolve_fonts(fonts_dir: str | Path | None = None, font_set: str | None = None, style: str = "clean") -> list[Path]:
    """Font files to render with.

    Without ``fonts_dir``: matplotlib's bundled fonts, filtered by ``font_set`` - a preset
    (``sans``, ``serif``, ``mono``, ``all``), a font file name/stem, or a comma list of these
    (e.g. ``serif,DejaVuSansMono``). Default: ``sans`` for ``clean``, ``serif,mono`` for ``wild``.
    With ``fonts_dir``: every font file under it (``font_set`` may name some of them).
    """
    if fonts_dir is not None:
        files = list_font_files(fonts_dir)
        root = Path(fonts_dir)
        pool = {str(p.relative_to(root)) if root.is_dir() else p.name: p for p in files}
        pool.update({p.name: p for p in files if p.name not in pool})
        if not font_set or font_set == "all":
            return files
        return sorted(set(_select(pool, font_set, allow_presets=False)))
    folder = bundled_font_dir()
    names = sorted({n for names in BUNDLED_FONT_SETS.values() for n in names})
    pool = {n: folder / n for n in names if (folder / n).is_file()}
    if not pool:
        raise SemimtrError(f"matplotlib's bundled fonts are missing from {folder}; pass --fonts DIR")
    return _select(pool, font_set or DEFAULT_FONT_SET.get(style, "sans"), allow_presets=True)


@lru_cache(maxsize=None)
def _glyph_index_lookup(path: str):
    from matplotlib.ft2font import FT2Font

    try:
        return FT2Font(path)
    except Exception as exc:  # FreeType raises RuntimeError / ValueError / OSError
        raise SemimtrError(f"{path}: cannot load font ({exc})") from None


def font_covers(path: str | Path, chars: set[str]) -> set[str]:
    """The subset of ``chars`` that the font at ``path`` has glyphs for."""
    path = str(path)
    ft = _glyph_index_lookup(path)
    name = os.path.basename(path).lower()
    restricted = name.startswith("cm") and name.endswith("10.ttf")
    covered = set()
    for ch in chars:
        if ch == " ":
            covered.add(ch)
        elif (not restricted or ch in _OT1_SAFE) and ft.get_char_index(ord(ch)) != 0:
            covered.add(ch)
    return covered


@lru_cache(maxsize=512)
def _load_font(path: str, size: int) -> tuple[ImageFont.FreeTypeFont, int, int]:
    """(font, top, bottom) with top/bottom the extent of 'Hg' relative to the baseline (pixels)."""
    try:
        font = ImageFont.truetype(path, size)
    except OSError as exc:
        raise SemimtrError(f"{path}: cannot load font ({exc})") from None
    _, top, _, bottom = font.getbbox("Hg", anchor="ls")
    return font, top, bottom


# ---------------------------------------------------------------------------------------------
# Styles


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


def get_style(style: str | StyleSpec) -> StyleSpec:
    if isinstance(style, StyleSpec):
        return style
    try:
        return STYLES[style]
    except KeyError:
        raise UsageError(f"unknown style '{style}' (choose from: {', '.join(STYLES)})") from None


# ---------------------------------------------------------------------------------------------
# Rendering


def _homography(src: np.ndarray, dst: np.ndarray) -> tuple[float, ...]:
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


def _text_masks(
    text: str, font_path: str, size: int, stroke: int
) -> tuple[Image.Image, Image.Image | None, tuple[int, int, int, int]]:
    """Masks (fill, stroke or None) of ``text`` and its line box (x0, y0, x1, y1) in mask pixels."""
    font, ref_top, ref_bottom = _load_font(font_path, size)
    left, top, right, bottom = font.getbbox(text, anchor="ls", stroke_width=stroke)
    top, bottom = min(top, ref_top - stroke), max(bottom, ref_bottom + stroke)
    if right <= left:  # nothing drawable (e.g. only spaces): keep a space-wide box
        right = left + max(1, int(font.getlength(text or " ")))
    width, height = right - left + 2, bottom - top + 2
    origin = (1 - left, 1 - top)
    fill = Image.new("L", (width, height), 0)
    ImageDraw.Draw(fill).text(origin, text, font=font, fill=255, anchor="ls")
    outline = None
    if stroke:
        outline = Image.new("L", (width, height), 0)
        ImageDraw.Draw(outline).text(origin, text, font=font, fill=255, anchor="ls", stroke_width=stroke, stroke_fill=255)
    return fill, outline, (1, 1, width - 1, height - 1)


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
    font_path = str(font_path)
    ss = spec.supersample
    size = height * ss * 0.8
    if spec.font_size_jitter:
        size *= rng.uniform(1 - spec.font_size_jitter, 1 + spec.font_size_jitter)
    size = max(6, int(round(size)))
    stroke = max(1, int(round(size * rng.uniform(0.04, 0.08)))) if rng.uniform() < spec.outline_prob else 0
    fill_mask, outline_mask, (x0, y0, x1, y1) = _text_masks(text, font_path, size, stroke)

    # Padded box around the text, in mask coordinates.
    x0 -= size * rng.uniform(*spec.pad_x)
    x1 += size * rng.uniform(*spec.pad_x)
    y0 -= size * rng.uniform(*spec.pad_y)
    y1 += size * rng.uniform(*spec.pad_y)
    src = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)

    # Geometry: slant, rotate, jitter corners; the crop is the axis-aligned box of the result.
    # Long words rotate less, so their axis-aligned crop stays at most ~1.6x the text height.
    max_angle = min(math.radians(spec.rotation_deg), math.atan(0.6 * (y1 - y0) / max(x1 - x0, 1.0)))
    angle = rng.uniform(-max_angle, max_angle)
    shear = rng.uniform(-spec.shear, spec.shear) if spec.shear else 0.0
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    linear = rot @ np.array([[1.0, -shear], [0.0, 1.0]])
    dst = (src - src.mean(0)) @ linear.T
    if spec.perspective:
        dst += rng.uniform(-spec.perspective, spec.perspective, (4, 2)) * (y1 - y0)
    dst -= dst.min(0)
    out_w, out_h = max(1, int(math.ceil(dst[:, 0].max()))), max(1, int(math.ceil(dst[:, 1].max())))
    coeffs = _homography(dst, src)  # PIL maps output pixels back to source pixels

    def warp(mask: Image.Image) -> Image.Image:
        return mask.transform((out_w, out_h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR, fillcolor=0)

    alpha = np.asarray(warp(fill_mask), np.float32)[..., None] / 255.0

    # Colours and composition.
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
    img = Image.fromarray(np.clip(canvas * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")

    # Final size: exact height, width by aspect ratio.
    final_w = max(int(math.ceil(height / 2)), int(round(out_w * height / out_h)))
    blur = None
    if rng.uniform() < spec.blur_prob:
        kinds, weights = zip(*spec.blur_kinds)
        blur = kinds[rng.choice(len(kinds), p=np.asarray(weights) / sum(weights))]
    if blur == "downscale":
        f = rng.uniform(*spec.downscale)
        small = (max(1, int(round(final_w * f))), max(1, int(round(height * f))))
        img = img.resize(small, Image.Resampling.BILINEAR)
    img = img.resize((final_w, height), Image.Resampling.BILINEAR)

    # Degradations at final resolution.
    if blur == "motion":
        kernel = np.zeros((3, 3), np.float32)
        if rng.uniform() < 0.5:
            kernel[1, :] = 1
        else:
            kernel[np.arange(3), np.arange(3)] = 1
        img = img.filter(ImageFilter.Kernel((3, 3), kernel.ravel().tolist(), scale=3))
    elif blur == "gaussian":
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(*spec.blur_radius)))
    sigma = rng.uniform(*spec.noise_sigma)
    if sigma > 0.5:
        arr = np.asarray(img, np.float32) + rng.normal(0, sigma, (height, final_w, 1)).astype(np.float32)
        img = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")
    if rng.uniform() < spec.jpeg_prob:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(*spec.jpeg_quality)))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


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


# ---------------------------------------------------------------------------------------------
# Sampling words and fonts


CASES = ("lower", "mixed", "upper", "as-is")


@dataclass(frozen=True)
class SynthPlan:
    """Everything one sample needs besides its index (picklable; sent once to each worker)."""

    seed: int
    words: tuple[str, ...]
    fonts: tuple[str, ...]
    font_chars: tuple[frozenset, ...]  # characters each font can draw
    style: str
    height: int
    case: str
    digits_fraction: float
    image_format: str
    stream: bool = False  # streamed training crops draw from their own generator keys


# Extra generator key of streamed crops: sample i of seed s never equals `semimtr synth --seed s` sample i,
# so no synth test set can coincide with a crop a streamed training run saw.
STREAM_KEY = 0x5354


def _apply_case(word: str, case: str, rng: np.random.Generator) -> str:
    if case == "as-is":
        return word
    if case == "lower":
        return word.lower()
    if case == "upper":
        return word.upper()
    r = rng.uniform()
    if r < 0.5:
        return word.lower()
    if r < 0.8:
        return word[:1].upper() + word[1:].lower()
    return word.upper()


def _random_number(rng: np.random.Generator) -> str:
    length = int(rng.choice([1, 2, 3, 4, 4, 5, 6, 7]))
    digits = rng.integers(0, 10, length)
    if length > 1 and digits[0] == 0 and rng.uniform() < 0.8:
        digits[0] = rng.integers(1, 10)
    return "".join(str(d) for d in digits)


def make_sample(plan: SynthPlan, index: int) -> tuple[bytes, str, int]:
    """(encoded image, label, font index) of sample ``index``; depends only on (seed, index)."""
    img, text, font_index = draw_sample(plan, index)
    return encode_image(img, plan.image_format), text, font_index


def draw_sample(plan: SynthPlan, index: int) -> tuple[Image.Image, str, int]:
    """(RGB crop, label, font index) of sample ``index``, not encoded (streaming skips the codec)."""
    rng = np.random.default_rng([plan.seed, index, STREAM_KEY] if plan.stream else [plan.seed, index])
    for _ in range(100):
        if rng.uniform() < plan.digits_fraction:
            text = _random_number(rng)
        else:
            text = _apply_case(plan.words[int(rng.integers(len(plan.words)))], plan.case, rng)
        chars = set(text)
        usable = [i for i, have in enumerate(plan.font_chars) if chars <= have]
        if usable:
            break
    else:
        raise SemimtrError(f"sample {index}: no font can draw 100 drawn words in a row; check --fonts/--words")
    font_index = usable[int(rng.integers(len(usable)))]
    return render_word(text, plan.fonts[font_index], rng, plan.style, plan.height), text, font_index


_WORKER_PLAN: SynthPlan | None = None


def _init_worker(plan: SynthPlan) -> None:
    global _WORKER_PLAN
    _WORKER_PLAN = plan


def _render_chunk(indices: range) -> list[tuple[bytes, str, int]]:
    assert _WORKER_PLAN is not None
    return [make_sample(_WORKER_PLAN, i) for i in indices]


def plan_synth(
    seed: int,
    *,
    words: WordList | Sequence[str] | None = None,
    fonts: Sequence[str | Path] | None = None,
    style: str = "clean",
    height: int = 32,
    case: str = "mixed",
    digits_fraction: float = 0.1,
    image_format: str = "png",
) -> tuple[SynthPlan, dict]:
    """Validate options, check glyph coverage, and return (plan, facts for the summary).

    Words that no chosen font can draw are dropped and counted; fonts that cannot draw any of
    a-z/0-9 are dropped and counted.
    """
    spec = get_style(style)
    if not 8 <= height <= 512:
        raise UsageError(f"--height must be between 8 and 512 pixels, got {height}")
    if case not in CASES:
        raise UsageError(f"unknown case '{case}' (choose from: {', '.join(CASES)})")
    if not 0.0 <= digits_fraction <= 1.0:
        raise UsageError(f"--digits-fraction must be in [0, 1], got {digits_fraction}")
    if image_format not in ("png", "jpg"):
        raise UsageError(f"unknown image format '{image_format}' (choose png or jpg)")
    word_list = packaged_words() if words is None else words if isinstance(words, WordList) else WordList(list(words), "given words")
    font_paths = [str(p) for p in (fonts if fonts is not None else resolve_fonts(style=spec.name))]
    if not font_paths:
        raise SemimtrError("no fonts to render with")
    alphabet = set(_PROBE) | set("0123456789")
    for w in word_list.words:
        alphabet.update(w)
        if case != "as-is":
            alphabet.update(w.lower() + w.upper())
    kept_fonts, kept_chars, bad_fonts = [], [], []
    for path in font_paths:
        covered = font_covers(path, alphabet)
        if not covered & set(_PROBE):
            bad_fonts.append(Path(path).name)
            continue
        kept_fonts.append(path)
        kept_chars.append(frozenset(covered))
    if not kept_fonts:
        raise SemimtrError(f"none of the {len(font_paths)} fonts draws a-z or 0-9 (e.g. {Path(font_paths[0]).name})")
    union = frozenset().union(*kept_chars)
    kept_words = [w for w in word_list.words if set(w) <= union]
    if not kept_words and digits_fraction < 1.0:
        raise SemimtrError(f"no word of {word_list.source} can be drawn with the chosen fonts")
    plan = SynthPlan(
        seed=int(seed),
        words=tuple(kept_words) or ("0",),
        fonts=tuple(kept_fonts),
        font_chars=tuple(kept_chars),
        style=spec.name,
        height=int(height),
        case=case,
        digits_fraction=float(digits_fraction),
        image_format=image_format,
    )
    facts = {
        "words_source": word_list.source,
        "words": len(kept_words),
        "words_skipped": {**word_list.skipped, **({"no font draws it": len(word_list) - len(kept_words)} if len(kept_words) < len(word_list) else {})},
        "fonts_skipped": bad_fonts,
    }
    return plan, facts


def iter_samples(plan: SynthPlan, count: int, workers: int = 1, chunk: int = 64):
    """Yield ``(image bytes, label, font index)`` for indices 0..count-1 in order."""
    chunks = [range(s, min(s + chunk, count)) for s in range(0, count, chunk)]
    if workers <= 1 or len(chunks) <= 1:
        for c in chunks:
            yield [make_sample(plan, i) for i in c]
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(plan,)) as pool:
        yield from pool.map(_render_chunk, chunks)


# ---------------------------------------------------------------------------------------------
# Writing outputs

MANIFEST = "synth.json"


def _is_synth_folder(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def check_output(out: Path, *, lmdb: bool, overwrite: bool) -> None:
    """Refuse to replace an existing output without ``overwrite``, or a foreign folder ever."""
    if not out.exists():
        return
    if not out.is_dir():
        raise SemimtrError(f"output {out} exists and is not a folder")
    if not any(out.iterdir()):
        return
    ours = is_lmdb_dir(out) or _is_synth_folder(out)
    if not overwrite:
        raise SemimtrError(f"output {out} already exists; pass --overwrite to replace it")
    if not ours:
        raise SemimtrError(f"output {out} is a non-empty folder that is neither an LMDB nor a synth output; refusing to replace it")
    if lmdb and not is_lmdb_dir(out):
        raise SemimtrError(f"output {out} holds a synth image folder; remove it or choose another --out for an LMDB")


def generate(
    out: str | Path,
    count: int,
    seed: int = 0,
    *,
    lmdb: bool = False,
    unlabeled: bool = False,
    words: WordList | Sequence[str] | None = None,
    fonts: Sequence[str | Path] | None = None,
    style: str = "clean",
    height: int = 32,
    case: str = "mixed",
    digits_fraction: float = 0.1,
    image_format: str = "png",
    overwrite: bool = False,
    workers: int = 1,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Render ``count`` word crops into ``out`` and return a summary dict.

    Output: with ``lmdb`` an LMDB (standard layout; no label keys when ``unlabeled``); else a
    folder with ``images/NNNNNNNNN.png`` (1-based, like LMDB keys), ``labels.tsv``
    (``images/...<TAB>label``, omitted when ``unlabeled``) and ``synth.json`` (the settings).
    Both are built beside ``out`` and renamed into place at the end. ``fonts``: font files
    (default: :func:`resolve_fonts` for the style). ``words``: default the packaged list.
    """
    out = Path(out)
    if count < 1:
        raise UsageError(f"--count must be at least 1, got {count}")
    check_output(out, lmdb=lmdb, overwrite=overwrite)
    plan, facts = plan_synth(
        seed, words=words, fonts=fonts, style=style, height=height, case=case,
        digits_fraction=digits_fraction, image_format=image_format,
    )
    font_counts = [0] * len(plan.fonts)
    widths = 0
    total_bytes = 0
    start = time.perf_counter()
    settings = {
        "seed": plan.seed, "count": count, "style": plan.style, "height": plan.height, "case": plan.case,
        "digits_fraction": plan.digits_fraction, "format": plan.image_format, "unlabeled": unlabeled,
        "fonts": [Path(f).name for f in plan.fonts], "words_source": facts["words_source"], "words": facts["words"],
    }
    if lmdb:
        with LmdbWriter(out, overwrite=overwrite) as writer:
            for batch in iter_samples(plan, count, workers):
                for data, label, font_index in batch:
                    writer.add(data, None if unlabeled else label)
                    font_counts[font_index] += 1
                    total_bytes += len(data)
                    widths += _encoded_width(data, plan.image_format)
                if on_progress:
                    on_progress(len(batch))
    else:
        with atomic_dir(out) as tmp:
            (tmp / "images").mkdir()
            lines = []
            index = 0
            for batch in iter_samples(plan, count, workers):
                for data, label, font_index in batch:
                    index += 1
                    rel = f"images/{index:09d}.{plan.image_format}"
                    (tmp / rel).write_bytes(data)
                    lines.append(f"{rel}\t{label}\n")
                    font_counts[font_index] += 1
                    total_bytes += len(data)
                    widths += _encoded_width(data, plan.image_format)
                if on_progress:
                    on_progress(len(batch))
            if not unlabeled:
                (tmp / "labels.tsv").write_text("".join(lines), encoding="utf-8", newline="\n")
            (tmp / MANIFEST).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    seconds = time.perf_counter() - start
    return {
        "out": str(out),
        "kind": "lmdb" if lmdb else "folder",
        **settings,
        "fonts_used": {Path(f).name: n for f, n in zip(plan.fonts, font_counts) if n},
        "fonts_skipped": facts["fonts_skipped"],
        "words_skipped": facts["words_skipped"],
        "mean_width": widths / count,
        "bytes": total_bytes,
        "workers": workers,
        "seconds": seconds,
        "images_per_s": count / seconds if seconds > 0 else float("inf"),
    }


def _encoded_width(data: bytes, image_format: str) -> int:
    """Image width: from the PNG header, or PIL's lazy JPEG header parse."""
    if image_format == "png":
        return int.from_bytes(data[16:20], "big")
    return Image.open(io.BytesIO(data)).size[0]
