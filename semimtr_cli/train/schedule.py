"""Learning-rate schedules as a multiplier of the base LR per optimizer step.

``multistep`` is the official schedule: phase i lasts ``periods[i]`` epochs with
``lr * gamma**i`` (fastai TrainingPhase without annealing); the last phase runs to the end.
``cosine`` decays from the base LR to ``min_lr_ratio * lr``; ``constant`` keeps it. Every
schedule can start with a linear warm-up of ``warmup_steps``.
"""

from __future__ import annotations

import bisect
import math

import torch

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.train.recipe import OptimConfig


def phase_boundaries(periods: list[float], steps_per_epoch: float) -> list[int]:
    """Optimizer steps at which each phase after the first begins."""
    if any(p <= 0 for p in periods):
        raise SemimtrError(f"optim.periods must be positive epoch counts, got {periods}")
    out, acc = [], 0.0
    for p in periods[:-1]:
        acc += p
        out.append(int(round(acc * steps_per_epoch)))
    return out


def lr_multiplier(step: int, cfg: OptimConfig, boundaries: list[int], total_steps: int) -> float:
    """Factor applied to the base LR at optimizer step ``step`` (0-based)."""
    warm = 1.0
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        warm = (step + 1) / cfg.warmup_steps
    if cfg.schedule == "multistep":
        return warm * cfg.gamma ** bisect.bisect_right(boundaries, step)
    if cfg.schedule == "cosine":
        span = max(total_steps - cfg.warmup_steps, 1)
        t = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
        return warm * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))
    return warm


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: float, total_steps: int):
    """A LambdaLR stepping once per optimizer step (its state_dict round-trips on resume)."""
    boundaries = phase_boundaries(cfg.periods, steps_per_epoch) if cfg.periods else []
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_multiplier(step, cfg, boundaries, total_steps)
    )


def make_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Adam:
    """Adam with coupled weight decay; norm weights and biases exempt unless decay_norm_and_bias."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if (p.ndim <= 1 and not cfg.decay_norm_and_bias) else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
