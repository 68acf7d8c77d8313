"""`semimtr pretrain-vision`: stage 1, supervised CE + SeqCLR on labeled and unlabeled crops."""

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
    init_vision: Optional[Path] = typer.Option(None, "--init-vision", help="Start from this vision/seqclr/full checkpoint."),
    mode: Optional[str] = typer.Option(None, "--mode", help="semimtr (CE + SeqCLR, default), ce_only (ABINet baseline) or seqclr_only."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary to this JSON file."),
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
              precision=precision, extra_overrides=extra, json_out=json_out)
