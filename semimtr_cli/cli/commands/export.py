"""`semimtr export`: write a checkpoint as an ONNX file (and check it with onnxruntime)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from semimtr_cli.cli import ui
from semimtr_cli.cli.commands.options import json_option, summary_console, write_json
from semimtr_cli.core.errors import UsageError

JsonOpt = json_option("the export report")


def command(
    checkpoint: Path = typer.Argument(..., help="A semimtr checkpoint (full, vision or seqclr)."),
    onnx: Path = typer.Option(..., "--onnx", help="Output .onnx file (written atomically)."),
    vision_only: bool = typer.Option(False, "--vision-only", help="Export only the vision model (output 'vision')."),
    check: int = typer.Option(4, "--check", help="Compare onnxruntime with PyTorch on this many images (0 = skip)."),
    images: Optional[List[Path]] = typer.Option(None, "--image", help="Images for the check (else random inputs)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version."),
    tolerance: float = typer.Option(1e-4, "--tolerance", help="Largest allowed absolute logit difference in the check."),
    int8: bool = typer.Option(False, "--int8", hidden=True, help="Refused: int8 export was dropped (see INT8_HINT)."),
    json_out: JsonOpt = None,
) -> None:
    """Export the eval-mode model to ONNX: input 'images' (N x 3 x 32 x 128, normalised, N
    dynamic), outputs the last-iteration logits 'alignment', 'language', 'vision' (N x 26 x
    classes) or 'vision' alone. Charset and config travel in the file's metadata, so `semimtr
    read FILE.onnx --backend onnx` needs nothing else. The check runs onnxruntime and PyTorch
    on the same inputs and fails if any logit differs by more than --tolerance.
    """
    from dataclasses import asdict

    if int8:
        from semimtr_cli.core.runtime import INT8_HINT  # imports torch: not at module level (fast --help)

        raise UsageError(INT8_HINT, param="int8")
    if check < 0:
        raise UsageError(f"--check must be >= 0, got {check}")
    from semimtr_cli.infer.export import export_onnx
    from semimtr_cli.infer.reading import load_image

    pics = [load_image(p) for p in (images or [])]
    if pics and check == 0:
        raise UsageError("--image is only used by the check; drop --check 0")
    result = export_onnx(checkpoint, onnx, vision_only=vision_only, opset=opset, check=max(check, len(pics)) if check else 0,
                         check_images=pics, tolerance=tolerance)
    if result.max_abs_diff is not None:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in result.max_abs_diff.items())
        summary_console(json_out).print(
            f"checked {result.checked_images} image(s) with onnxruntime: max |diff| {diffs} (<= {tolerance:g})",
            highlight=False)
    size = Path(result.path).stat().st_size / 1e6
    ui.err_console.print(f"wrote {result.path} ({size:.1f} MB; {result.kind} model, outputs {', '.join(result.outputs)}, "
                         f"opset {result.opset}, {result.precision}, dynamic batch)", highlight=False)
    write_json(json_out, asdict(result))
