"""What every inference backend offers: :class:`InferenceBackend` and its :class:`BatchOutput`.

``kind``, ``heads``, ``charset``, ``config``, ``device``, ``precision``; ``preprocess``
(images -> (N, 3, H, W) model input), ``forward`` (the backend's own part: input -> logits per
head) and ``predict`` (decoded words). The PyTorch :class:`~semimtr_cli.infer.predictor.Predictor`
and the :class:`~semimtr_cli.infer.onnx_predictor.OnnxPredictor` implement ``forward``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Sequence

import torch

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import UsageError
from semimtr_cli.data.image import to_model_input
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.decoding import Decoded, decode_logits
from semimtr_cli.model.outputs import HEADS, HeadOutput

FINAL_HEAD = "final"  # the --head default: whichever head gives the model's answer (see InferenceBackend.final_head)


@dataclass
class BatchOutput:
    """Eval-mode outputs of one batch: final HeadOutput per available head (float32, CPU)."""

    heads: dict[str, HeadOutput]


class InferenceBackend(abc.ABC):
    """A model ready for inference; subclasses set the attributes and implement :meth:`forward`.

    Attributes: ``kind`` (full / vision / seqclr), ``heads`` (the outputs it has, a subset of
    HEADS), ``charset``, ``config`` (ModelConfig: input size), ``device``, ``precision`` and
    ``precision_reason`` (what runs and why).
    """

    kind: str
    heads: tuple[str, ...]
    charset: Charset
    config: ModelConfig
    device: torch.device
    precision: str
    precision_reason: str
    temperatures: dict[str, float] = {}  # head -> softmax temperature applied to the logits (calibration)
    thresholds: dict[str, float | None] = {}  # head -> calibrated confidence reaching the stored target precision

    @abc.abstractmethod
    def forward(self, batch: torch.Tensor) -> "BatchOutput":
        """Outputs of a preprocessed batch (N, 3, image_h, image_w) for every head in ``heads``."""

    def describe_precision(self) -> str:
        """``bf16 (auto: ...)`` style text for run headers."""
        return self.precision if self.precision_reason == "as requested" else f"{self.precision} (auto: {self.precision_reason})"

    def describe_confidence(self) -> str:
        """``calibrated (T alignment 1.42, ...)`` or ``uncalibrated`` for run headers."""
        if not self.temperatures:
            return "uncalibrated confidence"
        return "calibrated confidence (T " + ", ".join(f"{h} {t:.2f}" for h, t in self.temperatures.items()) + ")"

    def _apply_temperatures(self, out: "BatchOutput") -> "BatchOutput":
        for head, t in self.temperatures.items():
            if head in out.heads and t != 1.0:
                h = out.heads[head]
                out.heads[head] = HeadOutput(logits=h.logits / t, lengths=h.lengths, feature=h.feature, extras=h.extras)
        return out

    @property
    def final_head(self) -> str:
        """The head whose words are the model's answer: alignment for a full model, vision otherwise."""
        return next(h for h in HEADS if h in self.heads)

    def resolve_head(self, head: str = FINAL_HEAD) -> str:
        """``final`` -> :attr:`final_head`; another name is checked against the model's heads."""
        if head == FINAL_HEAD:
            return self.final_head
        if head not in HEADS:
            raise UsageError(f"must be one of {FINAL_HEAD}, {', '.join(HEADS)}, got {head!r}", param="head")
        if head not in self.heads:
            raise UsageError(f"a {self.kind} model has no {head} head (available: {', '.join(self.heads)})", param="head")
        return head

    def preprocess(self, images: Sequence) -> torch.Tensor:
        """PIL images / HxWx3 uint8 arrays -> (N, 3, image_h, image_w) normalised batch.

        Tensors of shape (3, image_h, image_w) are taken as already preprocessed.
        """
        h, w = self.config.image_h, self.config.image_w
        items = [img if torch.is_tensor(img) else to_model_input(img, h, w) for img in images]
        return torch.stack(items) if items else torch.empty(0, 3, h, w)

    def predict(self, images: Sequence, *, head: str = FINAL_HEAD,
                confidence: str = "product") -> tuple[list[Decoded], "BatchOutput"]:
        """Decode one batch of images with ``head``; also returns the raw outputs."""
        head = self.resolve_head(head)
        out = self.forward(self.preprocess(images))
        return decode_logits(out.heads[head].logits, self.charset, confidence), out


def to_cpu_float(h: HeadOutput) -> HeadOutput:
    return HeadOutput(
        logits=h.logits.float().cpu(),
        lengths=h.lengths.cpu(),
        feature=h.feature.float().cpu(),
        extras={k: v.float().cpu() for k, v in h.extras.items() if k == "attn_scores"},
    )
