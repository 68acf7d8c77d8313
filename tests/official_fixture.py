"""The official-weights fixture (fixtures/official_parity/README.md): state dicts rebuilt from its
rule, shared by the parity proof and the evaluation tests."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch

FIX = Path(__file__).resolve().parent / "fixtures" / "official_parity"
SEED = 11
NORM_TYPES = ("BatchNorm2d", "BatchNorm1d", "LayerNorm")
IMAGES = [FIX / f"image_{i}.png" for i in range(4)]


def _read_tsv(name: str) -> list[list[str]]:
    return [line.split("\t") for line in (FIX / name).read_text().splitlines()[1:]]


def rule_value(key: str, shape: tuple[int, ...], module_type: str, seed: int) -> np.ndarray:
    """The README's weights rule for one learnable tensor / running statistic."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    if key.endswith("running_mean"):
        v = 0.1 * rng.standard_normal(shape)
    elif key.endswith("running_var"):
        v = rng.uniform(0.5, 1.5, shape)
    elif len(shape) == 1 and key.endswith(".weight") and module_type in NORM_TYPES:
        v = 1 + 0.1 * rng.standard_normal(shape)
    elif len(shape) == 1:
        v = 0.1 * rng.standard_normal(shape)
    else:
        v = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        if key.startswith("vision.attention.project."):
            v = v * 8
    return v.astype(np.float32)


def official_state_dict(tsv: str, buffers: str, types: dict[str, str], seed: int = SEED) -> dict[str, torch.Tensor]:
    """Complete official state dict: rule values + the fixed buffers stored in the fixture."""
    fixed = np.load(FIX / buffers)
    sd = {}
    for row in _read_tsv(tsv):
        key, shape_txt = row[0], row[1]
        if key in fixed.files:
            sd[key] = torch.from_numpy(np.array(fixed[key]))
            continue
        shape = () if shape_txt == "scalar" else tuple(int(s) for s in shape_txt.split("x"))
        sd[key] = torch.from_numpy(rule_value(key, shape, types.get(key, ""), seed))
    return sd


def abinet_types() -> dict[str, str]:
    return {row[0]: row[2] for row in _read_tsv("abinet_state_dict_keys.tsv")}
