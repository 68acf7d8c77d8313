"""Pseudo-label statistics: per-slot threshold rules per sample, and the report summary.

Fine-tuning applies the confidence threshold per slot (:func:`semimtr_cli.model.decoding.teacher_targets`:
a slot whose teacher probability is not above it contributes 0 to the consistency loss).
Per sample, :func:`slot_stats` says a sample is **kept** at threshold t when every slot it
supervises (the first ``teacher length`` slots, stop slot included) passes, i.e.
``min_slot_prob > t``, and counts the passing slots; :func:`summarize` turns that into the
pseudo-label accuracy, coverage and kept shares per threshold.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from semimtr_cli.core.errors import UsageError
from semimtr_cli.model.decoding import kept_slots, teacher_targets, whole_words

DEFAULT_THRESHOLDS = (0.5, 0.7, 0.9, 0.95, 0.99)


@dataclass
class PseudoLabels:
    """Per-sample teacher outputs and the settings that produced them.

    rows: dicts with index, lmdb, key, text, confidence, length (teacher length incl. stop
    slot), min_slot_prob, kept@<t> per threshold, label (normalised, or None), correct.
    """

    rows: list[dict]
    thresholds: list[float]
    passed_slots: np.ndarray  # (N, K) supervised slots passing each threshold
    bad_images: list[tuple[str, str]] = field(default_factory=list)
    settings: dict = field(default_factory=dict)



def row_columns(thresholds: Sequence[float]) -> list[str]:
    """The per-sample columns of :attr:`PseudoLabels.rows`, in CSV order."""
    return ["index", "lmdb", "key", "text", "confidence", "length", "min_slot_prob",
            *[f"kept@{t:g}" for t in thresholds], "label", "correct"]


def parse_thresholds(text: str) -> list[float]:
    """``"0.5,0.9"`` -> sorted unique floats in [0, 1).

    Raises:
        UsageError: not a comma-separated list of such numbers.
    """
    try:
        values = sorted({float(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UsageError(f"must be comma-separated numbers, got {text!r}", param="thresholds") from None
    if not values:
        raise UsageError(f"must be numbers in [0, 1), got {text!r}", param="thresholds")
    return check_thresholds(values)


def check_thresholds(values: Sequence[float]) -> list[float]:
    """Sorted unique thresholds, each in [0, 1).

    Raises:
        UsageError: a value outside [0, 1).
    """
    values = sorted({float(v) for v in values})
    bad = [v for v in values if not 0.0 <= v < 1.0]
    if bad:
        raise UsageError(f"must be numbers in [0, 1), got {bad[0]:g}", param="thresholds")
    return values


def slot_stats(head, thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample threshold statistics of one teacher head output, via ``teacher_targets``.

    Returns:
        lengths (N,) teacher lengths; min_prob (N,) lowest max-probability over the supervised
        slots; kept (N, K) bool per threshold; slots_passed (N, K) supervised slots passing.
    """
    _, lengths, _ = teacher_targets(head, one_hot=True)
    n, t = head.logits.shape[:2]
    within = kept_slots(lengths, t)
    max_prob = torch.softmax(head.logits.float(), dim=-1).max(dim=-1).values
    min_prob = torch.where(within, max_prob, torch.ones_like(max_prob)).min(dim=1).values
    kept = np.zeros((n, len(thresholds)), dtype=bool)
    passed = np.zeros((n, len(thresholds)), dtype=np.int64)
    for k, thr in enumerate(thresholds):
        _, _, mask = teacher_targets(head, one_hot=True, threshold=thr)
        passed[:, k] = (mask.bool() & within).sum(dim=1).numpy()
        kept[:, k] = whole_words(mask.bool(), lengths).numpy()  # fine-tuning's threshold_scope: word
    return lengths.numpy(), min_prob.numpy(), kept, passed



def summarize(result: PseudoLabels, *, top: int = 20, bins: int = 20) -> dict:
    """Threshold table, histograms and most frequent predictions (percentages 0..100)."""
    rows = result.rows
    n = len(rows)
    labeled = [r for r in rows if r["label"] is not None]
    total_slots = int(sum(r["length"] for r in rows)) if rows else 0
    table = []
    for k, t in enumerate(result.thresholds):
        key = f"kept@{t:g}"
        kept = [r for r in rows if r[key]]
        kept_labeled = [r for r in kept if r["label"] is not None]
        entry = {
            "threshold": t,
            "kept": len(kept),
            "kept_percent": 100.0 * len(kept) / n if n else 0.0,
            "slots_kept_percent": 100.0 * float(result.passed_slots[:, k].sum()) / total_slots if total_slots else 0.0,
        }
        if labeled:
            entry["accuracy"] = (100.0 * sum(r["correct"] for r in kept_labeled) / len(kept_labeled)
                                 if kept_labeled else None)
            entry["coverage"] = 100.0 * len(kept_labeled) / len(labeled)
        table.append(entry)
    conf = np.array([r["confidence"] for r in rows], dtype=np.float64)
    counts, edges = np.histogram(conf, bins=bins, range=(0.0, 1.0))
    lengths = Counter(r["length"] for r in rows)
    summary = {
        **result.settings,
        "evaluated": n,
        "bad_images": len(result.bad_images),
        "bad_image_keys": [k for k, _ in result.bad_images],
        "labeled": len(labeled),
        "accuracy": 100.0 * sum(r["correct"] for r in labeled) / len(labeled) if labeled else None,
        "mean_confidence": 100.0 * float(conf.mean()) if n else 0.0,
        "kept_rule": "kept at t = every supervised slot (first teacher-length slots, stop included) has max "
                     "softmax prob > t (model.decoding.teacher_targets); slots_kept_percent = passing supervised slots",
        "thresholds": table,
        "confidence_histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
        "length_histogram": {str(k): v for k, v in sorted(lengths.items())},
        "most_frequent": [{"text": t, "count": c} for t, c in Counter(r["text"] for r in rows).most_common(top)],
    }
    return summary

