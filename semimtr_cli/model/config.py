"""Typed model configuration: every size knob of the recognizer in one dataclass.

The defaults are the paper's model (ABINet/SemiMTR: ResNet45 + 3 transformer layers, position
attention, 4-layer BCN language model, gated fusion, 3 iterations). ``PRESETS`` holds named
sizes (``paper``, ``tiny``); a YAML recipe stores ``ModelConfig.to_dict()`` and reads it back
with :meth:`ModelConfig.from_dict`, which goes through the one config loader
(:func:`semimtr_cli.core.config.loader.from_dict`): unknown keys, wrong types and values outside a
``Literal`` are errors in its "did you mean" style.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Literal

from semimtr_cli.core.config.loader import from_dict as load_schema
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.model.backbones import backbone_spec

SeqclrScheme = Literal["null", "linear_per_column", "bilstm", "attn_linear_per_column"]
Activation = Literal["relu", "gelu"]
SEQCLR_SCHEMES: tuple[str, ...] = typing.get_args(SeqclrScheme)
ACTIVATIONS: tuple[str, ...] = typing.get_args(Activation)


@dataclass
class ModelConfig:
    """Sizes and options of the recognizer (field names are the YAML keys).

    Backbone:
        backbone: ``"resnet45"`` (ABINet's ResNet45) or ``"timm/<name>"`` (any timm CNN,
            adapted to a ``d_model x feature_h x feature_w`` map).
        resnet_stem_channels / resnet_channels / resnet_blocks / resnet_strides: ResNet45
            stem width, per-stage widths, blocks per stage and stage strides.
            ``resnet_channels[-1]`` must equal ``d_model``.
        timm_feature_index: which ``features_only`` level of a timm backbone to use
            (None = the deepest level whose map is at least ``feature_h x feature_w``).
    Transformer (shared by the vision encoder and the BCN language model):
        d_model, nhead, d_inner (FFN width), dropout, activation (``relu``/``gelu``).
        vision_layers: encoder layers over the feature map (paper 3).
    Position attention:
        attention_channels: width of the mini U-Net that computes the keys (paper 64).
        attention_mode: upsampling mode of that U-Net (``nearest``).
    Decoding:
        max_length: characters per word; ``max_length + 1`` slots are decoded (paper 25).
        num_classes: charset symbols + null; None until resolved from a charset.
    Language model / fusion:
        lm_layers (paper 4), lm_detach (stop the gradient into the input probabilities),
        iter_size (vision -> language -> fusion repetitions, paper 3).
    Geometry:
        image_h, image_w: model input size (32 x 128); feature_h, feature_w: backbone map (8 x 32).
    SeqCLR head (vision pre-training):
        seqclr_scheme: ``null`` (identity, shipped), ``linear_per_column``, ``bilstm``,
            ``attn_linear_per_column``; seqclr_hidden / seqclr_output: widths (None = the
            official defaults); seqclr_instances: instances per image (5).
    """

    backbone: str = "resnet45"
    resnet_stem_channels: int = 32
    resnet_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512])
    resnet_blocks: list[int] = field(default_factory=lambda: [3, 4, 6, 6, 3])
    resnet_strides: list[int] = field(default_factory=lambda: [2, 1, 2, 1, 1])
    timm_feature_index: int | None = None
    d_model: int = 512
    nhead: int = 8
    d_inner: int = 2048
    dropout: float = 0.1
    activation: Activation = "relu"
    vision_layers: int = 3
    attention_channels: int = 64
    attention_mode: str = "nearest"
    max_length: int = 25
    num_classes: int | None = None
    lm_layers: int = 4
    lm_detach: bool = True
    iter_size: int = 3
    image_h: int = 32
    image_w: int = 128
    feature_h: int = 8
    feature_w: int = 32
    seqclr_scheme: SeqclrScheme = "null"
    seqclr_hidden: int | None = None
    seqclr_output: int | None = None
    seqclr_instances: int = 5

    # ------------------------------------------------------------------ derived
    @property
    def max_slots(self) -> int:
        """Decoding slots: ``max_length`` characters + 1 stop slot."""
        return self.max_length + 1

    # ------------------------------------------------------------------ checks
    def validate(self) -> "ModelConfig":
        """Raise SemimtrError naming the first inconsistent field; return self."""

        def bad(msg: str) -> SemimtrError:
            return SemimtrError(f"model config: {msg}")

        reason = backbone_spec(self.backbone).check(self)
        if reason:
            raise bad(reason)
        if self.d_model % self.nhead != 0:
            raise bad(f"d_model ({self.d_model}) must be divisible by nhead ({self.nhead})")
        if self.d_model % 2 != 0:
            raise bad("d_model must be even (sinusoidal positional encoding)")
        if not 0.0 <= self.dropout < 1.0:
            raise bad(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("vision_layers", "lm_layers", "iter_size", "attention_channels", "max_length", "d_inner"):
            if getattr(self, name) < 1:
                raise bad(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.feature_h < 8 or self.feature_w < 16:
            raise bad("position attention needs a feature map of at least 8x16")
        if self.num_classes is not None and self.num_classes < 2:
            raise bad(f"num_classes must be >= 2, got {self.num_classes}")
        if self.seqclr_instances < 1:
            raise bad("seqclr_instances must be >= 1")
        return self

    def resolved(self, charset) -> "ModelConfig":
        """A copy with ``num_classes`` taken from ``charset``; errors if the charset disagrees."""
        if charset.max_length != self.max_length:
            raise SemimtrError(
                f"model config max_length {self.max_length} differs from charset '{charset.name}' max_length {charset.max_length}"
            )
        if self.num_classes is not None and self.num_classes != charset.num_classes:
            raise SemimtrError(
                f"model config num_classes {self.num_classes} differs from charset '{charset.name}' "
                f"({charset.num_classes} = {len(charset.symbols)} symbols + null)"
            )
        return dataclasses.replace(self, num_classes=charset.num_classes).validate()

    # ------------------------------------------------------------------ plain data
    def to_dict(self) -> dict:
        """Plain data (lists, ints, strings) for YAML and checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None, *, source: str = "model config") -> "ModelConfig":
        """Build from plain data (a recipe's ``model:``, a checkpoint's ``model_config``) through
        the config loader, then :meth:`validate`.

        Raises:
            ConfigError: ``"model config: unknown key 'd_modle' (did you mean 'd_model'?)"``,
                a wrong type or a value outside a ``Literal`` (``source`` starts the message).
            SemimtrError: sizes that do not fit together (:meth:`validate`).
        """
        return load_schema(cls, d, source=source).validate()

    @classmethod
    def preset(cls, name: str, **overrides) -> "ModelConfig":
        """A named size (see ``PRESETS``) with optional field overrides."""
        if name not in PRESETS:
            raise SemimtrError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
        d = dict(PRESETS[name])
        d.update(overrides)
        return cls.from_dict(d)


PRESETS: dict[str, dict] = {
    # The paper's model: 36.7 M parameters for the full recognizer with charset 36.
    "paper": {},
    # A CPU-sized model for quick recipes and tests (868 K parameters full, 555 K vision, charset 36).
    "tiny": {
        "resnet_stem_channels": 8,
        "resnet_channels": [8, 16, 32, 64, 128],
        "resnet_blocks": [1, 1, 2, 2, 1],
        "d_model": 128,
        "nhead": 4,
        "d_inner": 256,
        "vision_layers": 1,
        "attention_channels": 32,
        "lm_layers": 2,
    },
}
