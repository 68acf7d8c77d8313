"""An evaluation's report: result objects (JSON), wrong-prediction and bad-image rows (CSV),
baseline deltas and the bar plot; :class:`EvalReport` holds them and writes each file atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.core.fsutil import atomic_path, atomic_write_json
from semimtr_cli.data.benchmarks import EvalSet
from semimtr_cli.evaluation.protocol import Protocol
from semimtr_cli.evaluation.results import SetResult, averages


def short_names(checkpoints) -> dict[str, str]:
    """{checkpoint as given: the shortest trailing part of its path that no other one shares}
    (``best.pt`` alone, ``adapt-semimtr/best.pt`` beside ``adapt-supervised/best.pt``)."""
    paths = list(dict.fromkeys(str(c) for c in checkpoints))
    parts = {p: Path(p).parts or (p,) for p in paths}
    out = {}
    for p in paths:
        for k in range(1, len(parts[p]) + 1):
            tail = parts[p][-k:]
            if k == len(parts[p]) or all(parts[q][-k:] != tail for q in paths if q != p):
                out[p] = str(Path(*tail))
                break
    return out


def checkpoint_names(objs: Sequence[dict]) -> dict[str, str]:
    """:func:`short_names` of every checkpoint and baseline in ``eval``'s result objects."""
    return short_names([o["checkpoint"] for o in objs] + [o["baseline"]["checkpoint"] for o in objs if "baseline" in o])


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
            scored = {(e["set"], e["key"]) for e in self.errors}  # unreadable labeled crops are wrong words already
            bad = [dict(r, head="", label="", prediction="", confidence=None) for r in self.bad_images
                   if (r["set"], r["key"]) not in scored]
            with atomic_path(errors_path, suffix=".csv") as tmp:
                pd.DataFrame(self.errors + bad, columns=cols).to_csv(tmp, index=False)
            written.append(str(errors_path))
        if plot_path is not None:
            plot_results(self.results, plot_path)
            written.append(str(plot_path))
        return written


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
    names_of = checkpoint_names(objs)
    deltas = "baseline" in objs[0]
    width = 0.8 / max(len(objs), 1)
    fig, axes = plt.subplots(2 if deltas else 1, 1, figsize=(max(6, 1.1 * len(names) + 2) + 2.5, 7.6 if deltas else 4.2),
                             squeeze=False)
    ax, x = axes[0][0], np.arange(len(names))
    for i, o in enumerate(objs):
        by_name = {s["name"]: s[metric] for s in o["sets"]}
        vals = [by_name.get(n, 0.0) for n in names[:-2]] + [o["weighted_average"][metric], o["mean"][metric]]
        label = f"{names_of[o['checkpoint']]} [{o['head']}]"
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
        d.set_title(f"word accuracy change against the baseline {names_of[objs[0]['baseline']['checkpoint']]}")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
