"""`semimtr finetune`: stage 3, the full model with teacher/student consistency."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semimtr_cli.cli.commands.train_common import (
    DeviceOpt, JsonOpt, MaxStepsOpt, OutOpt, PrecisionOpt, RecipeOpt, ResumeOpt, SeedOpt, SetOpt, ThreadsOpt,
    WorkersOpt, run_stage,
)
from semimtr_cli.core.errors import UsageError


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
    init_vision: Optional[Path] = typer.Option(None, "--init-vision", help="Vision weights: a vision, seqclr or full checkpoint."),
    init_language: Optional[Path] = typer.Option(None, "--init-language", help="Language weights: a language or full checkpoint."),
    init_full: Optional[Path] = typer.Option(None, "--init-full", help="All weights from a full checkpoint."),
    init: Optional[Path] = typer.Option(None, "--init", help="All weights from a full checkpoint; 'default' is the shipped model (the same as --init-full)."),
    json_out: JsonOpt = None,
) -> None:
    """Train vision + language + fusion with character-level consistency (stage 3).

    Labeled crops: supervised CE on the weak (teacher) and strong (student) views. All crops:
    the student's heads learn the teacher's one-hot predictions (stop-gradient), masked by the
    teacher's predicted length. Checkpoints with another charset or max length are re-mapped.
    """
    if init is not None and init_full is not None:
        raise UsageError("--init and --init-full are the same option; give one")
    extra = []
    for key, value in (("vision", init_vision), ("language", init_language), ("full", init_full or init)):
        if value is not None:
            extra.append(f"init.{key}={value}")
    run_stage("finetune", recipe, out, set_, max_steps=max_steps, seed=seed, resume=resume, device=device,
              precision=precision, workers=workers, threads=threads, extra_overrides=extra, json_out=json_out)
