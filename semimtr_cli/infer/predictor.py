"""The PyTorch inference backend: :class:`Predictor` reads images with a checkpoint.

:func:`load_predictor` opens a checkpoint after checking its charset against its classifier; the
predictor applies the checkpoint's stored calibration temperatures unless told otherwise, picks
the device and precision, and checks reduced precision against fp32 on its first batch.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError, UsageError
from semimtr_cli.core.runtime import Precision, check_precision, choose_precision, pick_device
from semimtr_cli.infer.backend import BatchOutput, InferenceBackend, to_cpu_float
from semimtr_cli.model.checkpoint import load_checkpoint, model_from_checkpoint
from semimtr_cli.model.decoding import decode_logits
from semimtr_cli.model.outputs import HEADS

CALIBRATION_MODES = ("auto", "require", "off")  # use the checkpoint's temperatures if any / must have them / never


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
        from semimtr_cli.model.checkpoint import stored_calibration

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
        return BatchOutput({name: to_cpu_float(h) for name, h in heads.items()})

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


