"""`semimtr eval`: score checkpoints on the standard benchmarks or your own LMDBs/folders."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from semimtr_cli.cli import ui
from semimtr_cli.cli.commands.options import (
    CalibrationOpt, DeviceOpt, InferenceWorkersOpt, PrecisionOpt, ThreadsOpt, json_option, set_threads, write_json,
)

JsonOpt = json_option("the results (a list with several checkpoints/heads)")


def command(
    checkpoints: List[Path] = typer.Argument(..., help="One or more semimtr checkpoints (.pt)."),
    bench: str = typer.Option(
        "IIIT5k,SVT,IC13,IC15,SVTP,CUTE", "--bench",
        help="Comma list: benchmark names (IIIT5k, SVT, IC13, IC15, SVTP, CUTE, IC03, COCO, ArT, Uber, ...), "
             "overrides like IC13_857, the groups 'benchmark'/'addition', or paths (LMDB, folder of LMDBs, "
             "folder with a labels file, a labels file).",
    ),
    data: Optional[Path] = typer.Option(None, "--data", help="Root searched (recursively) for the named benchmarks."),
    protocol: str = typer.Option("paper", "--protocol",
                                 help="paper (IC13 1015, IC15 2077; default) or abinet (IC13 857, IC15 1811)."),
    head: str = typer.Option("final", "--head", help="final (default: the checkpoint's answer head, alignment for a "
                             "full model, vision for a vision model), alignment, language, vision or all."),
    charset: Optional[str] = typer.Option(
        None, "--charset", help="Protocol charset: preset 36 (default: lower-case a-z0-9, max 25), 62, 94 or a file."),
    weights: str = typer.Option("num_samples", "--weights",
                                help="Weighted average by num_samples (LMDB size incl. skipped; official) or evaluated."),
    baseline: Optional[Path] = typer.Option(
        None, "--baseline", help="A checkpoint to compare with (scored too when not listed): each result's change in "
                                 "word accuracy per set, in the table, JSON (accuracy_delta), CSV and plot."),
    json_out: JsonOpt = None,
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write one row per checkpoint, head and set (plus averages)."),
    errors_out: Optional[Path] = typer.Option(None, "--errors", help="CSV of every wrong prediction and unreadable image."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Bar chart PNG of word accuracy per set."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per forward pass."),
    workers: InferenceWorkersOpt = 0,
    threads: ThreadsOpt = None,
    calibration: CalibrationOpt = "auto",
    precision: PrecisionOpt = None,
    device: DeviceOpt = None,
    rotate_tall: bool = typer.Option(
        False, "--rotate-tall",
        help="Rotate crops taller than twice their width by 90 degrees counter-clockwise (vertical text). "
             "Off by default: the paper's protocol does not rotate."),
) -> None:
    """Score checkpoints on benchmark sets and print one table (a row per checkpoint and head).

    Protocol (default = the paper's): labels lower-cased, symbols outside a-z0-9 removed,
    samples whose label becomes empty or longer than 25 skipped and counted; unreadable
    images counted and listed with their key; predictions normalised the same way. Per set:
    word accuracy, 1-NED, char accuracy, mean confidence and expected calibration error
    (ECE, 15 bins; the checkpoint's calibrated confidences when it has them, see
    --calibration) in percent. "wavg" is the average
    weighted by each set's LMDB num-samples including skipped samples (the official code's and
    the paper's "Avg"); "mean" is the plain mean over sets. For full models a second table
    counts, per set, the crops where the alignment (fusion) head fixed a wrong vision read and
    where it broke a right one: the language model's net effect.
    """
    from semimtr_cli.core.charset import Charset
    from semimtr_cli.data.benchmarks import resolve_protocol, resolve_sets
    from semimtr_cli.evaluation.protocol import Protocol
    from semimtr_cli.evaluation.scoring import evaluate_checkpoints

    set_threads(threads)
    proto_name = resolve_protocol(protocol)
    sets, subsets = resolve_sets(bench, data, proto_name)
    proto = Protocol(name=proto_name, charset=Charset.from_spec(charset), rotate_tall=rotate_tall, weights=weights,
                     subsets=subsets)
    ui.err_console.print(f"[dim]protocol {proto_name}: {proto.charset.describe()}[/]", highlight=False)
    ui.err_console.print("[dim]sets: " + ", ".join(f"{s.name} ({s.num_samples}) {s.path}" for s in sets) + "[/]",
                         highlight=False)

    def loaded(path: str, predictor) -> None:
        ui.err_console.print(f"[dim]{path}: {predictor.kind} model, heads {', '.join(predictor.heads)}, precision "
                             f"{predictor.describe_precision()} on {predictor.device}; {predictor.describe_confidence()}[/]",
                             highlight=False)

    total = len(checkpoints) * sum(s.num_samples for s in sets)
    with ui.progress("eval", total=total, transient=True) as advance:
        report = evaluate_checkpoints(checkpoints, sets, proto, head=head, batch_size=batch_size, workers=workers,
                                      device=device or "auto", precision=precision or "auto", calibration=calibration,
                                      baseline=baseline, on_progress=advance,
                                      on_loaded=loaded)
    _print_table(report.results, ui.err_console if json_out == "-" else ui.console)
    for row in report.bad_images:
        ui.err_console.print(f"[yellow]unreadable[/] {row['set']} {row['key']}: {row['error']}", highlight=False)
    written = report.write(csv_path=csv_out, errors_path=errors_out, plot_path=plot)
    if json_out is not None:
        written.insert(0, write_json(json_out, report.results[0] if len(report.results) == 1 else report.results))
    ui.err_console.print(
        f"{len(report.results)} result(s) on {len(sets)} set(s); {len(report.errors)} wrong prediction(s)"
        + (f", {len(report.bad_images)} unreadable image(s)" if report.bad_images else "")
        + (f"; wrote {', '.join(written)}" if written else ""),
        highlight=False,
    )


def _print_table(objs: list[dict], console) -> None:
    from rich.table import Table

    from semimtr_cli.evaluation.report import checkpoint_names

    names = [s["name"] for s in objs[0]["sets"]]
    shown = checkpoint_names(objs)
    table = Table(show_header=True, header_style="bold", title="word accuracy (%)")
    table.add_column("checkpoint", overflow="fold")
    table.add_column("head")
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("wavg", justify="right")
    table.add_column("mean", justify="right")
    def cell(value: float, delta: float | None) -> str:
        return f"{value:.2f}" if delta is None else f"{value:.2f} ({delta:+.2f})"

    for o in objs:
        by = {s["name"]: s for s in o["sets"]}
        base = o.get("baseline") or {}
        table.add_row(shown[o["checkpoint"]], o["head"],
                      *[cell(by[n]["accuracy"], by[n].get("accuracy_delta")) if n in by else "-" for n in names],
                      cell(o["weighted_average"]["accuracy"], base.get("weighted_average")),
                      cell(o["mean"]["accuracy"], base.get("mean")))
    if "baseline" in objs[0]:
        table.caption = f"(change in points against the baseline {shown[objs[0]['baseline']['checkpoint']]})"
    console.print(table)
    _print_fusion(objs, console, shown)
    detail = Table(show_header=True, header_style="bold", title=f"per set ({shown[objs[0]['checkpoint']]}, {objs[0]['head']})")
    for col in ("set", "samples", "evaluated", "skipped", "unreadable", "accuracy", "1-NED", "char acc", "mean conf",
                "ECE"):
        detail.add_column(col, justify="left" if col == "set" else "right")
    for s in objs[0]["sets"]:
        detail.add_row(s["name"], str(s["num_samples"]), str(s["evaluated"]), str(s["skipped"]), str(s["bad_images"]),
                       f"{s['accuracy']:.2f}", f"{s['one_minus_ned']:.2f}", f"{s['char_accuracy']:.2f}",
                       f"{s['mean_confidence']:.2f}", f"{s['ece']:.2f}")
    console.print(detail)


def _print_fusion(objs: list[dict], console, shown: dict[str, str]) -> None:
    """Per full-model checkpoint and set: crops the alignment head fixed / broke against vision."""
    from rich.table import Table

    seen, rows = set(), []
    for o in objs:
        if o["checkpoint"] in seen or not any("fusion" in s for s in o["sets"]):
            continue
        seen.add(o["checkpoint"])
        rows.extend((shown[o["checkpoint"]], s) for s in o["sets"] if "fusion" in s)
    if not rows:
        return
    table = Table(show_header=True, header_style="bold",
                  title="what the alignment head did to the vision reads (language model's net effect)")
    for col in ("checkpoint", "set", "fixed (vision wrong -> right)", "broken (vision right -> wrong)", "net"):
        table.add_column(col, justify="left" if col in ("checkpoint", "set") else "right")
    for name, s in rows:
        f = s["fusion"]
        table.add_row(name, s["name"], str(f["fixed"]), str(f["broken"]), f"{f['fixed'] - f['broken']:+d}")
    console.print(table)
