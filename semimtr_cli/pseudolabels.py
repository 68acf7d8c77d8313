"""What a teacher would teach: pseudo-labels on unlabeled crops, threshold statistics, gallery.

The teacher runs as fine-tuning runs it (train/stages.py ``Finetune``): the image is the clean
crop or the weak view (the ABINet pipeline, one frozen instance per LMDB, per-item generator
``[seed, index, index]`` as the training datasets derive it), the chosen head's *last iteration*
gives the targets, and :func:`semimtr_cli.losses.teacher_targets` turns its logits into
(argmax ids, teacher lengths, per-slot mask ``max softmax prob > threshold``).

Fine-tuning applies the threshold per slot: a slot whose teacher probability is not above it
contributes 0 to the consistency loss. To report it per sample we say a sample is **kept** at
threshold t when every slot it supervises (the first ``teacher length`` slots, stop slot
included) passes, i.e. ``min_slot_prob > t``; the fraction of supervised slots that pass is
reported too (``slots_kept_percent``), which is the share of the consistency signal that
survives. Without a threshold (the official default) every sample is kept.

Deviation: the teacher runs in eval mode (no dropout), so the output is deterministic; the
official fine-tuning runs the shared-weight teacher in train mode.
"""

from __future__ import annotations

import html
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .data.datasets import CropDataset, PerSourcePipeline
from .data.image import denormalize
from .data.lmdb_io import is_unlabeled_marker
from .errors import SemimtrError, UsageError
from .fsutil import atomic_dir
from .losses import kept_slots, teacher_targets
from .predict import decode_logits

DEFAULT_THRESHOLDS = (0.5, 0.7, 0.9, 0.95, 0.99)
VIEWS = ("clean", "weak")
GALLERY_MARKER = "semimtr-pseudo-label-gallery"


