"""`semimtr synth`: render synthetic word crops into a folder (+ labels.tsv) or an LMDB."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from semimtr_cli.cli import ui
from semimtr_cli.cli.commands.options import json_option, summary_console, workers_option, write_json
from semimtr_cli.core.errors import UsageError

JsonOpt = json_option("the summary")
WorkersOpt = workers_option("render the crops", default="0 below 1000 crops, else one per CPU up to 8")


def command(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (images + labels.tsv) or, with --lmdb, the LMDB folder (optional with --preview)."),
    count: int = typer.Option(..., "--count", "-n", help="Number of word crops to render."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives byte-identical output."),
    lmdb: bool = typer.Option(False, "--lmdb", help="Write an LMDB (standard layout) instead of a folder."),
    unlabeled: bool = typer.Option(False, "--unlabeled", help="Write images only (folder: no labels.tsv; LMDB: no label keys)."),
    words: Optional[Path] = typer.Option(None, "--words", help="Word list, one word per line (UTF-8). Default: packaged English list."),
    use_wordfreq: bool = typer.Option(False, "--wordfreq", help="Use the installed wordfreq package's top English words."),
    vocab_size: Optional[int] = typer.Option(None, "--vocab-size", help="Keep only the first N words of the list."),
    fonts: Optional[str] = typer.Option(None, "--fonts", help="Folder of TTF/OTF fonts (searched recursively), or 'system' (the operating system's font folders). Default: matplotlib's DejaVu/STIX/CM fonts."),
    backgrounds: Optional[Path] = typer.Option(None, "--backgrounds", help="Folder of photographs to cut background windows from (scene style; never benchmark test images). Default: procedural textures."),
    font_set: Optional[str] = typer.Option(
        None, "--font-set",
        help="sans|serif|mono|all, font file names, or a comma list (e.g. 'serif,DejaVuSansMono'). Default: sans (clean, scene), serif,mono (wild), sans,mono (dotmatrix).",
    ),
    style: str = typer.Option("clean", "--style", help="clean (plain, mild), wild (textures, blur, low contrast, perspective), scene (real-crop colours, photo/texture backgrounds, curves, neighbouring words, borders, shadows, camera degradations; words by frequency, numbers, prices, codes) or dotmatrix (text made of dots: LED signs, inkjet codes; the words of scene)."),
    height: int = typer.Option(32, "--height", help="Crop height in pixels; width follows the text."),
    case: str = typer.Option("mixed", "--case", help="lower|mixed|upper|as-is (mixed: 50% lower, 30% Capitalised, 20% UPPER)."),
    digits_fraction: float = typer.Option(0.1, "--digits-fraction", help="Fraction of samples that are random numbers instead of words."),
    image_format: str = typer.Option("png", "--format", help="Image encoding: png or jpg."),
    workers: WorkersOpt = None,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing synth output / LMDB at --out."),
    preview: Optional[Path] = typer.Option(None, "--preview", help="Also draw a PNG grid of the first crops (with --compare: beside real crops)."),
    compare: Optional[Path] = typer.Option(None, "--compare", help="Real crops to show beside the preview: a folder of images, a labels file or an LMDB."),
    json_out: JsonOpt = None,
) -> None:
    """Render synthetic word crops from fonts and a word list, deterministically from --seed.

    Folder output: OUT/images/*.png, OUT/labels.tsv (what build-lmdb reads), OUT/synth.json.

    With --lmdb: an LMDB at OUT. Crops are --height pixels high and as wide as the word.

    Sample i depends only on (seed, i): a larger --count extends a smaller one.

    --preview GRID.png draws the first crops (up to 60) beside --compare's real crops, so the gap
    between synthetic and real can be seen; without --out nothing else is written.
    """
    from semimtr_cli.data.synth.backgrounds import list_backgrounds
    from semimtr_cli.data.synth.fonts import resolve_fonts
    from semimtr_cli.data.synth.generate import generate
    from semimtr_cli.data.synth.preview import preview_grid

    if words is not None and use_wordfreq:
        raise UsageError("--words and --wordfreq are alternatives; give one")
    if workers is None:
        workers = 0 if count < 1000 else min(8, os.cpu_count() or 1)
    if workers < 0:
        raise UsageError(f"--workers must be >= 0, got {workers}")
    if out is None and preview is None:
        raise UsageError("give --out (where the crops go) or --preview (a grid to look at)")
    word_list = _word_list(words, use_wordfreq).limited(vocab_size)
    font_files = resolve_fonts(fonts, font_set, style)
    background_files = list_backgrounds(backgrounds) if backgrounds is not None else []
    options = dict(words=word_list, fonts=font_files, style=style, height=height, case=case,
                   digits_fraction=digits_fraction, backgrounds=background_files)
    summary: dict = {}
    if out is not None:
        with ui.progress(f"rendering ({style})", total=max(count, 0)) as advance:
            summary = generate(out, count, seed, lmdb=lmdb, unlabeled=unlabeled, image_format=image_format,
                               overwrite=overwrite, workers=workers, on_progress=advance, **options)
        _print_summary(summary_console(json_out), summary)
    if preview is not None:
        summary["preview"] = str(preview_grid(preview, seed, min(count, 60), compare=compare, **options))
        summary_console(json_out).print(f"[bold green]preview[/] {summary['preview']}", highlight=False)
    write_json(json_out, summary)


def _word_list(words: Optional[Path], use_wordfreq: bool):
    from semimtr_cli.data.text.words import packaged_words, read_words_file, wordfreq_words

    if words is not None:
        return read_words_file(words)
    return wordfreq_words() if use_wordfreq else packaged_words()


def _print_summary(console, s: dict) -> None:
    from rich.table import Table

    what = "LMDB" if s["kind"] == "lmdb" else "folder"
    labels = "unlabeled" if s["unlabeled"] else "labeled"
    console.print(
        f"[bold green]wrote[/] {s['count']} {labels} {s['style']} crops ({s['format']}, height {s['height']}, "
        f"mean width {s['mean_width']:.0f}) to {what} {s['out']} in {s['seconds']:.1f} s "
        f"({s['images_per_s']:,.0f} images/s, {s['workers']} worker{'s' if s['workers'] != 1 else ''})",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"words: {s['words']:,} from {s['words_source']}; seed {s['seed']}", highlight=False)
    for reason, n in s["words_skipped"].items():
        console.print(f"  skipped {n} word(s): {reason}", highlight=False)
    kept = len(s["fonts"])
    console.print(f"fonts: {kept} kept, {len(s['fonts_skipped'])} skipped", highlight=False)
    for reason, names in _by_reason(s["fonts_skipped"]).items():
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        console.print(f"  skipped {len(names)}: {reason} ({shown})", highlight=False)
    used = sorted(s["fonts_used"].items(), key=lambda kv: -kv[1])
    table = Table(title=f"fonts used ({len(used)}{', the 12 most used' if len(used) > 12 else ''})", title_justify="left")
    table.add_column("font")
    table.add_column("crops", justify="right")
    for name, n in used[:12]:
        table.add_row(name, str(n))
    console.print(table)


def _by_reason(skipped: dict[str, str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, why in skipped.items():
        grouped.setdefault("draws too few letters" if why.startswith("draws no") else why, []).append(name)
    return grouped
