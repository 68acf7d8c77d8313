"""Position attention: T positional queries read T character vectors off the feature map.

Keys come from a mini U-Net over the backbone map (``k_encoder`` 4 strided conv blocks,
``k_decoder`` 4 upsample+conv blocks with skip additions); queries are the sinusoid of each
slot index through ``project``; values are the backbone map itself. Official names and layout
(ABINet ``PositionAttention``).
"""

from __future__ import annotations

import torch
from torch import nn

from semimtr_cli.model.transformer import PositionalEncoding

_ENCODER_STRIDES = ((1, 2), (2, 2), (2, 2), (2, 2))


def _conv_out(size: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int]:
    """Map size after a 3x3 conv with padding 1."""
    return tuple((s + 2 - 3) // st + 1 for s, st in zip(size, stride))  # type: ignore[return-value]


def _encoder_block(in_c: int, out_c: int, stride: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_c, out_c, 3, stride, 1), nn.BatchNorm2d(out_c), nn.ReLU(inplace=True))


def _decoder_block(in_c: int, out_c: int, size: tuple[int, int], mode: str) -> nn.Sequential:
    align = True if mode in ("bilinear", "bicubic") else None
    return nn.Sequential(
        nn.Upsample(size=size, mode=mode, align_corners=align),
        nn.Conv2d(in_c, out_c, 3, 1, 1),
        nn.BatchNorm2d(out_c),
        nn.ReLU(inplace=True),
    )


class PositionAttention(nn.Module):
    """(N, E, H, W) backbone map -> (attended vectors (N, T, E), scores (N, T, H, W)).

    Args:
        max_slots: T, decoding slots (max_length + 1 = 26 in the paper).
        in_channels: E (512). num_channels: U-Net width (64). h, w: the map size (8, 32).
        mode: upsampling mode of the key decoder (``nearest``).

    Scores are softmax over the H*W positions of q . k / sqrt(E); the output is scores @ map.
    """

    def __init__(self, max_slots: int, in_channels: int = 512, num_channels: int = 64, h: int = 8, w: int = 32,
                 mode: str = "nearest") -> None:
        super().__init__()
        self.max_slots = max_slots
        sizes = [(h, w)]
        for s in _ENCODER_STRIDES:
            sizes.append(_conv_out(sizes[-1], s))
        chans = [in_channels] + [num_channels] * len(_ENCODER_STRIDES)
        self.k_encoder = nn.Sequential(*(_encoder_block(chans[i], chans[i + 1], s) for i, s in enumerate(_ENCODER_STRIDES)))
        # decoder i upsamples to the size of encoder output (n-2-i) and adds it; the last goes to (h, w)
        n = len(_ENCODER_STRIDES)
        blocks = [_decoder_block(num_channels, num_channels, sizes[n - 1 - i], mode) for i in range(n - 1)]
        blocks.append(_decoder_block(num_channels, in_channels, (h, w), mode))
        self.k_decoder = nn.Sequential(*blocks)
        self.pos_encoder = PositionalEncoding(in_channels, max_slots, dropout=0.0)
        self.project = nn.Linear(in_channels, in_channels)

    def keys(self, x: torch.Tensor) -> torch.Tensor:
        """U-Net keys: (N, E, H, W) -> (N, E, H, W)."""
        skips = []
        k = x
        for block in self.k_encoder:
            k = block(k)
            skips.append(k)
        last = len(self.k_decoder) - 1
        for i in range(last):
            k = self.k_decoder[i](k) + skips[last - 1 - i]
        return self.k_decoder[last](k)

    def queries(self) -> torch.Tensor:
        """(1, T, E): the projected sinusoid of every slot (input-independent)."""
        return self.project(self.pos_encoder.table(self.max_slots))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, e, h, w = x.shape
        k = self.keys(x).flatten(2)  # (N, E, H*W)
        q = self.queries().to(k.dtype)  # (1, T, E)
        scores = torch.softmax(torch.matmul(q, k) / (e ** 0.5), dim=-1)  # (N, T, H*W)
        values = x.flatten(2).transpose(1, 2)  # (N, H*W, E)
        attended = torch.bmm(scores, values.to(scores.dtype))
        return attended, scores.view(n, -1, h, w)
