"""Where and in which precision a model runs: one vocabulary for training and inference.

- :func:`pick_device`: ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` / ``mps`` -> torch.device.
- :func:`choose_precision`: ``auto`` / ``fp32`` / ``bf16`` / ``fp16`` -> :class:`Precision`, which
  says what was chosen and why, and gives the autocast context.

``auto`` decides per machine, at run time:

- CUDA: bf16 where the GPU supports it, else fp16 (training adds a GradScaler).
- CPU: bf16 autocast only where the CPU has native bf16 instructions (``avx512_bf16`` or
  ``amx_bf16`` in its flags) **and** a short probe (a conv + matmul forward/backward, ~0.3 s,
  once per process) runs at least :data:`BF16_MIN_SPEEDUP` x faster than fp32; else fp32. Both
  conditions matter: an AMD EPYC with AVX512-BF16 measured 1.4-2.4x, an Intel Xeon with
  AVX512-BF16 but no AMX 0.7x.
- Inference (``read``, ``eval``, ``pseudo-labels``) keeps bf16 only where it gives the fp32
  words: the predictor runs its first batch both ways and falls back to fp32 on any difference.

The environment variable ``SEMIMTR_CPU_BF16`` (``0``/``1``) overrides the CPU answer (the test
suite sets 0 so that results do not depend on the machine).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import time
from dataclasses import dataclass

import torch

from semimtr_cli.core.errors import UsageError

#: Every ``--precision`` value (there is no int8: see INT8_HINT).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
TRAINING_PRECISIONS = PRECISIONS
INT8_HINT = ("there is no int8 inference: int8 changed 2-16 % of the words of trained models and ran no faster "
             "than the fp32 ONNX graph; for fast CPU inference `semimtr export CKPT --onnx MODEL.onnx`, then read or "
             "eval MODEL.onnx (faster than PyTorch fp32, same words)")
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
BF16_MIN_SPEEDUP = 1.15
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


# ----------------------------------------------------------------------------- device
def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda:<local_rank> if available, else mps, else cpu; or the named device.

    Raises UsageError (about ``device``) for an unknown name or a device this machine does not have.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use {DEVICE_CHOICES}", param="device") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"{name} requested but CUDA is not available", param="device")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("mps requested but this machine has no MPS backend", param="device")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unknown device {name!r}; use {DEVICE_CHOICES}", param="device")
    return device


# ----------------------------------------------------------------------------- the CPU
def machine_record() -> dict:
    """Where a measurement ran, for every benchmark and study JSON: CPU model and the flags that
    decide precision (avx512_bf16, amx_bf16, ...), cores, torch version and CPU capability, torch
    threads, load average (1, 5, 15 min) now, the GPU when CUDA is available."""
    info = cpu_info()
    return {"cpu": info["model"], "cpu_flags": info["flags"], "cores": info["cores"],
            "torch": torch.__version__, "torch_cpu_capability": info["torch_capability"],
            "torch_threads": torch.get_num_threads(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(), "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict:
    """``{"model": str, "flags": [...], "torch_capability": str, "cores": int}`` of this machine.

    ``flags`` lists only the vector/matrix flags that matter for precision choices.
    """
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile",
              "amx_int8", "asimd", "bf16", "sve")
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch
        capability = "unknown"
    return {"model": model, "flags": [f for f in wanted if f in flags], "torch_capability": capability,
            "cores": os.cpu_count() or 1}


def _probe_bf16_speedup() -> float:
    """fp32 time / bf16-autocast time of a small conv + matmul forward/backward on the CPU."""
    with torch.random.fork_rng(devices=[]):  # the probe must not move any training RNG
        gen = torch.Generator().manual_seed(0)
        conv = torch.nn.Sequential(torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU())
        lin = torch.nn.Linear(512, 512)
        x = torch.randn(16, 64, 16, 32, generator=gen)

        def step(bf16: bool) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                tokens = conv(x).flatten(2)  # (16, 64, 512): 64 tokens of width 512
                y = lin(tokens).float().square().mean()
            y.backward()

        def timed(bf16: bool) -> float:
            for _ in range(2):
                step(bf16)
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                step(bf16)
                best = min(best, time.perf_counter() - t)
            return best

        return timed(False) / max(timed(True), 1e-9)


@functools.lru_cache(maxsize=1)
def cpu_bf16() -> tuple[bool, str]:
    """(use bf16 autocast on this CPU?, why) — flags first, then the speed probe."""
    forced = os.environ.get("SEMIMTR_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1", f"SEMIMTR_CPU_BF16={forced}"
    info = cpu_info()
    native = [f for f in BF16_FLAGS if f in info["flags"]]
    if not native:
        return False, f"{info['model']} has no native bf16 ({' / '.join(BF16_FLAGS)} absent)"
    try:
        speedup = _probe_bf16_speedup()
    except RuntimeError as exc:  # a CPU build without bf16 kernels: stay in fp32
        return False, f"{info['model']} has {', '.join(native)} but the bf16 probe failed ({exc})"
    verdict = speedup >= BF16_MIN_SPEEDUP
    return verdict, (f"{info['model']} has {', '.join(native)}; bf16 probe ran {speedup:.2f}x fp32 "
                     f"({'>=' if verdict else '<'} {BF16_MIN_SPEEDUP}x)")


# ----------------------------------------------------------------------------- precision
@dataclass(frozen=True)
class Precision:
    """A resolved precision: ``name`` fp32 / bf16 / fp16, what was asked, and why."""

    name: str
    requested: str
    reason: str
    device_type: str = "cpu"

    @property
    def dtype(self) -> torch.dtype | None:
        """Autocast dtype, None for fp32."""
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.name]

    @property
    def needs_scaler(self) -> bool:
        return self.name == "fp16"

    def autocast(self):
        """A fresh autocast context (a no-op context for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def describe(self) -> str:
        return self.name if self.requested != "auto" else f"{self.name} (auto: {self.reason})"

    def to_dict(self) -> dict:
        return {"name": self.name, "requested": self.requested, "reason": self.reason}


def check_precision(name: str, *, training: bool = False) -> None:
    """Raise a UsageError (about ``precision``) unless ``name`` is a value of :data:`PRECISIONS`
    (of :data:`TRAINING_PRECISIONS` when ``training``)."""
    if name == "int8":
        raise UsageError(INT8_HINT, param="precision")
    if name not in PRECISIONS:
        raise UsageError(f"must be one of {', '.join(PRECISIONS)}, got {name!r}", param="precision")
    if training and name not in TRAINING_PRECISIONS:
        raise UsageError(f"{name} is for inference (read, eval, pseudo-labels); training takes "
                         f"{', '.join(TRAINING_PRECISIONS)}", param="precision")


def choose_precision(requested: str, device: torch.device) -> Precision:
    """Resolve ``requested`` (one of :data:`PRECISIONS`) on ``device``; see the module docstring.

    Raises UsageError for an unknown name, int8 (an ONNX Runtime file, see INT8_HINT) or fp16 off CUDA.
    """
    check_precision(requested, training=True)
    kind = device.type
    if requested != "auto":
        if requested == "fp16" and kind != "cuda":
            raise UsageError("fp16 needs a CUDA device; use bf16 or fp32 on the CPU", param="precision")
        return Precision(requested, requested, "as requested", kind)
    if kind == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", "auto", "CUDA device supports bf16", kind)
        return Precision("fp16", "auto", "CUDA device without bf16: fp16 with loss scaling", kind)
    if kind == "cpu":
        use, why = cpu_bf16()
        return Precision("bf16" if use else "fp32", "auto", why, kind)
    return Precision("fp32", "auto", f"{kind} device: fp32", kind)
