"""What a teacher would teach: run the teacher over unlabeled crops (``semimtr pseudo-labels``).

The teacher runs as fine-tuning runs it (train/finetune.py ``Finetune``): the image is the clean
crop or the weak view (the ABINet pipeline, one frozen instance per LMDB, per-item generator
``[seed, index, index]`` as the training datasets derive it), the chosen head's *last iteration*
gives the targets, and :func:`semimtr_cli.model.decoding.teacher_targets` turns its logits into
(argmax ids, teacher lengths, per-slot mask ``max softmax prob > threshold``).

:func:`run_teacher` collects the per-sample rows; :func:`pseudo_label_report` is the library
entry of the command: load the teacher, run it, summarise (``pseudolabels/stats.py``: the per-slot
rule per sample, accuracy and coverage per threshold) and write the tables, histograms
(``pseudolabels/plots.py``) and HTML gallery (``pseudolabels/gallery.py``).

Deviation: the teacher runs in eval mode (no dropout), so the output is deterministic; the
official fine-tuning runs the shared-weight teacher in train mode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from semimtr_cli.core.errors import SemimtrError, UsageError, check_unit_interval
from semimtr_cli.data.augment.pipelines import PerSourcePipeline
from semimtr_cli.data.datasets import CropDataset
from semimtr_cli.data.lmdb.io import is_unlabeled_marker
from semimtr_cli.infer.backend import FINAL_HEAD
from semimtr_cli.model.decoding import CONFIDENCE_MODES, decode_logits
from semimtr_cli.pseudolabels.export import (
    check_queue_rule, queue_order, suspect_labels, write_pseudo_lmdb, write_queue,
)
from semimtr_cli.pseudolabels.gallery import check_gallery_target, write_gallery
from semimtr_cli.pseudolabels.plots import plot_histograms
from semimtr_cli.pseudolabels.stats import (
    DEFAULT_THRESHOLDS, PseudoLabels, check_thresholds, parse_thresholds, row_columns, slot_stats, summarize,
)

VIEWS = ("clean", "weak")


def teacher_crops(paths: Sequence[str | Path], charset, *, view: str, seed: int,
                  image_size: tuple[int, int]) -> CropDataset:
    """The crops of ``paths`` in the teacher's ``view``: ``clean`` (as stored) or ``weak``
    (fine-tuning's teacher view: the ABINet pipeline frozen per LMDB from ``seed``).

    Raises:
        UsageError: unknown ``view``.
    """
    if view not in VIEWS:
        raise UsageError(f"must be one of {', '.join(VIEWS)}, got {view!r}", param="view")
    transform = None if view == "clean" else PerSourcePipeline("abinet", seed)
    return CropDataset(list(paths), charset, labeled=False, views=(transform,), image_size=image_size, seed=seed,
                       on_bad="raise")


class TeacherInputs(Dataset):
    """Crops of unlabeled (or labeled, as a check) LMDBs as the teacher sees them (:func:`teacher_crops`).

    Items: ``{"image" (3,H,W), "index"}`` or ``{"index", "error"}`` for an unusable image.
    """

    def __init__(self, paths: Sequence[str | Path], charset, *, view: str, seed: int, image_size: tuple[int, int]):
        self.crops = teacher_crops(paths, charset, view=view, seed=seed, image_size=image_size)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> dict:
        try:
            item = self.crops[i]
        except SemimtrError as exc:
            return {"index": i, "error": str(exc)}
        return {"image": item["image"], "index": i}


def _collate(items: list[dict]) -> dict:
    good = [x for x in items if "error" not in x]
    return {
        "image": torch.stack([x["image"] for x in good]) if good else None,
        "index": [x["index"] for x in good],
        "bad": [(x["index"], x["error"]) for x in items if "error" in x],
    }


def sample_labels(dataset: CropDataset, charset) -> list[str | None]:
    """Normalised label of every sample in dataset order (None: unlabeled or invalid label)."""
    out: list[str | None] = []
    for reader in dataset.readers:
        for raw in reader.raw_labels():
            out.append(None if raw is None or is_unlabeled_marker(raw) else charset.normalize(raw))
    return out


def run_teacher(predictor, paths: Sequence[str | Path], *, head: str = FINAL_HEAD, view: str = "clean", seed: int = 0,
                thresholds: Sequence[float] = DEFAULT_THRESHOLDS, confidence: str = "product", batch_size: int = 64,
                workers: int = 0, on_progress: Callable[[int], None] | None = None) -> PseudoLabels:
    """Run the teacher over every crop of ``paths`` and collect per-sample pseudo-labels."""
    head = predictor.resolve_head(head)
    if batch_size < 1:
        raise UsageError(f"must be >= 1, got {batch_size}", param="batch_size")
    thresholds = sorted(float(t) for t in thresholds)
    data = TeacherInputs(paths, predictor.charset, view=view, seed=seed,
                         image_size=(predictor.config.image_h, predictor.config.image_w))
    labels = sample_labels(data.crops, predictor.charset)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_collate)
    rows: list[dict] = []
    passed_all: list[np.ndarray] = []
    bad: list[tuple[str, str]] = []
    for batch in loader:
        bad.extend((data.crops.describe(i), msg) for i, msg in batch["bad"])
        if batch["image"] is not None:
            out = predictor.forward(batch["image"]).heads[head]
            decoded = decode_logits(out.logits, predictor.charset, confidence)
            lengths, min_prob, kept, passed = slot_stats(out, thresholds)
            passed_all.append(passed)
            for j, (i, d) in enumerate(zip(batch["index"], decoded)):
                where = data.crops.describe(i)
                lmdb, key = where.rsplit(":", 1)
                label = labels[i]
                row = {"index": i, "lmdb": lmdb, "key": key, "text": d.text, "confidence": d.confidence,
                       "length": int(lengths[j]), "min_slot_prob": float(min_prob[j])}
                for k, t in enumerate(thresholds):
                    row[f"kept@{t:g}"] = bool(kept[j, k])
                row["label"] = label
                row["correct"] = None if label is None else d.text == label
                rows.append(row)
        if on_progress:
            on_progress(len(batch["index"]) + len(batch["bad"]))
    passed_arr = np.concatenate(passed_all) if passed_all else np.zeros((0, len(thresholds)), np.int64)
    settings = {"head": head, "view": view, "seed": seed, "confidence": confidence, "charset": predictor.charset.name,
                "num_samples": len(data), "kind": predictor.kind}
    return PseudoLabels(rows, thresholds, passed_arr, bad, settings)


@dataclass
class PseudoLabelReport:
    """What :func:`pseudo_label_report` produced: the per-sample result, its summary (with the
    checkpoint, inputs, seconds and precision), and the files written (gallery: with its counts)."""

    result: PseudoLabels
    summary: dict
    written: list[str] = field(default_factory=list)
    seconds: float = 0.0


def check_options(*, view: str, confidence: str, batch_size: int, workers: int, html_limit: int) -> None:
    """Reject bad :func:`pseudo_label_report` settings before any work (UsageError, by parameter)."""
    if view not in VIEWS:
        raise UsageError(f"must be one of {', '.join(VIEWS)}, got {view!r}", param="view")
    if confidence not in CONFIDENCE_MODES:
        raise UsageError(f"must be one of {', '.join(CONFIDENCE_MODES)}, got {confidence!r}", param="confidence")
    for name, value, low in (("batch_size", batch_size, 1), ("workers", workers, 0), ("html_limit", html_limit, 0)):
        if value < low:
            raise UsageError(f"must be >= {low}, got {value}", param=name)


def pseudo_label_report(checkpoint: str | Path, unlabeled: Sequence[str | Path], *, head: str = FINAL_HEAD,
                        view: str = "clean", seed: int = 0, thresholds: str | Sequence[float] = DEFAULT_THRESHOLDS,
                        confidence: str = "product", batch_size: int = 64, workers: int = 0, device: str = "auto",
                        precision: str = "auto", out: str | Path | None = None, csv: str | Path | None = None,
                        html: str | Path | None = None, html_limit: int = 2000, calibration: str = "auto",
                        write_lmdb: str | Path | None = None, min_confidence: float | None = None,
                        queue: int = 0, queue_out: str | Path | None = None, queue_rule: str = "confidence",
                        audit_min_confidence: float = 0.9, log: Callable[[str], None] | None = None,
                        on_progress: Callable[[int], None] | None = None) -> PseudoLabelReport:
    """Load the teacher ``checkpoint``, run it over ``unlabeled`` and write the reports.

    ``thresholds``: numbers or a comma-separated string. Outputs: ``csv`` (default
    ``out/pseudo_labels.csv``) with :func:`row_columns`; ``out/summary.json`` and the histogram
    PNGs; ``html``: the gallery (at most ``html_limit`` samples, 0 = all; suspected label errors
    first). ``calibration``: infer.predictor.CALIBRATION_MODES. ``write_lmdb``: the self-training LMDB of
    the words at ``min_confidence`` or above (default: the checkpoint's calibrated threshold for
    ``head``). ``queue`` crops to ``queue_out`` by ``queue_rule`` (pseudolabels/export.py). Labeled
    inputs: the rows wrong at ``audit_min_confidence`` or above are the summary's
    ``suspect_labels`` (and ``out/suspect_labels.csv``). ``log`` receives one line describing
    the teacher before it runs.

    Raises:
        UsageError: a bad setting (named by parameter); SemimtrError: unreadable checkpoint or
        data, or ``html`` is a folder that is not a gallery.
    """
    from semimtr_cli.infer.predictor import load_predictor

    thr = parse_thresholds(thresholds) if isinstance(thresholds, str) else check_thresholds(thresholds)
    check_options(view=view, confidence=confidence, batch_size=batch_size, workers=workers, html_limit=html_limit)
    if html is not None:
        check_gallery_target(html, param="html")
    check_unit_interval(audit_min_confidence, "audit_min_confidence")
    check_new_target(write_lmdb, "write_lmdb")
    if queue or queue_out is not None:
        if queue < 1 or queue_out is None:
            raise UsageError("give both a count (>= 1) and a folder for the labeling queue", param="queue")
        check_new_target(queue_out, "queue_out")
        check_queue_rule(queue_rule)
    predictor = load_predictor(checkpoint, device=device, precision=precision, calibration=calibration)
    head = predictor.resolve_head(head)
    if write_lmdb is not None:
        min_confidence = export_threshold(predictor, head, min_confidence, confidence)
    second = ("vision" if head != "vision" else "alignment") if queue and queue_rule == "heads" else None
    if second:
        second = predictor.resolve_head(second)
    if log is not None:
        log(f"{predictor.kind} teacher, head {head}, {view} view, {predictor.charset.describe()}; "
            f"{predictor.describe_confidence()}")
    start = time.perf_counter()
    with torch.inference_mode():
        result = run_teacher(predictor, unlabeled, head=head, view=view, seed=seed, thresholds=thr,
                             confidence=confidence, batch_size=batch_size, workers=workers, on_progress=on_progress)
        other = None
        if second:  # the heads rule of the queue: the other head's predictions, row for row
            other = [r["text"] for r in run_teacher(predictor, unlabeled, head=second, view=view, seed=seed,
                                                    thresholds=thr, confidence=confidence, batch_size=batch_size,
                                                    workers=workers).rows]
    seconds = time.perf_counter() - start
    summary = summarize(result)
    suspects = suspect_labels(result.rows, audit_min_confidence)
    summary.update(checkpoint=str(checkpoint), inputs=[str(p) for p in unlabeled], seconds=seconds,
                   precision={"name": predictor.precision, "reason": predictor.precision_reason},
                   calibrated=head in predictor.temperatures, temperature=predictor.temperatures.get(head))
    if summary["labeled"]:
        summary["suspect_labels"] = {"min_confidence": audit_min_confidence, "count": len(suspects),
                                     "rows": [{k: r[k] for k in ("lmdb", "key", "label", "text", "confidence")}
                                              for r in suspects]}
    written = []
    if write_lmdb is not None:
        summary["self_training_lmdb"] = write_pseudo_lmdb(result.rows, result.bad_images, write_lmdb, min_confidence)
        written.append(str(write_lmdb))
    if queue:
        summary["queue"] = write_queue(result.rows, queue_order(result.rows, queue_rule, other), queue, queue_out, other)
        summary["queue"]["rule"] = queue_rule
        written.append(str(queue_out))
    written[:0] = write_tables(result, summary, out=out, csv=csv, suspects=suspects if summary["labeled"] else None)
    if html is not None:
        crops = teacher_crops(unlabeled, predictor.charset, view=view, seed=seed,
                              image_size=(predictor.config.image_h, predictor.config.image_w))
        with torch.inference_mode():
            info = write_gallery(result, crops, html, limit=html_limit or None, first=suspects)
        written.append(f"{info['path']} ({info['shown']} of {info['total']} samples)")
    return PseudoLabelReport(result, summary, written, seconds)


def check_new_target(path: str | Path | None, param: str) -> None:
    """A folder the command creates must not exist yet (nothing is overwritten)."""
    if path is not None and Path(path).exists():
        raise UsageError(f"{path} exists; choose a new folder or remove it", param=param)


def export_threshold(predictor, head: str, min_confidence: float | None, confidence: str = "product") -> float:
    """``min_confidence`` checked, else the checkpoint's calibrated threshold for ``head`` (a
    threshold on the product confidence, the one ``semimtr calibrate`` measures)."""
    if min_confidence is not None:
        return check_unit_interval(min_confidence, "min_confidence")
    if confidence != "product":
        raise UsageError("the calibrated threshold is one on the product confidence; give --min-confidence with "
                         "--confidence mean", param="min_confidence")
    stored = predictor.thresholds.get(head)
    if stored is None:
        raise UsageError(f"the checkpoint has no calibrated threshold for the {head} head (`semimtr calibrate`); "
                         "give one", param="min_confidence")
    return float(stored)


def write_tables(result: PseudoLabels, summary: dict, *, out: str | Path | None = None,
                 csv: str | Path | None = None, suspects: Sequence[dict] | None = None) -> list[str]:
    """The per-sample CSV (``csv``, default ``out/pseudo_labels.csv``), ``out/summary.json``, the
    histogram PNGs and (labeled inputs) ``out/suspect_labels.csv`` in ``out``, each written
    atomically; returns the paths written."""
    import pandas as pd

    from semimtr_cli.core.fsutil import atomic_path, atomic_write_json

    written = []
    csv_path = csv or (Path(out) / "pseudo_labels.csv" if out is not None else None)
    if csv_path is not None:
        with atomic_path(csv_path, suffix=".csv") as tmp:
            pd.DataFrame(result.rows, columns=row_columns(result.thresholds)).to_csv(tmp, index=False)
        written.append(str(csv_path))
    if out is not None and suspects is not None:
        with atomic_path(Path(out) / "suspect_labels.csv", suffix=".csv") as tmp:
            pd.DataFrame(suspects, columns=["lmdb", "key", "label", "text", "confidence"]).to_csv(tmp, index=False)
        written.append(str(Path(out) / "suspect_labels.csv"))
    if out is not None:
        atomic_write_json(Path(out) / "summary.json", summary)
        written.append(str(Path(out) / "summary.json"))
        written.extend(str(p) for p in plot_histograms(result, out))
    return written
