"""`semimtr pretrain-vision`: stage 1, supervised CE + SeqCLR on labeled and unlabeled crops."""

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
    init_vision: Optional[Path] = typer.Option(None, "--init-vision", help="Start from this vision/seqclr/full checkpoint."),
    mode: Optional[str] = typer.Option(None, "--mode", help="semimtr (CE + SeqCLR, default), ce_only (ABINet baseline) or seqclr_only."),
    json_out: JsonOpt = None,
) -> None:
    """Train the vision model with SemiMTR's single-stage objective (stage 1).

    Labeled crops get the supervised sequence CE on both views and the SeqCLR contrastive loss;
    unlabeled crops the contrastive loss only; the two are mixed by data.weights (paper 0.3/0.7).
    """
    extra = []
    if init_vision is not None:
        extra.append(f"init.vision={init_vision}")
    if mode is not None:
        extra.append(f"seqclr.mode={mode}")
    run_stage("pretrain-vision", recipe, out, set_, max_steps=max_steps, seed=seed, resume=resume, device=device,
              precision=precision, workers=workers, threads=threads, extra_overrides=extra, json_out=json_out)
