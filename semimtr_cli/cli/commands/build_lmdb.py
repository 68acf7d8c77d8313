"""`semimtr build-lmdb`: image folders / label files -> one standard LMDB, with a report."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import typer

from semimtr_cli.cli import ui
from semimtr_cli.cli.commands.inspect import limit_option, load_charset, report_inspection, samples_option
from semimtr_cli.cli.commands.options import json_option, summary_console, write_json
from semimtr_cli.core.errors import UsageError

JsonOpt = json_option("the summary (or, with --inspect, the stats)")

_MAX_PIXELS_DEFAULT = 50_000_000  # same as semimtr_cli.data.image.MAX_PIXELS_DEFAULT (no torch import here)


def command(
    sources: Optional[List[Path]] = typer.Argument(
        None, help="Label files (tsv/space/icdar/csv/jsonl) and/or image folders.", show_default=False
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="The LMDB folder to create."),
    images_root: Optional[Path] = typer.Option(
        None, "--images-root", help="Resolve label-file paths against this folder instead of the label file's."
    ),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the full report (every skipped input) as JSON."),
    strict: bool = typer.Option(False, "--strict", help="Write nothing and exit 1 if any input is bad."),
    fmt: str = typer.Option("auto", "--format", help="Label file format: auto|tsv|space|icdar|csv|jsonl."),
    unlabeled: bool = typer.Option(False, "--unlabeled", help="Store images without labels (folders: every image, recursively)."),
    label_from_name: Optional[str] = typer.Option(
        None, "--label-from-name", help=r"Regex on the file stem with a group 'label', e.g. '^\d+_(?P<label>.+)_\d+$'."
    ),
    charset: str = typer.Option(
        "36", "--charset", help="Preset (36/62/94) or charset file, only to REPORT labels with other symbols; 'none' to skip."
    ),
    max_length: Optional[int] = typer.Option(
        None, "--max-length", help="Report labels longer than this (default: the charset's, 25). Labels are stored as given."
    ),
    shuffle: bool = typer.Option(False, "--shuffle", help="Write samples in a seeded random order."),
    seed: int = typer.Option(0, "--seed", help="Seed for --shuffle."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing LMDB at --out."),
    threads: int = typer.Option(min(4, os.cpu_count() or 1), "--threads", help="Threads reading and validating images."),
    workers: Optional[int] = typer.Option(None, "--workers", hidden=True, help="Deprecated name of --threads."),
    max_pixels: int = typer.Option(_MAX_PIXELS_DEFAULT, "--max-pixels", help="Skip images with more pixels than this."),
    json_out: JsonOpt = None,
    inspect: Optional[Path] = typer.Option(None, "--inspect", help="Print stats of an existing LMDB (or every LMDB under a folder); same as `semimtr inspect`."),
    limit: int = limit_option("--inspect: "),
    samples: int = samples_option("--inspect: "),
) -> None:
    """Turn image folders and label files into the standard LMDB, reporting every input.

    Each SOURCE is a label file (path<TAB>label, 'path label', ICDAR 'word_1.png, "label"', CSV or JSONL with path/label) or a folder (with labels.tsv/gt.txt/labels.txt/labels.csv/labels.jsonl inside, or --unlabeled, or --label-from-name). Every input is written or skipped with a reason; labels are stored exactly as given. Exit 0 if anything was written, 1 if nothing (with --strict: 1 and nothing written if any input is bad).

    With --inspect DIR: print count, label lengths, charset coverage, image sizes and samples of an existing LMDB (as `semimtr inspect DIR`).
    """
    if inspect is not None:
        if sources or out is not None:
            raise UsageError("--inspect takes no SOURCE and no --out")
        report_inspection([inspect], charset=charset, max_length=max_length, limit=limit, samples=samples, json_out=json_out)
        return
    if not sources:
        raise UsageError("give at least one SOURCE (a label file or an image folder), or --inspect DIR")
    if out is None:
        raise UsageError("--out DIR is required")
    if workers is not None:
        ui.err_console.print("[yellow]warning:[/] --workers is deprecated for build-lmdb (it counts threads); use --threads", highlight=False, soft_wrap=True)
        threads = workers
    cs = load_charset(charset, max_length)

    from semimtr_cli.data.lmdb.build import build_lmdb

    with _progress_bar() as on_progress:
        result = build_lmdb(
            [str(s) for s in sources], out, fmt=fmt, images_root=images_root, unlabeled=unlabeled,
            label_from_name=label_from_name, charset=cs,
            max_length=max_length if max_length is not None else (cs.max_length if cs else None),
            shuffle=shuffle, seed=seed, overwrite=overwrite, threads=threads, max_pixels=max_pixels,
            strict=strict, progress=on_progress,
        )
    if report is not None:
        from semimtr_cli.core.fsutil import atomic_write_json

        atomic_write_json(report, result.to_dict())
    write_json(json_out, result.to_dict(include_skipped=False))
    _print_build(result, summary_console(json_out), report)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@contextmanager
def _progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A Rich bar per build phase ("check", "write") with images/s; yields ``progress(phase, done, total)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[rate]}"),
        console=ui.err_console,
        disable=not sys.stderr.isatty(),
        transient=False,
    )
    tasks: dict[str, int] = {}
    names = {"check": "checking images", "write": "checking + writing"}

    def on_progress(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(names.get(phase, phase), total=total, rate="")
        task = tasks[phase]
        elapsed = bar.tasks[task].elapsed or 0.0
        rate = f"{done / elapsed:,.0f} img/s" if elapsed > 0 else ""
        bar.update(task, completed=done, rate=rate)

    with bar:
        yield on_progress


def _print_build(r, console, report_path) -> None:
    from rich.table import Table

    table = Table(title=f"build-lmdb -> {r.out}", show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("inputs", str(r.inputs))
    table.add_row("[green]written[/]", f"{r.written} ({r.labeled} labeled, {r.unlabeled} unlabeled)")
    for reason, n in r.skipped_by_reason.items():
        table.add_row(f"[yellow]skipped: {reason}[/]", str(n))
    if r.charset is not None:
        table.add_row(f"labels with symbols outside charset {r.charset}", str(r.out_of_charset))
        table.add_row("labels training would drop (after normalisation)", str(r.unusable_for_training))
    if r.max_length is not None:
        table.add_row(f"labels longer than {r.max_length}", str(r.too_long))
    if r.same_image_different_labels:
        table.add_row("images listed with different labels (all kept)", str(r.same_image_different_labels))
    console.print(table)
    if r.unknown_symbols:
        top = " ".join(f"{s!r}:{n}" for s, n in list(r.unknown_symbols.items())[:15])
        console.print(f"symbols outside the charset (stored as given): {top}", highlight=False)
    if r.skipped:
        shown = Table(title=f"skipped inputs (first {min(10, len(r.skipped))} of {len(r.skipped)})", header_style="bold")
        for col in ("source", "line", "path", "reason", "detail"):
            shown.add_column(col, overflow="fold")
        for s in r.skipped[:10]:
            shown.add_row(s.source, "" if s.line is None else str(s.line), s.path, s.reason, s.detail)
        console.print(shown)
    speed = f"{r.elapsed_s:.2f} s, {r.images_per_s:,.0f} images/s ({r.workers} worker threads)"
    if r.created:
        console.print(f"[green]wrote[/] {r.written} samples ({r.bytes_written / 1e6:.1f} MB) to {r.out} in {speed}", highlight=False)
    elif r.strict and r.skipped:
        console.print(f"[red]--strict: {len(r.skipped)} bad inputs; nothing written[/] ({r.out} not created)", highlight=False)
    else:
        console.print(f"[red]no usable input; nothing written[/] ({r.out} not created)", highlight=False)
    if report_path is not None:
        console.print(f"report: {report_path}", highlight=False)
