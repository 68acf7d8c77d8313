"""Shared option handling of the three training commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from semimtr_cli.cli import ui
from semimtr_cli.cli.commands.options import (
    DeviceOpt, PrecisionOpt, ThreadsOpt, json_option, workers_option, write_json,
)

RECIPE_HELP = "YAML recipe (see recipes/); every key can be overridden with --set."
SET_HELP = "Override a recipe value, e.g. --set optim.lr=3e-4 --set data.labeled=\\[a,b] (repeatable)."

# The options every training command shares (declared once; Typer needs them in each signature).
RecipeOpt = Annotated[Optional[Path], typer.Option("--recipe", help=RECIPE_HELP)]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Run folder (config.yaml, metrics.jsonl, last.pt, best.pt).")]
SetOpt = Annotated[List[str], typer.Option("--set", help=SET_HELP)]
MaxStepsOpt = Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many optimizer steps.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed (default: the recipe's).")]
ResumeOpt = Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this folder from its last.pt.")]
WorkersOpt = workers_option(default="data.num_workers")
JsonOpt = json_option("the run summary (also in RUN_DIR/summary.json)")
__all__ = ["DeviceOpt", "PrecisionOpt", "ThreadsOpt", "WorkersOpt", "JsonOpt", "RecipeOpt", "OutOpt", "SetOpt",
           "MaxStepsOpt", "SeedOpt", "ResumeOpt", "run_stage"]


def run_stage(
    stage: str,
    recipe_path: Path | None,
    out: Path | None,
    overrides: list[str],
    *,
    max_steps: int | None,
    seed: int | None,
    resume: Path | None,
    device: str | None,
    precision: str | None,
    workers: int | None = None,
    threads: int | None = None,
    extra_overrides: list[str] = (),
    json_out: str | None = None,
) -> dict:
    """Resolve the recipe, run the trainer with a progress bar, print the summary."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from semimtr_cli.core.errors import UsageError
    from semimtr_cli.core.runtime import check_precision
    from semimtr_cli.train.recipe import load_recipe
    from semimtr_cli.train.trainer import train

    if resume is not None:
        if out is not None and Path(out) != Path(resume):
            raise UsageError("--resume RUN_DIR continues that folder; do not also give a different --out")
        out = resume
        if recipe_path is None:
            recipe_path = resume / "config.yaml"
    if out is None:
        raise UsageError("give --out RUN_DIR (or --resume RUN_DIR)")
    if recipe_path is None:
        raise UsageError("give --recipe FILE.yaml (see recipes/)")
    sets = list(extra_overrides) + list(overrides)
    if max_steps is not None:
        sets.append(f"train.max_steps={max_steps}")
    if seed is not None:
        sets.append(f"train.seed={seed}")
    if device is not None:
        sets.append(f"train.device={device}")
    if precision is not None:
        check_precision(precision, training=True)
        sets.append(f"train.precision={precision}")
    if workers is not None:
        if workers < 0:
            raise UsageError(f"must be >= 0, got {workers}", param="workers")
        sets.append(f"data.num_workers={workers}")
    if threads is not None:
        if threads < 1:
            raise UsageError(f"must be >= 1, got {threads}", param="threads")
        sets.append(f"train.threads={threads}")
    recipe = load_recipe(recipe_path, sets, stage=stage)

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[ips]:.1f} img/s"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=ui.err_console, disable=not ui.err_console.is_terminal) as bar:
        task = bar.add_task(stage, total=None, loss=float("nan"), ips=0.0)

        def on_progress(step: int, total: int, event: dict) -> None:
            bar.update(task, completed=step, total=total, loss=event["loss"], ips=event["images_per_s"])

        console = ui.err_console if json_out == "-" else ui.console
        summary = train(recipe, out, resume=resume is not None, log=lambda m: console.print(m, highlight=False),
                        progress=on_progress)
    print_summary(summary, console)
    write_json(json_out, summary)
    return summary


def print_summary(summary: dict, console=None) -> None:
    from rich.table import Table

    table = Table(title=f"{summary['stage']} finished", show_header=False)
    table.add_row("steps", str(summary["steps"]))
    table.add_row("epochs", f"{summary['epochs']:.2f}")
    table.add_row("time", f"{summary['wall_seconds']:.1f} s ({summary['images_per_s']:.1f} images/s)")
    if summary["final_loss"]:
        table.add_row("final loss", ", ".join(f"{k} {v:.4f}" for k, v in summary["final_loss"].items()))
    for k, v in (summary["last_validation"] or {}).items():
        if "/" not in k:
            table.add_row(f"valid {k}", f"{v:.2f} %")
    best = summary["best"]
    table.add_row("best.pt", f"{best['metric']} {best['value']:.2f} at step {best['step']}" if best["value"] is not None
                  else best["selected_by"])
    table.add_row("run folder", str(Path(summary["checkpoints"]["last"]).parent))
    (console or ui.console).print(table)
