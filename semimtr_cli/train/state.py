"""What a run carries across a kill and a resume: the loop position, every RNG, the metrics log.

:class:`LoopState` and :func:`capture_rng` go into last.pt; :func:`restore_rng` puts the RNGs
back so that a resumed run draws the same batches, augmentations and dropout masks.
:class:`MetricsLog` appends to metrics.jsonl and, on resume, drops the events logged after the
last checkpoint (they are redone).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from semimtr_cli.core.fsutil import atomic_write_text
from semimtr_cli.train import distributed as ddp


@dataclass
class LoopState:
    """Where the loop is; saved in last.pt."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of this epoch consumed by completed steps
    best_value: float | None = None
    best_step: int | None = None
    images_seen: int = 0
    substituted: int = 0  # unreadable/too-small training images replaced by the next good one
    seconds: float = 0.0  # wall seconds of training so far (validation included), across resumes


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng(info: ddp.DistInfo) -> dict:
    """RNG states as tensors/plain data (weights_only-loadable); torch states of every rank."""
    torch_state = torch.get_rng_state()
    if info.enabled:
        states = [torch.empty_like(torch_state) for _ in range(info.world_size)]
        torch.distributed.all_gather(states, torch_state)
    else:
        states = [torch_state]
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    out = {
        "torch": states,
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict, info: ddp.DistInfo) -> None:
    torch_states = state["torch"]
    torch.set_rng_state(torch_states[info.rank if len(torch_states) > info.rank else 0])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class MetricsLog:
    """Appends JSON lines to metrics.jsonl (main rank only) and, when the ``tensorboard`` package
    is installed (extra ``semimtr[tensorboard]``), the same numbers as TensorBoard scalars
    ``<event>/<name>`` in ``tensorboard/`` beside it (``tensorboard --logdir RUN_DIR``)."""

    SKIP = ("step", "epoch", "event")

    def __init__(self, path: Path, enabled: bool, truncate_after: int | None = None):
        self.path, self.enabled = path, enabled
        if enabled and truncate_after is not None and path.exists():
            # drop events a killed run logged after its last checkpoint: they are redone
            kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= truncate_after]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        self.board = tensorboard_writer(path.parent / "tensorboard", purge_step=truncate_after) if enabled else None

    def write(self, event: dict) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
        if self.board is not None:
            for name, value in event.items():
                if name not in self.SKIP and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.board.add_scalar(f"{event.get('event', 'train')}/{name}", value, event["step"])
            self.board.flush()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
            self.board = None


def tensorboard_writer(folder: Path, purge_step: int | None = None):
    """A ``SummaryWriter`` on ``folder``, or None when the tensorboard package is not installed.
    ``purge_step``: on resume, events a killed run logged after its last checkpoint are hidden."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder), purge_step=purge_step)
