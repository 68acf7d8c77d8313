"""`semimtr finetune`: stage 3, the full model with teacher/student consistency."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .train_common import RECIPE_HELP, SET_HELP, run_stage


def command(
    recipe: Optional[Path] = typer.Option(None, "--recipe", help=RECIPE_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (config.yaml, metrics.jsonl, last.pt, best.pt)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default: the recipe's)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder from its last.pt."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto, fp32, bf16 or fp16 (CUDA)."),
    init_vision: Optional[Path] = typer.Option(None, "--init-vision", help="Vision weights: a vision, seqclr or full checkpoint."),
    init_language: Optional[Path] = typer.Option(None, "--init-language", help="Language weights: a language or full checkpoint."),
    init_full: Optional[Path] = typer.Option(None, "--init-full", help="All weights from a full checkpoint."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary to this JSON file."),
) -> None:
    """Train vision + language + fusion with character-level consistency (stage 3).

    Labeled crops: supervised CE on the weak (teacher) and strong (student) views. All crops:
    the student's heads learn the teacher's one-hot predictions (stop-gradient), masked by the
    teacher's predicted length. Checkpoints with another charset or max length are re-mapped.
    """
    extra = []
    for key, value in (("vision", init_vision), ("language", init_language), ("full", init_full)):
        if value is not None:
            extra.append(f"init.{key}={value}")
    run_stage("finetune", recipe, out, set_, max_steps=max_steps, seed=seed, resume=resume, device=device,
              precision=precision, extra_overrides=extra, json_out=json_out)
