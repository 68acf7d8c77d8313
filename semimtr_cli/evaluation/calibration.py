"""Confidence calibration: one softmax temperature per head, fitted on labeled crops.

A word's confidence is the probability of the greedy string: the product of each predicted
slot's maximum softmax probability, stop slot included (``model.decoding.decode_logits``). Temperature
scaling divides a head's logits by ``T > 0`` before the softmax: the argmax, so the text, is
unchanged, while an over-confident head (``T > 1``) gets lower confidences.

Two objectives (:data:`OBJECTIVES`), both searched by golden section over log T in
:data:`T_RANGE`: ``label`` -- the negative log-likelihood of the label sequence, for each crop
the sum over its characters and its stop slot of ``-log softmax(logits / T)[label]``, averaged
(convex in ``1 / T``; the classic temperature scaling); ``correct`` -- the binary negative
log-likelihood of the word being right under the word confidence, ``-[c log q + (1 - c) log
(1 - q)]`` with ``q`` the greedy string's probability at ``T`` and ``c`` whether the word is right
(the confidence the tools report is the one calibrated). A share of the crops (``holdout``) is
kept out of the fit so that the report shows the expected calibration error (ECE) before and
after on crops the temperature never saw.

What the checkpoint stores under :data:`CALIBRATION_KEY` (older checkpoints without it still
load; :class:`infer.predictor.Predictor` applies the temperatures when asked to)::

    {"method": "temperature", "temperature": {head: T}, "threshold": {head: t or None},
     "target_precision": p, "fitted_samples": n, "sets": [...], "ece": {head: {...}}}

``threshold[head]`` is the lowest calibrated confidence whose kept words (confidence >= t) reach
``target_precision`` word accuracy on the fitted crops, the one that keeps the most words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from semimtr_cli.core.charset import NULL_ID
from semimtr_cli.core.errors import SemimtrError, UsageError
from semimtr_cli.core.metrics import calibration_bins, expected_calibration_error
from semimtr_cli.data.benchmarks import EvalSet
from semimtr_cli.evaluation.items import collate_eval, eval_items
from semimtr_cli.evaluation.protocol import Protocol, check_charset_fit, normalize_prediction, resolve_heads
from semimtr_cli.model.checkpoint import CALIBRATION_KEY, DEFAULT_MODEL, load_checkpoint, write_checkpoint
from semimtr_cli.model.decoding import decode_logits

COVERAGES = (50, 80, 90, 100)
OBJECTIVES = ("correct", "label")
T_RANGE = (0.05, 20.0)


# ------------------------------------------------------------------------------ the numbers
def word_confidence(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """(N, T, C) logits -> (N,) probability of each greedy string at ``temperature``."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    max_p, ids = probs.max(dim=-1)
    is_null = ids == NULL_ID
    slots = torch.arange(ids.shape[1]).expand_as(ids)
    first_null = torch.where(is_null.any(1), is_null.float().argmax(1), torch.full_like(ids[:, 0], ids.shape[1]))
    kept = slots <= first_null[:, None]
    return torch.where(kept, max_p, torch.ones_like(max_p)).prod(dim=1)


