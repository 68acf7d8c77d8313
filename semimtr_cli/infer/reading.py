"""Files and folders -> ordered predictions: what ``semimtr read`` calls.

:func:`gather_image_paths` expands the inputs, :func:`read_paths` reads them in batches with any
backend, and :class:`ReadResult` writes the predictions as JSON, CSV or an ``.npz`` of logits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from semimtr_cli.core.errors import SemimtrError, UsageError
from semimtr_cli.core.fsutil import atomic_path
from semimtr_cli.data.files import list_images
from semimtr_cli.data.image import decode_image
from semimtr_cli.data.image import rotate_tall as _rotate_tall
from semimtr_cli.data.lmdb.sources import SourceOptions, records_from_label_file
from semimtr_cli.infer.backend import FINAL_HEAD, InferenceBackend
from semimtr_cli.infer.open import open_backend
from semimtr_cli.model.checkpoint import DEFAULT_MODEL
from semimtr_cli.model.decoding import CONFIDENCE_MODES


# ---------------------------------------------------------------------------------- files
def gather_image_paths(inputs: Iterable[str | Path]) -> list[Path]:
    """Files and folders (searched recursively, sorted) -> image paths, in the order given.

    Raises SemimtrError for a missing path, UsageError when no image is found at all.
    """
    inputs = list(inputs)
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if not p.exists():
            raise SemimtrError(f"path not found: {p}")
        paths.extend([p] if p.is_file() else list_images(p))
    if not paths:
        raise UsageError(f"no image files found in {', '.join(map(str, inputs))}")
    return paths


def load_image(path: Path, *, rotate_tall: bool = False):
    """Decode ``path`` to an RGB PIL image; with ``rotate_tall``, :func:`.data.image.rotate_tall` it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SemimtrError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    img = decode_image(data, name=str(path))
    return _rotate_tall(img) if rotate_tall else img


def label_map(labels_file: str | Path) -> dict[str, str]:
    """{absolute image path: label} of a label file in any format ``build-lmdb`` reads (paths
    relative to the file's folder). Raises SemimtrError for a missing file."""
    path = Path(labels_file)
    if not path.is_file():
        raise SemimtrError(f"labels file not found: {path}")
    return {r.file: r.label for r in records_from_label_file(path, SourceOptions()) if r.file and r.label is not None}


