"""Images -> text with a checkpoint: the reusable core of ``semimtr read`` (and eval/pseudo-labels).

* :func:`decode_logits` turns logits into text, confidence and per-character probabilities.
* :class:`InferenceBackend`: what every backend offers (``kind``, ``heads``, ``charset``,
  ``config``, ``device``, ``precision``; ``preprocess``, ``forward``, ``predict``); the PyTorch
  :class:`Predictor` here and ``export.OnnxPredictor`` implement its ``forward``.
* :func:`load_predictor` opens a checkpoint after checking its charset against its classifier;
  :func:`open_backend` picks PyTorch or ONNX.
* :func:`read_paths` is what ``semimtr read`` calls: files/folders -> ordered predictions, and
  :class:`ReadResult` writes them as JSON, CSV or an ``.npz`` of logits.

Confidence of a prediction: the per-slot maximum softmax probability, taken over the predicted
characters and the stop slot (the first null; absent when no slot predicts null), combined by
product (default; the probability of the greedy string) or mean.
"""

from __future__ import annotations

import abc
import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .charset import NULL_ID, Charset
from .data.files import list_images
from .data.image import decode_image, rotate_tall as _rotate_tall, to_model_input
from .errors import SemimtrError, UsageError, option
from .fsutil import atomic_path
from .model.checkpoint import load_checkpoint, model_from_checkpoint
from .model.config import ModelConfig
from .model.outputs import HEADS, HeadOutput
from .runtime import Precision, check_precision, choose_precision, pick_device

CONFIDENCE_MODES = ("product", "mean")
BACKENDS = ("torch", "onnx")  # open_backend also takes "auto": by the file's suffix
CALIBRATION_MODES = ("auto", "require", "off")  # use the checkpoint's temperatures if any / must have them / never


@dataclass
class Decoded:
    """One greedy prediction.

    text: characters before the first null slot. confidence: product/mean of ``char_probs``
    and ``stop_prob``. char_probs: max softmax probability of each predicted character.
    stop_prob: that of the stop slot (None when no slot predicted null). length: slots used
    including the stop slot (the official ``pt_lengths``).
    """

    text: str
    confidence: float
    char_probs: list[float]
    stop_prob: float | None
    length: int


def decode_logits(logits: torch.Tensor, charset: Charset, confidence: str = "product") -> list[Decoded]:
    """(N, T, C) logits -> N greedy predictions (argmax per slot, cut at the first null)."""
    if confidence not in CONFIDENCE_MODES:
        raise UsageError(f"must be one of {', '.join(CONFIDENCE_MODES)}, got {confidence!r}", param="confidence")
    probs = torch.softmax(logits.detach().float().cpu(), dim=-1)
    max_p, ids = probs.max(dim=-1)
    out = []
    for row_ids, row_p in zip(ids.tolist(), max_p.tolist()):
        stop = row_ids.index(NULL_ID) if NULL_ID in row_ids else None
        n_chars = len(row_ids) if stop is None else stop
        chars = row_p[:n_chars]
        stop_p = None if stop is None else row_p[stop]
        kept = chars + ([] if stop_p is None else [stop_p])
        if confidence == "product":
            conf = math.prod(kept)
        else:
            conf = sum(kept) / len(kept)
        out.append(Decoded(text=charset.decode(row_ids[:n_chars]), confidence=float(conf), char_probs=chars,
                           stop_prob=stop_p, length=n_chars + (0 if stop is None else 1)))
    return out


@dataclass
class BatchOutput:
    """Eval-mode outputs of one batch: final HeadOutput per available head (float32, CPU)."""

    heads: dict[str, HeadOutput]


