"""`semimtr pretrain-lm`: stage 2, the BCN language model on a text corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semimtr_cli.cli.commands.train_common import (
    DeviceOpt, JsonOpt, MaxStepsOpt, OutOpt, PrecisionOpt, RecipeOpt, ResumeOpt, SeedOpt, SetOpt, ThreadsOpt,
    WorkersOpt, run_stage,
)


def command(
    recipe: RecipeOpt = None,
    out: OutOpt = None,
    set_: SetOpt = [],
    max_steps: MaxStepsOpt = None,
    seed: SeedOpt = None,
    resume: ResumeOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    workers: WorkersOpt = None,
    threads: ThreadsOpt = None,
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Word list, text file or CSV/TSV (sets data.corpus)."),
    init_language: Optional[Path] = typer.Option(None, "--init-language", help="Start from this language/full checkpoint."),
    json_out: JsonOpt = None,
) -> None:
    """Train the BCN language model on a text corpus (stage 2).

    Inputs are the clean words (the diagonal attention mask makes it a cloze task); validation
    feeds held-out words with one random edit and reports exact and top-5 accuracy.
    """
    extra = []
    if corpus is not None:
        extra.append(f"data.corpus={corpus}")
    if init_language is not None:
        extra.append(f"init.language={init_language}")
    run_stage("pretrain-lm", recipe, out, set_, max_steps=max_steps, seed=seed, resume=resume, device=device,
              precision=precision, workers=workers, threads=threads, extra_overrides=extra, json_out=json_out)
