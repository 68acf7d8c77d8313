"""The `semimtr` command: a Typer app whose commands each call one library function.

Command modules import their heavy dependencies (torch, lmdb, ...) inside the command body, so
`semimtr --help` stays fast.
"""

from __future__ import annotations

import importlib
import inspect
import re

import typer

from semimtr_cli import __version__
from semimtr_cli.cli import ui

app = typer.Typer(
    name="semimtr",
    help="Semi-supervised scene-text recognition (SemiMTR / ABINet): data, training, evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (command name, module under semimtr_cli.cli.commands, one-line purpose)
COMMANDS: list[tuple[str, str, str]] = [
    ("synth", "synth", "Render synthetic word crops (folder + labels TSV, or an LMDB) to try everything."),
    ("build-lmdb", "build_lmdb", "Turn image folders and label files into the standard LMDB, with a report."),
    ("inspect", "inspect", "Print count, label lengths, charset coverage, image sizes and samples of LMDBs."),
    ("show-aug", "show_aug", "Draw a PNG grid of augmentation previews for samples of an LMDB or folder."),
    ("pretrain-vision", "pretrain_vision", "Train the vision model: supervised CE + SeqCLR contrastive loss (stage 1)."),
    ("pretrain-lm", "pretrain_lm", "Train the BCN language model on a text corpus (stage 2)."),
    ("finetune", "finetune", "Train vision+language+fusion with teacher-student consistency (stage 3)."),
    ("eval", "evaluate", "Score checkpoints on the standard benchmarks or your own LMDBs."),
    ("calibrate", "calibrate", "Fit one confidence temperature per head on labeled crops; store it in the checkpoint."),
    ("pseudo-labels", "pseudo_labels", "Inspect what the teacher would teach on unlabeled crops."),
    ("read", "read", "Recognise text in image files or folders with a checkpoint."),
    ("convert", "convert", "Import an official SemiMTR/ABINet checkpoint into this tool's format."),
    ("export", "export", "Export a checkpoint to ONNX."),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"semimtr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", help="Show full tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    ui.set_verbose(verbose)


# A line that keeps its own line in --help: a list item (-, *, 1. or 1)) or an indented block.
_OWN_LINE = re.compile(r"^(\s{4,}\S|\s*[-*]\s|\s*\d+[.)]\s)")


def reflow_help(doc: str) -> str:
    """A command docstring for ``--help``: the lines of each paragraph joined into one.

    Typer (rich mode) keeps the docstring's hard line breaks, which then show as ragged lines
    at any terminal width. Blank lines still separate paragraphs; list items (``-``, ``*``,
    ``1.``), lines indented by 4+ spaces and paragraphs starting with click's ``\\b`` marker
    keep their own lines; a less-indented line after a list item continues that item.
    """
    paragraphs = re.split(r"\n(?:[ \t]*\n)+", inspect.cleandoc(doc))
    out = []
    for para in paragraphs:
        if para.startswith("\b"):
            out.append(para)
            continue
        lines: list[str] = []
        for line in para.splitlines():
            if lines and not _OWN_LINE.match(line) and not re.match(r"\s{4,}", lines[-1]):
                lines[-1] = f"{lines[-1].rstrip()} {line.strip()}"
            else:
                lines.append(line.rstrip())
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _register() -> None:
    for name, module, purpose in COMMANDS:
        fn = importlib.import_module(f"semimtr_cli.cli.commands.{module}").command
        if fn.__doc__:
            fn.__doc__ = reflow_help(fn.__doc__)
        app.command(name, help=(fn.__doc__ or purpose), short_help=purpose)(ui.guarded(fn))


_register()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
