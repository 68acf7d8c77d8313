"""``synth --preview``: a grid of synthetic crops beside real ones, to see the gap.

:func:`preview_grid` renders the first crops of a plan (the same samples ``synth --out`` would
write) into a left panel and, with ``compare``, real crops from a folder of images (a labels
file's folder) or an LMDB into a right panel; every crop at 32 px height and its own aspect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.core.fsutil import atomic_path
from semimtr_cli.data.files import list_images
from semimtr_cli.data.lmdb.io import LmdbReader, is_lmdb_dir
from semimtr_cli.data.synth.generate import draw_sample, plan_synth

ROW_H, PANEL_W, GAP, TITLE_H = 32, 640, 4, 22


def _evenly(n: int, count: int) -> list[int]:
    """``min(n, count)`` indices spread evenly over 0..n-1."""
    k = min(n, count)
    return [i * n // k for i in range(k)]


def real_crops(source: str | Path, count: int) -> list[Image.Image]:
    """Up to ``count`` crops, evenly spaced, from a folder of images, a labels file's folder or an LMDB."""
    from semimtr_cli.data.image import decode_image  # imports torch: only when real crops are asked for

    source = Path(source)
    if is_lmdb_dir(source):
        reader = LmdbReader(source)
        return [decode_image(reader.image_bytes(i), name=f"{source}:{i}") for i in _evenly(len(reader), count)]
    files = list_images(source.parent if source.is_file() else source)
    if not files:
        raise SemimtrError(f"{source}: no image files to compare with")
    return [decode_image(files[i].read_bytes(), name=str(files[i])) for i in _evenly(len(files), count)]


def crops_panel(crops: Sequence[Image.Image], title: str) -> Image.Image:
    """Crops laid out in rows of PANEL_W pixels under a title."""
    rows: list[list[Image.Image]] = [[]]
    x = 0
    for crop in crops:
        crop = crop.resize((max(1, min(PANEL_W, round(crop.width * ROW_H / crop.height))), ROW_H),
                           Image.Resampling.BILINEAR)
        if x + crop.width > PANEL_W and rows[-1]:
            rows.append([])
            x = 0
        rows[-1].append(crop)
        x += crop.width + GAP
    panel = Image.new("RGB", (PANEL_W, TITLE_H + len(rows) * (ROW_H + GAP)), "white")
    ImageDraw.Draw(panel).text((4, 4), title, fill="black")
    for r, row in enumerate(rows):
        x = 0
        for crop in row:
            panel.paste(crop, (x, TITLE_H + r * (ROW_H + GAP)))
            x += crop.width + GAP
    return panel


def preview_grid(path: str | Path, seed: int, count: int, *, compare: str | Path | None = None,
                 **plan_options) -> Path:
    """Write the preview PNG at ``path`` (atomically) and return it. ``plan_options``: as
    :func:`~semimtr_cli.data.synth.generate.plan_synth`."""
    plan, _ = plan_synth(seed, **plan_options)
    synthetic = [draw_sample(plan, i)[0] for i in range(max(1, count))]
    panels = [crops_panel(synthetic, f"synthetic: {plan.style} style, seed {seed}")]
    if compare is not None:
        panels.append(crops_panel(real_crops(compare, len(synthetic)), f"real: {Path(compare).name}"))
    grid = Image.new("RGB", (sum(p.width for p in panels) + 16 * (len(panels) - 1), max(p.height for p in panels)),
                     "white")
    x = 0
    for p in panels:
        grid.paste(p, (x, 0))
        x += p.width + 16
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        grid.save(tmp, "PNG")
    return path
