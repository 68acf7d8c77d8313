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
* per set: word accuracy, 1-NED, char accuracy, mean confidence (percent, see metrics.py);
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
from torch.utils.data import DataLoader, Dataset

from .charset import Charset
from .data.benchmarks import EvalSet
from .data.datasets import CropDataset
from .data.image import as_uint8_array, decode_image, to_model_input
from .errors import SemimtrError, UsageError
from .metrics import TextMetrics
from .predict import HEADS, Decoded, Predictor, decode_logits

METRIC_NAMES = ("accuracy", "one_minus_ned", "mean_confidence", "char_accuracy")
WEIGHTINGS = ("num_samples", "evaluated")
MIN_SIDE = 7  # the official loader rejects crops whose width or height is <= 6 px


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
            f"evaluate with --charset {model_charset.name if model_charset.name in ('36', '62', '94') else '36'} "
            "or a charset the model covers"
        )


def load_predictor(checkpoint: str | Path, *, device: str = "cpu", precision: str = "fp32") -> Predictor:
    """A Predictor for ``checkpoint`` after checking that its charset fits its classifier.

    Raises:
        SemimtrError: unreadable checkpoint, or a stored charset whose class count differs from
            the classifier's (a checkpoint/charset mismatch), named with the file.
    """
    from .model.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    try:
        charset = Charset.from_dict(ckpt["charset"])
    except (TypeError, KeyError, SemimtrError) as exc:
        raise SemimtrError(f"{checkpoint}: malformed charset entry ({exc})") from None
    for key, tensor in ckpt["state_dict"].items():
        if key.endswith("cls.weight") and torch.is_tensor(tensor) and tensor.shape[0] != charset.num_classes:
            raise SemimtrError(
                f"{checkpoint}: checkpoint/charset mismatch: classifier {key} has {tensor.shape[0]} classes but the "
                f"stored charset '{charset.name}' has {charset.num_classes} ({len(charset.symbols)} symbols + null)"
            )
    try:
        return Predictor(ckpt, device=device, precision=precision)
    except SemimtrError as exc:
        raise SemimtrError(f"{checkpoint}: {exc}") from None


# ------------------------------------------------------------------------------ data
def rotate_tall_view(img: np.ndarray, rng=None) -> np.ndarray:
    """Rotate a crop taller than twice its width by 90 degrees counter-clockwise (HxWx3 uint8)."""
    if img.shape[0] > 2 * img.shape[1]:
        return np.ascontiguousarray(np.rot90(img))
    return img


class LmdbEvalItems(Dataset):
    """Items of one benchmark LMDB: ``{"image", "label", "key"}`` or ``{"key", "error"}``.

    Label filtering and image reading are CropDataset's (``on_bad="raise"``), so an unusable
    image becomes an error item naming its key instead of being dropped silently.
    """

    def __init__(self, path: Path, protocol: Protocol, image_size: tuple[int, int]):
        view = rotate_tall_view if protocol.rotate_tall else None
        self.crops = CropDataset(path, protocol.charset, labeled=True, views=(view,), image_size=image_size,
                                 min_side=protocol.min_side, on_bad="raise")
        self.charset = protocol.charset
        self.skipped_labels = dict(self.crops.stats.skipped)

    def __len__(self) -> int:
        return len(self.crops)

    def key(self, i: int) -> str:
        return self.crops.describe(i).rsplit(":", 1)[-1]

    def __getitem__(self, i: int) -> dict:
        try:
            item = self.crops[i]
        except SemimtrError as exc:  # BadSample (undecodable / too small) or a missing image key
            return {"key": self.key(i), "error": str(exc)}
        return {"image": item["image"], "label": self.charset.decode(item["label"].tolist()), "key": self.key(i)}


