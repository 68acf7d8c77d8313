"""Run an exported ONNX graph (``infer/export.py``) with onnxruntime behind the backend interface.

The graph's metadata (keys under :data:`META_PREFIX`) carries the charset, model config and kind,
so the file alone is enough; lengths are recomputed from the logits (first null slot + 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.infer.backend import BatchOutput, InferenceBackend
from semimtr_cli.model.outputs import HeadOutput

META_PREFIX = "semimtr."


def session(path: str | Path, threads: int | None = None):
    """onnxruntime CPU session of ``path``; ``threads``: intra-op threads (None: torch's count, so
    ``--threads`` means the same for both backends)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise SemimtrError("onnxruntime is not installed (pip install onnxruntime) -- needed to run or check ONNX files") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise SemimtrError(f"{path}: onnxruntime cannot load it ({type(exc).__name__}: {str(exc)[:200]})") from None


class OnnxPredictor(InferenceBackend):
    """An exported ONNX file as an :class:`~semimtr_cli.infer.predictor.InferenceBackend` (what ``read``
    uses): onnxruntime's CPU provider, fp32; the heads are the file's outputs."""

    def __init__(self, path: str | Path, threads: int | None = None):
        from semimtr_cli.model.config import ModelConfig

        self.path = Path(path)
        if not self.path.is_file():
            raise SemimtrError(f"ONNX file not found: {self.path}")
        self.session = session(self.path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.charset = Charset.from_dict(json.loads(meta[META_PREFIX + "charset"]))
            self.config = ModelConfig.from_dict(json.loads(meta[META_PREFIX + "model_config"]))
            self.heads = tuple(meta[META_PREFIX + "outputs"].split(","))
            self.kind = meta[META_PREFIX + "kind"]
        except (KeyError, ValueError, TypeError) as exc:
            raise SemimtrError(f"{self.path}: not an ONNX file written by `semimtr export` (metadata {exc} missing)") from None
        self.device = torch.device("cpu")
        self.precision = meta.get(META_PREFIX + "precision", "fp32")
        self.precision_reason = "onnx backend"

    def forward(self, batch: torch.Tensor) -> BatchOutput:
        from semimtr_cli.model.vision import predicted_lengths

        arrays = self.session.run(list(self.heads), {"images": batch.detach().cpu().float().numpy()})
        heads = {}
        for name, arr in zip(self.heads, arrays):
            logits = torch.from_numpy(arr)
            heads[name] = HeadOutput(logits=logits, lengths=predicted_lengths(logits),
                                     feature=torch.zeros(logits.shape[0], logits.shape[1], 0))
        return BatchOutput(heads)
