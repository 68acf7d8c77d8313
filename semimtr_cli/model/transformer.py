"""Transformer pieces shared by the vision encoder and the BCN language model.

Everything here is batch-first: sequences are (N, S, E). Parameter and buffer names follow the
official ABINet/SemiMTR modules (``in_proj_weight``, ``out_proj``, ``linear1``, ``norm1`` ...,
and the ``pe`` table of shape (max_len, 1, E)), so official state dicts load unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoid_table(max_len: int, d_model: int) -> torch.Tensor:
    """(max_len, d_model) table: even columns sin(pos / 10000^(2i/E)), odd columns cos(...)."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)
    return table


class PositionalEncoding(nn.Module):
    """Adds the fixed sinusoid to (N, S, E) inputs, then dropout.

    The table is a persistent buffer ``pe`` of shape (max_len, 1, E) (the official layout).
    """

    def __init__(self, d_model: int, max_len: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", sinusoid_table(max_len, d_model).unsqueeze(1))

    def table(self, length: int) -> torch.Tensor:
        """(1, length, E) slice of the sinusoid."""
        return self.pe[:length, 0].unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, S, E) -> (N, S, E)."""
        return self.dropout(x + self.table(x.shape[1]))


class MultiheadAttention(nn.Module):
    """Multi-head scaled dot-product attention with packed q/k/v projections.

    Same parameters and maths as ``torch.nn.MultiheadAttention`` (and the official copy of
    it): ``in_proj_weight`` (3E, E), ``in_proj_bias`` (3E), ``out_proj`` Linear(E, E),
    softmax(q k^T / sqrt(E / heads)) with dropout on the attention weights.
    """

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_model, self.nhead, self.dropout = d_model, nhead, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, s, _ = x.shape
        return x.view(n, s, self.nhead, self.d_model // self.nhead).transpose(1, 2)

    def forward(self, query: torch.Tensor, memory: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from ``query`` (N, L, E) to ``memory`` (N, S, E) (self-attention if None).

        ``mask``: boolean, True = may attend, broadcastable to (N, heads, L, S).
        Returns (N, L, E).
        """
        e = self.d_model
        if memory is None:
            q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            q = F.linear(query, self.in_proj_weight[:e], self.in_proj_bias[:e])
            k, v = F.linear(memory, self.in_proj_weight[e:], self.in_proj_bias[e:]).chunk(2, dim=-1)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(self._heads(q), self._heads(k), self._heads(v), attn_mask=mask, dropout_p=p)
        n, _, l, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(n, l, e))


def _activation(name: str):
    return F.gelu if name == "gelu" else F.relu


class EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer (official layout).

    x = norm1(x + drop1(self_attn(x))); x = norm2(x + drop2(linear2(drop(act(linear1(x)))))).
    (N, S, E) -> (N, S, E).
    """

    def __init__(self, d_model: int, nhead: int, d_inner: int, dropout: float, activation: str = "relu") -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout)
        self.linear1 = nn.Linear(d_model, d_inner)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_inner, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.act = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout1(self.self_attn(x)))
        return self.norm2(x + self.dropout2(self.linear2(self.dropout(self.act(self.linear1(x))))))


class Encoder(nn.Module):
    """A stack of :class:`EncoderLayer` (``layers.<i>``), no final norm. (N, S, E) -> (N, S, E)."""

    def __init__(self, num_layers: int, d_model: int, nhead: int, d_inner: int, dropout: float, activation: str = "relu") -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d_model, nhead, d_inner, dropout, activation) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class CrossAttentionLayer(nn.Module):
    """BCN decoder layer: cross-attention + FFN, no self-attention (official names).

    q = norm2(q + drop2(multihead_attn(q, memory, mask))); q = norm3(q + drop3(FFN(q))).
    query (N, L, E), memory (N, S, E) -> (N, L, E).
    """

    def __init__(self, d_model: int, nhead: int, d_inner: int, dropout: float, activation: str = "relu") -> None:
        super().__init__()
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout)
        self.linear1 = nn.Linear(d_model, d_inner)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_inner, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.act = _activation(activation)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.norm2(query + self.dropout2(self.multihead_attn(query, memory, mask)))
        return self.norm3(q + self.dropout3(self.linear2(self.dropout(self.act(self.linear1(q))))))


class CrossAttentionDecoder(nn.Module):
    """A stack of :class:`CrossAttentionLayer` (``layers.<i>``), all reading the same memory."""

    def __init__(self, num_layers: int, d_model: int, nhead: int, d_inner: int, dropout: float, activation: str = "relu") -> None:
        super().__init__()
        self.layers = nn.ModuleList(CrossAttentionLayer(d_model, nhead, d_inner, dropout, activation) for _ in range(num_layers))

    def forward(self, query: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            query = layer(query, memory, mask)
        return query
