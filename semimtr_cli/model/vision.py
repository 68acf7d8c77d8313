"""The vision model (official ``BaseVision``): backbone -> position attention -> classifier.

Also home of :func:`predicted_lengths`, the greedy length rule every head uses.
"""

from __future__ import annotations

import torch
from torch import nn

from semimtr_cli.model.attention import PositionAttention
from semimtr_cli.model.backbones import VisionBackbone
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.outputs import HeadOutput

NULL_CLASS = 0


def predicted_lengths(logits: torch.Tensor) -> torch.Tensor:
    """Greedy length per sample, including the stop slot (official ``_get_length``).

    logits (N, T, C) -> (N,) int64: index of the first slot whose argmax is the null class,
    plus one; T when no slot predicts null (SemiMTR's rule; the original ABINet gave 0).
    """
    is_null = logits.argmax(dim=-1) == NULL_CLASS
    first = torch.argmax(is_null.to(torch.int8), dim=-1)  # first True (0 if none)
    t = logits.shape[1]
    return torch.where(is_null.any(dim=-1), first + 1, torch.full_like(first, t))


class VisionModel(nn.Module):
    """Images -> per-slot logits. Keys: ``backbone.*``, ``attention.*``, ``cls.*``.

    forward(images (N, 3, image_h, image_w)) -> HeadOutput with logits (N, T, C),
    lengths (N,), feature (N, T, E) and extras ``attn_scores`` (N, T, feature_h, feature_w),
    ``backbone_feature`` (N, E, feature_h, feature_w).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.num_classes is None:
            raise ValueError("ModelConfig.num_classes is unset; build models through model.factory.build_model")
        self.config = config
        self.backbone = VisionBackbone(config)
        self.attention = PositionAttention(config.max_slots, config.d_model, config.attention_channels,
                                           config.feature_h, config.feature_w, config.attention_mode)
        self.cls = nn.Linear(config.d_model, config.num_classes)

    def forward(self, images: torch.Tensor) -> HeadOutput:
        feature_map = self.backbone(images)
        attended, scores = self.attention(feature_map)
        logits = self.cls(attended)
        return HeadOutput(
            logits=logits,
            lengths=predicted_lengths(logits),
            feature=attended,
            extras={"attn_scores": scores, "backbone_feature": feature_map},
        )
