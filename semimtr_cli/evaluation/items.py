"""Benchmark sets as Datasets of evaluation items, for ``evaluate`` (LMDB or labels file + images).

An item is ``{"image": (3, H, W) float32, "label": str, "key": str}``, or ``{"key", "error",
"label"}`` for an image that cannot be read (undecodable, or smaller than a ``min_side`` the
protocol asks for; ``label`` None when the line has none), so that unreadable images count as
wrong words and are listed instead of dropped. :func:`collate_eval` keeps the two apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.benchmarks import EvalSet
from semimtr_cli.data.datasets import CropDataset
from semimtr_cli.data.image import as_uint8_array, decode_image, rotate_tall, to_model_input

if TYPE_CHECKING:
    from semimtr_cli.evaluation.protocol import Protocol


def rotate_tall_view(img: np.ndarray, rng=None) -> np.ndarray:
    """:func:`.image.rotate_tall` as a CropDataset view (which passes an ``rng`` it ignores)."""
    return rotate_tall(img)


class LmdbEvalItems(Dataset):
    """Items of one benchmark LMDB: ``{"image", "label", "key"}`` or ``{"key", "error"}``.

    Label filtering and image reading are CropDataset's (``on_bad="raise"``), so an unusable
    image becomes an error item naming its key instead of being dropped silently.
    """

    def __init__(self, path: Path, protocol: "Protocol", image_size: tuple[int, int]):
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
            return {"key": self.key(i), "error": str(exc), "label": self.label(i)}
        return {"image": item["image"], "label": self.label(i), "key": self.key(i)}

    def label(self, i: int) -> str:
        return self.charset.decode(self.crops.label_ids(i).tolist())


class FolderEvalItems(Dataset):
    """Items of a folder set (label file + image files), same dict shape as :class:`LmdbEvalItems`."""

    def __init__(self, evset: EvalSet, protocol: "Protocol", image_size: tuple[int, int]):
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
            return {"key": key, "error": f"{key}: {problem}", "label": None}
        try:
            data = Path(file).read_bytes()
            img = as_uint8_array(decode_image(data, name=file))
        except OSError as exc:
            return {"key": key, "error": f"{file}: cannot be read ({exc.strerror or exc})", "label": label}
        except SemimtrError as exc:
            return {"key": key, "error": str(exc), "label": label}
        h, w = img.shape[:2]
        if h < self.protocol.min_side or w < self.protocol.min_side:
            return {"key": key, "error": f"{file}: {w}x{h} px is smaller than {self.protocol.min_side} px", "label": label}
        if self.protocol.rotate_tall:
            img = rotate_tall_view(img)
        return {"image": to_model_input(img, *self.image_size), "label": label, "key": key}


def eval_items(evset: EvalSet, protocol: "Protocol", image_size: tuple[int, int]) -> Dataset:
    """The Dataset of one EvalSet under ``protocol``."""
    if evset.kind == "lmdb":
        return LmdbEvalItems(evset.path, protocol, image_size)
    return FolderEvalItems(evset, protocol, image_size)


def collate_eval(items: list[dict]) -> dict:
    """Good items stacked (``image`` (N,3,H,W), ``labels``, ``keys``); bad ones in ``bad`` as
    (key, error, label or None)."""
    good = [x for x in items if "error" not in x]
    return {
        "image": torch.stack([x["image"] for x in good]) if good else None,
        "labels": [x["label"] for x in good],
        "keys": [x["key"] for x in good],
        "bad": [(x["key"], x["error"], x["label"]) for x in items if "error" in x],
    }
