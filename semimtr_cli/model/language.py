"""BCN language model (official ``BCNLanguage``): spells out a word from character probabilities.

Keys (no prefix when used alone, ``language.*`` inside the full model): ``proj`` (C -> E, no
bias), ``token_encoder.pe``, ``pos_encoder.pe``, ``model.layers.<i>.*`` (cross-attention
layers, no self-attention), ``cls``.
"""

from __future__ import annotations

import torch
from torch import nn

from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.outputs import HeadOutput
from semimtr_cli.model.transformer import CrossAttentionDecoder, PositionalEncoding
from semimtr_cli.model.vision import predicted_lengths


def attention_mask(lengths: torch.Tensor, slots: int) -> torch.Tensor:
    """Boolean mask (N, 1, T, T), True = slot i may read token j.

    Token j is hidden when j >= length (padding) or j == i (the official location mask: a slot
    never sees its own input, so the model must infer it from the context).
    """
    j = torch.arange(slots, device=lengths.device)
    keep_token = j.unsqueeze(0) < lengths.unsqueeze(-1)  # (N, T)
    not_self = j.unsqueeze(0) != j.unsqueeze(1)  # (T, T)
    return (keep_token.unsqueeze(1) & not_self.unsqueeze(0)).unsqueeze(1)


class BCNLanguage(nn.Module):
    """(probs (N, T, C), lengths (N,)) -> HeadOutput(logits (N, T, C), lengths, feature (N, T, E)).

    ``lengths`` count the stop slot; tokens at or beyond it are masked. A length below 2 leaves
    slot 0 with nothing to read (NaN, as in the official model), which is why the iterative
    model clamps lengths to >= 2. With ``lm_detach`` no gradient flows into ``probs``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.num_classes is None:
            raise ValueError("ModelConfig.num_classes is unset; build models through model.factory.build_model")
        self.config = config
        self.detach = config.lm_detach
        self.max_slots = config.max_slots
        self.proj = nn.Linear(config.num_classes, config.d_model, bias=False)
        self.token_encoder = PositionalEncoding(config.d_model, config.max_slots, config.dropout)
        self.pos_encoder = PositionalEncoding(config.d_model, config.max_slots, dropout=0.0)
        self.model = CrossAttentionDecoder(config.lm_layers, config.d_model, config.nhead, config.d_inner,
                                           config.dropout, config.activation)
        self.cls = nn.Linear(config.d_model, config.num_classes)

    def forward(self, probs: torch.Tensor, lengths: torch.Tensor) -> HeadOutput:
        if self.detach:
            probs = probs.detach()
        tokens = self.token_encoder(self.proj(probs))  # (N, T, E)
        n, t, _ = tokens.shape
        query = self.pos_encoder.table(t).to(tokens.dtype).expand(n, -1, -1)
        feature = self.model(query, tokens, attention_mask(lengths, t))
        logits = self.cls(feature)
        return HeadOutput(logits=logits, lengths=predicted_lengths(logits), feature=feature)
