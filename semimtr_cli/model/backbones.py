"""Vision backbones: a CNN from the registry + a transformer encoder over its feature map.

A CNN is a :class:`BackboneSpec` in :data:`BACKBONES`, found by the ``backbone`` config value:
``resnet45`` (ABINet's ResNet45) or ``timm/<name>`` (any timm CNN; the family is the part before
the slash). A spec says how to build the CNN, what to check in the config, and the attribute
(state-dict prefix) the CNN lives under. Adding a backbone is one :func:`register_backbone` call.

``VisionBackbone`` is the official ``ResTranformer`` (keys ``resnet.*``, ``pos_encoder.pe``,
``transformer.layers.*``): (N, 3, 32, 128) -> (N, E, 8, 32). A timm CNN takes the place of
``resnet`` under the name ``cnn`` (keys ``cnn.body.*``, ``cnn.proj.*``).

Config arguments are :class:`~semimtr_cli.model.config.ModelConfig` objects (annotated by name
only: the config module reads this registry to validate, so this module does not import it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.model.resnet45 import ResNet45
from semimtr_cli.model.transformer import Encoder, PositionalEncoding


class TimmFeatureAdapter(nn.Module):
    """A timm ``features_only`` CNN brought to the (N, d_model, feature_h, feature_w) map.

    One feature level is used (``timm_feature_index``, or by default the deepest level whose
    map for an ``image_h x image_w`` input is at least ``feature_h x feature_w``); it is
    average-pooled (if larger) or bilinearly resized (if smaller) to the target map, then a
    1x1 convolution maps its channels to ``d_model``.
    """

    def __init__(self, config) -> None:
        super().__init__()
        import timm

        name = config.backbone.partition("/")[2]
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


def _check_resnet45(config) -> str | None:
    """Why the ResNet45 fields of ``config`` do not fit together, or None."""
    n = len(config.resnet_channels)
    if n == 0 or len(config.resnet_blocks) != n or len(config.resnet_strides) != n:
        return "resnet_channels, resnet_blocks and resnet_strides must be non-empty and of equal length"
    if config.resnet_channels[-1] != config.d_model:
        return f"resnet_channels[-1] ({config.resnet_channels[-1]}) must equal d_model ({config.d_model})"
    if any(b < 1 for b in config.resnet_blocks) or any(s not in (1, 2) for s in config.resnet_strides):
        return "resnet_blocks must be >= 1 and resnet_strides 1 or 2"
    stride = 1
    for s in config.resnet_strides:
        stride *= s
    if config.image_h // stride != config.feature_h or config.image_w // stride != config.feature_w:
        return (f"resnet strides give a {config.image_h // stride}x{config.image_w // stride} map for "
                f"{config.image_h}x{config.image_w} images, but feature_h x feature_w is "
                f"{config.feature_h}x{config.feature_w}")
    return None


def _check_timm(config) -> str | None:
    return None if config.backbone.partition("/")[2].strip() else "a timm backbone is named 'timm/<model name>'"


@dataclass(frozen=True)
class BackboneSpec:
    """One CNN family: ``build(config)`` -> (N, 3, image_h, image_w) -> (N, d_model, feature_h, feature_w);
    ``check(config)`` -> the reason the config does not fit, or None; ``attribute``: the
    VisionBackbone attribute (state-dict prefix) that holds it."""

    build: Callable[[object], nn.Module]
    check: Callable[[object], str | None]
    attribute: str


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(family: str, build: Callable, check: Callable, attribute: str = "cnn") -> None:
    """Make ``backbone: <family>`` (or ``<family>/<name>``) buildable."""
    BACKBONES[family] = BackboneSpec(build, check, attribute)


def backbone_spec(backbone: str) -> BackboneSpec:
    """The spec of a ``backbone`` config value; SemimtrError naming the known families otherwise."""
    family = backbone.partition("/")[0]
    if family not in BACKBONES:
        known = ", ".join(f"'{f}'" if f == "resnet45" else f"'{f}/<name>'" for f in BACKBONES)
        raise SemimtrError(f"unknown backbone {backbone!r}; choose one of {known}")
    return BACKBONES[family]


register_backbone(
    "resnet45",
    lambda c: ResNet45(c.resnet_stem_channels, tuple(c.resnet_channels), tuple(c.resnet_blocks),
                       tuple(c.resnet_strides)),
    _check_resnet45, attribute="resnet")
register_backbone("timm", TimmFeatureAdapter, _check_timm)


class VisionBackbone(nn.Module):
    """CNN -> + sinusoid (dropout) -> transformer encoder over the row-major flattened map.

    (N, 3, image_h, image_w) -> (N, E, feature_h, feature_w); token index = h * feature_w + w.
    """

    def __init__(self, config) -> None:
        super().__init__()
        spec = backbone_spec(config.backbone)
        self.cnn_attribute = spec.attribute
        setattr(self, spec.attribute, spec.build(config))
        self.pos_encoder = PositionalEncoding(config.d_model, config.feature_h * config.feature_w, config.dropout)
        self.transformer = Encoder(config.vision_layers, config.d_model, config.nhead, config.d_inner,
                                   config.dropout, config.activation)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feature = getattr(self, self.cnn_attribute)(images)
        n, c, h, w = feature.shape
        tokens = self.pos_encoder(feature.flatten(2).transpose(1, 2))  # (N, H*W, E)
        tokens = self.transformer(tokens)
        return tokens.transpose(1, 2).reshape(n, c, h, w)
