"""`semimtr read`: recognise text in image files or folders with a checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from .. import ui
from ..errors import UsageError

TABLE_LIMIT = 100  # above this many rows, print plain tab-separated lines instead of a table


def command(
    checkpoint: Path = typer.Argument(..., help="A semimtr checkpoint (.pt); official files: run `semimtr convert` first."),
    paths: List[Path] = typer.Argument(..., help="Image files and/or folders (searched recursively)."),
    head: str = typer.Option("alignment", "--head", help="Which output to read: alignment (final), language or vision."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Images per forward pass."),
    confidence: str = typer.Option(
        "product", "--confidence",
        help="product (default) or mean of the per-slot max softmax probabilities over the predicted characters and the stop slot.",
    ),
    precision: str = typer.Option(
        "auto", "--precision",
        help="auto (bf16 where this machine runs it natively and fast and the first batch reads the same words as fp32, "
             "else fp32); fp32; bf16 (bfloat16 autocast); int8 (dynamic int8 Linear layers, CPU only).",
    ),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto (cuda when available)."),
    backend: str = typer.Option("torch", "--backend", help="torch (a .pt checkpoint) or onnx (a file from `semimtr export`; needs onnxruntime, CPU fp32)."),
    rotate_tall: bool = typer.Option(False, "--rotate-tall", help="Rotate crops taller than twice their width by 90 degrees counter-clockwise first."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip unreadable images (listed in the summary) instead of stopping."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write predictions (with per-character probabilities) as JSON."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write path,text,confidence,length as CSV."),
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
    import numpy as np
    import pandas as pd

    from ..fsutil import atomic_path, atomic_write_json
    from ..predict import CONFIDENCE_MODES, Predictor, gather_image_paths, read_paths

    if confidence not in CONFIDENCE_MODES:
        raise UsageError(f"--confidence must be one of {', '.join(CONFIDENCE_MODES)}, got {confidence!r}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    image_paths = gather_image_paths(paths)
    if not image_paths:
        raise UsageError("no image files found in the given paths")

    if backend not in ("torch", "onnx"):
        raise UsageError(f"--backend must be torch or onnx, got {backend!r}")
    if backend == "onnx":
        from ..export import OnnxPredictor

        predictor = OnnxPredictor(checkpoint)
    else:
        predictor = Predictor(checkpoint, device=device, precision=precision)
    predictor.check_head(head)
    ui.err_console.print(
        f"[dim]{predictor.kind} model, {predictor.charset.describe()}; head {head}, precision {precision} on {predictor.device}[/]",
        highlight=False,
    )
    start = time.perf_counter()
    with ui.progress("reading", total=len(image_paths), transient=True) as advance:
        result = read_paths(predictor, image_paths, head=head, batch_size=batch_size, confidence=confidence,
                            rotate_tall=rotate_tall, keep_logits=save_logits is not None, skip_bad=skip_bad,
                            on_progress=advance)
    elapsed = time.perf_counter() - start

    if len(result.rows) <= TABLE_LIMIT:
        from rich.table import Table

        table = Table(show_header=True, header_style="bold")
        table.add_column("path", overflow="fold")
        table.add_column("text")
        table.add_column(f"confidence ({confidence})", justify="right")
        for r in result.rows:
            table.add_row(r["path"], r["text"], f"{r['confidence']:.4f}")
        ui.console.print(table)
    else:
        for r in result.rows:
            typer.echo(f"{r['path']}\t{r['text']}\t{r['confidence']:.4f}")
    for path, msg in result.failed:
        ui.err_console.print(f"[yellow]skipped[/] {msg}", highlight=False)

    if json_out is not None:
        atomic_write_json(json_out, {
            "checkpoint": str(checkpoint), "head": head, "confidence": confidence, "precision": getattr(predictor, "precision", "fp32"),
            "precision_reason": getattr(predictor, "precision_reason", "onnx backend"), "predictions": result.rows, "failed": [{"path": p, "error": m} for p, m in result.failed],
        })
    if csv_out is not None:
        frame = pd.DataFrame(result.rows, columns=["path", "text", "confidence", "length"])
        with atomic_path(csv_out) as tmp:
            frame.to_csv(tmp, index=False)
    if save_logits is not None:
        arrays = dict(result.logits or {})
        arrays["paths"] = np.array([r["path"] for r in result.rows], dtype=str)
        with atomic_path(save_logits) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    n = len(result.rows)
    rate = n / elapsed if elapsed > 0 else float("inf")
    written = [str(p) for p in (json_out, csv_out, save_logits) if p is not None]
    ui.err_console.print(
        f"read {n} image(s) in {elapsed:.1f} s ({rate:.1f} images/s)"
        + (f", skipped {len(result.failed)}" if result.failed else "")
        + (f"; wrote {', '.join(written)}" if written else ""),
        highlight=False,
    )
