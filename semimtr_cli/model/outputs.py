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


def _join_head_rows(parts: list[HeadOutput], inverse: torch.Tensor) -> HeadOutput:
    def join(tensors):
        return torch.cat(tensors)[inverse]

    shared = set.intersection(*(set(p.extras) for p in parts))
    return HeadOutput(
        logits=join([p.logits for p in parts]),
        lengths=join([p.lengths for p in parts]),
        feature=join([p.feature for p in parts]),
        extras={k: join([p.extras[k] for p in parts]) for k in sorted(shared)},
    )


def join_rows(parts: list[RecognizerOutput], rows: list[torch.Tensor]) -> RecognizerOutput:
    """One output for a batch that was run in parts: ``parts[i]`` holds batch rows ``rows[i]``.

    ``rows`` are (n_i,) int64 row indices that together cover 0..N-1 once each; every (N, ...)
    tensor of the result has its rows back in batch order (differentiable where the parts are).
    Extras present in only some parts are dropped.
    """
    order = torch.cat(rows)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)

    def heads(getter):
        return [_join_head_rows([getter(p)[i] for p in parts], inverse) for i in range(len(getter(parts[0])))]

    return RecognizerOutput(
        vision=_join_head_rows([p.vision for p in parts], inverse),
        language=heads(lambda p: p.language),
        alignment=heads(lambda p: p.alignment),
    )
