"""Recognition metrics over (prediction, ground truth) string pairs.

Definitions follow the official evaluation (OFFICIAL-FACTS §10):
- word accuracy: exact string match;
- char accuracy: position-wise equal characters over min(len(gt), len(pred)), summed, divided
  by the summed ground-truth length;
- 1-NED: 1 - mean over words of edit_distance / max(len(gt), len(pred), 1), the ICDAR-2019 /
  PARSeq normalisation, which keeps it in [0, 1]. (The official code divides by len(gt) only,
  so a long wrong prediction can push its 1-NED below zero.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ECE_BINS = 15  # equal-width confidence bins of the expected calibration error


def calibration_bins(confidence, correct) -> np.ndarray:
    """(3, ECE_BINS): per equal-width confidence bin, the words, their summed confidence and
    their correct count; ``confidence`` in 0..1, ``correct`` booleans (one per word)."""
    conf = np.atleast_1d(np.asarray(confidence, np.float64))
    ok = np.atleast_1d(np.asarray(correct, np.float64))
    which = np.minimum((conf * ECE_BINS).astype(int), ECE_BINS - 1)
    return np.stack([np.bincount(which, minlength=ECE_BINS), np.bincount(which, conf, minlength=ECE_BINS),
                     np.bincount(which, ok, minlength=ECE_BINS)]).astype(np.float64)


def expected_calibration_error(bins: np.ndarray) -> float:
    """ECE in percent from :func:`calibration_bins`: the word-weighted mean over the bins of
    |word accuracy - mean confidence| (0 for no words)."""
    count, conf, ok = bins
    return float(100.0 * np.abs(ok - conf).sum() / count.sum()) if count.sum() else 0.0


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@dataclass
class TextMetrics:
    """Running sums; add pairs with :meth:`update`, read percentages from :meth:`summary`."""

    words: int = 0
    correct: int = 0
    gt_chars: int = 0
    correct_chars: int = 0
    ned_sum: float = 0.0
    confidence_sum: float = 0.0
    # per confidence bin: words, summed confidence, correct words (for the ECE)
    bins: np.ndarray = field(default_factory=lambda: np.zeros((3, ECE_BINS)))

    def update(self, pred: str, gt: str, confidence: float | None = None) -> bool:
        """Add one pair; returns whether the word is correct."""
        ok = pred == gt
        self.words += 1
        self.correct += ok
        self.gt_chars += len(gt)
        self.correct_chars += sum(p == g for p, g in zip(pred, gt))
        self.ned_sum += edit_distance(pred, gt) / max(len(gt), len(pred), 1)
        if confidence is not None:
            self.confidence_sum += confidence
            self.bins += calibration_bins(confidence, ok)
        return ok

    def merge(self, other: "TextMetrics") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def accuracy(self) -> float:
        """Word accuracy in percent (0 when empty)."""
        return 100.0 * self.correct / self.words if self.words else 0.0

    @property
    def ece(self) -> float:
        """Expected calibration error of the words given with a confidence, in percent."""
        return expected_calibration_error(self.bins)

    def summary(self) -> dict[str, float]:
        """Percentages: accuracy, one_minus_ned, char_accuracy, mean_confidence, ece (0..100)."""
        n = max(self.words, 1)
        return {
            "ece": self.ece,
            "accuracy": self.accuracy,
            "one_minus_ned": 100.0 * (1.0 - self.ned_sum / n) if self.words else 0.0,
            "char_accuracy": 100.0 * self.correct_chars / self.gt_chars if self.gt_chars else 0.0,
            "mean_confidence": 100.0 * self.confidence_sum / n if self.words else 0.0,
        }
