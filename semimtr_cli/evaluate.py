"""Benchmark evaluation: the protocol, per-set and overall metrics, wrong-prediction rows.

Protocol (default = the paper's, OFFICIAL-FACTS §10):

* labels are normalised with the protocol charset (default preset ``36``: lower-cased, symbols
  outside a-z0-9 removed); samples whose normalised label is empty or longer than
  ``max_length`` (25) are skipped and counted per reason; predictions are normalised the same
  way (case folding, out-of-set symbols removed; no length cut);
* crops are decoded to RGB and resized to the model input (no rotation unless
  ``rotate_tall``); undecodable or too-small images (<= 6 px, as the official loader) are not
  scored, counted, and listed with their key;
* the head scored is ``alignment`` (final fused output) unless told otherwise;
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
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from .charset import Charset
from .data.benchmarks import EvalSet
from .data.eval_items import collate_eval, eval_items
from .data.image import MIN_SIDE
from .errors import SemimtrError, UsageError, option
from .fsutil import atomic_path, atomic_write_json
from .metrics import TextMetrics
from .model.outputs import HEADS
from .predict import Decoded, decode_logits, open_backend

METRIC_NAMES = ("accuracy", "one_minus_ned", "mean_confidence", "char_accuracy", "ece")
WEIGHTINGS = ("num_samples", "evaluated")


# ------------------------------------------------------------------------------ protocol
@dataclass
class Protocol:
    """How samples are filtered, normalised and scored (stated in every result)."""

    name: str = "paper"
    charset: Charset = field(default_factory=lambda: Charset.preset("36"))
    rotate_tall: bool = False
    confidence: str = "product"
    weights: str = "num_samples"
    min_side: int = MIN_SIDE
    subsets: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        cs = self.charset
        return {
            "name": self.name,
            "charset": cs.name,
            "symbols": "".join(cs.symbols),
            "case_sensitive": cs.case_sensitive,
            "max_length": cs.max_length,
            "unknown_symbols": cs.unknown,
            "normalisation": cs.describe(),
            "skipped": "samples whose normalised label is empty or longer than max_length; images that "
                       f"cannot be decoded or are smaller than {self.min_side} px",
            "predictions": "case-folded like labels, symbols outside the charset removed",
            "rotate_tall": self.rotate_tall,
            "confidence": self.confidence,
            "weighted_average_weights": (
                "LMDB num-samples per set, skipped samples included (official)" if self.weights == "num_samples"
                else "evaluated samples per set"),
            "subsets": dict(self.subsets),
        }


def normalize_prediction(text: str, charset: Charset) -> str:
    """A prediction as the protocol compares it: Unicode form, case folding, out-of-set symbols removed."""
    if charset.unicode_form != "none":
        text = unicodedata.normalize(charset.unicode_form, text)
    if not charset.case_sensitive:
        text = text.lower()
    allowed = set(charset.symbols)
    return "".join(ch for ch in text if ch in allowed)


def check_charset_fit(model_charset: Charset, protocol: Charset, source: str) -> None:
    """The protocol must not require symbols the model can never produce.

    Raises:
        SemimtrError: naming the checkpoint and the missing symbols.
    """
    producible = set(normalize_prediction("".join(model_charset.symbols), protocol))
    missing = [s for s in protocol.symbols if s not in producible]
    if missing:
        shown = "".join(missing[:20]) + ("..." if len(missing) > 20 else "")
        raise SemimtrError(
            f"{source}: the model's charset '{model_charset.name}' ({len(model_charset.symbols)} symbols) cannot "
            f"produce {len(missing)} symbol(s) of the protocol charset '{protocol.name}' ({shown!r}); "
            f"evaluate with {option('charset')} {model_charset.name if model_charset.name in ('36', '62', '94') else '36'} "
            "or a charset the model covers"
        )


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


def resolve_heads(predictor, head: str) -> list[str]:
    """``all`` -> every head the model has; otherwise the one head (checked)."""
    if head == "all":
        return list(predictor.heads)
    predictor.check_head(head)
    return [head]


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
        bad.extend(batch["bad"])
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


def result_objects(checkpoint: str, predictor, protocol: Protocol, results: Sequence[SetResult], heads: Sequence[str],
                   *, precision: str = "fp32", seconds: float | None = None) -> list[dict]:
    """One JSON object per head (the ``--json`` layout)."""
    objs = []
    images = sum(r.evaluated + len(r.bad_images) for r in results)
    temperatures = getattr(predictor, "temperatures", {})
    for h in heads:
        rows = [r.row(h) for r in results]
        weighted, mean = averages(rows, protocol.weights)
        objs.append({
            "checkpoint": str(checkpoint),
            "head": h,
            "protocol": protocol.to_dict(),
            "sets": rows,
            "weighted_average": weighted,
            "mean": mean,
            "model": {"kind": predictor.kind, "charset": predictor.charset.name,
                      "max_length": predictor.charset.max_length},
            "precision": precision,
            "confidence": {"calibrated": h in temperatures, "temperature": temperatures.get(h)},
            "device": str(getattr(predictor, "device", "cpu")),
            "seconds": seconds,
            "images_per_s": (images / seconds) if seconds else None,
        })
    return objs


def error_rows(checkpoint: str, results: Sequence[SetResult], heads: Sequence[str]) -> list[dict]:
    """Every wrong prediction: checkpoint, head, set, key, label, prediction, confidence."""
    rows = []
    for h in heads:
        for r in results:
            rows.extend({"checkpoint": str(checkpoint), "head": h, **e} for e in r.errors[h])
    return rows


def bad_image_rows(checkpoint: str, results: Sequence[SetResult]) -> list[dict]:
    return [{"checkpoint": str(checkpoint), "set": r.evset.name, "key": k, "error": msg}
            for r in results for k, msg in r.bad_images]


# ------------------------------------------------------------------------------ the report
CSV_FIELDS = ("num_samples", "evaluated", "skipped", "accuracy", "one_minus_ned", "mean_confidence", "char_accuracy",
              "ece")


@dataclass
class EvalReport:
    """What :func:`evaluate_checkpoints` found.

    results: one JSON object per (checkpoint, head) (the ``--json`` layout, see result_objects).
    errors: every wrong prediction (error_rows). bad_images: unreadable images, each (set, key)
    once (bad_image_rows of the first checkpoint that met it). sets: the sets scored.
    """

    results: list[dict]
    errors: list[dict]
    bad_images: list[dict]
    sets: list[EvalSet]

    def csv_rows(self) -> list[dict]:
        """One row per checkpoint, head and set, then its weighted average and mean."""
        rows = []
        for o in self.results:
            for s in o["sets"]:
                rows.append({"checkpoint": o["checkpoint"], "head": o["head"], "set": s["name"], "path": s["path"],
                             **{k: s[k] for k in CSV_FIELDS}, "bad_images": s["bad_images"],
                             **({"accuracy_delta": s["accuracy_delta"]} if "accuracy_delta" in s else {}),
                             **{f"fusion_{k}": v for k, v in (s.get("fusion") or {}).items()}})
            for label, avg in (("weighted_average", o["weighted_average"]), ("mean", o["mean"])):
                rows.append({"checkpoint": o["checkpoint"], "head": o["head"], "set": label, "path": "",
                             **{k: avg[k] for k in CSV_FIELDS},
                             **({"accuracy_delta": o["baseline"][label]} if "baseline" in o else {})})
        return rows

    def write(self, *, json_path=None, csv_path=None, errors_path=None, plot_path=None) -> list[str]:
        """Write the requested files atomically; returns their paths."""
        import pandas as pd

        written = []
        if json_path is not None:
            atomic_write_json(json_path, self.results[0] if len(self.results) == 1 else self.results)
            written.append(str(json_path))
        if csv_path is not None:
            with atomic_path(csv_path, suffix=".csv") as tmp:
                pd.DataFrame(self.csv_rows()).to_csv(tmp, index=False)
            written.append(str(csv_path))
        if errors_path is not None:
            cols = ["checkpoint", "head", "set", "key", "label", "prediction", "confidence", "error"]
            bad = [dict(r, head="", label="", prediction="", confidence=None) for r in self.bad_images]
            with atomic_path(errors_path, suffix=".csv") as tmp:
                pd.DataFrame(self.errors + bad, columns=cols).to_csv(tmp, index=False)
            written.append(str(errors_path))
        if plot_path is not None:
            plot_results(self.results, plot_path)
            written.append(str(plot_path))
        return written


def evaluate_checkpoints(checkpoints: Sequence[str | Path], sets: Sequence[EvalSet], protocol: Protocol, *,
                         head: str = "alignment", batch_size: int = 64, workers: int = 0, device: str = "auto",
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
    missing = [str(c) for c in checkpoints if not Path(c).is_file()]
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


def add_baseline_deltas(results: Sequence[dict], baseline: str) -> None:
    """Give every result object (and each of its set rows) its word-accuracy change in points
    against the ``baseline`` checkpoint's result for the same head: ``accuracy_delta`` per set
    row, and ``baseline`` = {checkpoint, weighted_average, mean} per object."""
    base = {o["head"]: o for o in results if o["checkpoint"] == baseline}
    for o in results:
        b = base.get(o["head"])
        if b is None:
            raise SemimtrError(f"{baseline}: the baseline has no {o['head']} head to compare {o['checkpoint']} with")
        by_name = {r["name"]: r["accuracy"] for r in b["sets"]}
        for row in o["sets"]:
            row["accuracy_delta"] = row["accuracy"] - by_name[row["name"]]
        o["baseline"] = {"checkpoint": baseline,
                         "weighted_average": o["weighted_average"]["accuracy"] - b["weighted_average"]["accuracy"],
                         "mean": o["mean"]["accuracy"] - b["mean"]["accuracy"]}


def plot_results(objs: Sequence[dict], path: str | Path, metric: str = "accuracy") -> Path:
    """Grouped bar chart (PNG): one group per set plus the two averages, one bar per result; with
    baseline deltas (:func:`add_baseline_deltas`) a second panel shows the change in points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s["name"] for s in objs[0]["sets"]] + ["weighted avg", "mean"]
    deltas = "baseline" in objs[0]
    width = 0.8 / max(len(objs), 1)
    fig, axes = plt.subplots(2 if deltas else 1, 1, figsize=(max(6, 1.1 * len(names) + 2) + 2.5, 7.6 if deltas else 4.2),
                             squeeze=False)
    ax, x = axes[0][0], np.arange(len(names))
    for i, o in enumerate(objs):
        by_name = {s["name"]: s[metric] for s in o["sets"]}
        vals = [by_name.get(n, 0.0) for n in names[:-2]] + [o["weighted_average"][metric], o["mean"][metric]]
        label = f"{Path(o['checkpoint']).name} [{o['head']}]"
        offset = (i - (len(objs) - 1) / 2) * width
        bars = ax.bar(x + offset, vals, width, label=label)
        if len(objs) <= 3:  # value labels stay readable only for a few bars per group
            for b, v in zip(bars, vals):
                ax.text(b.get_x() + b.get_width() / 2, v + 0.5, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
        if deltas:
            by_delta = {s["name"]: s["accuracy_delta"] for s in o["sets"]}
            dv = [by_delta.get(n, 0.0) for n in names[:-2]] + [o["baseline"]["weighted_average"], o["baseline"]["mean"]]
            axes[1][0].bar(x + offset, dv, width, label=label)
    ax.set_xticks(x, names, rotation=20)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.set_title(f"{metric.replace('_', ' ')} per set (protocol {objs[0]['protocol']['name']})")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if deltas:
        d = axes[1][0]
        d.axhline(0, color="k", lw=0.8)
        d.set_xticks(x, names, rotation=20)
        d.set_ylabel("points")
        d.set_title(f"word accuracy change against the baseline {Path(objs[0]['baseline']['checkpoint']).name}")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


HEAD_CHOICES = HEADS + ("all",)
