"""Gated fusion of vision and language features, and the iterative recognizer.

``IterativeRecognizer`` is the official ``ABINetIterModel`` (also the parameters of SemiMTR's
``ConsistencyRegularizationFusionModel``): keys ``vision.*``, ``language.*``, ``alignment.*``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.language import BCNLanguage
from semimtr_cli.model.outputs import HeadOutput, RecognizerOutput
from semimtr_cli.model.vision import VisionModel, predicted_lengths


class Alignment(nn.Module):
    """Gated fusion (official ``BaseAlignment``).

    (language feature (N, T, E), vision feature (N, T, E)) -> HeadOutput(logits (N, T, C)):
    g = sigmoid(w_att([l, v])) (language first), fused = g * v + (1 - g) * l, logits = cls(fused).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.w_att = nn.Linear(2 * config.d_model, config.d_model)
        self.cls = nn.Linear(config.d_model, config.num_classes)

    def forward(self, l_feature: torch.Tensor, v_feature: torch.Tensor) -> HeadOutput:
        gate = torch.sigmoid(self.w_att(torch.cat((l_feature, v_feature), dim=2)))
        fused = gate * v_feature + (1 - gate) * l_feature
        logits = self.cls(fused)
        return HeadOutput(logits=logits, lengths=predicted_lengths(logits), feature=fused)


class IterativeRecognizer(nn.Module):
    """Vision once, then ``iter_size`` rounds of language model + fusion.

    forward(images (N, 3, image_h, image_w)) -> RecognizerOutput. Round i feeds
    softmax(previous logits) and the previous lengths clamped to [2, T] to the language model
    (the first round reads the vision prediction) and fuses the result with the vision feature.

    Lengths follow the official in-place clamp: the returned vision lengths and the lengths
    of every alignment output except the last are the clamped values that were fed on.
    Training mode returns every round; eval mode only the last.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.iter_size = config.iter_size
        self.max_slots = config.max_slots
        self.vision = VisionModel(config)
        self.language = BCNLanguage(config)
        self.alignment = Alignment(config)

    def iterate(self, vision: HeadOutput) -> RecognizerOutput:
        """The language/fusion rounds on an existing vision output."""
        languages: list[HeadOutput] = []
        alignments: list[HeadOutput] = []
        current = vision
        for _ in range(self.iter_size):
            lengths = current.lengths.clamp(2, self.max_slots)
            if current is vision:
                vision = dataclasses.replace(vision, lengths=lengths)
            else:
                alignments[-1] = dataclasses.replace(current, lengths=lengths)
            probs = torch.softmax(current.logits, dim=-1)
            lang = self.language(probs, lengths)
            current = self.alignment(lang.feature, vision.feature)
            languages.append(lang)
            alignments.append(current)
        if not self.training:
            languages, alignments = languages[-1:], alignments[-1:]
        return RecognizerOutput(vision=vision, language=languages, alignment=alignments)

    def forward(self, images: torch.Tensor) -> RecognizerOutput:
        return self.iterate(self.vision(images))