def label_nll(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> float:
    """Mean over crops of the summed ``-log p(label slot)`` at ``temperature``; ``targets`` (N, T)
    holds class ids on the label's slots and its stop slot, -1 after."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    mask = targets >= 0
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return float(-(picked * mask).sum() / max(1, logits.shape[0]))


def correct_nll(logits: torch.Tensor, correct: np.ndarray, temperature: float) -> float:
    """Mean binary NLL of ``correct`` (N,) under the word confidence at ``temperature``."""
    q = word_confidence(logits, temperature).double().clamp(1e-12, 1 - 1e-12)
    c = torch.as_tensor(np.asarray(correct, np.float64))
    return float(-(c * q.log() + (1 - c) * (1 - q).log()).mean())


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, iterations: int = 60, *, objective: str = "label",
                    correct: np.ndarray | None = None) -> float:
    """The temperature in :data:`T_RANGE` minimising the ``objective`` (golden section on log T):
    ``label`` -> :func:`label_nll` of ``targets``, ``correct`` -> :func:`correct_nll` of ``correct``."""
    if logits.shape[0] == 0:
        raise SemimtrError("no labeled crop to fit a temperature on")
    if objective not in OBJECTIVES:
        raise UsageError(f"must be one of {', '.join(OBJECTIVES)}, got {objective!r}", param="objective")
    if objective == "correct":
        def loss(t: float) -> float:
            return correct_nll(logits, correct, t)
    else:
        def loss(t: float) -> float:
            return label_nll(logits, targets, t)
    lo, hi = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = loss(math.exp(a)), loss(math.exp(b))
    for _ in range(iterations):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = loss(math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = loss(math.exp(b))
    return math.exp((lo + hi) / 2)


def ece_of(confidence: np.ndarray, correct: np.ndarray) -> float:
    """ECE in percent of words with these confidences (0..1) and correctness (metrics' bins)."""
    return expected_calibration_error(calibration_bins(confidence, correct)) if len(confidence) else 0.0


def risk_coverage(confidence: np.ndarray, correct: np.ndarray, coverages: Sequence[int] = COVERAGES) -> list[dict]:
    """Word accuracy (%) of the most confident ``coverage`` % of the crops, and the confidence
    of the last crop kept, for each coverage."""
    order = np.argsort(-np.asarray(confidence), kind="stable")
    conf, ok = np.asarray(confidence)[order], np.asarray(correct, np.float64)[order]
    rows = []
    for c in coverages:
        k = max(1, int(math.ceil(len(conf) * c / 100))) if len(conf) else 0
        rows.append({"coverage": c, "kept": k, "accuracy": 100.0 * ok[:k].mean() if k else 0.0,
                     "min_confidence": float(conf[k - 1]) if k else None})
    return rows


def threshold_for_precision(confidence: np.ndarray, correct: np.ndarray, target: float) -> dict | None:
    """The lowest confidence ``t`` whose kept words (confidence >= t) are at least ``target``
    (0..1) correct: ``{"threshold", "coverage" (%), "precision" (%)}``; None when no t reaches it."""
    order = np.argsort(-np.asarray(confidence), kind="stable")
    conf, ok = np.asarray(confidence)[order], np.asarray(correct, np.float64)[order]
    if not len(conf):
        return None
    precision = np.cumsum(ok) / np.arange(1, len(ok) + 1)
    # only cut between distinct confidences: every crop at the threshold is kept
    last_of_value = np.append(conf[1:] != conf[:-1], True)
    good = np.flatnonzero((precision >= target) & last_of_value)
    if not len(good):
        return None
    k = int(good[-1])
    return {"threshold": float(conf[k]), "coverage": 100.0 * (k + 1) / len(conf), "precision": 100.0 * precision[k]}


# ------------------------------------------------------------------------------ collecting
@dataclass
class HeadData:
    """One head's outputs on the labeled crops: logits (N, T, C), targets (N, T) (ids on the
    label's slots and its stop slot, -1 after) and correct (N,) under the protocol."""

    logits: torch.Tensor
    targets: torch.Tensor
    correct: np.ndarray

    def subset(self, index: np.ndarray) -> "HeadData":
        t = torch.as_tensor(index, dtype=torch.long)
        return HeadData(self.logits[t], self.targets[t], self.correct[index])


def collect(predictor, sets: Sequence[EvalSet], protocol: Protocol, heads: Sequence[str], *, batch_size: int = 64,
            workers: int = 0, on_progress: Callable[[int], None] | None = None) -> tuple[dict[str, HeadData], int]:
    """Run ``predictor`` (its temperatures must be off) over the labeled crops of ``sets``:
    (head -> HeadData, unreadable crops). Labels are read with the model's charset (the NLL's
    targets) and compared with the predictions under ``protocol`` (the word accuracy)."""
    from torch.utils.data import DataLoader

    model_protocol = Protocol(name=protocol.name, charset=predictor.charset, rotate_tall=protocol.rotate_tall,
                              min_side=protocol.min_side)
    size = (predictor.config.image_h, predictor.config.image_w)
    slots = predictor.config.max_slots
    parts: dict[str, list] = {h: [] for h in heads}
    targets, correct, bad = [], {h: [] for h in heads}, 0
    for evset in sets:
        loader = DataLoader(eval_items(evset, model_protocol, size), batch_size=batch_size, shuffle=False,
                            num_workers=workers, collate_fn=collate_eval)
        for batch in loader:
            bad += len(batch["bad"])  # not fitted on: no logits to scale
            if batch["image"] is not None:
                out = predictor.forward(batch["image"])
                truth = [normalize_prediction(t, protocol.charset) for t in batch["labels"]]
                for label in batch["labels"]:
                    ids = predictor.charset.encode(label)[: slots - 1] + [NULL_ID]
                    targets.append(ids + [-1] * (slots - len(ids)))
                for h in heads:
                    parts[h].append(out.heads[h].logits)
                    correct[h] += [normalize_prediction(d.text, protocol.charset) == gt
                                   for d, gt in zip(decode_logits(out.heads[h].logits, predictor.charset), truth)]
            if on_progress:
                on_progress(len(batch["keys"]) + len(batch["bad"]))
    if not targets:
        raise UsageError("the validation sets hold no labeled crop that can be read", param="valid")
    t = torch.tensor(targets, dtype=torch.long)
    return {h: HeadData(torch.cat(parts[h]), t, np.array(correct[h])) for h in heads}, bad


# ------------------------------------------------------------------------------ the command's core
@dataclass
class HeadCalibration:
    """What was fitted and measured for one head (percentages, confidences 0..1)."""

    head: str
    temperature: float
    nll: dict[str, float]                    # label-sequence NLL before / after, on the fitted crops
    ece: dict[str, dict[str, float]]         # fitted|held_out -> before / after
    risk_coverage: list[dict]                # after, on every crop
    threshold: dict | None                   # at target precision, chosen on the fitted crops
    threshold_held_out: dict | None          # that threshold's coverage and precision on the held-out crops

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class CalibrationReport:
    checkpoint: str
    out: str
    sets: list[str]
    samples: int
    fitted: int
    held_out: int
    unreadable: int
    target_precision: float
    objective: str = "correct"
    heads: list[HeadCalibration] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "heads"}
        d["heads"] = [h.to_dict() for h in self.heads]
        return d


def split_holdout(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fitted indices, held-out indices): a seeded random ``holdout`` share is held out."""
    order = np.random.default_rng(seed).permutation(n)
    k = int(round(n * holdout))
    if holdout > 0 and (k == 0 or k == n):
        raise UsageError(f"{holdout:g} of {n} crops leaves nothing to fit on or nothing held out", param="holdout")
    return np.sort(order[k:]), np.sort(order[:k])


def calibrate_head(head: str, data: HeadData, fit: np.ndarray, held: np.ndarray, target: float,
                   objective: str = "correct") -> HeadCalibration:
    part = data.subset(fit)
    temperature = fit_temperature(part.logits, part.targets, objective=objective, correct=part.correct)
    ece: dict[str, dict[str, float]] = {}
    for name, index in (("fitted", fit), ("held_out", held)):
        if len(index):
            sub = data.subset(index)
            ece[name] = {when: ece_of(word_confidence(sub.logits, t).numpy(), sub.correct)
                         for when, t in (("before", 1.0), ("after", temperature))}
    after = word_confidence(data.logits, temperature).numpy()
    threshold = threshold_for_precision(after[fit], data.correct[fit], target)
    held_check = None
    if threshold and len(held):
        keep = after[held] >= threshold["threshold"]
        held_check = {"coverage": 100.0 * keep.mean(), "precision": 100.0 * data.correct[held][keep].mean()
                      if keep.any() else None}
    return HeadCalibration(head, temperature,
                           {"before": label_nll(part.logits, part.targets, 1.0),
                            "after": label_nll(part.logits, part.targets, temperature)},
                           ece, risk_coverage(after, data.correct), threshold, held_check)


def calibrate_checkpoint(checkpoint: str | Path, sets: Sequence[EvalSet], protocol: Protocol, *, head: str = "all",
                         holdout: float = 0.2, seed: int = 0, target_precision: float = 0.98, objective: str = "correct",
                         out: str | Path | None = None,
                         batch_size: int = 64, workers: int = 0, device: str = "auto", precision: str = "auto",
                         on_progress: Callable[[int], None] | None = None) -> CalibrationReport:
    """Fit a temperature per head on the labeled crops of ``sets`` and store it in the
    checkpoint (``out``, default: ``checkpoint`` itself, replaced atomically; the shipped
    ``default`` model is never rewritten in place, so it needs ``out``)."""
    from semimtr_cli.infer.predictor import load_predictor

    if out is None and str(checkpoint) == DEFAULT_MODEL:
        raise UsageError("the shipped default model is not rewritten inside the package: give an output checkpoint",
                         param="out")
    if objective not in OBJECTIVES:
        raise UsageError(f"must be one of {', '.join(OBJECTIVES)}, got {objective!r}", param="objective")
    if not 0.0 <= holdout < 1.0:
        raise UsageError(f"must be in [0, 1), got {holdout}", param="holdout")
    if not 0.0 < target_precision <= 1.0:
        raise UsageError(f"must be in (0, 1], got {target_precision}", param="target_precision")
    if not sets:
        raise UsageError("give at least one labeled LMDB or folder", param="valid")
    ckpt = load_checkpoint(checkpoint)
    predictor = load_predictor(checkpoint, device=device, precision=precision, calibration="off")
    check_charset_fit(predictor.charset, protocol.charset, str(checkpoint))
    heads = resolve_heads(predictor, head)
    with torch.inference_mode():
        data, bad = collect(predictor, sets, protocol, heads, batch_size=batch_size, workers=workers,
                            on_progress=on_progress)
    n = len(next(iter(data.values())).correct)
    fit, held = split_holdout(n, holdout, seed)
    report = CalibrationReport(str(checkpoint), str(out or checkpoint), [str(s.path) for s in sets], n, len(fit),
                               len(held), bad, target_precision, objective)
    report.heads = [calibrate_head(h, data[h], fit, held, target_precision, objective) for h in heads]
    old = ckpt.get(CALIBRATION_KEY) or {}
    ckpt[CALIBRATION_KEY] = {
        "method": "temperature",
        "objective": objective,
        "temperature": {**old.get("temperature", {}), **{h.head: h.temperature for h in report.heads}},
        "threshold": {**old.get("threshold", {}),
                      **{h.head: h.threshold["threshold"] if h.threshold else None for h in report.heads}},
        "target_precision": target_precision,
        "fitted_samples": len(fit),
        "sets": report.sets,
        "ece": {h.head: h.ece for h in report.heads},
    }
    write_checkpoint(out or checkpoint, ckpt)
    return report


