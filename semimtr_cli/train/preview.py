"""Augmentation previews: pick samples from an LMDB or image folder and draw a PNG grid.

The grid has one row per sample: a left margin with the sample's name, label and size, then
the original and the augmented draws. Each cell shows the image at its own aspect ratio
(top, fitted into a box, nearest-neighbour when enlarged so noise stays visible) and the
32x128 model input the network would see (bottom, shown at 2x).
Everything is seeded: the same arguments give the same PNG bytes.

The views come from a training recipe (:func:`semimtr_cli.train.recipe.training_views`, the
map the training stages use): ``--recipe R`` shows R's views, the two-view choices
``teacher-student`` and ``seqclr`` the paper recipe's fine-tuning and vision pre-training
views, and a pipeline name (``abinet``, ``strong1``, ``strong2``) that pipeline alone.
:func:`preview_augmentations` is the ``show-aug`` entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from semimtr_cli.core.errors import SemimtrError, UsageError, option
from semimtr_cli.data.augment.pipelines import build_pipeline, two_view
from semimtr_cli.data.image import DEFAULT_HEIGHT, DEFAULT_WIDTH, decode_image, resize_levels
from semimtr_cli.data.synth.fonts import bundled_font_dir

PREVIEW_CHOICES = ("abinet", "strong1", "strong2", "teacher-student", "seqclr")
#: The two-view choices and the paper recipe stage whose views they show.
STAGE_CHOICES = {"teacher-student": "finetune", "seqclr": "pretrain-vision"}
DEFAULT_CHOICE = "teacher-student"

#: A view: (role, pipeline name), e.g. ("teacher", "abinet").
View = tuple[str, str]

CELL_W = 2 * DEFAULT_WIDTH  # 256
NATIVE_H = 80
MODEL_H = 2 * DEFAULT_HEIGHT  # 64
PAD = 6
MARGIN_W = 200
TITLE_H = 24
ROW_H = NATIVE_H + MODEL_H + 3 * PAD
BACKGROUND = (255, 255, 255)
FRAME = (200, 200, 200)
TEXT = (20, 20, 20)


@dataclass
class PreviewSample:
    """One source sample: display name, label (None = unlabeled) and RGB uint8 image."""

    name: str
    label: str | None
    image: np.ndarray


@dataclass
class GridRow:
    lines: list[str]
    cells: list[np.ndarray]
    info: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- sources


def _lmdb_roots(source: Path) -> list[Path]:
    from semimtr_cli.data.lmdb.io import find_lmdbs, is_lmdb_dir

    if is_lmdb_dir(source):
        return [source]
    if source.is_dir() and any(p.is_file() for p in source.rglob("data.mdb")):
        return find_lmdbs(source)
    return []


def load_samples(source: str | Path, count: int, seed: int) -> tuple[list[PreviewSample], list[dict]]:
    """Pick up to ``count`` samples (seeded) from an LMDB, a folder of LMDBs or an image folder.

    Returns the decoded samples and a list of ``{"name", "reason"}`` for picked samples that
    could not be decoded (skipped).

    Raises:
        SemimtrError: missing path, nothing to read, or no picked sample decodable.
    """
    source = Path(source)
    if not source.exists():
        raise SemimtrError(f"path not found: {source}")
    rng = np.random.default_rng([int(seed), 7])
    skipped: list[dict] = []
    samples: list[PreviewSample] = []
    roots = _lmdb_roots(source)
    if roots:
        from semimtr_cli.data.lmdb.io import LmdbReader

        readers = [LmdbReader(r) for r in roots]
        sizes = [len(r) for r in readers]
        total = sum(sizes)
        if total == 0:
            raise SemimtrError(f"{source}: the LMDB holds no samples")
        picks = np.sort(rng.choice(total, size=min(count, total), replace=False))
        offsets = np.cumsum([0] + sizes)
        for flat in picks.tolist():
            which = int(np.searchsorted(offsets, flat, side="right") - 1)
            index = flat - int(offsets[which])
            reader = readers[which]
            name = f"{reader.path.name}#{index + 1}"
            try:
                data, label = reader.sample(index)
                samples.append(PreviewSample(name, label, np.asarray(decode_image(data, name=name))))
            except SemimtrError as exc:
                skipped.append({"name": name, "reason": str(exc)})
    else:
        from semimtr_cli.data.files import list_images

        files = list_images(source)
        if not files:
            raise SemimtrError(f"{source}: no LMDB (data.mdb) and no image files found")
        picks = np.sort(rng.choice(len(files), size=min(count, len(files)), replace=False))
        for i in picks.tolist():
            path = files[i]
            name = str(path.relative_to(source)) if source.is_dir() else path.name
            try:
                img = decode_image(path.read_bytes(), name=str(path))
                samples.append(PreviewSample(name, path.stem, np.asarray(img)))
            except SemimtrError as exc:
                skipped.append({"name": name, "reason": str(exc)})
    if not samples:
        raise SemimtrError(f"{source}: none of the {len(skipped)} picked samples could be decoded ({skipped[0]['reason']})")
    return samples, skipped


# ----------------------------------------------------------------------------- rows


def _row_seed(seed: int, row: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(row)]).generate_state(1)[0])


def pipeline_views(pipeline: str) -> tuple[View, ...]:
    """The views of a ``show-aug`` pipeline choice: one named pipeline, or for a two-view choice
    the paper recipe's views of its stage (``AugmentConfig`` defaults).

    Raises:
        UsageError: ``pipeline`` is not one of :data:`PREVIEW_CHOICES`.
    """
    key = pipeline.strip().lower()
    if key in STAGE_CHOICES:
        from semimtr_cli.train.recipe import Recipe, training_views

        return training_views(Recipe(stage=STAGE_CHOICES[key]))
    if key not in PREVIEW_CHOICES:
        raise UsageError(f"unknown {option('pipeline')} {pipeline!r}; choose one of {', '.join(PREVIEW_CHOICES)}")
    return ((key, key),)


def recipe_views(path: str | Path) -> tuple[str, tuple[View, ...]]:
    """(stage, views) of the recipe file ``path``: exactly the views its training draws.

    Raises:
        SemimtrError: unreadable recipe; UsageError: its stage draws no image views.
    """
    from semimtr_cli.train.recipe import load_recipe, training_views

    recipe = load_recipe(path)
    views = training_views(recipe)
    if not views:
        raise UsageError(f"{path}: a {recipe.stage} recipe draws no image views to preview", param="recipe")
    return recipe.stage, views


def _row_pipeline(views: tuple[View, ...], seed: int):
    if len(views) == 1:
        return build_pipeline(views[0][1], seed=seed)
    (_, first), (_, second) = views
    return two_view(first, second, seed=seed)


def build_rows(samples: list[PreviewSample], views: tuple[View, ...], draws: int,
               seed: int) -> tuple[list[str], list[GridRow]]:
    """Augment every sample ``draws`` times with ``views`` (one or two); returns (column titles, rows).

    A pipeline is built per row (seeded from ``seed`` and the row; a second view from that
    seed + 1), so rows show the range of construction-time choices (e.g. ABINet's frozen
    geometric type); each draw uses ``default_rng([seed, row, draw])``.

    Raises:
        UsageError: not one or two views, or ``draws < 1``.
    """
    views = tuple((str(role), str(name)) for role, name in views)
    if len(views) not in (1, 2):
        raise UsageError(f"a preview shows one or two views, got {len(views)}", param="views")
    if draws < 1:
        raise UsageError(f"must be at least 1, got {draws}", param="draws")
    titles = ["original"] + [f"{role} {j + 1}" for j in range(draws) for role, _ in views]
    rows = []
    for i, sample in enumerate(samples):
        aug = _row_pipeline(views, _row_seed(seed, i))
        cells = [sample.image]
        for j in range(draws):
            out = aug(sample.image, np.random.default_rng([int(seed), i, j]))
            cells.extend(out if isinstance(out, tuple) else [out])
        settings = aug.describe()
        h, w = sample.image.shape[:2]
        lines = [sample.name, f"label: {sample.label}" if sample.label is not None else "(unlabeled)", f"{w}x{h} px"]
        lines += _settings_lines(settings)
        rows.append(GridRow(lines, cells, {"name": sample.name, "label": sample.label, "width": w, "height": h, "settings": settings}))
    return titles, rows


def _settings_lines(settings: dict) -> list[str]:
    """Construction-time choices worth printing in the margin (ABINet's frozen ones)."""
    found = []
    for part in (settings, settings.get("first", {}), settings.get("second", {})):
        if isinstance(part, dict) and part.get("pipeline") == "abinet":
            found.append(f"geometry: {part.get('geometry_type')}")
            det = part.get("deterioration")
            if isinstance(det, dict):
                found.append(f"det: var {det['noise_var']}, blur {det['blur_size']}, x{det['rescale_factor']}")
    return found


# ----------------------------------------------------------------------------- drawing


def dejavu_font(size: int):
    """DejaVu Sans (shipped with matplotlib) at ``size`` px, or PIL's default font."""
    try:
        return ImageFont.truetype(str(bundled_font_dir() / "DejaVuSans.ttf"), size)
    except OSError:
        return ImageFont.load_default()


def _fit(arr: np.ndarray, box_w: int, box_h: int) -> Image.Image:
    h, w = arr.shape[:2]
    scale = min(box_w / w, box_h / h, 4.0)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    method = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
    return Image.fromarray(arr, "RGB").resize(size, method)


def _model_view(arr: np.ndarray) -> Image.Image:
    levels = resize_levels(arr).permute(1, 2, 0).numpy()
    return Image.fromarray(levels, "RGB").resize((CELL_W, MODEL_H), Image.Resampling.NEAREST)


def _clip_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def render_grid(titles: list[str], rows: list[GridRow]) -> Image.Image:
    """Draw the grid: title row, then per row the margin text and one cell per column."""
    ncols = len(titles)
    width = MARGIN_W + ncols * (CELL_W + PAD) + PAD
    height = TITLE_H + len(rows) * ROW_H + PAD
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font, small = dejavu_font(14), dejavu_font(12)
    for c, title in enumerate(titles):
        x = MARGIN_W + PAD + c * (CELL_W + PAD)
        draw.text((x + 2, 4), _clip_text(draw, title, font, CELL_W), fill=TEXT, font=font)
    for r, row in enumerate(rows):
        y = TITLE_H + r * ROW_H
        draw.line([(0, y), (width, y)], fill=FRAME)
        for k, line in enumerate(row.lines):
            draw.text((PAD, y + PAD + k * 16), _clip_text(draw, line, small, MARGIN_W - 2 * PAD), fill=TEXT, font=small)
        for c, cell in enumerate(row.cells):
            x = MARGIN_W + PAD + c * (CELL_W + PAD)
            native = _fit(cell, CELL_W, NATIVE_H)
            canvas.paste(native, (x + (CELL_W - native.width) // 2, y + PAD + (NATIVE_H - native.height) // 2))
            draw.rectangle([x - 1, y + PAD - 1, x + CELL_W, y + PAD + NATIVE_H], outline=FRAME)
            canvas.paste(_model_view(cell), (x, y + 2 * PAD + NATIVE_H))
    return canvas


def preview_png_bytes(image: Image.Image) -> bytes:
    """PNG bytes without metadata (identical for identical pixels)."""
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


# ----------------------------------------------------------------------------- entry point


def preview_augmentations(source: str | Path, out: str | Path, *, pipeline: str | None = None,
                          recipe: str | Path | None = None, num_samples: int = 8, draws: int = 4,
                          seed: int = 0) -> dict:
    """Draw the preview grid of ``source`` into the PNG ``out`` (atomically).

    The views: those training with the recipe file ``recipe`` draws, else the ``pipeline``
    choice (default ``teacher-student``); not both.

    Returns:
        What was drawn (the ``show-aug --json`` record): source, out, pipeline (None with a
        recipe), recipe and stage (with a recipe), views, seed, num_samples, draws, columns,
        width, height, samples (per row: name, label, size, pipeline settings), skipped.
    Raises:
        UsageError: bad option; SemimtrError: unreadable source or recipe.
    """
    from semimtr_cli.core.fsutil import atomic_write_bytes

    if pipeline is not None and recipe is not None:
        raise UsageError(f"give {option('pipeline')} or {option('recipe')}, not both")
    if recipe is not None:
        key, (stage, views) = None, recipe_views(recipe)
    else:
        key, stage = (pipeline or DEFAULT_CHOICE).strip().lower(), None
        views = pipeline_views(key)
    if num_samples < 1:
        raise UsageError(f"must be at least 1, got {num_samples}", param="num_samples")
    if draws < 1:
        raise UsageError(f"must be at least 1, got {draws}", param="draws")
    if Path(out).suffix.lower() != ".png":
        raise UsageError(f"must end in .png, got {out}", param="out")
    samples, skipped = load_samples(source, num_samples, seed)
    titles, rows = build_rows(samples, views, draws, seed)
    image = render_grid(titles, rows)
    atomic_write_bytes(out, preview_png_bytes(image))
    info = {"source": str(source), "out": str(out), "pipeline": key}
    if recipe is not None:
        info.update(recipe=str(recipe), stage=stage)
    info.update({
        "views": [{"role": role, "pipeline": name} for role, name in views],
        "seed": seed, "num_samples": len(samples), "draws": draws, "columns": titles,
        "width": image.width, "height": image.height, "samples": [row.info for row in rows], "skipped": skipped,
    })
    return info
