"""`semimtr calibrate`: fit one confidence temperature per head on labeled crops, store it in the checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from semimtr_cli.cli import ui
from semimtr_cli.cli.commands.options import (
    DeviceOpt, InferenceWorkersOpt, PrecisionOpt, ThreadsOpt, json_option, set_threads, summary_console, write_json,
)

JsonOpt = json_option("the report (temperatures, ECE before/after, risk-coverage, threshold)")


def command(
    checkpoint: Path = typer.Argument(..., help="A semimtr checkpoint (.pt): full or vision."),
    valid: List[str] = typer.Option(..., "--valid", help="Labeled crops it was not trained on: LMDB, folder of LMDBs, "
                                                         "folder with a labels file or a labels file (repeatable; "
                                                         "comma lists too)."),
    head: str = typer.Option("all", "--head", help="all (default: every head the model has), alignment, language or vision."),
    target_precision: float = typer.Option(0.98, "--target-precision",
                                           help="Word precision the reported confidence threshold must reach (0..1]."),
    objective: str = typer.Option("correct", "--objective",
                                  help="correct (default): binary NLL of each word being right under its confidence; "
                                       "label: NLL of the label sequence (classic temperature scaling)."),
    holdout: float = typer.Option(0.2, "--holdout", help="Share of the crops kept out of the fit, to show the ECE on "
                                                         "crops the temperature never saw (0 = fit on all)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the held-out draw."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the calibrated checkpoint here (default: replace "
                                                           "CHECKPOINT atomically)."),
    charset: Optional[str] = typer.Option(None, "--charset", help="Protocol charset deciding which words are right "
                                                                  "(default preset 36, as `eval`)."),
    json_out: JsonOpt = None,
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per forward pass."),
    workers: InferenceWorkersOpt = 0,
    threads: ThreadsOpt = None,
    precision: PrecisionOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Calibrate the word confidences of a checkpoint: one softmax temperature per head.

    The temperature minimises, on the fitted crops, the binary negative log-likelihood of each
    word being right under its confidence (--objective correct) or the negative log-likelihood of
    the label sequence (--objective label); the predicted text never changes. Printed:
    the expected calibration error (ECE, 15 bins) before and after on the fitted and the
    held-out crops, the accuracy of the most confident 50/80/90/100 % of the words, and the
    confidence threshold whose kept words reach --target-precision. The temperatures and
    thresholds go into the checkpoint (key `calibration`); `read`, `eval` and `pseudo-labels`
    then use the calibrated confidences (see their --calibration option).
    """
    from semimtr_cli.core.charset import Charset
    from semimtr_cli.data.benchmarks import custom_sets
    from semimtr_cli.evaluation.calibration import calibrate_checkpoint
    from semimtr_cli.evaluation.protocol import Protocol

    set_threads(threads)
    sets = [s for item in valid for part in item.split(",") if part.strip() for s in custom_sets(part.strip())]
    protocol = Protocol(charset=Charset.from_spec(charset))
    with ui.progress("calibrate", total=sum(s.num_samples for s in sets), transient=True) as advance:
        report = calibrate_checkpoint(checkpoint, sets, protocol, head=head, holdout=holdout, seed=seed,
                                      target_precision=target_precision, objective=objective, out=out, batch_size=batch_size,
                                      workers=workers, device=device or "auto", precision=precision or "auto",
                                      on_progress=advance)
    console = summary_console(json_out)
    _print_report(report, console)
    written = [report.out] + ([write_json(json_out, report.to_dict())] if json_out else [])
    ui.err_console.print(f"{report.samples} labeled crop(s) ({report.fitted} fitted, {report.held_out} held out"
                         + (f", {report.unreadable} unreadable" if report.unreadable else "")
                         + f"); wrote {', '.join(written)}", highlight=False)


def _print_report(report, console) -> None:
    from rich.table import Table

    table = Table(show_header=True, header_style="bold", title="temperature, NLL and expected calibration error "
                                                                "(before -> after)")
    for col in ("head", "T", "NLL (fitted)", "ECE % fitted", "ECE % held-out"):
        table.add_column(col, justify="left" if col == "head" else "right")
    arrow = lambda d, f: f"{d['before']:{f}} -> {d['after']:{f}}" if d else "-"  # noqa: E731
    for h in report.heads:
        table.add_row(h.head, f"{h.temperature:.3f}", arrow(h.nll, ".3f"), arrow(h.ece["fitted"], ".2f"),
                      arrow(h.ece.get("held_out"), ".2f"))
    console.print(table)
    rc = Table(show_header=True, header_style="bold", title="accuracy % of the most confident words (calibrated)")
    rc.add_column("head")
    for row in report.heads[0].risk_coverage:
        rc.add_column(f"{row['coverage']} %", justify="right")
    rc.add_column(f"t for {100 * report.target_precision:g} %", justify="right")
    rc.add_column("kept % fit / held", justify="right")
    for h in report.heads:
        t = h.threshold
        held = h.threshold_held_out
        rc.add_row(h.head, *[f"{r['accuracy']:.2f}" for r in h.risk_coverage],
                   f"{t['threshold']:.4f}" if t else "not reached",
                   (f"{t['coverage']:.1f}" + (f" / {held['coverage']:.1f}" if held else "")) if t else "-")
    console.print(rc)
