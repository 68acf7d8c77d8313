"""`semimtr inspect`: count, label lengths, charset coverage, image sizes and samples of LMDBs.

The options and the printing live here once; `semimtr build-lmdb --inspect DIR` reuses them
(:func:`report_inspection`, :func:`limit_option`, :func:`samples_option`).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from semimtr_cli.cli.commands.options import json_option, summary_console, write_json

JsonOpt = json_option("the stats (one object, or a list for several LMDBs)")


def _help(prefix: str, text: str) -> str:
    return f"{prefix}{text}" if prefix else text[:1].upper() + text[1:]


def limit_option(prefix: str = ""):
    """The ``--limit`` option (``prefix``: e.g. ``"--inspect: "`` where it is one mode of a command)."""
    return typer.Option(2000, "--limit", help=_help(prefix, "images to decode for size stats (0 = all)."))


def samples_option(prefix: str = ""):
    """The ``--samples`` option (``prefix`` as for :func:`limit_option`)."""
    return typer.Option(5, "--samples", help=_help(prefix, "samples to show."))


def load_charset(spec: str, max_length: int | None):
    """The charset of ``--charset`` (None for ``none``), with ``--max-length`` when given."""
    from semimtr_cli.core.charset import Charset

    if spec.lower() == "none":
        return None
    kwargs = {} if max_length is None else {"max_length": max_length}
    return Charset.from_spec(spec, **kwargs)


def command(
    lmdbs: List[Path] = typer.Argument(
        ..., help="LMDB folders, or folders to search for LMDBs.", show_default=False
    ),
    charset: str = typer.Option(
        "36", "--charset", help="Preset (36/62/94) or charset file for the coverage stats; 'none' to skip."
    ),
    max_length: Optional[int] = typer.Option(
        None, "--max-length", help="Longest label training keeps, for the 'dropped by training' count (default: the charset's, 25)."
    ),
    limit: int = limit_option(),
    samples: int = samples_option(),
    json_out: JsonOpt = None,
) -> None:
    """Print count, label lengths, charset coverage, image sizes and samples of existing LMDBs.

    Each LMDB argument is an LMDB folder (with data.mdb) or a folder searched for LMDBs.
    """
    report_inspection(lmdbs, charset=charset, max_length=max_length, limit=limit, samples=samples, json_out=json_out)


def report_inspection(
    roots: List[Path], *, charset: str, max_length: int | None, limit: int, samples: int, json_out: str | None
) -> None:
    """Inspect every LMDB under ``roots``, print one table each, and write the JSON if asked."""
    from semimtr_cli.data.lmdb.inspect import inspect_lmdbs

    stats = inspect_lmdbs(roots, charset=load_charset(charset, max_length), limit=limit, samples=samples)
    console = summary_console(json_out)
    for s in stats:
        console.print(_stats_table(s))
    write_json(json_out, stats if len(stats) != 1 else stats[0])


def _stats_table(s: dict):
    from rich.table import Table

    t = Table(title=f"{s['path']}", header_style="bold", show_header=False)
    t.add_column("")
    t.add_column("")
    t.add_row("samples", f"{s['count']} ({s['labeled']} labeled, {s['unlabeled']} unlabeled"
              + (f", {s['legacy_markers']} with the legacy unlabeled marker" if s["legacy_markers"] else "") + ")")
    ll = s["label_length"]
    if ll:
        t.add_row("label length", f"min {ll['min']}, mean {ll['mean']}, median {ll['median']}, max {ll['max']}")
        t.add_row("length histogram", " ".join(f"{k}:{v}" for k, v in s["label_length_histogram"].items()))
    cov = s["charset_coverage"]
    if cov:
        t.add_row(
            f"charset {cov['charset']}",
            f"{cov['labels_fully_covered']} fully covered, {cov['labels_with_unknown_symbols']} with other symbols, "
            f"{cov['labels_unusable_for_training']} dropped by training's filter",
        )
        if cov["unknown_symbols"]:
            t.add_row("other symbols", " ".join(f"{k!r}:{v}" for k, v in list(cov["unknown_symbols"].items())[:15]))
    im = s["images"]
    if im["width"]:
        w, h = im["width"], im["height"]
        t.add_row(
            f"image size ({im['decoded']} decoded)",
            f"width {w['min']}..{w['max']} (mean {w['mean']}), height {h['min']}..{h['max']} (mean {h['mean']})",
        )
        t.add_row("formats / modes", f"{im['formats']} / {im['modes']}")
    if im["failed"]:
        t.add_row("[red]undecodable images[/]", str(im["failed"]))
    for smp in s["samples"]:
        t.add_row(f"#{smp['index']}", f"{smp['label']!r}  {smp['size']} {smp['format']} {smp['mode']}")
    return t
