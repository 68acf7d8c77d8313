"""`semimtr show-aug`: a PNG grid of augmentation previews."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def command(
    source: Path = typer.Argument(..., help="An LMDB, a folder holding LMDBs, or a folder of images."),
    out: Path = typer.Option(..., "--out", help="PNG file to write (atomically)."),
    pipeline: str = typer.Option(
        "teacher-student",
        "--pipeline",
        help="abinet | strong1 | strong2 | teacher-student (abinet teacher + strong1 student) | seqclr (two strong1 views).",
    ),
    num_samples: int = typer.Option(8, "--num-samples", help="Samples (rows), picked at random with --seed."),
    draws: int = typer.Option(4, "--draws", help="Augmented draws per sample (pairs for two-view pipelines)."),
    seed: int = typer.Option(0, "--seed", help="Seed for sample choice and augmentations; same seed, same PNG."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write what was drawn (samples, settings) as JSON."),
) -> None:
    """Draw a PNG grid: per sample the original and K augmented draws (native size + 32x128 model input).

    Rows also name the settings a pipeline froze at construction (ABINet's geometric type and
    deterioration), which the official code fixes once per training LMDB.
    """
    from ..data.preview import PREVIEW_CHOICES, build_rows, load_samples, preview_png_bytes, render_grid
    from ..errors import UsageError
    from ..fsutil import atomic_write_bytes, atomic_write_json
    from ..ui import console

    key = pipeline.strip().lower()
    if key not in PREVIEW_CHOICES:
        raise UsageError(f"unknown --pipeline {pipeline!r}; choose one of {', '.join(PREVIEW_CHOICES)}")
    if num_samples < 1:
        raise UsageError(f"--num-samples must be at least 1, got {num_samples}")
    if draws < 1:
        raise UsageError(f"--draws must be at least 1, got {draws}")
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must end in .png, got {out}")

    samples, skipped = load_samples(source, num_samples, seed)
    titles, rows = build_rows(samples, key, draws, seed)
    image = render_grid(titles, rows)
    atomic_write_bytes(out, preview_png_bytes(image))
    if json_out is not None:
        atomic_write_json(
            json_out,
            {
                "source": str(source),
                "out": str(out),
                "pipeline": key,
                "seed": seed,
                "num_samples": len(samples),
                "draws": draws,
                "columns": titles,
                "width": image.width,
                "height": image.height,
                "samples": [row.info for row in rows],
                "skipped": skipped,
            },
        )
    console.print(
        f"wrote [bold]{out}[/] ({image.width}x{image.height} px): {len(samples)} samples x {draws} draws, "
        f"pipeline {key}, seed {seed}" + (f"; {len(skipped)} undecodable sample(s) skipped" if skipped else ""),
        highlight=False,
    )
    if json_out is not None:
        console.print(f"wrote {json_out}", highlight=False)
