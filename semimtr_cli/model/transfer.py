"""Initialise (part of) a model from a checkpoint trained with another charset or max length.

The field's most frequent fine-tuning question. Rules:

- every parameter whose shape matches is copied;
- class-indexed tensors (``cls`` rows, the language model's input projection ``proj``
  columns) are copied symbol by symbol: shared symbols keep their weights, the null class
  maps to the null class, symbols new to the target keep their fresh initialisation, and
  symbols the target lacks are dropped;
- the sinusoidal position tables (``*.pe`` buffers) are regenerated for the target's
  max length (they are deterministic, not learned);
- anything else that is missing or has another shape is an error listing the keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.model.checkpoint import describe_key_problems

PART_PREFIXES = {
    # part -> {source checkpoint kind: key prefix of that part inside the source state dict}
    "vision": {"vision": "", "seqclr": "vision.", "full": "vision."},
    "language": {"language": "", "full": "language."},
    "full": {"full": ""},
}


@dataclass
class TransferReport:
    """What :func:`load_part` did, for printing."""

    part: str
    source: str
    copied: int = 0
    class_tensors: list[str] = field(default_factory=list)
    new_symbols: list[str] = field(default_factory=list)
    dropped_symbols: list[str] = field(default_factory=list)
    regenerated: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.part}: {self.copied} tensors copied from {self.source}"]
        if self.class_tensors:
            out.append(
                f"{self.part}: classifier/embedding re-mapped by symbol ({len(self.class_tensors)} tensors); "
                f"new symbols initialised: {''.join(self.new_symbols) or 'none'}; "
                f"dropped symbols: {''.join(self.dropped_symbols) or 'none'}"
            )
        if self.regenerated:
            out.append(f"{self.part}: position tables regenerated for the new max length: {', '.join(self.regenerated)}")
        return out


def _class_axis(key: str) -> int | None:
    """Axis indexed by class: classifier rows, or the language model's input-projection columns."""
    if key.endswith("cls.weight") or key.endswith("cls.bias"):
        return 0
    if key in ("proj.weight", "language.proj.weight"):
        return 1
    return None


def _class_index(source: Charset, target: Charset) -> tuple[list[int], list[int]]:
    """(target class ids, matching source class ids) for null + shared symbols."""
    src = {s: i + 1 for i, s in enumerate(source.symbols)}
    tgt_ids, src_ids = [0], [0]
    for i, s in enumerate(target.symbols):
        if s in src:
            tgt_ids.append(i + 1)
            src_ids.append(src[s])
    return tgt_ids, src_ids


def load_part(
    module: nn.Module,
    ckpt: dict,
    part: str,
    target_charset: Charset,
    *,
    source: str = "checkpoint",
) -> TransferReport:
    """Load ``part`` (vision | language | full) of checkpoint dict ``ckpt`` into ``module``.

    ``module`` is the target sub-module (e.g. ``model.vision`` for part ``vision``).
    """
    kinds = PART_PREFIXES[part]
    kind = ckpt.get("kind")
    if kind not in kinds:
        raise SemimtrError(
            f"{source}: a '{kind}' checkpoint cannot initialise the {part} model (expected one of {sorted(kinds)})"
        )
    prefix = kinds[kind]
    src_sd = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    src_charset = Charset.from_dict(ckpt["charset"])
    report = TransferReport(part=part, source=source)
    same_charset = src_charset.symbols == target_charset.symbols
    if not same_charset:
        report.new_symbols = [s for s in target_charset.symbols if s not in set(src_charset.symbols)]
        report.dropped_symbols = [s for s in src_charset.symbols if s not in set(target_charset.symbols)]
    tgt_ids, src_ids = _class_index(src_charset, target_charset)
    target_sd = module.state_dict()
    missing, mismatched = [], []
    new_sd = {}
    for key, tgt in target_sd.items():
        if key.endswith(".pe") or key == "pe":
            if key in src_sd and src_sd[key].shape != tgt.shape:
                report.regenerated.append(key)
            new_sd[key] = tgt
            continue
        if key not in src_sd:
            missing.append(key)
            continue
        val = src_sd[key]
        if val.shape == tgt.shape and same_charset:
            new_sd[key] = val.to(tgt.dtype)
            report.copied += 1
            continue
        axis = _class_axis(key)
        if axis is not None and val.ndim > axis and val.ndim == tgt.ndim:
            other = [d for d in range(val.ndim) if d != axis]
            if all(val.shape[d] == tgt.shape[d] for d in other):
                out = tgt.clone()
                out.index_copy_(axis, torch.tensor(tgt_ids), val.index_select(axis, torch.tensor(src_ids)).to(tgt.dtype))
                new_sd[key] = out
                report.class_tensors.append(key)
                continue
        if val.shape == tgt.shape:
            new_sd[key] = val.to(tgt.dtype)
            report.copied += 1
            continue
        mismatched.append(f"{key} {tuple(val.shape)} vs {tuple(tgt.shape)}")
    unexpected = sorted(k for k in src_sd if k not in target_sd)
    problems = describe_key_problems(missing, unexpected, mismatched)
    if problems:
        raise SemimtrError(f"{source}: cannot initialise the {part} model ({problems}); is the model config the same?")
    module.load_state_dict(new_sd, strict=True)
    return report
