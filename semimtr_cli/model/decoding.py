"""From logits to words, for every side of the tool: greedy decoding and the teacher's targets.

* :func:`decode_logits`: (N, T, C) logits -> text, confidence and per-character probabilities
  (inference, evaluation, validation during training).
* :func:`teacher_targets`: the pseudo-labels a teacher head gives a student (fine-tuning's
  consistency loss and the pseudo-label statistics apply the same rule), and
  :func:`kept_slots`, the (N, T) mask of the slots a length keeps.

Confidence of a prediction: the per-slot maximum softmax probability, taken over the predicted
characters and the stop slot (the first null; absent when no slot predicts null), combined by
product (default; the probability of the greedy string) or mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from semimtr_cli.core.charset import NULL_ID, Charset
from semimtr_cli.core.errors import UsageError
from semimtr_cli.model.outputs import HeadOutput

CONFIDENCE_MODES = ("product", "mean")


@dataclass
class Decoded:
    """One greedy prediction.

    text: characters before the first null slot. confidence: product/mean of ``char_probs``
    and ``stop_prob``. char_probs: max softmax probability of each predicted character.
    stop_prob: that of the stop slot (None when no slot predicted null). length: slots used
    including the stop slot (the official ``pt_lengths``).
    """

    text: str
    confidence: float
    char_probs: list[float]
    stop_prob: float | None
    length: int


def decode_logits(logits: torch.Tensor, charset: Charset, confidence: str = "product") -> list[Decoded]:
    """(N, T, C) logits -> N greedy predictions (argmax per slot, cut at the first null)."""
    if confidence not in CONFIDENCE_MODES:
        raise UsageError(f"must be one of {', '.join(CONFIDENCE_MODES)}, got {confidence!r}", param="confidence")
    probs = torch.softmax(logits.detach().float().cpu(), dim=-1)
    max_p, ids = probs.max(dim=-1)
    out = []
    for row_ids, row_p in zip(ids.tolist(), max_p.tolist()):
        stop = row_ids.index(NULL_ID) if NULL_ID in row_ids else None
        n_chars = len(row_ids) if stop is None else stop
        chars = row_p[:n_chars]
        stop_p = None if stop is None else row_p[stop]
        kept = chars + ([] if stop_p is None else [stop_p])
        if confidence == "product":
            conf = math.prod(kept)
        else:
            conf = sum(kept) / len(kept)
        out.append(Decoded(text=charset.decode(row_ids[:n_chars]), confidence=float(conf), char_probs=chars,
                           stop_prob=stop_p, length=n_chars + (0 if stop is None else 1)))
    return out


def kept_slots(lengths: torch.Tensor, num_slots: int) -> torch.Tensor:
    """(N, T) bool mask: slot t of sample i is kept iff ``t < lengths[i]`` (lengths clamped to [0, T])."""
    positions = torch.arange(num_slots, device=lengths.device)
    return positions.unsqueeze(0) < lengths.to(positions.device).clamp(0, num_slots).unsqueeze(1)


def upcast(x: torch.Tensor) -> torch.Tensor:
    """Half/bfloat16 -> float32; float32/float64 unchanged (so gradcheck in float64 works)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def teacher_targets(
    head: HeadOutput,
    *,
    one_hot: bool = True,
    threshold: float | None = None,
    threshold_scope: str = "slot",
    stop_gradient: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Pseudo-labels from one teacher head (official ``create_teacher_labels``).

    ``threshold_scope``: ``"slot"`` (official) keeps each slot whose max prob is above
    ``threshold``; ``"word"`` keeps a word's slots only if every slot of the word (stop slot
    included) is above it, and drops the whole word otherwise.

    Returns:
        (target, lengths, slot_mask): target is (N, T) argmax ids when ``one_hot`` else
        (N, T, C) softmax probabilities; lengths = the head's predicted lengths (stop slot
        included); slot_mask = (N, T) float, 1 where the slot is kept (None if no threshold).
    """
    if threshold_scope not in ("slot", "word"):
        raise ValueError(f"threshold_scope must be slot or word, got {threshold_scope!r}")
    logits = head.logits.detach() if stop_gradient else head.logits
    probs = F.softmax(upcast(logits), dim=-1)
    max_prob, argmax = probs.max(dim=-1)
    target = argmax if one_hot else probs
    lengths = head.lengths.detach()
    if threshold is None:
        return target, lengths, None
    confident = max_prob.detach() > threshold
    if threshold_scope == "word":
        confident = whole_words(confident, lengths).unsqueeze(1).expand_as(confident)
    return target, lengths, confident.float()


def whole_words(confident: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(N,) bool: every slot of word i (its first ``lengths[i]`` slots, stop slot included) is
    confident; ``confident`` is (N, T) bool. The word rule of ``threshold_scope="word"``."""
    return (confident | ~kept_slots(lengths, confident.shape[1])).all(dim=1)
