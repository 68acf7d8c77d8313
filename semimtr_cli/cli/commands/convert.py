"""`semimtr convert`: import an official SemiMTR/ABINet checkpoint into this tool's format."""

from __future__ import annotations

from pathlib import Path

import typer

from semimtr_cli.cli.commands.options import json_option, summary_console, write_json

JsonOpt = json_option("the import summary")


def command(
    src: Path = typer.Argument(..., help="Official checkpoint: plain state dict, {'model': ...} (.pth) or Lightning .ckpt."),
    dst: Path = typer.Argument(..., help="Where to write the semimtr checkpoint."),
    kind: str = typer.Option(
        "auto", "--kind",
        help="auto (from the key names), full, vision or language (vision/language also extract that part of a full model).",
    ),
    charset: str = typer.Option("36", "--charset", help="Charset the model was trained with: preset 36/62/94 or a charset file."),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle",
        help="Allow arbitrary unpickling for files that weights_only loading refuses (only for files you trust).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace DST if it exists."),
    json_out: JsonOpt = None,
) -> None:
    """Import official SemiMTR / ABINet weights (full model, vision-only or language-only).

    Files are read with torch.load(weights_only=True). Every key of the file must map onto the
    model and every model tensor must be filled with the right shape; otherwise nothing is
    written and the offending keys are listed. Model sizes are read from the tensor shapes.
    """
    from semimtr_cli.core.errors import UsageError
    from semimtr_cli.model.convert import convert_checkpoint

    if dst.exists() and not overwrite:
        raise UsageError(f"{dst} exists; pass --overwrite to replace it")
    result = convert_checkpoint(src, dst, kind=kind, charset=charset, trust_pickle=trust_pickle)
    console = summary_console(json_out)
    console.print(
        f"imported {result.kind} model ({result.num_parameters:,} parameters, {result.num_tensors} tensors, "
        f"charset {result.charset}) from {result.layout} -> {result.destination}",
        highlight=False,
    )
    if result.dropped_prefixes:
        console.print(f"dropped (not part of a {result.kind} model): {', '.join(result.dropped_prefixes)}", highlight=False)
    if result.ignored_entries:
        console.print(f"ignored container entries: {', '.join(result.ignored_entries)}", highlight=False)
    write_json(json_out, result.to_dict())