class FolderEvalItems(Dataset):
    """Items of a folder set (label file + image files), same dict shape as :class:`LmdbEvalItems`."""

    def __init__(self, evset: EvalSet, protocol: Protocol, image_size: tuple[int, int]):
        self.protocol, self.image_size = protocol, image_size
        self.items: list[tuple[str | None, str, str, str]] = []  # (file, label, key, problem)
        self.skipped_labels: dict[str, int] = {}
        for file, raw, key, problem in evset.records:
            if raw is None:
                if file is None:  # a broken line: neither label nor image
                    self.items.append((None, "", key, problem or "unusable line"))
                    continue
                self.skipped_labels["no label"] = self.skipped_labels.get("no label", 0) + 1
                continue
            text, why = protocol.charset.normalize_with_reason(raw)
            if text is None:
                self.skipped_labels[f"label {why}"] = self.skipped_labels.get(f"label {why}", 0) + 1
                continue
            self.items.append((file, text, key, problem))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        file, label, key, problem = self.items[i]
        if file is None:
            return {"key": key, "error": f"{key}: {problem}"}
        try:
            data = Path(file).read_bytes()
            img = as_uint8_array(decode_image(data, name=file))
        except OSError as exc:
            return {"key": key, "error": f"{file}: cannot be read ({exc.strerror or exc})"}
        except SemimtrError as exc:
            return {"key": key, "error": str(exc)}
        h, w = img.shape[:2]
        if h < self.protocol.min_side or w < self.protocol.min_side:
            return {"key": key, "error": f"{file}: {w}x{h} px is smaller than {self.protocol.min_side} px"}
        if self.protocol.rotate_tall:
            img = rotate_tall_view(img)
        return {"image": to_model_input(img, *self.image_size), "label": label, "key": key}


def eval_items(evset: EvalSet, protocol: Protocol, image_size: tuple[int, int]) -> Dataset:
    """The Dataset of one EvalSet under ``protocol``."""
    if evset.kind == "lmdb":
        return LmdbEvalItems(evset.path, protocol, image_size)
    return FolderEvalItems(evset, protocol, image_size)


def collate_eval(items: list[dict]) -> dict:
    """Good items stacked (``image`` (N,3,H,W), ``labels``, ``keys``); bad ones in ``bad``."""
    good = [x for x in items if "error" not in x]
    return {
        "image": torch.stack([x["image"] for x in good]) if good else None,
        "labels": [x["label"] for x in good],
        "keys": [x["key"] for x in good],
        "bad": [(x["key"], x["error"]) for x in items if "error" in x],
    }


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
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    start = time.perf_counter()
    items = eval_items(evset, protocol, (predictor.config.image_h, predictor.config.image_w))
    loader = DataLoader(items, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate_eval, persistent_workers=False)
    metrics = {h: TextMetrics() for h in heads}
    errors: dict[str, list[dict]] = {h: [] for h in heads}
    bad: list[tuple[str, str]] = []
    for batch in loader:
        bad.extend(batch["bad"])
        n = len(batch["keys"]) + len(batch["bad"])
        if batch["image"] is not None:
            out = predictor.forward(batch["image"])
            for h in heads:
                decoded: list[Decoded] = decode_logits(out.heads[h].logits, predictor.charset, protocol.confidence)
                for d, gt, key in zip(decoded, batch["labels"], batch["keys"]):
                    pred = normalize_prediction(d.text, protocol.charset)
                    if not metrics[h].update(pred, gt, d.confidence):
                        errors[h].append({"set": evset.name, "key": key, "label": gt, "prediction": pred,
                                          "confidence": d.confidence})
        if on_progress:
            on_progress(n)
    return SetResult(evset, metrics, dict(items.skipped_labels), bad, errors, time.perf_counter() - start)


def averages(rows: Sequence[dict], weights: str = "num_samples") -> tuple[dict, dict]:
    """(weighted average, plain mean) of the per-set metric rows.

    Sets with no evaluated sample are left out of both (listed under ``excluded``).
    """
    if weights not in WEIGHTINGS:
        raise UsageError(f"weights must be one of {WEIGHTINGS}, got {weights!r}")
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


def plot_results(objs: Sequence[dict], path: str | Path, metric: str = "accuracy") -> Path:
    """Grouped bar chart (PNG): one group per set plus the two averages, one bar per result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fsutil import atomic_path

    names = [s["name"] for s in objs[0]["sets"]] + ["weighted avg", "mean"]
    width = 0.8 / max(len(objs), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2) + 2.5, 4.2))
    x = np.arange(len(names))
    for i, o in enumerate(objs):
        by_name = {s["name"]: s[metric] for s in o["sets"]}
        vals = [by_name.get(n, 0.0) for n in names[:-2]] + [o["weighted_average"][metric], o["mean"][metric]]
        label = f"{Path(o['checkpoint']).name} [{o['head']}]"
        bars = ax.bar(x + (i - (len(objs) - 1) / 2) * width, vals, width, label=label)
        if len(objs) <= 3:  # value labels stay readable only for a few bars per group
            for b, v in zip(bars, vals):
                ax.text(b.get_x() + b.get_width() / 2, v + 0.5, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, names, rotation=20)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.set_title(f"{metric.replace('_', ' ')} per set (protocol {objs[0]['protocol']['name']})")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


HEAD_CHOICES = HEADS + ("all",)