@dataclass
class ReadResult:
    """Predictions of :func:`read_paths`, in input order.

    rows: dicts with path, text, confidence, length, char_probs. failed: (path, message) of
    images skipped because they could not be decoded. logits: head -> (N, T, C) float32
    array (only when requested; rows of failed images are absent).
    """

    rows: list[dict]
    failed: list[tuple[str, str]] = field(default_factory=list)
    logits: dict[str, np.ndarray] | None = None

    def check_against(self, truth: dict[str, str], charset, source: str = "the labels") -> tuple[int, int]:
        """Give every row whose image ``truth`` (:func:`label_map`) labels its ``truth`` and whether
        the reading is ``correct`` (in ``charset``: the model's normalisation, e.g. lower-case a-z0-9).

        Returns (right, labeled rows). Raises SemimtrError when ``truth`` labels none of the images.
        """
        right = labeled = 0
        for row in self.rows:
            label = truth.get(os.path.normpath(os.path.abspath(row["path"])))
            if label is None:
                continue
            row["truth"] = charset.normalize(label) or label  # a label the charset cannot hold stays as written
            row["correct"] = row["text"] == row["truth"]
            labeled += 1
            right += row["correct"]
        if not labeled:
            raise SemimtrError(f"{source}: labels none of the {len(self.rows)} image(s) read (paths are relative to its folder)")
        return right, labeled

    def to_json(self, **header) -> dict:
        """``header`` (checkpoint, head, precision, ...) + ``predictions`` + ``failed``."""
        return {**header, "predictions": self.rows, "failed": [{"path": p, "error": m} for p, m in self.failed]}

    def write_csv(self, path: str | Path) -> None:
        """path,text,confidence,length[,truth,correct][,rejected] per prediction, atomically."""
        import pandas as pd

        cols = ["path", "text", "confidence", "length"] + (["truth", "correct"] if any("truth" in r for r in self.rows) else [])
        cols += ["rejected"] if self.rows and "rejected" in self.rows[0] else []
        with atomic_path(path, suffix=".csv") as tmp:
            pd.DataFrame(self.rows, columns=cols).to_csv(tmp, index=False)

    def write_logits(self, path: str | Path) -> None:
        """An ``.npz``: one (N, slots, classes) float32 array per head, plus ``paths``."""
        if self.logits is None:
            raise SemimtrError("these predictions were made without keep_logits")
        arrays = dict(self.logits, paths=np.array([r["path"] for r in self.rows], dtype=str))
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def read_paths(predictor: InferenceBackend, paths: Sequence[Path], *, head: str = FINAL_HEAD, batch_size: int = 32,
               confidence: str = "product", rotate_tall: bool = False, keep_logits: bool = False,
               skip_bad: bool = False, min_confidence: float | None = None,
               on_progress: Callable[[int], None] | None = None) -> ReadResult:
    """Recognise every image in ``paths`` (batched, input order kept). With ``min_confidence``
    each row says whether its word falls below it (``rejected``).

    Raises:
        SemimtrError: naming the first unreadable image, unless ``skip_bad`` (then it is listed
            in ``failed``).
    """
    head = predictor.resolve_head(head)
    if batch_size < 1:
        raise UsageError(f"must be >= 1, got {batch_size}", param="batch_size")
    if confidence not in CONFIDENCE_MODES:
        raise UsageError(f"must be one of {', '.join(CONFIDENCE_MODES)}, got {confidence!r}", param="confidence")
    rows: list[dict] = []
    failed: list[tuple[str, str]] = []
    logits: dict[str, list[np.ndarray]] = {h: [] for h in predictor.heads}
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        images, names = [], []
        for p in chunk:
            try:
                images.append(load_image(p, rotate_tall=rotate_tall))
                names.append(str(p))
            except SemimtrError as exc:
                if not skip_bad:
                    raise
                failed.append((str(p), str(exc)))
        if images:
            decoded, out = predictor.predict(images, head=head, confidence=confidence)
            for name, d in zip(names, decoded):
                rows.append({"path": name, "text": d.text, "confidence": d.confidence, "length": d.length,
                             "char_probs": d.char_probs, "stop_prob": d.stop_prob}
                            | ({} if min_confidence is None else {"rejected": d.confidence < min_confidence}))
            if keep_logits:
                for h in predictor.heads:
                    logits[h].append(out.heads[h].logits.numpy())
        if on_progress:
            on_progress(len(chunk))
    stacked = None
    if keep_logits:
        c = predictor.config.num_classes
        stacked = {h: (np.concatenate(v) if v else np.zeros((0, predictor.config.max_slots, c), np.float32))
                   for h, v in logits.items()}
    return ReadResult(rows=rows, failed=failed, logits=stacked)


@dataclass(frozen=True)
class Reading:
    """One image's word: ``text`` and its ``confidence`` (0..1, the greedy string's probability)."""

    text: str
    confidence: float


class Reader:
    """A model ready to read images from Python: ``load_model("default").read(["a.png", pil_image])``.

    ``checkpoint``: a ``.pt`` checkpoint, an exported ``.onnx`` graph or ``default`` (the shipped
    model); ``head``: ``final`` (the model's answer), ``alignment``, ``language`` or ``vision``.
    """

    def __init__(self, checkpoint: str | Path = DEFAULT_MODEL, *, head: str = FINAL_HEAD, device: str = "auto",
                 precision: str = "auto", batch_size: int = 32):
        self.backend = open_backend(checkpoint, device=device, precision=precision)
        self.head = self.backend.resolve_head(head)
        if batch_size < 1:
            raise UsageError(f"must be >= 1, got {batch_size}", param="batch_size")
        self.batch_size = batch_size

    def read(self, images: Sequence) -> list[Reading]:
        """Words of ``images`` (file paths, PIL images or HxWx3 uint8 arrays), in order."""
        loaded = [load_image(Path(x)) if isinstance(x, (str, Path)) else x for x in images]
        out: list[Reading] = []
        for start in range(0, len(loaded), self.batch_size):
            decoded, _ = self.backend.predict(loaded[start:start + self.batch_size], head=self.head)
            out.extend(Reading(d.text, float(d.confidence)) for d in decoded)
        return out
