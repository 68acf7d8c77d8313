"""The one model factory: every command builds its network here from (kind, config, charset).

Kinds and their state-dict key layout (the official one of the matching class):
    ``full``     IterativeRecognizer  vision.* language.* alignment.*   images -> RecognizerOutput
    ``vision``   VisionModel          backbone.* attention.* cls.*      images -> HeadOutput
    ``seqclr``   SeqCLRModel          vision.* seqclr_proj.*            images -> HeadOutput (+ instances)
    ``language`` BCNLanguage          proj.* token_encoder.* ...        (probs, lengths) -> HeadOutput
"""

from __future__ import annotations

from torch import nn

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.fusion import IterativeRecognizer
from semimtr_cli.model.language import BCNLanguage
from semimtr_cli.model.seqclr import SeqCLRModel
from semimtr_cli.model.vision import VisionModel

MODEL_KINDS = ("full", "vision", "seqclr", "language")
_BUILDERS = {"full": IterativeRecognizer, "vision": VisionModel, "seqclr": SeqCLRModel, "language": BCNLanguage}


def build_model(kind: str, config: ModelConfig | dict | None, charset: Charset) -> nn.Module:
    """Build a freshly initialised model of ``kind`` (see module docstring).

    ``config`` may be a ModelConfig, its dict form, or None (paper size); ``num_classes``
    comes from ``charset``. The returned module keeps the resolved config as ``.config``.
    """
    if kind not in _BUILDERS:
        raise SemimtrError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    if config is None:
        config = ModelConfig()
    elif isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    return _BUILDERS[kind](config.resolved(charset))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (buffers excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