class InferenceBackend(abc.ABC):
    """A model ready for inference; subclasses set the attributes and implement :meth:`forward`.

    Attributes: ``kind`` (full / vision / seqclr), ``heads`` (the outputs it has, a subset of
    HEADS), ``charset``, ``config`` (ModelConfig: input size), ``device``, ``precision`` and
    ``precision_reason`` (what runs and why).
    """

    kind: str
    heads: tuple[str, ...]
    charset: Charset
    config: ModelConfig
    device: torch.device
    precision: str
    precision_reason: str
    temperatures: dict[str, float] = {}  # head -> softmax temperature applied to the logits (calibration)
    thresholds: dict[str, float | None] = {}  # head -> calibrated confidence reaching the stored target precision

    @abc.abstractmethod
    def forward(self, batch: torch.Tensor) -> "BatchOutput":
        """Outputs of a preprocessed batch (N, 3, image_h, image_w) for every head in ``heads``."""

    def describe_precision(self) -> str:
        """``bf16 (auto: ...)`` style text for run headers."""
        return self.precision if self.precision_reason == "as requested" else f"{self.precision} (auto: {self.precision_reason})"

    def describe_confidence(self) -> str:
        """``calibrated (T alignment 1.42, ...)`` or ``uncalibrated`` for run headers."""
        if not self.temperatures:
            return "uncalibrated confidence"
        return "calibrated confidence (T " + ", ".join(f"{h} {t:.2f}" for h, t in self.temperatures.items()) + ")"

    def _apply_temperatures(self, out: "BatchOutput") -> "BatchOutput":
        for head, t in self.temperatures.items():
            if head in out.heads and t != 1.0:
                h = out.heads[head]
                out.heads[head] = HeadOutput(logits=h.logits / t, lengths=h.lengths, feature=h.feature, extras=h.extras)
        return out

    def check_head(self, head: str) -> None:
        if head not in HEADS:
            raise UsageError(f"must be one of {', '.join(HEADS)}, got {head!r}", param="head")
        if head not in self.heads:
            raise UsageError(f"a {self.kind} model has no {head} head (available: {', '.join(self.heads)})", param="head")

    def preprocess(self, images: Sequence) -> torch.Tensor:
        """PIL images / HxWx3 uint8 arrays -> (N, 3, image_h, image_w) normalised batch.

        Tensors of shape (3, image_h, image_w) are taken as already preprocessed.
        """
        h, w = self.config.image_h, self.config.image_w
        items = [img if torch.is_tensor(img) else to_model_input(img, h, w) for img in images]
        return torch.stack(items) if items else torch.empty(0, 3, h, w)

    def predict(self, images: Sequence, *, head: str = "alignment", confidence: str = "product") -> tuple[list[Decoded], "BatchOutput"]:
        """Decode one batch of images with ``head``; also returns the raw outputs."""
        self.check_head(head)
        out = self.forward(self.preprocess(images))
        return decode_logits(out.heads[head].logits, self.charset, confidence), out


class Predictor(InferenceBackend):
    """A PyTorch checkpoint loaded once for inference.

    Args:
        checkpoint: path of a semimtr checkpoint or the loaded dict (kind full, vision or seqclr).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (see runtime.pick_device).
        precision: one of runtime.PRECISIONS: ``auto`` (bf16 where the machine runs it natively
            and fast, kept only if the first batch decodes to the same words as fp32; see
            :mod:`.runtime`), ``fp32``, ``bf16`` (bfloat16 autocast), ``fp16`` (CUDA autocast).
            The fastest CPU path is the exported fp32 ONNX graph (``export.export_onnx``, ``open_backend``).
        channels_last: run convolutions in channels-last memory layout (None = on for CPU,
            where it measured faster with unchanged outputs).
        calibration: one of CALIBRATION_MODES: ``auto`` divides each head's logits by the
            temperature ``semimtr calibrate`` stored in the checkpoint, when there is one;
            ``require`` raises when there is none; ``off`` reads the raw logits.

    After construction ``precision`` is the name in use and ``precision_reason`` says why; with
    ``auto`` both may change once, on the first batch (the agreement check).
    """

    def __init__(self, checkpoint, *, device: str = "cpu", precision: str = "auto", channels_last: bool | None = None,
                 calibration: str = "auto") -> None:
        from .calibration import stored_calibration

        if calibration not in CALIBRATION_MODES:
            raise UsageError(f"must be one of {', '.join(CALIBRATION_MODES)}, got {calibration!r}", param="calibration")
        model, charset, ckpt = model_from_checkpoint(checkpoint)
        self.kind = ckpt["kind"]
        if self.kind == "language":
            raise SemimtrError("this checkpoint holds a language model alone, which cannot read images")
        stored = stored_calibration(ckpt)
        self.temperatures, self.thresholds = {}, {}
        if calibration == "require" and stored is None:
            raise SemimtrError("the checkpoint has no calibration; run `semimtr calibrate CKPT --valid LMDB` first "
                               "or drop --calibration require")
        if stored is not None and calibration != "off":
            self.temperatures = {h: float(t) for h, t in stored["temperature"].items()}
            self.thresholds = dict(stored.get("threshold") or {})
        self.device = pick_device(device)
        if self.device.type == "cpu":
            # values below ~1e-38 (softmax tails of a very confident head feeding the language model)
            # are denormal floats, slow on CPUs: flushing them to zero changes no word and ran a
            # collapsed tiny full model 1.3x faster (144 -> 188 images/s, 1 thread). Process-wide.
            torch.set_flush_denormal(True)
        check_precision(precision)
        self._autocast: Precision = choose_precision(precision, self.device)
        self.precision, self.precision_reason = self._autocast.name, self._autocast.reason
        # auto + reduced precision: compare with fp32 on the first batch before trusting it
        self._check_agreement = precision == "auto" and self._autocast.dtype is not None
        if channels_last is None:
            channels_last = self.device.type == "cpu"
        self.channels_last = channels_last
        self.model = model.to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.charset = charset
        self.config = model.config
        self.checkpoint = ckpt
        self.heads: tuple[str, ...] = HEADS if self.kind == "full" else ("vision",)

    def _run(self, x: torch.Tensor, autocast) -> BatchOutput:
        with autocast:
            out = self.model(x)
        heads = {name: out.head(name) for name in HEADS} if self.kind == "full" else {"vision": out}
        return BatchOutput({name: _to_cpu_float(h) for name, h in heads.items()})

    @torch.no_grad()
    def forward(self, batch: torch.Tensor) -> BatchOutput:
        """Model outputs of a preprocessed batch (N, 3, H, W)."""
        x = batch.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self._run(x, self._autocast.autocast())
        if self._check_agreement and len(x):
            out = self._agree_with_fp32(x, out)
        return self._apply_temperatures(out)

    def _agree_with_fp32(self, x: torch.Tensor, out: BatchOutput) -> BatchOutput:
        """The first batch under ``auto`` reduced precision: fp32's outputs (and fp32 from now on)
        unless every word of every head is the same."""
        self._check_agreement = False
        reference = self._run(x, contextlib.nullcontext())
        changed = sum(
            a.text != b.text
            for name in out.heads
            for a, b in zip(decode_logits(out.heads[name].logits, self.charset),
                            decode_logits(reference.heads[name].logits, self.charset)))
        total = len(x) * len(out.heads)
        if changed:
            self._autocast = choose_precision("fp32", self.device)
            self.precision = "fp32"
            self.precision_reason = (f"{self.precision_reason}; but bf16 changed {changed} of {total} words of the "
                                     "first batch against fp32, so fp32 is used")
            return reference
        self.precision_reason += f"; first batch: all {total} words equal to fp32"
        return out


