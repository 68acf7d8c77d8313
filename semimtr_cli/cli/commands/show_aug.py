"""`semimtr show-aug`: a PNG grid of augmentation previews."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semimtr_cli.cli.commands.options import json_option, summary_console, write_json

JsonOpt = json_option("what was drawn (samples, views, settings)")


def command(
    source: Path = typer.Argument(..., help="An LMDB, a folder holding LMDBs, or a folder of images."),
    out: Path = typer.Option(..., "--out", help="PNG file to write (atomically)."),
    pipeline: Optional[str] = typer.Option(
        None,
        "--pipeline",
        help="abinet | strong1 | strong2 | teacher-student (the paper's fine-tuning views: abinet teacher + strong1 "
             "student; the default) | seqclr (the paper's vision pre-training views: two strong1 views).",
    ),
    recipe: Optional[Path] = typer.Option(
        None, "--recipe", help="A training recipe (YAML): show exactly the views its stage draws (its augment block)."),
    num_samples: int = typer.Option(8, "--num-samples", help="Samples (rows), picked at random with --seed."),
    draws: int = typer.Option(4, "--draws", help="Augmented draws per sample (pairs for two-view pipelines)."),
    seed: int = typer.Option(0, "--seed", help="Seed for sample choice and augmentations; same seed, same PNG."),
    json_out: JsonOpt = None,
) -> None:
    """Draw a PNG grid: per sample the original and K augmented draws (native size + 32x128 model input).

    Rows also name the settings a pipeline froze at construction (ABINet's geometric type and
    deterioration), which the official code fixes once per training LMDB.
    """
    from semimtr_cli.train.preview import preview_augmentations

    info = preview_augmentations(source, out, pipeline=pipeline, recipe=recipe, num_samples=num_samples,
                                 draws=draws, seed=seed)
    written = write_json(json_out, info)
    views = ", ".join(f"{v['role']} {v['pipeline']}" if v["role"] != v["pipeline"] else v["pipeline"]
                      for v in info["views"])
    what = f"recipe {recipe} ({info['stage']}: {views})" if recipe is not None else f"pipeline {info['pipeline']}"
    skipped = info["skipped"]
    console = summary_console(json_out)
    console.print(
        f"wrote [bold]{out}[/] ({info['width']}x{info['height']} px): {info['num_samples']} samples x {draws} draws, "
        f"{what}, seed {seed}" + (f"; {len(skipped)} undecodable sample(s) skipped" if skipped else ""),
        highlight=False,
    )
    if written not in (None, "stdout"):
        console.print(f"wrote {written}", highlight=False)
