"""SeqCLR projection head and instance mapping for the vision pre-training stage (no losses here).

The head reads the backbone map (N, E, 8, 32), flattens it row-major to (N, 256, E) (token =
h * 32 + w), projects every token (scheme ``null`` = identity, as shipped) and averages the
token sequence into ``seqclr_instances`` (5) adaptive bins, exactly like the official
``AdaptiveAvgPool2d((5, D))`` on the (N, 256, D) tensor: each instance is a ~1.6-row
horizontal band of the map. Keys: ``seqclr_proj.projection.*`` (official names).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.outputs import HeadOutput
from semimtr_cli.model.vision import VisionModel


class BiLSTMProjection(nn.Module):
    """(N, S, in) -> BiLSTM(hidden) -> Linear(2 * hidden -> out) -> (N, S, out)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.rnn = nn.LSTM(in_dim, hidden, bidirectional=True, batch_first=True)
        self.linear = nn.Linear(2 * hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.rnn(x)[0])


class GatedHalvesProjection(nn.Module):
    """(N, S, in) -> (N, S, out): gate = sigmoid(w_att(x)) mixes the two halves of x, then cls.

    ``hidden`` must be in_dim / 2 (the width of each half).
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.w_att = nn.Linear(in_dim, hidden)
        self.cls = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.w_att(x))
        first, second = torch.chunk(x, 2, dim=-1)
        return self.cls(gate * first + (1 - gate) * second)


def build_projection(config: ModelConfig) -> tuple[nn.Module, int]:
    """(projection module, output width) for ``config.seqclr_scheme`` with the official defaults."""
    e = config.d_model
    scheme = config.seqclr_scheme
    if scheme == "null":
        return nn.Identity(), e
    if scheme == "linear_per_column":
        out = config.seqclr_output or e
        return nn.Linear(e, out), out
    if scheme == "bilstm":
        hidden, out = config.seqclr_hidden or e, config.seqclr_output or e
        return BiLSTMProjection(e, hidden, out), out
    hidden, out = config.seqclr_hidden or e // 2, config.seqclr_output or config.num_classes
    return GatedHalvesProjection(e, hidden, out), out


def instances_from_sequence(seq: torch.Tensor, num_instances: int) -> torch.Tensor:
    """(N, S, D) -> (N, num_instances, D): adaptive average over S (bins [floor(iS/k), ceil((i+1)S/k)))."""
    return F.adaptive_avg_pool1d(seq.transpose(1, 2), num_instances).transpose(1, 2)


class SeqCLRHead(nn.Module):
    """backbone_feature (N, E, H, W) -> instances (N, seqclr_instances, D)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.projection, self.out_dim = build_projection(config)
        self.num_instances = config.seqclr_instances

    def forward(self, backbone_feature: torch.Tensor) -> torch.Tensor:
        seq = backbone_feature.flatten(2).transpose(1, 2)  # (N, H*W, E), row-major tokens
        return instances_from_sequence(self.projection(seq), self.num_instances)


class SeqCLRModel(nn.Module):
    """Vision model + SeqCLR head (official ``SeqCLRModel`` keys ``vision.*``, ``seqclr_proj.*``).

    forward(images (N, 3, H, W)) -> the vision HeadOutput with ``extras["instances"]``
    (N, seqclr_instances, D). Run it on each augmented view; the loss lives in the trainer.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.vision = VisionModel(config)
        self.seqclr_proj = SeqCLRHead(config)

    def forward(self, images: torch.Tensor) -> HeadOutput:
        out = self.vision(images)
        out.extras["instances"] = self.seqclr_proj(out.extras["backbone_feature"])
        return out
