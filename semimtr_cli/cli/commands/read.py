"""`semimtr read`: recognise text in image files or folders with a checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from semimtr_cli.cli import ui
from semimtr_cli.cli.commands.options import (
    CalibrationOpt, DeviceOpt, HeadOpt, PrecisionOpt, ThreadsOpt, json_option, set_threads, summary_console,
    write_json,
)

JsonOpt = json_option("the predictions (with per-character probabilities)")
TABLE_LIMIT = 100  # above this many rows, print plain tab-separated lines instead of a table


def command(
    checkpoint: Path = typer.Argument(..., help="A semimtr checkpoint (.pt); official files: run `semimtr convert` first."),
    paths: List[Path] = typer.Argument(..., help="Image files and/or folders (searched recursively)."),
    head: str = HeadOpt,
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Images per forward pass."),
    confidence: str = typer.Option(
        "product", "--confidence",
        help="product (default) or mean of the per-slot max softmax probabilities over the predicted characters and the stop slot.",
    ),
    min_confidence: Optional[float] = typer.Option(
        None, "--min-confidence",
        help="Mark words below this confidence (0..1) as rejected (column and JSON field `rejected`). With "
             "--calibration require and no value: the threshold `semimtr calibrate` stored for this head."),
    calibration: CalibrationOpt = "auto",
    precision: PrecisionOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    backend: str = typer.Option("auto", "--backend", help="auto (default: onnx for a .onnx file, else torch), torch (a .pt checkpoint) or onnx (a file from `semimtr export`, fp32 or --int8; needs onnxruntime, CPU)."),
    rotate_tall: bool = typer.Option(False, "--rotate-tall", help="Rotate crops taller than twice their width by 90 degrees counter-clockwise first."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip unreadable images (listed in the summary) instead of stopping."),
    json_out: JsonOpt = None,
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write path,text,confidence,length as CSV."),
    labels: Optional[Path] = typer.Option(
        None, "--labels",
        help="A label file (any format build-lmdb reads, e.g. a synth folder's labels.tsv): adds each image's "
             "truth, whether it was read right (in the model's charset), and the count right."),
    save_logits: Optional[Path] = typer.Option(
        None, "--save-logits",
        help="Write an .npz with arrays vision, language, alignment (N x slots x classes, eval mode, last iteration) and paths.",
    ),
) -> None:
    """Recognise the text in word crops, printing path, text and confidence in input order.

    Every image goes through the training/eval pipeline: RGB, bilinear resize to the model's
    input size (32x128 for the paper's model; none when already that size), /255, ImageNet
    mean/std. Confidence is the product (or, with --confidence mean, the mean) of the maximum
    softmax probability of each predicted character and of the stop slot.
    """
    from semimtr_cli.infer.open import open_backend
    from semimtr_cli.infer.reading import gather_image_paths, label_map, read_paths

    set_threads(threads)
    image_paths = gather_image_paths(paths)
    truth = label_map(labels) if labels is not None else None
    predictor = open_backend(checkpoint, backend=backend, device=device or "auto", precision=precision or "auto",
                             calibration=calibration)
    head = predictor.resolve_head(head)
    threshold = reject_threshold(predictor, head, min_confidence, calibration)
    console = summary_console(json_out)
    ui.err_console.print(f"[dim]{predictor.kind} model, {predictor.charset.describe()}; head {head}, precision "
                         f"{predictor.describe_precision()} on {predictor.device}; {predictor.describe_confidence()}"
                         + ("" if threshold is None else f"; rejecting words below {threshold:g}") + "[/]",
                         highlight=False)
    start = time.perf_counter()
    with ui.progress("reading", total=len(image_paths), transient=True) as advance:
        result = read_paths(predictor, image_paths, head=head, batch_size=batch_size, confidence=confidence,
                            rotate_tall=rotate_tall, keep_logits=save_logits is not None, skip_bad=skip_bad,
                            min_confidence=threshold, on_progress=advance)
    elapsed = time.perf_counter() - start
    scored = result.check_against(truth, predictor.charset, str(labels)) if truth is not None else None
    _print_rows(result.rows, confidence, console, threshold is not None)
    for path, msg in result.failed:
        ui.err_console.print(f"[yellow]skipped[/] {msg}", highlight=False)

    written = [write_json(json_out, result.to_json(
        checkpoint=str(checkpoint), head=head, confidence=confidence, precision=predictor.precision,
        precision_reason=predictor.precision_reason, calibrated=head in predictor.temperatures,
        temperature=predictor.temperatures.get(head), min_confidence=threshold))] if json_out else []
    if csv_out is not None:
        result.write_csv(csv_out)
        written.append(str(csv_out))
    if save_logits is not None:
        result.write_logits(save_logits)
        written.append(str(save_logits))
    n = len(result.rows)
    rate = n / elapsed if elapsed > 0 else float("inf")
    ui.err_console.print(
        f"read {n} image(s) in {elapsed:.1f} s ({rate:.1f} images/s)"
        + (f", skipped {len(result.failed)}" if result.failed else "")
        + (f"; {scored[0]} of {scored[1]} labeled read right ({100 * scored[0] / scored[1]:.1f} %)" if scored else "")
        + (f", rejected {sum(r['rejected'] for r in result.rows)} below {threshold:g}" if threshold is not None else "")
        + (f"; wrote {', '.join(written)}" if written else ""),
        highlight=False,
    )


def reject_threshold(predictor, head: str, min_confidence: float | None, calibration: str) -> float | None:
    """``--min-confidence`` checked, or the stored calibrated threshold under ``--calibration require``."""
    from semimtr_cli.core.errors import check_unit_interval

    if min_confidence is not None:
        return check_unit_interval(min_confidence, "min_confidence")
    if calibration == "require":
        return predictor.thresholds.get(head)
    return None


def _print_rows(rows: list[dict], confidence: str, console, marks: bool = False) -> None:
    """A table for up to TABLE_LIMIT rows, else tab-separated lines (path, text, confidence[, rejected])."""
    if len(rows) > TABLE_LIMIT:
        for r in rows:
            console.print(f"{r['path']}\t{r['text']}\t{r['confidence']:.4f}"
                          + (f"\t{r['truth']}\t{'right' if r['correct'] else 'wrong'}" if "truth" in r else "")
                          + ("\trejected" if r.get("rejected") else ""),
                          highlight=False, markup=False, soft_wrap=True)
        return
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    table.add_column("path", overflow="fold")
    table.add_column("text")
    table.add_column(f"confidence ({confidence})", justify="right")
    truth = any("truth" in r for r in rows)
    if truth:
        table.add_column("truth")
        table.add_column("right")
    if marks:
        table.add_column("rejected")
    for r in rows:
        extra = [r.get("truth", ""), {True: "yes", False: "no"}.get(r.get("correct"), "")] if truth else []
        table.add_row(r["path"], r["text"], f"{r['confidence']:.4f}", *extra, *(["yes" if r["rejected"] else ""] if marks else []))
    console.print(table)
