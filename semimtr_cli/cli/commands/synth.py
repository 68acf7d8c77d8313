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
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (images + labels.tsv) or, with --lmdb, the LMDB folder."),
    count: int = typer.Option(..., "--count", "-n", help="Number of word crops to render."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives byte-identical output."),
    lmdb: bool = typer.Option(False, "--lmdb", help="Write an LMDB (standard layout) instead of a folder."),
    unlabeled: bool = typer.Option(False, "--unlabeled", help="Write images only (folder: no labels.tsv; LMDB: no label keys)."),
    words: Optional[Path] = typer.Option(None, "--words", help="Word list, one word per line (UTF-8). Default: packaged English list."),
    use_wordfreq: bool = typer.Option(False, "--wordfreq", help="Use the installed wordfreq package's top English words."),
    vocab_size: Optional[int] = typer.Option(None, "--vocab-size", help="Keep only the first N words of the list."),
    fonts: Optional[Path] = typer.Option(None, "--fonts", help="Folder of TTF/OTF fonts (searched recursively). Default: matplotlib's DejaVu/STIX/CM fonts."),
    font_set: Optional[str] = typer.Option(
        None, "--font-set",
        help="sans|serif|mono|all, font file names, or a comma list (e.g. 'serif,DejaVuSansMono'). Default: sans (clean), serif,mono (wild).",
    ),
    style: str = typer.Option("clean", "--style", help="clean (plain, mild) or wild (textures, blur, low contrast, perspective)."),
    height: int = typer.Option(32, "--height", help="Crop height in pixels; width follows the text."),
    case: str = typer.Option("mixed", "--case", help="lower|mixed|upper|as-is (mixed: 50% lower, 30% Capitalised, 20% UPPER)."),
    digits_fraction: float = typer.Option(0.1, "--digits-fraction", help="Fraction of samples that are random numbers instead of words."),
    image_format: str = typer.Option("png", "--format", help="Image encoding: png or jpg."),
    workers: WorkersOpt = None,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing synth output / LMDB at --out."),
    json_out: JsonOpt = None,
) -> None:
    """Render synthetic word crops from fonts and a word list, deterministically from --seed.

    Folder output: OUT/images/*.png, OUT/labels.tsv (what build-lmdb reads), OUT/synth.json.

    With --lmdb: an LMDB at OUT. Crops are --height pixels high and as wide as the word.

    Sample i depends only on (seed, i): a larger --count extends a smaller one.
    """
    from semimtr_cli.data.synth.fonts import resolve_fonts
    from semimtr_cli.data.synth.generate import generate

    if words is not None and use_wordfreq:
        raise UsageError("--words and --wordfreq are alternatives; give one")
    if workers is None:
        workers = 0 if count < 1000 else min(8, os.cpu_count() or 1)
    if workers < 0:
        raise UsageError(f"--workers must be >= 0, got {workers}")
    word_list = _word_list(words, use_wordfreq).limited(vocab_size)
    font_files = resolve_fonts(fonts, font_set, style)

    with ui.progress(f"rendering ({style})", total=max(count, 0)) as advance:
        summary = generate(
            out, count, seed, lmdb=lmdb, unlabeled=unlabeled, words=word_list, fonts=font_files, style=style,
            height=height, case=case, digits_fraction=digits_fraction, image_format=image_format,
            overwrite=overwrite, workers=workers, on_progress=advance,
        )
    _print_summary(summary_console(json_out), summary)
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
    if s["fonts_skipped"]:
        console.print(f"  skipped fonts that draw no a-z/0-9: {', '.join(s['fonts_skipped'])}", highlight=False)
    table = Table(title=f"fonts used ({len(s['fonts_used'])})", title_justify="left")
    table.add_column("font")
    table.add_column("crops", justify="right")
    for name, n in sorted(s["fonts_used"].items(), key=lambda kv: -kv[1]):
        table.add_row(name, str(n))
    console.print(table)