def load_predictor(checkpoint: str | Path, *, device: str = "auto", precision: str = "auto",
                   calibration: str = "auto") -> Predictor:
    """A Predictor for ``checkpoint`` after checking that its charset fits its classifier.

    Raises:
        SemimtrError: unreadable checkpoint, or a stored charset whose class count differs from
            the classifier's (a checkpoint/charset mismatch), named with the file.
    """
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
        return Predictor(ckpt, device=device, precision=precision, calibration=calibration)
    except UsageError:
        raise
    except SemimtrError as exc:
        raise SemimtrError(f"{checkpoint}: {exc}") from None


def open_backend(path: str | Path, *, backend: str = "auto", device: str = "auto", precision: str = "auto",
                 calibration: str = "auto") -> InferenceBackend:
    """``torch``: :func:`load_predictor`; ``onnx``: an ``export.OnnxPredictor`` (CPU, fp32; raw
    confidences: an exported file carries no calibration); ``auto``: onnx for a ``.onnx`` path,
    else torch."""
    if backend == "auto":
        backend = "onnx" if str(path).endswith(".onnx") else "torch"
    if backend not in BACKENDS:
        raise UsageError(f"must be one of {', '.join(BACKENDS)}, got {backend!r}", param="backend")
    if backend == "torch":
        return load_predictor(path, device=device, precision=precision, calibration=calibration)
    if calibration == "require":
        raise UsageError("an ONNX file carries no calibration; read the .pt checkpoint instead", param="calibration")
    from .export import OnnxPredictor

    check_precision(precision)
    if precision not in ("auto", "fp32") or device not in ("auto", "cpu"):
        raise UsageError(f"the onnx backend runs fp32 on the CPU; drop {option('precision')} / {option('device')}",
                         param="backend")
    return OnnxPredictor(path)


def _to_cpu_float(h: HeadOutput) -> HeadOutput:
    return HeadOutput(
        logits=h.logits.float().cpu(),
        lengths=h.lengths.cpu(),
        feature=h.feature.float().cpu(),
        extras={k: v.float().cpu() for k, v in h.extras.items() if k == "attn_scores"},
    )


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

    def to_json(self, **header) -> dict:
        """``header`` (checkpoint, head, precision, ...) + ``predictions`` + ``failed``."""
        return {**header, "predictions": self.rows, "failed": [{"path": p, "error": m} for p, m in self.failed]}

    def write_csv(self, path: str | Path) -> None:
        """path,text,confidence,length[,rejected] per prediction, atomically."""
        import pandas as pd

        cols = ["path", "text", "confidence", "length"] + (["rejected"] if self.rows and "rejected" in self.rows[0] else [])
        with atomic_path(path, suffix=".csv") as tmp:
            pd.DataFrame(self.rows, columns=cols).to_csv(tmp, index=False)

    def write_logits(self, path: str | Path) -> None:
        """An ``.npz``: one (N, slots, classes) float32 array per head, plus ``paths``."""
        if self.logits is None:
            raise SemimtrError("these predictions were made without keep_logits")
        arrays = dict(self.logits, paths=np.array([r["path"] for r in self.rows], dtype=str))
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def read_paths(predictor: InferenceBackend, paths: Sequence[Path], *, head: str = "alignment", batch_size: int = 32,
               confidence: str = "product", rotate_tall: bool = False, keep_logits: bool = False,
               skip_bad: bool = False, min_confidence: float | None = None,
               on_progress: Callable[[int], None] | None = None) -> ReadResult:
    """Recognise every image in ``paths`` (batched, input order kept). With ``min_confidence``
    each row says whether its word falls below it (``rejected``).

    Raises:
        SemimtrError: naming the first unreadable image, unless ``skip_bad`` (then it is listed
            in ``failed``).
    """
    predictor.check_head(head)
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
