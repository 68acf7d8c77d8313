"""`semimtr eval`: score checkpoints on the standard benchmarks or your own LMDBs/folders."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from .. import ui
from ..errors import UsageError


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
    head: str = typer.Option("alignment", "--head", help="alignment (final), language, vision or all."),
    charset: Optional[str] = typer.Option(
        None, "--charset", help="Protocol charset: preset 36 (default: lower-case a-z0-9, max 25), 62, 94 or a file."),
    weights: str = typer.Option("num_samples", "--weights",
                                help="Weighted average by num_samples (LMDB size incl. skipped; official) or evaluated."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results (a list with several checkpoints/heads)."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write one row per checkpoint, head and set (plus averages)."),
    errors_out: Optional[Path] = typer.Option(None, "--errors", help="CSV of every wrong prediction and unreadable image."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Bar chart PNG of word accuracy per set."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per forward pass."),
    workers: int = typer.Option(0, "--workers", help="DataLoader worker processes (0 = decode in this process)."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 where fast here and it keeps the fp32 words of the first batch), fp32 or bf16."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    rotate_tall: bool = typer.Option(
        False, "--rotate-tall",
        help="Rotate crops taller than twice their width by 90 degrees counter-clockwise (vertical text). "
             "Off by default: the paper's protocol does not rotate."),
) -> None:
    """Score checkpoints on benchmark sets and print one table (a row per checkpoint and head).

    Protocol (default = the paper's): labels lower-cased, symbols outside a-z0-9 removed,
    samples whose label becomes empty or longer than 25 skipped and counted; unreadable
    images counted and listed with their key; predictions normalised the same way. Per set:
    word accuracy, 1-NED, char accuracy, mean confidence (percent). "wavg" is the average
    weighted by each set's LMDB num-samples including skipped samples (the official code's and
    the paper's "Avg"); "mean" is the plain mean over sets.
    """
    import pandas as pd
    import torch

    from ..charset import Charset
    from ..data.benchmarks import resolve_protocol, resolve_sets
    from ..evaluate import (HEAD_CHOICES, WEIGHTINGS, Protocol, bad_image_rows, check_charset_fit,
                            error_rows, evaluate_set, load_predictor, plot_results, resolve_heads, result_objects)
    from ..fsutil import atomic_path, atomic_write_json

    if head not in HEAD_CHOICES:
        raise UsageError(f"--head must be one of {', '.join(HEAD_CHOICES)}, got {head!r}")
    if weights not in WEIGHTINGS:
        raise UsageError(f"--weights must be one of {', '.join(WEIGHTINGS)}, got {weights!r}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    if workers < 0:
        raise UsageError(f"--workers must be >= 0, got {workers}")
    for ckpt in checkpoints:
        if not ckpt.is_file():
            raise UsageError(f"checkpoint not found: {ckpt}")

    proto_name = resolve_protocol(protocol)
    sets, subsets = resolve_sets(bench, data, proto_name)
    proto = Protocol(name=proto_name, charset=Charset.from_spec(charset), rotate_tall=rotate_tall, weights=weights,
                     subsets=subsets)
    ui.err_console.print(f"[dim]protocol {proto_name}: {proto.charset.describe()}[/]", highlight=False)
    ui.err_console.print("[dim]sets: " + ", ".join(f"{s.name} ({s.num_samples}) {s.path}" for s in sets) + "[/]",
                         highlight=False)

    all_objs, all_errors, all_bad = [], [], []
    total = sum(s.num_samples for s in sets)
    for ckpt in checkpoints:
        predictor = load_predictor(ckpt, device=device, precision=precision)
        check_charset_fit(predictor.charset, proto.charset, str(ckpt))
        heads = resolve_heads(predictor, head)
        ui.err_console.print(f"[dim]{ckpt}: {predictor.kind} model, heads {', '.join(heads)}, precision {precision} on "
                             f"{predictor.device}[/]", highlight=False)
        start = time.perf_counter()
        results = []
        with torch.inference_mode(), ui.progress(f"eval {ckpt.name}", total=total, transient=True) as advance:
            for s in sets:
                results.append(evaluate_set(predictor, s, proto, heads, batch_size=batch_size, workers=workers,
                                            on_progress=advance))
        seconds = time.perf_counter() - start
        ui.err_console.print(f"[dim]{ckpt.name}: precision {predictor.describe_precision()}[/]", highlight=False)
        all_objs.extend(result_objects(str(ckpt), predictor, proto, results, heads, precision=predictor.precision, seconds=seconds))
        all_errors.extend(error_rows(str(ckpt), results, heads))
        all_bad.extend(bad_image_rows(str(ckpt), results))
        del predictor

    _print_table(all_objs)
    seen_bad = set()
    for row in all_bad:
        if (row["set"], row["key"]) in seen_bad:
            continue
        seen_bad.add((row["set"], row["key"]))
        ui.err_console.print(f"[yellow]unreadable[/] {row['set']} {row['key']}: {row['error']}", highlight=False)

    written = []
    if json_out is not None:
        atomic_write_json(json_out, all_objs[0] if len(all_objs) == 1 else all_objs)
        written.append(str(json_out))
    if csv_out is not None:
        rows = []
        for o in all_objs:
            for s in o["sets"]:
                rows.append({"checkpoint": o["checkpoint"], "head": o["head"], "set": s["name"], "path": s["path"],
                             **{k: s[k] for k in ("num_samples", "evaluated", "skipped", "accuracy", "one_minus_ned",
                                                  "mean_confidence", "char_accuracy", "bad_images")}})
            for label, avg in (("weighted_average", o["weighted_average"]), ("mean", o["mean"])):
                rows.append({"checkpoint": o["checkpoint"], "head": o["head"], "set": label, "path": "",
                             **{k: avg[k] for k in ("num_samples", "evaluated", "skipped", "accuracy", "one_minus_ned",
                                                    "mean_confidence", "char_accuracy")}})
        with atomic_path(csv_out, suffix=".csv") as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
        written.append(str(csv_out))
    if errors_out is not None:
        cols = ["checkpoint", "head", "set", "key", "label", "prediction", "confidence", "error"]
        frame = pd.DataFrame(all_errors + [dict(r, head="", label="", prediction="", confidence=None) for r in all_bad],
                             columns=cols)
        with atomic_path(errors_out, suffix=".csv") as tmp:
            frame.to_csv(tmp, index=False)
        written.append(str(errors_out))
    if plot is not None:
        plot_results(all_objs, plot)
        written.append(str(plot))
    n_err = len(all_errors)
    ui.err_console.print(
        f"{len(all_objs)} result(s) on {len(sets)} set(s); {n_err} wrong prediction(s)"
        + (f", {len(seen_bad)} unreadable image(s)" if seen_bad else "")
        + (f"; wrote {', '.join(written)}" if written else ""),
        highlight=False,
    )


def _print_table(objs: list[dict]) -> None:
    from rich.table import Table

    names = [s["name"] for s in objs[0]["sets"]]
    table = Table(show_header=True, header_style="bold", title="word accuracy (%)")
    table.add_column("checkpoint", overflow="fold")
    table.add_column("head")
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("wavg", justify="right")
    table.add_column("mean", justify="right")
    for o in objs:
        by = {s["name"]: s for s in o["sets"]}
        table.add_row(Path(o["checkpoint"]).name, o["head"],
                      *[f"{by[n]['accuracy']:.2f}" if n in by else "-" for n in names],
                      f"{o['weighted_average']['accuracy']:.2f}", f"{o['mean']['accuracy']:.2f}")
    ui.console.print(table)
    detail = Table(show_header=True, header_style="bold", title=f"per set ({Path(objs[0]['checkpoint']).name}, {objs[0]['head']})")
    for col in ("set", "samples", "evaluated", "skipped", "unreadable", "accuracy", "1-NED", "char acc", "mean conf"):
        detail.add_column(col, justify="left" if col == "set" else "right")
    for s in objs[0]["sets"]:
        detail.add_row(s["name"], str(s["num_samples"]), str(s["evaluated"]), str(s["skipped"]), str(s["bad_images"]),
                       f"{s['accuracy']:.2f}", f"{s['one_minus_ned']:.2f}", f"{s['char_accuracy']:.2f}",
                       f"{s['mean_confidence']:.2f}")
    ui.console.print(detail)
