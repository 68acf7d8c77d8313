"""Vision backbones: CNN (ResNet45 or any timm CNN) + transformer encoder over the feature map.

``VisionBackbone`` is the official ``ResTranformer`` (keys ``resnet.*``, ``pos_encoder.pe``,
``transformer.layers.*``): (N, 3, 32, 128) -> (N, E, 8, 32). A timm CNN takes the place of
``resnet`` under the name ``cnn`` (keys ``cnn.body.*``, ``cnn.proj.*``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SemimtrError
from .config import ModelConfig
from .resnet45 import ResNet45
from .transformer import Encoder, PositionalEncoding


class TimmFeatureAdapter(nn.Module):
    """A timm ``features_only`` CNN brought to the (N, d_model, feature_h, feature_w) map.

    One feature level is used (``timm_feature_index``, or by default the deepest level whose
    map for an ``image_h x image_w`` input is at least ``feature_h x feature_w``); it is
    average-pooled (if larger) or bilinearly resized (if smaller) to the target map, then a
    1x1 convolution maps its channels to ``d_model``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        import timm

        name = config.timm_name
        try:
            probe = timm.create_model(name, features_only=True, pretrained=False)
        except Exception as exc:  # timm raises RuntimeError/KeyError for unknown names
            raise SemimtrError(f"timm backbone {name!r} cannot be built with features_only=True: {exc}") from None
        reductions = probe.feature_info.reduction()
        index = config.timm_feature_index
        if index is None:
            fits = [i for i, r in enumerate(reductions)
                    if config.image_h // r >= config.feature_h and config.image_w // r >= config.feature_w]
            index = fits[-1] if fits else 0
        if not 0 <= index < len(reductions):
            raise SemimtrError(f"timm backbone {name!r} has feature levels 0..{len(reductions) - 1}, got timm_feature_index {index}")
        self.body = timm.create_model(name, features_only=True, pretrained=False, out_indices=(index,))
        self.size = (config.feature_h, config.feature_w)
        self.proj = nn.Conv2d(self.body.feature_info.channels()[-1], config.d_model, 1)
        self.out_channels = config.d_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, d_model, feature_h, feature_w)."""
        f = self.body(x)[-1]
        if f.shape[-2] >= self.size[0] and f.shape[-1] >= self.size[1]:
            f = F.adaptive_avg_pool2d(f, self.size)
        else:
            f = F.interpolate(f, size=self.size, mode="bilinear", align_corners=False)
        return self.proj(f)


def build_cnn(config: ModelConfig) -> nn.Module:
    """The configured CNN: (N, 3, image_h, image_w) -> (N, d_model, feature_h, feature_w)."""
    if config.backbone == "resnet45":
        return ResNet45(config.resnet_stem_channels, tuple(config.resnet_channels),
                        tuple(config.resnet_blocks), tuple(config.resnet_strides))
    return TimmFeatureAdapter(config)


class VisionBackbone(nn.Module):
    """CNN -> + sinusoid (dropout) -> transformer encoder over the row-major flattened map.

    (N, 3, image_h, image_w) -> (N, E, feature_h, feature_w); token index = h * feature_w + w.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        cnn = build_cnn(config)
        if config.backbone == "resnet45":
            self.resnet = cnn
        else:
            self.cnn = cnn
        self.pos_encoder = PositionalEncoding(config.d_model, config.feature_h * config.feature_w, config.dropout)
        self.transformer = Encoder(config.vision_layers, config.d_model, config.nhead, config.d_inner,
                                   config.dropout, config.activation)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        cnn = self.resnet if hasattr(self, "resnet") else self.cnn
        feature = cnn(images)
        n, c, h, w = feature.shape
        tokens = self.pos_encoder(feature.flatten(2).transpose(1, 2))  # (N, H*W, E)
        tokens = self.transformer(tokens)
        return tokens.transpose(1, 2).reshape(n, c, h, w)
