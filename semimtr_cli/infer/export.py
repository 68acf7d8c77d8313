"""ONNX export of a checkpoint, checked against PyTorch (``infer/onnx_predictor.py`` runs the file).

The exported graph is the eval-mode model: input ``images`` (N, 3, H, W) float32, already
normalised (the same pipeline as ``read``: RGB, bilinear resize, /255, ImageNet mean/std), N
dynamic. Outputs are (N, T, C) logits of the *last iteration*, T = max_length + 1 fixed slots
(26 for the paper's model): ``alignment``, ``language``, ``vision`` for a full model, or
``vision`` alone (``vision_only`` or a vision/seqclr checkpoint). Lengths are not exported:
they are the first null slot + 1, recomputed from the logits by the runner. The charset,
model config and kind are stored as ONNX metadata, so the file is self-contained.

On a CPU the exported fp32 graph on onnxruntime is the fast inference path: 1.36x PyTorch fp32
on the quickstart's trained model (batch 32, one thread), with the same words
(benchmarks/model_speed.py, variant ``onnx``). There is no int8 export: ONNX Runtime's dynamic
int8 quantisation of this graph's weight MatMuls changed 1.2-8.4 % of the words of trained models
under every weight scheme tried, about as many as +-1 grey level of input noise changes, and a
single quantised vision layer up to 3.4 % (benchmarks/int8_sensitivity.py); it ran 1.26x the
fp32 graph on the paper-size model and no faster on the tiny one (variant
``onnx-int8``, see docs/performance.md); ``torch.ao.quantization`` is deprecated.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.infer.onnx_predictor import META_PREFIX, session
from semimtr_cli.model.outputs import HEADS

DEFAULT_OPSET = 17
TOLERANCE = 1e-4


class _FullLogits(nn.Module):
    """Full recognizer -> (alignment, language, vision) last-iteration logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        out = self.model(images)
        return out.alignment[-1].logits, out.language[-1].logits, out.vision.logits


class _VisionLogits(nn.Module):
    """Vision model (alone or inside a full / SeqCLR model) -> vision logits."""

    def __init__(self, vision: nn.Module):
        super().__init__()
        self.vision = vision

    def forward(self, images: torch.Tensor):
        return self.vision(images).logits


def _vision_module(model: nn.Module, kind: str) -> nn.Module:
    if kind == "vision":
        return model
    if hasattr(model, "vision"):
        return model.vision
    raise SemimtrError(f"a {kind} checkpoint has no vision model to export")


@dataclass
class ExportResult:
    path: str
    outputs: list[str]
    kind: str
    opset: int
    max_abs_diff: dict[str, float] | None
    checked_images: int
    precision: str = "fp32"


def export_onnx(checkpoint: str | Path, out: str | Path, *, vision_only: bool = False, opset: int = DEFAULT_OPSET,
                check: int = 4, check_images: Sequence | None = None, tolerance: float = TOLERANCE) -> ExportResult:
    """Export ``checkpoint`` to ``out`` (written atomically) and optionally check it.

    Args:
        vision_only: export only the vision model (outputs ``vision``).
        check: compare onnxruntime with PyTorch on this many images (0 = no check; needs
            onnxruntime). ``check_images`` (PIL images / arrays) are used first, then
            deterministic random inputs fill up to ``check``.
        tolerance: largest allowed absolute logit difference.

    Raises:
        SemimtrError: language-only checkpoint, export failure, onnxruntime missing for a
            check, or a difference above ``tolerance``.
    """
    from semimtr_cli.core.fsutil import atomic_path
    from semimtr_cli.model.checkpoint import model_from_checkpoint

    model, charset, ckpt = model_from_checkpoint(checkpoint)
    kind = ckpt["kind"]
    if kind == "language":
        raise SemimtrError(f"{checkpoint}: a language model alone reads no images; export a full or vision checkpoint")
    model.eval()
    if kind == "full" and not vision_only:
        wrapper, outputs, exported_kind = _FullLogits(model), list(HEADS), "full"
    else:
        wrapper, outputs, exported_kind = _VisionLogits(_vision_module(model, kind)), ["vision"], "vision"
    wrapper.eval()
    cfg = model.config
    example = torch.zeros(2, 3, cfg.image_h, cfg.image_w)
    dynamic = {name: {0: "batch"} for name in ["images", *outputs]}
    out = Path(out)
    with atomic_path(out, suffix=".onnx") as tmp:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(wrapper, (example,), str(tmp), dynamo=False, input_names=["images"],
                                  output_names=outputs, dynamic_axes=dynamic, opset_version=opset,
                                  do_constant_folding=True)
        except Exception as exc:  # the exporter raises many types
            raise SemimtrError(f"{checkpoint}: ONNX export failed ({type(exc).__name__}: {str(exc)[:300]})") from None
        meta = {"kind": exported_kind, "source_kind": kind, "charset": json.dumps(charset.to_dict()),
                "model_config": json.dumps(cfg.to_dict()), "outputs": ",".join(outputs)}
        _add_metadata(tmp, meta | {"precision": "fp32"})
        diffs, n_checked = None, 0
        batch = _check_batch(check, check_images, cfg.image_h, cfg.image_w) if check > 0 else None
        if batch is not None:
            diffs = compare_with_torch(tmp, wrapper, batch, outputs)
            n_checked = batch.shape[0]
            worst = max(diffs.values())
            if worst > tolerance:
                raise SemimtrError(f"{out}: onnxruntime logits differ from PyTorch by {worst:.3g} (> {tolerance:g}); "
                                   "the file was not written")
    return ExportResult(str(out), outputs, exported_kind, opset, diffs, n_checked)


def _add_metadata(path: Path, entries: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    for key, value in entries.items():
        item = proto.metadata_props.add()
        item.key, item.value = META_PREFIX + key, value
    onnx.save(proto, str(path))


def _check_batch(n: int, images: Sequence | None, h: int, w: int) -> torch.Tensor:
    from semimtr_cli.data.image import to_model_input

    items = [to_model_input(img, h, w) for img in list(images or [])[:n]]
    if len(items) < n:
        gen = torch.Generator().manual_seed(0)
        levels = torch.randint(0, 256, (n - len(items), h, w, 3), generator=gen, dtype=torch.uint8)
        items += [to_model_input(x.numpy(), h, w) for x in levels]
    return torch.stack(items)


def compare_with_torch(path: str | Path, wrapper: nn.Module, batch: torch.Tensor, outputs: Sequence[str]) -> dict[str, float]:
    """Largest absolute logit difference per output between onnxruntime and PyTorch."""
    sess = session(path)
    got = sess.run(list(outputs), {"images": batch.numpy()})
    with torch.no_grad():
        ref = wrapper(batch)
    ref = ref if isinstance(ref, tuple) else (ref,)
    return {name: float(np.max(np.abs(g - r.numpy()))) for name, g, r in zip(outputs, got, ref)}


