"""ABINet's ResNet45 with the official state-dict names.

Input (N, 3, 32, 128) -> output (N, 512, 8, 32) at the paper's settings:
stem conv3x3 s1 (32) -> layer1 32 @16x64 -> layer2 64 @16x64 -> layer3 128 @8x32
-> layer4 256 @8x32 -> layer5 512 @8x32 (blocks [3, 4, 6, 6, 3], strides [2, 1, 2, 1, 1]).

Block layout (official, unusual): conv1x1 -> BN -> ReLU -> conv3x3 carrying the stride -> BN
(+ shortcut) -> ReLU; the shortcut ("downsample": conv1x1 with the stride + BN) sits on the
first block of every stage. ``BatchNormReLU`` is a ``BatchNorm2d`` with the ReLU inside the
module, so its keys are the plain BN keys (``bn1.weight`` ...). It stands in for timm's
``BatchNormAct2d``, whose import pulls in torchvision and cost every command seconds of start-up.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class BatchNormReLU(nn.BatchNorm2d):
    """``BatchNorm2d`` then (if ``relu``) an in-place ReLU; (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, num_features: int, relu: bool = True) -> None:
        super().__init__(num_features)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return F.relu(x, inplace=True) if self.relu else x


class BasicBlock(nn.Module):
    """(N, in, H, W) -> (N, planes, H/stride, W/stride)."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = BatchNormReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = BatchNormReLU(planes, relu=False)
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.bn1(self.conv1(x))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act(out + shortcut)


class ResNet45(nn.Module):
    """Stem + stages ``layer1..layerK``. (N, 3, H, W) -> (N, channels[-1], H/s, W/s), s = prod(strides)."""

    def __init__(
        self,
        stem_channels: int = 32,
        channels: tuple[int, ...] = (32, 64, 128, 256, 512),
        blocks: tuple[int, ...] = (3, 4, 6, 6, 3),
        strides: tuple[int, ...] = (2, 1, 2, 1, 1),
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = BatchNormReLU(stem_channels)
        self.num_stages = len(channels)
        in_ch = stem_channels
        for i, (planes, n, s) in enumerate(zip(channels, blocks, strides), start=1):
            stage = [BasicBlock(in_ch, planes, s)] + [BasicBlock(planes, planes) for _ in range(n - 1)]
            self.add_module(f"layer{i}", nn.Sequential(*stage))
            in_ch = planes
        self.out_channels = in_ch
        self._init_weights()

    def _init_weights(self) -> None:
        """Official init: conv ~ N(0, sqrt(2 / (k*k*out))), BN weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv1(x))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return x
