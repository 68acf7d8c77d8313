"""Open a checkpoint (PyTorch) or an exported ``.onnx`` graph as one :class:`InferenceBackend`."""

from __future__ import annotations

from pathlib import Path

from semimtr_cli.core.errors import UsageError, option
from semimtr_cli.core.runtime import check_precision
from semimtr_cli.infer.backend import InferenceBackend
from semimtr_cli.infer.predictor import load_predictor

BACKENDS = ("torch", "onnx")  # open_backend also takes "auto": by the file's suffix


def open_backend(path: str | Path, *, backend: str = "auto", device: str = "auto", precision: str = "auto",
                 calibration: str = "auto") -> InferenceBackend:
    """``torch``: :func:`load_predictor`; ``onnx``: an ``OnnxPredictor`` (CPU, fp32; raw
    confidences: an exported file carries no calibration); ``auto``: onnx for a ``.onnx`` path,
    else torch."""
    if backend == "auto":
        backend = "onnx" if str(path).endswith(".onnx") else "torch"
    if backend not in BACKENDS:
        raise UsageError(f"must be one of {', '.join(BACKENDS)}, got {backend!r}", param="backend")
    if backend == "torch":
        return load_predictor(path, device=device, precision=precision, calibration=calibration)
    if calibration == "require":
        raise UsageError("an ONNX file carries no calibration; read the .pt checkpoint instead", param="calibration")
    from semimtr_cli.infer.onnx_predictor import OnnxPredictor

    check_precision(precision)
    if precision not in ("auto", "fp32") or device not in ("auto", "cpu"):
        raise UsageError(f"the onnx backend runs fp32 on the CPU; drop {option('precision')} / {option('device')}",
                         param="backend")
    return OnnxPredictor(path)
