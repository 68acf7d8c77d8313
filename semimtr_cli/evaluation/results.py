"""What scoring one set yields (:class:`SetResult`) and how sets are averaged.

Per set: word accuracy, 1-NED, char accuracy, mean confidence, ECE and the alignment head's fusion
flips against the vision head (:data:`FUSION_FLIPS`). Overall (:func:`averages`): weighted by
each set's ``num_samples`` (the paper's "Avg") or by scored crops, and the plain mean over sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from semimtr_cli.core.errors import UsageError
from semimtr_cli.core.metrics import TextMetrics
from semimtr_cli.data.benchmarks import EvalSet

METRIC_NAMES = ("accuracy", "one_minus_ned", "mean_confidence", "char_accuracy", "ece")


WEIGHTINGS = ("num_samples", "evaluated")


# ------------------------------------------------------------------------------ scoring
@dataclass
class SetResult:
    """Scores of one set for every evaluated head."""

    evset: EvalSet
    metrics: dict[str, TextMetrics]
    skipped_labels: dict[str, int]
    bad_images: list[tuple[str, str]]
    errors: dict[str, list[dict]]
    seconds: float
    fusion: dict[str, int] | None = None  # full models: what the alignment head did to the vision reads

    @property
    def evaluated(self) -> int:
        return next(iter(self.metrics.values())).words if self.metrics else 0

    @property
    def skipped(self) -> int:
        return self.evset.num_samples - self.evaluated

    def row(self, head: str) -> dict:
        """The JSON row of this set for ``head`` (percentages)."""
        m = self.metrics[head]
        out = {
            "name": self.evset.name,
            "path": str(self.evset.path),
            "num_samples": self.evset.num_samples,
            "evaluated": m.words,
            "skipped": self.evset.num_samples - m.words,
            **{k: m.summary()[k] for k in METRIC_NAMES},
            "correct": m.correct,
            "benchmark": self.evset.benchmark,
            "subset": self.evset.subset,
            "skipped_labels": dict(self.skipped_labels),
            "bad_images": len(self.bad_images),
            "bad_image_keys": [k for k, _ in self.bad_images],
            "seconds": self.seconds,
        }
        if self.fusion is not None:
            out["fusion"] = dict(self.fusion)
        return out


FUSION_FLIPS = ("both_right", "both_wrong", "fixed", "broken")  # fixed: vision wrong, alignment right


def count_fusion_flips(counts: dict[str, int], vision_right: Sequence[bool], alignment_right: Sequence[bool]) -> None:
    """Add one batch to ``counts`` from whether each crop's vision and alignment reads are right:
    ``fixed`` - the language model and fusion turned a wrong vision read into the right word;
    ``broken`` - a right vision read into a wrong one."""
    for v, a in zip(vision_right, alignment_right):
        counts["both_right" if v and a else "both_wrong" if not (v or a) else "fixed" if a else "broken"] += 1


def averages(rows: Sequence[dict], weights: str = "num_samples") -> tuple[dict, dict]:
    """(weighted average, plain mean) of the per-set metric rows.

    Sets with no evaluated sample are left out of both (listed under ``excluded``).
    """
    if weights not in WEIGHTINGS:
        raise UsageError(f"must be one of {', '.join(WEIGHTINGS)}, got {weights!r}", param="weights")
    used = [r for r in rows if r["evaluated"] > 0]
    excluded = [r["name"] for r in rows if r["evaluated"] == 0]
    w = np.array([r[weights] for r in used], dtype=np.float64)
    weighted: dict = {}
    mean: dict = {}
    for k in METRIC_NAMES:
        v = np.array([r[k] for r in used], dtype=np.float64)
        weighted[k] = float((w * v).sum() / w.sum()) if used and w.sum() > 0 else 0.0
        mean[k] = float(v.mean()) if used else 0.0
    totals = {"num_samples": int(sum(r["num_samples"] for r in rows)), "evaluated": int(sum(r["evaluated"] for r in rows)),
              "skipped": int(sum(r["skipped"] for r in rows))}
    weighted.update(totals, weights=weights, sets=len(used))
    mean.update(totals, sets=len(used))
    if excluded:
        weighted["excluded"] = excluded
        mean["excluded"] = excluded
    return weighted, mean
