"""`semimtr pretrain-lm`: stage 2, the BCN language model on a text corpus."""

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
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Word list, text file or CSV/TSV (sets data.corpus)."),
    init_language: Optional[Path] = typer.Option(None, "--init-language", help="Start from this language/full checkpoint."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary to this JSON file."),
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
              precision=precision, extra_overrides=extra, json_out=json_out)
