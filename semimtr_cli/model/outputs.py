"""The tensors a model head returns; shared by the model core, losses, trainer and inference.

Shapes: N batch, T = max_length + 1 decoding slots (26 at the paper's settings), C classes
(charset symbols + null, 37 for the paper), E model width (512).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

#: The three outputs of a full model: ``alignment`` (the fused, final one), ``language``, ``vision``.
HEADS = ("alignment", "language", "vision")
HeadName = Literal[HEADS]


@dataclass
class HeadOutput:
    """One head's prediction for one iteration.

    Attributes:
        logits: (N, T, C) unnormalised class scores.
        lengths: (N,) int64 predicted length *including* the stop slot (first null + 1, or T
            when no slot predicts null), i.e. the official ``pt_lengths``.
        feature: (N, T, E) the per-slot features the logits were computed from.
        extras: head-specific tensors, e.g. vision ``attn_scores`` (N, T, 8, 32) and
            ``backbone_feature`` (N, E, 8, 32).
    """

    logits: torch.Tensor
    lengths: torch.Tensor
    feature: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class RecognizerOutput:
    """Output of the full iterative model (vision -> language -> fusion, repeated).

    ``language`` and ``alignment`` hold one entry per iteration in training mode and only the
    last iteration in eval mode; ``[-1]`` is always the final prediction.
    """

    vision: HeadOutput
    language: list[HeadOutput]
    alignment: list[HeadOutput]

    def head(self, name: str) -> HeadOutput:
        """Final prediction of ``"vision"``, ``"language"`` or ``"alignment"``."""
        if name == "vision":
            return self.vision
        if name == "language":
            return self.language[-1]
        if name == "alignment":
            return self.alignment[-1]
        raise ValueError(f"unknown head {name!r}; expected vision, language or alignment")