def parse_thresholds(text: str) -> list[float]:
    """``"0.5,0.9"`` -> sorted unique floats in (0, 1)."""
    try:
        values = sorted({float(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UsageError(f"--thresholds must be comma-separated numbers, got {text!r}") from None
    if not values or any(not 0.0 <= v < 1.0 for v in values):
        raise UsageError(f"--thresholds must be numbers in [0, 1), got {text!r}")
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
        ok = mask.bool() & within
        passed[:, k] = ok.sum(dim=1).numpy()
        kept[:, k] = (ok | ~within).all(dim=1).numpy()
    return lengths.numpy(), min_prob.numpy(), kept, passed


class TeacherInputs(Dataset):
    """Crops of unlabeled (or labeled, as a check) LMDBs as the teacher sees them.

    Items: ``{"image" (3,H,W), "index"}`` or ``{"index", "error"}`` for an unusable image.
    """

    def __init__(self, paths: Sequence[str | Path], charset, *, view: str, seed: int, image_size: tuple[int, int]):
        if view not in VIEWS:
            raise UsageError(f"--view must be one of {', '.join(VIEWS)}, got {view!r}")
        transform = None if view == "clean" else PerSourcePipeline("abinet", seed)
        self.crops = CropDataset(list(paths), charset, labeled=False, views=(transform,), image_size=image_size,
                                 seed=seed, on_bad="raise")

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


def sample_labels(dataset: CropDataset, charset) -> list[str | None]:
    """Normalised label of every sample in dataset order (None: unlabeled or invalid label)."""
    out: list[str | None] = []
    for reader in dataset.readers:
        for raw in reader.raw_labels():
            out.append(None if raw is None or is_unlabeled_marker(raw) else charset.normalize(raw))
    return out


def run_teacher(predictor, paths: Sequence[str | Path], *, head: str = "alignment", view: str = "clean", seed: int = 0,
                thresholds: Sequence[float] = DEFAULT_THRESHOLDS, confidence: str = "product", batch_size: int = 64,
                workers: int = 0, on_progress: Callable[[int], None] | None = None) -> PseudoLabels:
    """Run the teacher over every crop of ``paths`` and collect per-sample pseudo-labels."""
    predictor.check_head(head)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
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
                     "softmax prob > t (losses.teacher_targets); slots_kept_percent = passing supervised slots",
        "thresholds": table,
        "confidence_histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
        "length_histogram": {str(k): v for k, v in sorted(lengths.items())},
        "most_frequent": [{"text": t, "count": c} for t, c in Counter(r["text"] for r in rows).most_common(top)],
    }
    return summary


# ------------------------------------------------------------------------------ plots
def plot_histograms(result: PseudoLabels, out_dir: str | Path) -> list[Path]:
    """``confidence_hist.png`` (with threshold lines) and ``length_hist.png`` in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fsutil import atomic_path

    out_dir = Path(out_dir)
    written = []
    conf = [r["confidence"] for r in result.rows]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.hist(conf, bins=40, range=(0, 1), color="#4477aa")
    for t in result.thresholds:
        ax.axvline(t, color="#cc3311", lw=0.8, ls="--")
        ax.text(t, ax.get_ylim()[1] * 0.95, f"{t:g}", rotation=90, va="top", ha="right", fontsize=7, color="#cc3311")
    ax.set_xlabel(f"teacher confidence ({result.settings.get('confidence', 'product')})")
    ax.set_ylabel("samples")
    ax.set_title(f"confidence, {len(conf)} samples ({result.settings.get('head')}, {result.settings.get('view')} view)")
    fig.tight_layout()
    path = out_dir / "confidence_hist.png"
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    written.append(path)

    lengths = [r["length"] for r in result.rows]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    hi = max(lengths) if lengths else 1
    ax.hist(lengths, bins=np.arange(0.5, hi + 1.5, 1), color="#228833")
    ax.set_xlabel("teacher length (characters + stop slot)")
    ax.set_ylabel("samples")
    ax.set_title("pseudo-label length")
    fig.tight_layout()
    path = out_dir / "length_hist.png"
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    written.append(path)
    return written


# ------------------------------------------------------------------------------ gallery
def _gallery_image(crops: CropDataset, index: int, view: str) -> tuple[bytes, str]:
    """(encoded image, extension): the stored bytes for the clean view, the weak view (the
    32x128 model input the teacher saw) as PNG."""
    from PIL import Image

    if view == "clean":
        lmdb, key = crops.describe(index).rsplit(":", 1)
        reader = next(r for r in crops.readers if str(r.path) == lmdb)
        data = reader.image_bytes(int(key.split("-")[1]) - 1)
        try:
            fmt = (Image.open(io.BytesIO(data)).format or "png").lower()
        except Exception:  # unreadable images never reach the gallery; keep a safe default
            fmt = "png"
        return data, {"jpeg": "jpg"}.get(fmt, fmt)
    arr = denormalize(crops[index]["image"])
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue(), "png"


def write_gallery(result: PseudoLabels, paths: Sequence[str | Path], predictor, out_dir: str | Path, *,
                  limit: int | None = 2000, overwrite: bool = True) -> dict:
    """A static HTML gallery: ``index.html`` + ``images/`` (copied files), lowest confidence first.

    Built in a temporary folder beside ``out_dir`` and renamed into place. A filter (inline
    JavaScript, no network) shows all samples, or those a threshold keeps or drops.

    Returns:
        {"path", "shown", "total"}.
    Raises:
        SemimtrError: ``out_dir`` exists and is neither empty nor a previous gallery.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise SemimtrError(f"--html {out_dir}: exists and is not a folder")
        index = out_dir / "index.html"
        ours = index.is_file() and GALLERY_MARKER in index.read_text(encoding="utf-8", errors="replace")[:2000]
        if any(out_dir.iterdir()) and not ours:
            raise SemimtrError(f"--html {out_dir}: a non-empty folder that is not a pseudo-label gallery; refusing to replace it")
    view, seed = result.settings.get("view", "clean"), int(result.settings.get("seed", 0))
    transform = None if view == "clean" else PerSourcePipeline("abinet", seed)
    crops = CropDataset(list(paths), predictor.charset, labeled=False, views=(transform,),
                        image_size=(predictor.config.image_h, predictor.config.image_w), seed=seed, on_bad="raise")
    ordered = sorted(result.rows, key=lambda r: (r["confidence"], r["index"]))
    shown = ordered if limit is None else ordered[:limit]
    with atomic_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        cards = []
        for rank, r in enumerate(shown, 1):
            data, ext = _gallery_image(crops, r["index"], view)
            name = f"images/{rank:06d}.{ext}"
            (tmp / name).write_bytes(data)
            cards.append(_card(r, name, result.thresholds))
        (tmp / "index.html").write_text(_page(result, cards, len(result.rows)), encoding="utf-8")
        (tmp / "rows.json").write_text(json.dumps(shown, ensure_ascii=False) + "\n", encoding="utf-8")
    return {"path": str(out_dir / "index.html"), "shown": len(shown), "total": len(result.rows)}


def _card(r: dict, image: str, thresholds: Sequence[float]) -> str:
    label = ""
    cls = "card"
    if r["label"] is not None:
        cls += " ok" if r["correct"] else " bad"
        label = f'<div class="gt">label: {html.escape(r["label"])}</div>'
    text = html.escape(r["text"]) if r["text"] else '<span class="empty">(empty)</span>'
    return (
        f'<div class="{cls}" data-min="{r["min_slot_prob"]:.6f}" data-conf="{r["confidence"]:.6f}">'
        f'<img src="{image}" alt="{html.escape(r["key"])}" loading="lazy">'
        f'<div class="pred">{text}</div>'
        f'<div class="meta">conf {r["confidence"]:.3f} &middot; min slot {r["min_slot_prob"]:.3f} &middot; len {r["length"]}</div>'
        f"{label}"
        f'<div class="key">{html.escape(Path(r["lmdb"]).name)}:{html.escape(r["key"])}</div>'
        "</div>"
    )


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;background:#fafafa;color:#222}
h1{font-size:20px;margin:0 0 4px}
.sub{color:#555;font-size:13px;margin-bottom:10px}
.bar{position:sticky;top:0;background:#fff;border:1px solid #ddd;padding:8px 10px;margin-bottom:12px;
     display:flex;gap:14px;align-items:center;flex-wrap:wrap;font-size:14px;z-index:1}
.grid{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px;width:220px;font-size:12px}
.card.ok{border-left:5px solid #2a9d4b}.card.bad{border-left:5px solid #d1495b}
.card img{display:block;max-width:208px;max-height:80px;min-height:24px;margin:0 auto 4px;image-rendering:auto;
          background:#eee}
.pred{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:16px;font-weight:600;word-break:break-all}
.meta,.key{color:#666}.gt{color:#333}.empty{color:#999;font-weight:400}
.hidden{display:none}
"""

_SCRIPT = """
function applyFilter(){
  var t=parseFloat(document.getElementById('thr').value);
  var mode=document.querySelector('input[name=mode]:checked').value;
  var cards=document.querySelectorAll('.card'); var shown=0;
  for(var i=0;i<cards.length;i++){
    var kept=parseFloat(cards[i].getAttribute('data-min'))>t;
    var show=(mode==='all')||(mode==='kept'&&kept)||(mode==='dropped'&&!kept);
    cards[i].classList.toggle('hidden',!show); if(show){shown++;}
  }
  document.getElementById('count').textContent=shown+' of '+cards.length+' shown';
}
(function(){var h=location.hash.replace('#','').split('&');for(var i=0;i<h.length;i++){var kv=h[i].split('=');
  if(kv[0]==='t'){document.getElementById('thr').value=kv[1];}
  if(kv[0]==='mode'){var r=document.querySelector('input[name=mode][value='+kv[1]+']');if(r){r.checked=true;}}}})();
document.getElementById('thr').addEventListener('change',applyFilter);
var radios=document.querySelectorAll('input[name=mode]');
for(var i=0;i<radios.length;i++){radios[i].addEventListener('change',applyFilter);}
applyFilter();
"""


def _page(result: PseudoLabels, cards: list[str], total: int) -> str:
    s = result.settings
    options = "".join(f'<option value="{t:g}"{" selected" if abs(t - 0.9) < 1e-9 else ""}>{t:g}</option>'
                      for t in result.thresholds)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="{GALLERY_MARKER}">'
        "<title>pseudo-labels</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>What the teacher would teach</h1>"
        f'<div class="sub">head {html.escape(str(s.get("head")))}, {html.escape(str(s.get("view")))} view, '
        f'seed {s.get("seed")}, confidence = {html.escape(str(s.get("confidence")))} of slot probabilities; '
        f"{len(cards)} of {total} samples, lowest confidence first. A sample is kept at a threshold when every "
        "supervised slot's probability is above it.</div>"
        '<div class="bar"><label>threshold <select id="thr">' + options + "</select></label>"
        '<label><input type="radio" name="mode" value="all" checked> all</label>'
        '<label><input type="radio" name="mode" value="kept"> kept</label>'
        '<label><input type="radio" name="mode" value="dropped"> dropped</label>'
        '<span id="count"></span></div>'
        '<div class="grid">' + "".join(cards) + "</div>"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
