"""`semimtr pseudo-labels`: inspect what the teacher would teach on unlabeled crops."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from semimtr_cli.cli import ui
from semimtr_cli.cli.commands.options import (
    CalibrationOpt, DeviceOpt, HeadOpt, InferenceWorkersOpt, PrecisionOpt, ThreadsOpt, json_option, set_threads,
    summary_console, write_json,
)

JsonOpt = json_option("the summary and every row (OUT/summary.json holds the summary only)")


def command(
    checkpoint: Path = typer.Argument(..., help="The teacher: a full (or vision) semimtr checkpoint."),
    unlabeled: List[Path] = typer.Option(..., "--unlabeled", help="LMDB folder(s) or roots of LMDBs (repeatable)."),
    view: str = typer.Option("clean", "--view", help="clean (the crop as stored) or weak (fine-tuning's teacher view: ABINet augmentation)."),
    head: str = HeadOpt,
    thresholds: str = typer.Option("0.5,0.7,0.9,0.95,0.99", "--thresholds", help="Per-slot confidence thresholds to report."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weak view (per LMDB pipeline and per sample)."),
    confidence: str = typer.Option("product", "--confidence", help="Sample confidence: product or mean of the slot probabilities."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for pseudo_labels.csv, summary.json and the histogram PNGs."),
    html_dir: Optional[Path] = typer.Option(None, "--html", help="Write a static gallery (index.html + images/) here."),
    html_limit: int = typer.Option(2000, "--html-limit", help="Most samples in the gallery (lowest confidence first); 0 = all."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Per-sample rows as CSV (default OUT/pseudo_labels.csv)."),
    write_lmdb: Optional[Path] = typer.Option(
        None, "--write-lmdb", help="Self-training export: write the crops whose word confidence reaches "
                                   "--min-confidence, labeled with their predictions, as a new LMDB (original image bytes)."),
    min_confidence: Optional[float] = typer.Option(
        None, "--min-confidence", help="Word confidence (0..1) a crop needs for --write-lmdb; default: the threshold "
                                       "`semimtr calibrate` stored for this head."),
    queue: int = typer.Option(0, "--queue", help="Write the N crops most worth labeling to --queue-out."),
    queue_out: Optional[Path] = typer.Option(
        None, "--queue-out", help="New folder for the labeling queue: images/ + labels.tsv prefilled with the "
                                  "predictions (correct it, then `semimtr build-lmdb` it) + queue.tsv (origins)."),
    queue_rule: str = typer.Option("confidence", "--queue-rule",
                                   help="confidence (lowest first) or heads (vision and alignment disagree first)."),
    audit_min_confidence: float = typer.Option(
        0.9, "--audit-min-confidence", help="Labeled inputs: list the crops the model reads differently from their "
                                            "label at this confidence or above (likely label errors)."),
    json_out: JsonOpt = None,
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per forward pass."),
    workers: InferenceWorkersOpt = 0,
    threads: ThreadsOpt = None,
    calibration: CalibrationOpt = "auto",
    precision: PrecisionOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Run the teacher as fine-tuning would and report what it would teach.

    Per sample: key, predicted text, confidence, teacher length (characters + stop slot),
    the lowest slot probability, and whether each threshold keeps it. Fine-tuning's threshold
    is per slot (max softmax probability > t); a sample counts as kept when all the slots it
    supervises pass, and the share of passing slots is reported too. When the LMDB holds
    labels, the pseudo-label accuracy and coverage at each threshold are reported, and the
    crops the model confidently reads differently from their label are listed (label audit:
    OUT/suspect_labels.csv, first in the gallery).

    Hand-offs: --write-lmdb (self-training data), --queue/--queue-out (a labeling queue).
    """
    from semimtr_cli.pseudolabels.run import pseudo_label_report

    set_threads(threads)
    with ui.progress("teacher", total=None, transient=True) as advance:
        report = pseudo_label_report(
            checkpoint, unlabeled, head=head, view=view, seed=seed, thresholds=thresholds, confidence=confidence,
            batch_size=batch_size, workers=workers, device=device or "auto", precision=precision or "auto",
            out=out, csv=csv_out, html=html_dir, html_limit=html_limit, calibration=calibration, write_lmdb=write_lmdb,
            min_confidence=min_confidence, queue=queue, queue_out=queue_out, queue_rule=queue_rule,
            audit_min_confidence=audit_min_confidence, on_progress=advance,
            log=lambda line: ui.err_console.print(f"[dim]{line}[/]", highlight=False))
    summary = report.summary
    _print_summary(summary, summary_console(json_out))
    for _, msg in report.result.bad_images:
        ui.err_console.print(f"[yellow]unreadable[/] {msg}", highlight=False)
    written = list(report.written)
    if json_out is not None:
        written.append(write_json(json_out, {**summary, "rows": report.result.rows}))
    ui.err_console.print(
        f"{summary['evaluated']} sample(s) in {report.seconds:.1f} s"
        + (f", {summary['bad_images']} unreadable" if summary["bad_images"] else "")
        + (f"; wrote {', '.join(written)}" if written else ""),
        highlight=False,
    )


def _print_summary(summary: dict, console) -> None:
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
    console.print(table)
    lmdb = summary.get("self_training_lmdb")
    if lmdb:
        why = ", ".join(f"{n} {k}" for k, n in lmdb["dropped"].items() if n) or "none"
        console.print(f"self-training LMDB {lmdb['path']}: kept {lmdb['kept']} at confidence >= "
                      f"{lmdb['min_confidence']:g}; dropped: {why}", highlight=False)
    if summary.get("queue"):
        q = summary["queue"]
        console.print(f"labeling queue {q['path']}: {q['written']} crops ({q['rule']} rule); correct labels.tsv, "
                      "then `semimtr build-lmdb` it", highlight=False)
    audit = summary.get("suspect_labels")
    if audit:
        console.print(f"label audit: {audit['count']} crop(s) read differently from their label at confidence >= "
                      f"{audit['min_confidence']:g}" + (": " if audit["rows"] else "")
                      + ", ".join(f"{r['key']} label {r['label']!r} read {r['text']!r} ({r['confidence']:.3f})"
                                  for r in audit["rows"][:5]), highlight=False)
    top = summary["most_frequent"][:10]
    if top:
        console.print("most frequent: " + ", ".join(f"{t['text'] or '(empty)'} x{t['count']}" for t in top),
                      highlight=False)
