"""`semimtr pseudo-labels`: inspect what the teacher would teach on unlabeled crops."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from .. import ui
from ..errors import UsageError


def command(
    checkpoint: Path = typer.Argument(..., help="The teacher: a full (or vision) semimtr checkpoint."),
    unlabeled: List[Path] = typer.Option(..., "--unlabeled", help="LMDB folder(s) or roots of LMDBs (repeatable)."),
    view: str = typer.Option("clean", "--view", help="clean (the crop as stored) or weak (fine-tuning's teacher view: ABINet augmentation)."),
    head: str = typer.Option("alignment", "--head", help="Teacher head: alignment, language or vision."),
    thresholds: str = typer.Option("0.5,0.7,0.9,0.95,0.99", "--thresholds", help="Per-slot confidence thresholds to report."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weak view (per LMDB pipeline and per sample)."),
    confidence: str = typer.Option("product", "--confidence", help="Sample confidence: product or mean of the slot probabilities."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for pseudo_labels.csv, summary.json and the histogram PNGs."),
    html_dir: Optional[Path] = typer.Option(None, "--html", help="Write a static gallery (index.html + images/) here."),
    html_limit: int = typer.Option(2000, "--html-limit", help="Most samples in the gallery (lowest confidence first); 0 = all."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Per-sample rows as CSV (default OUT/pseudo_labels.csv)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Summary and rows as JSON (default OUT/summary.json, summary only)."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per forward pass."),
    workers: int = typer.Option(0, "--workers", help="DataLoader worker processes."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 where fast here and it keeps the fp32 words of the first batch), fp32 or bf16."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
) -> None:
    """Run the teacher as fine-tuning would and report what it would teach.

    Per sample: key, predicted text, confidence, teacher length (characters + stop slot),
    the lowest slot probability, and whether each threshold keeps it. Fine-tuning's threshold
    is per slot (max softmax probability > t); a sample counts as kept when all the slots it
    supervises pass, and the share of passing slots is reported too. When the LMDB holds
    labels, the pseudo-label accuracy and coverage at each threshold are reported.
    """
    import pandas as pd
    import torch

    from ..evaluate import load_predictor
    from ..fsutil import atomic_path, atomic_write_json
    from ..predict import CONFIDENCE_MODES
    from ..pseudolabels import VIEWS, parse_thresholds, plot_histograms, run_teacher, summarize, write_gallery

    if view not in VIEWS:
        raise UsageError(f"--view must be one of {', '.join(VIEWS)}, got {view!r}")
    if confidence not in CONFIDENCE_MODES:
        raise UsageError(f"--confidence must be one of {', '.join(CONFIDENCE_MODES)}, got {confidence!r}")
    if batch_size < 1 or workers < 0 or html_limit < 0:
        raise UsageError("--batch-size must be >= 1, --workers and --html-limit >= 0")
    thr = parse_thresholds(thresholds)
    predictor = load_predictor(checkpoint, device=device, precision=precision)
    predictor.check_head(head)
    ui.err_console.print(f"[dim]{predictor.kind} teacher, head {head}, {view} view, {predictor.charset.describe()}[/]",
                         highlight=False)
    start = time.perf_counter()
    with torch.inference_mode(), ui.progress("teacher", total=None, transient=True) as advance:
        result = run_teacher(predictor, unlabeled, head=head, view=view, seed=seed, thresholds=thr,
                             confidence=confidence, batch_size=batch_size, workers=workers, on_progress=advance)
    seconds = time.perf_counter() - start
    summary = summarize(result)
    summary["checkpoint"] = str(checkpoint)
    summary["inputs"] = [str(p) for p in unlabeled]
    summary["seconds"] = seconds
    summary["precision"] = {"name": predictor.precision, "reason": predictor.precision_reason}

    _print_summary(summary)
    for key, msg in result.bad_images:
        ui.err_console.print(f"[yellow]unreadable[/] {msg}", highlight=False)

    written = []
    columns = ["index", "lmdb", "key", "text", "confidence", "length", "min_slot_prob",
               *[f"kept@{t:g}" for t in thr], "label", "correct"]
    csv_path = csv_out or (out / "pseudo_labels.csv" if out else None)
    if csv_path is not None:
        with atomic_path(csv_path, suffix=".csv") as tmp:
            pd.DataFrame(result.rows, columns=columns).to_csv(tmp, index=False)
        written.append(str(csv_path))
    if out is not None:
        atomic_write_json(out / "summary.json", summary)
        written.append(str(out / "summary.json"))
        written.extend(str(p) for p in plot_histograms(result, out))
    if json_out is not None:
        atomic_write_json(json_out, {**summary, "rows": result.rows})
        written.append(str(json_out))
    if html_dir is not None:
        with torch.inference_mode():
            info = write_gallery(result, unlabeled, predictor, html_dir, limit=html_limit or None)
        written.append(f"{info['path']} ({info['shown']} of {info['total']} samples)")
    ui.err_console.print(
        f"{summary['evaluated']} sample(s) in {seconds:.1f} s"
        + (f", {summary['bad_images']} unreadable" if summary["bad_images"] else "")
        + (f"; wrote {', '.join(written)}" if written else ""),
        highlight=False,
    )


def _print_summary(summary: dict) -> None:
    from rich.table import Table

    labeled = summary["labeled"] > 0
    table = Table(show_header=True, header_style="bold",
                  title=f"{summary['evaluated']} samples, {summary['head']} head, {summary['view']} view")
    for col in ("threshold", "kept", "kept %", "slots kept %") + (("accuracy %", "coverage %") if labeled else ()):
        table.add_column(col, justify="right")
    if labeled:
        table.add_row("none", str(summary["evaluated"]), "100.00", "100.00", f"{summary['accuracy']:.2f}", "100.00")
    for t in summary["thresholds"]:
        cells = [f"{t['threshold']:g}", str(t["kept"]), f"{t['kept_percent']:.2f}", f"{t['slots_kept_percent']:.2f}"]
        if labeled:
            cells += ["-" if t["accuracy"] is None else f"{t['accuracy']:.2f}", f"{t['coverage']:.2f}"]
        table.add_row(*cells)
    ui.console.print(table)
    top = summary["most_frequent"][:10]
    if top:
        ui.console.print("most frequent: " + ", ".join(f"{t['text'] or '(empty)'} x{t['count']}" for t in top),
                         highlight=False)
