"""Benchmark evaluation: score checkpoints on sets under a protocol (``evaluation/protocol.py``).

Protocol (default = the paper's, OFFICIAL-FACTS §10):

* labels are normalised with the protocol charset (default preset ``36``: lower-cased, symbols
  outside a-z0-9 removed); samples whose normalised label is empty or longer than
  ``max_length`` (25) are skipped and counted per reason; predictions are normalised the same
  way (case folding, out-of-set symbols removed; no length cut);
* crops are decoded to RGB and resized to the model input (no rotation unless
  ``rotate_tall``); undecodable or too-small images (<= 6 px, as the official loader) are not
  scored, counted, and listed with their key;
* the head scored is the model's final one (``alignment`` for a full model, ``vision`` for a
  vision model) unless told otherwise;
* per set: word accuracy, 1-NED, char accuracy, mean confidence and the expected calibration
  error of the word confidences (percent, see metrics.py); confidences are the calibrated ones
  when the checkpoint holds a calibration (``semimtr calibrate``) unless ``calibration="off"``;
* overall: the sample-weighted average with weights = each set's ``num_samples`` (the LMDB's
  ``num-samples`` key, i.e. *including* skipped samples), which is what the official code
  reports as "average" and the paper as "Avg"; ``weights="evaluated"`` weights by scored
  samples instead. The plain mean over sets is reported as well.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import DataLoader

from semimtr_cli.core.errors import UsageError
from semimtr_cli.core.metrics import TextMetrics
from semimtr_cli.data.benchmarks import EvalSet
from semimtr_cli.evaluation.items import collate_eval, eval_items
from semimtr_cli.evaluation.protocol import (
    HEAD_CHOICES, Protocol, check_charset_fit, normalize_prediction, resolve_heads,
)
from semimtr_cli.evaluation.report import EvalReport, add_baseline_deltas, bad_image_rows, error_rows, result_objects
from semimtr_cli.evaluation.results import FUSION_FLIPS, SetResult, count_fusion_flips
from semimtr_cli.infer.backend import FINAL_HEAD
from semimtr_cli.infer.open import open_backend
from semimtr_cli.model.decoding import Decoded, decode_logits
from semimtr_cli.model.checkpoint import resolve_checkpoint


def evaluate_set(predictor, evset: EvalSet, protocol: Protocol, heads: Sequence[str], *, batch_size: int = 64,
                 workers: int = 0, on_progress: Callable[[int], None] | None = None) -> SetResult:
    """Score ``predictor`` on one set for each of ``heads`` (one forward pass per batch)."""
    if batch_size < 1:
        raise UsageError(f"must be >= 1, got {batch_size}", param="batch_size")
    if workers < 0:
        raise UsageError(f"must be >= 0, got {workers}", param="workers")
    start = time.perf_counter()
    items = eval_items(evset, protocol, (predictor.config.image_h, predictor.config.image_w))
    loader = DataLoader(items, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate_eval, persistent_workers=False)
    metrics = {h: TextMetrics() for h in heads}
    errors: dict[str, list[dict]] = {h: [] for h in heads}
    bad: list[tuple[str, str]] = []
    fusion = dict.fromkeys(FUSION_FLIPS, 0) if {"vision", "alignment"} <= set(predictor.heads) else None
    for batch in loader:
        bad.extend((key, error) for key, error, _ in batch["bad"])
        count_unreadable(batch["bad"], metrics, errors, evset.name)
        n = len(batch["keys"]) + len(batch["bad"])
        if batch["image"] is not None:
            out = predictor.forward(batch["image"])
            right: dict[str, list[bool]] = {}
            for h in dict.fromkeys([*heads, *(("vision", "alignment") if fusion is not None else ())]):
                decoded: list[Decoded] = decode_logits(out.heads[h].logits, predictor.charset, protocol.confidence)
                preds = [normalize_prediction(d.text, protocol.charset) for d in decoded]
                right[h] = [p == gt for p, gt in zip(preds, batch["labels"])]
                if h not in metrics:
                    continue
                for d, pred, gt, key in zip(decoded, preds, batch["labels"], batch["keys"]):
                    if not metrics[h].update(pred, gt, d.confidence):
                        errors[h].append({"set": evset.name, "key": key, "label": gt, "prediction": pred,
                                          "confidence": d.confidence})
            if fusion is not None:
                count_fusion_flips(fusion, right["vision"], right["alignment"])
        if on_progress:
            on_progress(n)
    return SetResult(evset, metrics, dict(items.skipped_labels), bad, errors, time.perf_counter() - start, fusion)


def count_unreadable(bad: Sequence[tuple[str, str, str | None]], metrics: dict[str, TextMetrics],
                     errors: dict[str, list[dict]], set_name: str) -> None:
    """A labeled crop that cannot be read is a wrong word (empty prediction, confidence 0) for every head."""
    for key, error, label in bad:
        if label is None:
            continue
        for h, m in metrics.items():
            m.update("", label, 0.0)
            errors[h].append({"set": set_name, "key": key, "label": label, "prediction": "", "confidence": 0.0,
                              "error": error})


def evaluate_checkpoints(checkpoints: Sequence[str | Path], sets: Sequence[EvalSet], protocol: Protocol, *,
                         head: str = FINAL_HEAD, batch_size: int = 64, workers: int = 0, device: str = "auto",
                         precision: str = "auto", calibration: str = "auto", baseline: str | Path | None = None,
                         on_progress: Callable[[int], None] | None = None,
                         on_loaded: Callable[[str, object], None] | None = None) -> EvalReport:
    """Score every checkpoint on every set for ``head`` (``all``: each head the model has); a
    ``.onnx`` file from ``semimtr export`` runs on ONNX Runtime.

    ``baseline``: one checkpoint (scored first when it is not among ``checkpoints``) against
    which every result gets its change in word accuracy per set (:func:`add_baseline_deltas`).

    ``on_progress(n)`` after each batch (n images); ``on_loaded(path, predictor)`` once per
    checkpoint, before scoring (for run headers).
    """
    if head not in HEAD_CHOICES:
        raise UsageError(f"must be one of {', '.join(HEAD_CHOICES)}, got {head!r}", param="head")
    if baseline is not None and str(baseline) not in [str(c) for c in checkpoints]:
        checkpoints = [baseline, *checkpoints]
    missing = [str(c) for c in checkpoints if not resolve_checkpoint(c).is_file()]
    if missing:
        raise UsageError(f"checkpoint not found: {', '.join(missing)}")
    results, errors, bad, seen = [], [], [], set()
    for ckpt in checkpoints:
        predictor = open_backend(ckpt, device=device, precision=precision, calibration=calibration)
        check_charset_fit(predictor.charset, protocol.charset, str(ckpt))
        heads = resolve_heads(predictor, head)
        if on_loaded:
            on_loaded(str(ckpt), predictor)
        start = time.perf_counter()
        with torch.inference_mode():
            per_set = [evaluate_set(predictor, s, protocol, heads, batch_size=batch_size, workers=workers,
                                    on_progress=on_progress) for s in sets]
        seconds = time.perf_counter() - start
        results.extend(result_objects(str(ckpt), predictor, protocol, per_set, heads, precision=predictor.precision,
                                      seconds=seconds))
        errors.extend(error_rows(str(ckpt), per_set, heads))
        for row in bad_image_rows(str(ckpt), per_set):
            if (row["set"], row["key"]) not in seen:
                seen.add((row["set"], row["key"]))
                bad.append(row)
    if baseline is not None:
        add_baseline_deltas(results, str(baseline))
    return EvalReport(results, errors, bad, list(sets))


