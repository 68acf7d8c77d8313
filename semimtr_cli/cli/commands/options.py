"""The options several commands share: one name, one meaning, one help text each.

``--device``, ``--precision``, ``--calibration``, ``--workers``, ``--threads``, ``--json``,
``--seed`` and ``--out`` mean the same on every command that has them:

- ``--workers N``: N separate worker processes do the loading / decoding / rendering; ``0``
  runs that work in this process;
- ``--threads N``: threads inside this process (torch's where a model runs; ``build-lmdb``'s
  image-reading pool, the one command whose work is not torch's);
- ``--json TARGET``: the command's result as JSON, to a file or to stdout for ``-`` (the
  readable summary then goes to stderr).

Typer reads options from each command's signature, so a command declares
``device: DeviceOpt = None``; :func:`json_option` and :func:`workers_option` give the
``--json`` / ``--workers`` of a command in its own words; :func:`write_json` and
:func:`summary_console` are the edge helpers for ``--json``.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from semimtr_cli.cli import ui

DEVICE_HELP = ("Where to run: auto (a CUDA GPU when there is one, else Apple mps, else the CPU), cpu, cuda, "
               "cuda:N or mps. Default: auto; training commands: the recipe's train.device.")
PRECISION_HELP = ("auto (chosen for this machine: bf16 where it runs natively and fast, and for inference only "
                  "where the first batch reads the same words as fp32; the output says why), fp32, bf16 or fp16 "
                  "(CUDA). Default: auto; training commands: the recipe's train.precision. Fastest on a CPU: "
                  "`semimtr export CKPT --onnx MODEL.onnx`, then read or eval the .onnx file.")
WORKERS_HELP = "Worker processes that load and decode data (0 = in this process)."
THREADS_HELP = "Torch threads of this process (default: torch's choice; training commands: the recipe's train.threads)."

CALIBRATION_HELP = ("auto (default): confidences use the temperatures `semimtr calibrate` stored in the checkpoint, "
                    "when there are any; require: stop unless there are; off: raw softmax confidences.")
CalibrationOpt = Annotated[str, typer.Option("--calibration", help=CALIBRATION_HELP)]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help=DEVICE_HELP)]
PrecisionOpt = Annotated[Optional[str], typer.Option("--precision", help=PRECISION_HELP)]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help=THREADS_HELP)]
InferenceWorkersOpt = Annotated[int, typer.Option("--workers", help=WORKERS_HELP)]
# "final" is infer.backend.FINAL_HEAD (spelled out here: the CLI imports no torch before a command runs)
HeadOpt = typer.Option("final", "--head", help="final (default: the checkpoint's answer head, alignment for a full "
                       "model, vision for a vision model), alignment, language or vision.")


def workers_option(job: str = "load and decode data", default: str | None = None):
    """The ``--workers`` option of a command whose worker processes ``job``; ``default``: what
    leaving it out means, when that is not 0."""
    note = f"; default: {default}" if default else ""
    return Annotated[Optional[int], typer.Option("--workers", help=f"Worker processes that {job} (0 = in this process{note}).")]


def json_option(what: str):
    """The ``--json`` option of a command that writes ``what``: a path, or ``-`` for stdout."""
    return Annotated[Optional[str], typer.Option("--json", help=f"Write {what} as JSON to this file ('-' = stdout).")]


def summary_console(json_target: str | None):
    """Where the readable summary goes: stderr when the JSON itself goes to stdout."""
    return ui.err_console if json_target == "-" else ui.console


def write_json(target: str | None, obj) -> str | None:
    """Write ``obj`` to ``target`` atomically, or print it on stdout for ``-``; returns what was written."""
    if target is None:
        return None
    if target == "-":
        typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))
        return "stdout"
    from semimtr_cli.core.fsutil import atomic_write_json

    atomic_write_json(target, obj)
    return target


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (checked: >= 1) to this process."""
    if threads is None:
        return
    if threads < 1:
        from semimtr_cli.core.errors import UsageError

        raise UsageError(f"must be >= 1, got {threads}", param="threads")
    import torch

    torch.set_num_threads(threads)
